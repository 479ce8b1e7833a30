"""Subscribing in one call: ``async with hub.subscribe(...) as sub:``.

:class:`Hub` is a transmitter (ssf-hub or any SSF 1.0 one) reached with your credentials.
:meth:`Hub.subscribe` gives a :class:`Subscription` that, on ``start()`` (or entering
``async with``):

1. discovers the transmitter (once per :class:`Hub`);
2. finds the stream this subscriber made before — by its ``description``, the ``name`` given
   (default ``"receivers poll"`` or ``"receivers push <url>"``) — or creates it, so a restart
   picks its stream and its queued events up again instead of leaving a queue behind. A found
   stream gets the events asked for now and, for push, the endpoint's new secret;
3. adds the subjects (adding one twice is harmless; subjects added by an earlier run stay
   until removed with ``sub.client.remove_subject``);
4. starts receiving: a :class:`~receivers.poll.PollConsumer` in a background task for
   :class:`Poll`, or gives the :class:`~receivers.push.PushEndpoint` of :class:`Push` its
   receiver (serve that endpoint at the URL before subscribing);
5. requests verification and waits until the verification event has come back through the
   delivery (R-VERIFY-*): when ``start()`` returns, events flow.

``stop()`` (or leaving the block) stops the poll consumer, flushing its acknowledgements, and
with ``delete_on_exit=True`` deletes the stream (for short-lived subscribers; a long-lived
service keeps it so nothing is lost while it restarts).

Events are handled by ``on``: a :class:`~receivers.continuous.ContinuousAccess` (its
dispatcher revokes, re-runs policy, drops tokens) or any :class:`~receivers.dispatch.Dispatcher`.
Several processes subscribing with the same credentials and ``name`` share one stream (and
split its poll queue): give each kind of subscriber its own ``name``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol

import httpx
from starlette.types import Receive, Scope, Send

from receivers.client import StreamClient
from receivers.dispatch import Dispatcher
from receivers.errors import TransmitterError
from receivers.events import CATALOGUE
from receivers.oauth import TokenSource
from receivers.poll import PollConsumer
from receivers.push import PushEndpoint
from receivers.receiver import Receiver
from receivers.streams import StreamConfig, poll_delivery
from receivers.subjects import Subject

__all__ = ["Hub", "Poll", "Push", "Subscription"]

log = logging.getLogger("receivers.subscription")


class Poll:
    """RFC 8936 poll delivery; ``options`` go to :class:`~receivers.poll.PollConsumer`
    (``max_events``, ``request_timeout``, ``backoff_max``...)."""

    def __init__(self, **options: Any) -> None:
        self.options = options

    def config(self) -> dict[str, Any]:
        return poll_delivery()

    @property
    def default_name(self) -> str:
        return "receivers poll"


class Push:
    """RFC 8935 push delivery to ``url``, the public URL where :attr:`endpoint` is served.

    The endpoint (made here unless given) creates its own secret; the stream's delivery carries
    it. A :class:`Push` is itself the ASGI app: ``Mount("/ssf/push", app=push)``.
    """

    def __init__(self, url: str, *, endpoint: PushEndpoint | None = None) -> None:
        self.url = url
        self.endpoint = endpoint if endpoint is not None else PushEndpoint()

    def config(self) -> dict[str, Any]:
        return self.endpoint.delivery(self.url)

    @property
    def default_name(self) -> str:
        return f"receivers push {self.url}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.endpoint(scope, receive, send)


class HasDispatcher(Protocol):
    @property
    def dispatcher(self) -> Dispatcher: ...


EventName = str | type[Any]  # a URI, a short name or a typed event class (receivers.typed)


def event_uris(events: Iterable[EventName]) -> list[str]:
    """Event-type URIs for URIs, short names (``session-revoked``) or typed event classes."""
    uris: list[str] = []
    for event in events:
        name = event if isinstance(event, str) else getattr(event, "uri", None)
        if not isinstance(name, str):
            raise TypeError(f"not an event type: {event!r}")
        found = CATALOGUE.find(name)
        uris.append(found.uri if found is not None else name)
    return uris


class Hub:
    """A transmitter at ``issuer``, reached with ``auth`` (a token source such as
    :class:`~receivers.oauth.ClientCredentials`, or any ``httpx.Auth``).

    Without ``http`` the hub makes its own client while a subscription is open (or until
    :meth:`aclose`, when :meth:`client` was used outside one; ``async with Hub(...)`` too).
    """

    def __init__(
        self,
        issuer: str,
        *,
        auth: httpx.Auth | TokenSource | None = None,
        http: httpx.AsyncClient | None = None,
        allow_http: bool | None = None,
        expected_audience: str | None = None,
    ) -> None:
        self.issuer = issuer
        self.auth = auth
        self.allow_http = allow_http
        self.expected_audience = expected_audience
        self._http = http
        self._own_http: httpx.AsyncClient | None = None
        self._client: StreamClient | None = None
        self._users = 0

    async def client(self) -> StreamClient:
        """The :class:`StreamClient` for this transmitter (discovered on first use)."""
        if self._client is None:
            self._client = await StreamClient.discover(
                self.issuer,
                http=self._http_client(),
                auth=self.auth,
                allow_http=self.allow_http,
                expected_audience=self.expected_audience,
            )
        return self._client

    def subscribe(
        self,
        *,
        events: Sequence[EventName],
        subjects: Iterable[Subject] = (),
        delivery: Poll | Push | None = None,
        on: Dispatcher | HasDispatcher | None = None,
        name: str | None = None,
        delete_on_exit: bool = False,
        verify_timeout: float | None = 10.0,
    ) -> Subscription:
        """A :class:`Subscription` (see the module docstring); ``verify_timeout=None`` skips
        waiting for verification."""
        dispatcher = on if isinstance(on, Dispatcher) else on.dispatcher if on is not None else Dispatcher()
        return Subscription(
            self,
            events=event_uris(events),
            subjects=list(subjects),
            delivery=delivery if delivery is not None else Poll(),
            dispatcher=dispatcher,
            name=name,
            delete_on_exit=delete_on_exit,
            verify_timeout=verify_timeout,
        )

    async def aclose(self) -> None:
        """Close the hub's own HTTP client (not one given as ``http``)."""
        if self._own_http is not None:
            await self._own_http.aclose()
        self._own_http, self._client = None, None

    async def __aenter__(self) -> Hub:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _http_client(self) -> httpx.AsyncClient:
        if self._http is not None:
            return self._http
        if self._own_http is None:
            self._own_http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=90.0))
        return self._own_http

    def _acquire(self) -> None:
        self._users += 1

    async def _release(self) -> None:
        self._users -= 1
        if self._users == 0:
            await self.aclose()


