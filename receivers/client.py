"""Stream management against any SSF 1.0 transmitter (SSF §8.1; R-STREAM-*, R-STATUS-*, R-SUBJ-*, R-VERIFY-*).

Every URL comes from the transmitter's metadata (AMB-1). Every stream configuration the
transmitter returns is checked: its ``iss`` must be the discovered issuer, otherwise
:class:`~receivers.errors.IssuerMismatch` is raised and the stream must not be used (R-STREAM-5,
-9, -10, -11); with ``expected_audience`` set, ``aud`` must contain it.

Verification requests carry a fresh random ``state`` (:class:`~receivers.verification.VerificationStates`);
the :class:`~receivers.receiver.Receiver` made by :meth:`StreamClient.receiver` checks the
event that comes back against it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from receivers.dedup import Deduplicator
from receivers.discovery import TransmitterMetadata, parse_metadata, well_known_urls
from receivers.dispatch import Dispatcher
from receivers.errors import DiscoveryError, IssuerMismatch, TransmitterError
from receivers.jwks import JwksCache, KeySource
from receivers.oauth import BearerAuth, TokenSource
from receivers.poll import PollConsumer
from receivers.receiver import Receiver
from receivers.stores import DedupStore
from receivers.streams import StreamConfig, StreamStatus, parse_status, poll_delivery, push_delivery
from receivers.subjects import Subject
from receivers.verification import VerificationStates
from receivers.verify import SetVerifier

__all__ = ["StreamClient", "StreamConfig", "StreamStatus", "poll_delivery", "push_delivery"]


class StreamClient:
    """Stream management calls to one transmitter, with URLs from its metadata."""

    def __init__(
        self,
        metadata: TransmitterMetadata,
        *,
        http: httpx.AsyncClient,
        auth: httpx.Auth | TokenSource | None = None,
        expected_audience: str | None = None,
        states: VerificationStates | None = None,
    ) -> None:
        self.metadata = metadata
        self.http = http
        self.auth: httpx.Auth | None = (
            auth if isinstance(auth, httpx.Auth) or auth is None else BearerAuth(auth)
        )
        self.expected_audience = expected_audience
        self.states = states if states is not None else VerificationStates()

    @classmethod
    async def discover(
        cls,
        issuer: str,
        *,
        http: httpx.AsyncClient,
        auth: httpx.Auth | TokenSource | None = None,
        allow_http: bool | None = None,
        expected_audience: str | None = None,
    ) -> StreamClient:
        return cls(
            await fetch_metadata(issuer, http=http, allow_http=allow_http),
            http=http,
            auth=auth,
            expected_audience=expected_audience,
        )

    # -- configuration (R-STREAM-5..13) --------------------------------------------------------
    async def create_stream(
        self,
        *,
        events_requested: Sequence[str] | None = None,
        delivery: Mapping[str, Any] | None = None,
        description: str | None = None,
        delete_on_mismatch: bool = False,
    ) -> StreamConfig:
        """POST a new stream. With ``delete_on_mismatch``, a stream the transmitter created under
        a foreign issuer is deleted before :class:`IssuerMismatch` is raised, so retries do not
        leave streams behind (the error's ``stream_id`` names it either way)."""
        body: dict[str, Any] = {}
        if events_requested is not None:
            body["events_requested"] = list(events_requested)
        if delivery is not None:
            body["delivery"] = dict(delivery)
        if description is not None:
            body["description"] = description
        doc = await self._call("POST", self._endpoint("configuration_endpoint"), body, expect=(201, 200))
        try:
            return self._checked(doc)
        except IssuerMismatch as mismatch:
            if not delete_on_mismatch or mismatch.stream_id is None:
                raise
            await self.delete_stream(mismatch.stream_id)
            raise IssuerMismatch(str(mismatch), stream_id=mismatch.stream_id, deleted=True) from None

    async def get_stream(self, stream_id: str) -> StreamConfig:
        doc = await self._call(
            "GET", self._endpoint("configuration_endpoint"), params={"stream_id": stream_id}
        )
        return self._checked(doc)

    async def list_streams(self) -> list[StreamConfig]:
        doc = await self._call("GET", self._endpoint("configuration_endpoint"))
        items = doc if isinstance(doc, list) else [doc]  # R-STREAM-9; an ID1 peer returns one object
        return [self._checked(item) for item in items]

    async def update_stream(self, stream_id: str, **fields: Any) -> StreamConfig:
        """PATCH: the receiver-supplied fields given change, the others stay (R-STREAM-10)."""
        doc = await self._call(
            "PATCH", self._endpoint("configuration_endpoint"), {"stream_id": stream_id, **fields}
        )
        return self._checked(doc)

    async def replace_stream(self, stream_id: str, **fields: Any) -> StreamConfig:
        """PUT: receiver-supplied fields left out are deleted (R-STREAM-11)."""
        doc = await self._call(
            "PUT", self._endpoint("configuration_endpoint"), {"stream_id": stream_id, **fields}
        )
        return self._checked(doc)

    async def delete_stream(self, stream_id: str) -> None:
        await self._call(
            "DELETE",
            self._endpoint("configuration_endpoint"),
            params={"stream_id": stream_id},
            expect=(204, 200),
        )

    # -- status (R-STATUS-1..3) ------------------------------------------------------------------
    async def get_status(self, stream_id: str) -> StreamStatus:
        return parse_status(
            await self._call("GET", self._endpoint("status_endpoint"), params={"stream_id": stream_id})
        )

    async def set_status(self, stream_id: str, status: str, reason: str | None = None) -> StreamStatus:
        body: dict[str, Any] = {"stream_id": stream_id, "status": status}
        if reason is not None:
            body["reason"] = reason
        return parse_status(await self._call("POST", self._endpoint("status_endpoint"), body))

    # -- subjects (R-SUBJ-1..4; any 2xx is success, AMB-12) -------------------------------------------
    async def add_subject(self, stream_id: str, subject: Subject, *, verified: bool | None = None) -> None:
        body: dict[str, Any] = {"stream_id": stream_id, "subject": dict(subject)}
        if verified is not None:
            body["verified"] = verified
        await self._call("POST", self._endpoint("add_subject_endpoint"), body, expect=(200, 201, 202, 204))

    async def remove_subject(self, stream_id: str, subject: Subject) -> None:
        body = {"stream_id": stream_id, "subject": dict(subject)}
        await self._call("POST", self._endpoint("remove_subject_endpoint"), body, expect=(200, 202, 204))

    # -- verification (R-VERIFY-1..6) ------------------------------------------------------------------
    async def request_verification(self, stream_id: str) -> str:
        """Ask for a verification event with a fresh random ``state``; returns the state.

        ``client.states.confirmed(stream_id, state)`` turns true once the event has been received.
        """
        state = self.states.new(stream_id)
        await self._call(
            "POST",
            self._endpoint("verification_endpoint"),
            {"stream_id": stream_id, "state": state},
            expect=(204, 200, 202),
        )
        return state

    async def verified(
        self,
        stream_id: str,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109 - one deadline over several requests and the wait
        state: str | None = None,
    ) -> str:
        """Request verification (unless ``state`` was already requested) and wait until the
        event echoing it has been received; returns the state. A receiver for the stream must
        be running. Raises :class:`TimeoutError`; a ``429`` (requested too recently,
        R-VERIFY-2) is asked again until ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        arrived = asyncio.Event()
        wanted: set[str] = set()

        def heard(sid: str, echoed: str) -> None:
            if sid == stream_id and echoed in wanted:
                arrived.set()

        self.states.listeners.append(heard)
        try:
            while state is None:
                try:
                    state = await self.request_verification(stream_id)
                except TransmitterError as exc:
                    if exc.status != 429 or loop.time() + 1.0 > deadline:
                        raise
                    await asyncio.sleep(1.0)
            wanted.add(state)
            if not self.states.confirmed(stream_id, state):
                await asyncio.wait_for(arrived.wait(), max(0.0, deadline - loop.time()))
            return state
        finally:
            self.states.listeners.remove(heard)

    # -- receiving ----------------------------------------------------------------------------------------
    def receiver(
        self,
        stream: StreamConfig,
        *,
        dispatcher: Dispatcher | None = None,
        dedup: Deduplicator | DedupStore | None = None,
        keys: KeySource | None = None,
        audience: str | Sequence[str] | None = None,
    ) -> Receiver:
        """A :class:`Receiver` for ``stream``: issuer from discovery, ``aud`` from the stream,
        keys from the transmitter's ``jwks_uri``, verification states shared with this client."""
        self._check_issuer(stream)
        verifier = SetVerifier(
            issuer=self.metadata.issuer,
            audience=audience if audience is not None else stream.aud,
            critical_subject_members=self.metadata.critical_subject_members,
            clock=self.states.clock,
        )
        return Receiver(
            verifier,
            keys if keys is not None else JwksCache(self.metadata.jwks_uri, http=self.http),
            dispatcher=dispatcher,
            dedup=dedup,
            states=self.states,
            stream_id=stream.stream_id,
        )

    def poll_consumer(
        self,
        stream: StreamConfig,
        *,
        dispatcher: Dispatcher | None = None,
        receiver: Receiver | None = None,
        **options: Any,
    ) -> PollConsumer:
        """A :class:`PollConsumer` for a poll stream, authenticated like this client; ``options``
        go to :class:`PollConsumer` (``max_events``, backoff...)."""
        if stream.endpoint_url is None:
            raise TransmitterError(
                200, "invalid_response", f"stream {stream.stream_id} has no poll endpoint_url"
            )
        receiver = receiver if receiver is not None else self.receiver(stream, dispatcher=dispatcher)
        return PollConsumer(stream.endpoint_url, receiver, http=self.http, auth=self.auth, **options)

    # -- internals ------------------------------------------------------------------------------------------
    def _endpoint(self, name: str) -> str:
        url = getattr(self.metadata, name)
        if not isinstance(url, str):
            raise DiscoveryError(f"the transmitter does not offer a {name}")
        return url

    def _check_issuer(self, stream: StreamConfig) -> None:
        if stream.iss.rstrip("/") != self.metadata.issuer.rstrip("/"):
            raise IssuerMismatch(
                f"stream {stream.stream_id} names issuer {stream.iss!r}, not {self.metadata.issuer!r}",
                stream_id=stream.stream_id,
            )

    def _checked(self, doc: Any) -> StreamConfig:
        stream = StreamConfig.from_json(doc)
        self._check_issuer(stream)
        if self.expected_audience is not None and self.expected_audience not in stream.aud:
            raise IssuerMismatch(
                f"stream {stream.stream_id} is for audience {list(stream.aud)}, not ours",
                stream_id=stream.stream_id,
            )
        return stream

    async def _call(
        self,
        method: str,
        url: str,
        body: Mapping[str, Any] | None = None,
        *,
        params: Mapping[str, str] | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> Any:
        response = await self.http.request(
            method,
            url,
            json=dict(body) if body is not None else None,
            params=dict(params) if params else None,
            auth=self.auth if self.auth is not None else httpx.USE_CLIENT_DEFAULT,
            headers={"Accept": "application/json"},
        )
        if response.status_code not in expect:
            raise self._refusal(response, url)
        return self._document(response) if response.content else None

    def _refusal(self, response: httpx.Response, url: str) -> Exception:
        """The error for an answer outside ``expect`` (a subclass may read other body shapes)."""
        return TransmitterError.from_body(response.status_code, _json_or_none(response), url=url)

    def _document(self, response: httpx.Response) -> Any:
        """The JSON document of an expected answer."""
        return _json_or_none(response)


async def fetch_metadata(
    issuer: str, *, http: httpx.AsyncClient, allow_http: bool | None = None
) -> TransmitterMetadata:
    """Try each well-known URL in turn (R-DISC-1, AMB-1); the first 200 must validate."""
    _, doc = await fetch_metadata_document(issuer, http=http)
    return parse_metadata(doc, issuer=issuer, allow_http=allow_http)


async def fetch_metadata_document(issuer: str, *, http: httpx.AsyncClient) -> tuple[str, Any]:
    """The first well-known URL of ``issuer`` that answers 200, and its JSON document (None when
    it is not JSON); :class:`DiscoveryError` naming every URL tried when none does."""
    tried: list[str] = []
    for url in well_known_urls(issuer):
        try:
            response = await http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            tried.append(f"{url}: {type(exc).__name__}: {exc}")
            continue
        if response.status_code != 200:
            tried.append(f"{url}: HTTP {response.status_code}")
            continue
        return url, _json_or_none(response)
    raise DiscoveryError(f"no transmitter metadata for {issuer}: {'; '.join(tried)}")


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content) if response.content else None
    except ValueError:
        return None