class Subscription:
    """One stream at a :class:`Hub`, found or created, verified and being received."""

    def __init__(
        self,
        hub: Hub,
        *,
        events: list[str],
        subjects: list[Subject],
        delivery: Poll | Push,
        dispatcher: Dispatcher,
        name: str | None,
        delete_on_exit: bool,
        verify_timeout: float | None,
    ) -> None:
        self.hub = hub
        self.events = events
        self.subjects = subjects
        self.delivery = delivery
        self.dispatcher = dispatcher
        self.name = name if name is not None else delivery.default_name
        self.delete_on_exit = delete_on_exit
        self.verify_timeout = verify_timeout
        self.client: StreamClient | None = None
        self.stream: StreamConfig | None = None
        self.receiver: Receiver | None = None
        self.consumer: PollConsumer | None = None
        self.created = False  # whether start() made a new stream rather than finding one
        self.verification_state: str | None = None  # the state start() saw confirmed
        self._task: asyncio.Task[None] | None = None
        self._active = False

    @property
    def stream_id(self) -> str:
        if self.stream is None:
            raise RuntimeError("the subscription has not started")
        return self.stream.stream_id

    async def start(self) -> Subscription:
        """Find or create the stream, add the subjects, start receiving, await verification."""
        if self._active:
            raise RuntimeError("the subscription has already started")
        self.hub._acquire()
        self._active = True
        try:
            self.client = client = await self.hub.client()
            self.stream = stream = await self._find_or_create(client)
            for subject in self.subjects:
                await client.add_subject(stream.stream_id, subject)
            self.receiver = client.receiver(stream, dispatcher=self.dispatcher)
            if isinstance(self.delivery, Push):
                self.delivery.endpoint.receiver = self.receiver
            else:
                self.consumer = client.poll_consumer(stream, receiver=self.receiver, **self.delivery.options)
                self._task = asyncio.create_task(self.consumer.run())
            if self.verify_timeout is not None:
                self.verification_state = await self.verified(timeout=self.verify_timeout)
        except BaseException:
            await self.stop()
            raise
        log.info("subscribed: stream %s at %s (%s)", stream.stream_id, client.metadata.issuer, self.name)
        return self

    async def verified(self, *, timeout: float = 10.0) -> str:  # noqa: ASYNC109 - see StreamClient.verified
        """Request verification and wait until the event has been received; returns its state."""
        if self.client is None or self.stream is None:
            raise RuntimeError("the subscription has not started")
        return await self.client.verified(self.stream.stream_id, timeout=timeout)

    async def stop(self) -> None:
        """Stop receiving (acknowledgements flushed); delete the stream if ``delete_on_exit``."""
        if not self._active:
            return
        self._active = False
        try:
            if self.consumer is not None and self._task is not None:
                await self.consumer.stop()
                with contextlib.suppress(TransmitterError):
                    await self._task
            if isinstance(self.delivery, Push) and self.delivery.endpoint.receiver is self.receiver:
                self.delivery.endpoint.receiver = None
            if self.delete_on_exit and self.client is not None and self.stream is not None:
                with contextlib.suppress(TransmitterError):  # already gone is fine
                    await self.client.delete_stream(self.stream.stream_id)
        finally:
            self._task = None
            await self.hub._release()

    async def __aenter__(self) -> Subscription:
        return await self.start()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _find_or_create(self, client: StreamClient) -> StreamConfig:
        delivery = self.delivery.config()
        mine = [s for s in await client.list_streams() if s.description == self.name]
        if not mine:
            self.created = True
            return await client.create_stream(
                events_requested=self.events,
                delivery=delivery,
                description=self.name,
                delete_on_mismatch=True,
            )
        if len(mine) > 1:
            log.warning("%d streams are named %r; using %s", len(mine), self.name, mine[0].stream_id)
        stream = mine[0]
        changes: dict[str, Any] = {}
        if set(stream.events_requested or ()) != set(self.events):
            changes["events_requested"] = self.events
        if _differs(stream.delivery, delivery):
            changes["delivery"] = delivery
        return await client.update_stream(stream.stream_id, **changes) if changes else stream


def _differs(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether the stream's delivery must be updated: another method, another push URL, or a
    push secret (never echoed back, so always re-sent)."""
    if current.get("method") != wanted.get("method"):
        return True
    return "endpoint_url" in wanted and (
        current.get("endpoint_url") != wanted["endpoint_url"] or "authorization_header" in wanted
    )
