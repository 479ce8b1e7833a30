"""Creating an upstream stream and renewing its push token, the way the transmitter takes it.

Every write is shaped by the upstream's compatibility options (members added, members
omitted). Creation asks for the configured events that the transmitter supports and, when it
refuses some requested types with 400, asks again without them. A push-token renewal is read
back: a transmitter that answered but kept the old delivery gets the stream replaced (delete
and create) while the old token still works, and :class:`StreamReplaced` tells the link to
verify the new stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub import logs
from hub.core.upstream_compat import PushAuth, RenewalStyle, events_named, supported_events
from hub.core.upstreams import DeliveryMode, Upstream
from hub.upstreams.errors import UpstreamError
from hub.upstreams.peer import PeerRefusal, UpstreamClient
from receivers.client import StreamConfig, poll_delivery, push_delivery
from receivers.errors import TransmitterError

log = logging.getLogger("hub.upstreams")

Adapt = Callable[..., None]  # (kind, note, **details): the link records, logs and counts it


class StreamReplaced(UpstreamError):
    """The push-token renewal did not take; a new stream replaced the old one."""

    def __init__(self, stream: StreamConfig, expires_at: float | None) -> None:
        super().__init__(f"stream replaced by {stream.stream_id}")
        self.stream = stream
        self.expires_at = expires_at


@dataclass
class PushToken:
    mint: Callable[[], str]  # a fresh ingest token
    ttl: int
    ingest_url: str


class StreamWrites:
    def __init__(
        self,
        upstream: Upstream,
        client: UpstreamClient,
        *,
        mode: DeliveryMode,
        push: PushToken,
        clock: Callable[[], float],
        adapt: Adapt,
        renewal: RenewalStyle | None = None,
    ) -> None:
        self.upstream = upstream
        self.compat = upstream.compatibility
        self.client = client
        self.mode = mode
        self.push = push
        self.clock = clock
        self.adapt = adapt
        self._used: set[str] = set()
        self.renewal = renewal or self.compat.renewal

    # -- the compatibility options, each logged once per connection when used -------------------------
    def used(self, option: str, **details: Any) -> None:
        if option in self._used:
            return
        self._used.add(option)
        logs.event(
            log,
            logging.INFO,
            "upstream_compat_used",
            upstream_id=self.upstream.upstream_id,
            option=option,
            **details,
        )

    def _shape(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.compat.create_fields:
            self.used("create_fields", fields=sorted(self.compat.create_fields))
        omitted = sorted(set(self.compat.omit_fields) & set(body))
        if omitted:
            self.used("omit_fields", fields=omitted)
        return self.compat.shape(body)

    def delivery(self) -> tuple[dict[str, Any], float | None]:
        """The delivery object to ask for, and when its push token expires."""
        if self.mode is DeliveryMode.POLL:
            return poll_delivery(), None
        token = self.push.mint()
        expires_at = self.clock() + self.push.ttl
        if self.compat.push_auth is PushAuth.ENDPOINT_URL_TOKEN:
            self.used("push_auth", value=PushAuth.ENDPOINT_URL_TOKEN.value)
            out = push_delivery(self.push.ingest_url)
            out[PushAuth.ENDPOINT_URL_TOKEN.value] = token
            return out, expires_at
        return push_delivery(self.push.ingest_url, f"Bearer {token}"), expires_at

    # -- creation --------------------------------------------------------------------------------------
    async def create(self) -> tuple[StreamConfig, float | None]:
        events = self._supported(list(self.upstream.events_requested))
        while True:  # each refusal that names requested types leaves fewer: this ends
            delivery, expires_at = self.delivery()
            body = self._shape(
                {
                    "events_requested": events,
                    "delivery": delivery,
                    "description": f"ssf-hub upstream {self.upstream.upstream_id}",
                }
            )
            try:
                return await self.client.write_stream("POST", body), expires_at
            except TransmitterError as exc:
                text = exc.full_text if isinstance(exc, PeerRefusal) else exc.description
                refused = events_named(text, events) if exc.status == 400 else set()
                if not refused or refused >= set(events):
                    raise
                events = [e for e in events if e not in refused]
                self.adapt(
                    "events_refused",
                    f"the transmitter refused {len(refused)} requested event type(s) with 400; "
                    f"asked again for the other {len(events)}",
                    refused=sorted(refused),
                )

    def _supported(self, events: list[str]) -> list[str]:
        supported = supported_events(self.client.metadata.raw)
        if supported is None:
            return events
        kept = [e for e in events if e in supported]
        if not kept:
            raise UpstreamError(
                f"the transmitter's events_supported lists none of the {len(events)} event types asked for"
            )
        if len(kept) < len(events):
            self.adapt(
                "events_unsupported",
                f"asked for the {len(kept)} of {len(events)} event types the transmitter lists "
                "in events_supported",
                dropped=sorted(set(events) - set(kept)),
            )
        return kept

    # -- push-token renewal ------------------------------------------------------------------------------
    async def renew(self, stream: StreamConfig) -> tuple[StreamConfig, float | None]:
        """Give a push stream a fresh token; raises :class:`StreamReplaced` when the stream had
        to be replaced for it."""
        if self.renewal is RenewalStyle.RECREATE:
            if self.compat.renewal is RenewalStyle.RECREATE:
                self.used("renewal", value=RenewalStyle.RECREATE.value)
            raise StreamReplaced(*await self._recreate(stream))
        delivery, expires_at = self.delivery()
        if self.renewal is RenewalStyle.REPLACE:
            self.used("renewal", value=RenewalStyle.REPLACE.value)
            body = {
                "stream_id": stream.stream_id,
                "delivery": delivery,
                "events_requested": list(stream.events_requested or self.upstream.events_requested),
                "description": stream.description or f"ssf-hub upstream {self.upstream.upstream_id}",
            }
            await self.client.write_stream("PUT", self._shape(body))
        else:
            await self.client.write_stream(
                "PATCH", self._shape({"stream_id": stream.stream_id, "delivery": delivery})
            )
        readback = await self.client.get_stream(stream.stream_id)
        if _kept_old_token(stream, readback, delivery):
            self.adapt(
                "renewal_ignored",
                f"the transmitter answered the push-token renewal ({self.renewal.value}) of stream "
                f"{stream.stream_id} but kept the old token; the stream is replaced by a new one",
                stream_id=stream.stream_id,
                renewal=self.renewal.value,
            )
            self.renewal = RenewalStyle.RECREATE  # the next renewal goes straight there
            raise StreamReplaced(*await self._recreate(stream))
        return readback, expires_at

    async def _recreate(self, stream: StreamConfig) -> tuple[StreamConfig, float | None]:
        try:
            await self.client.delete_stream(stream.stream_id)
        except TransmitterError as exc:
            if exc.status != 404:
                raise
        return await self.create()


def _kept_old_token(before: StreamConfig, after: StreamConfig, sent: dict[str, Any]) -> bool:
    """Whether the stream read back still carries the token it had, not the one just sent.

    Only a token the transmitter shows can be compared: one it masks or leaves out (as it
    may: it is a secret) tells nothing, so a renewal it answered is taken as done.
    """
    for member in (PushAuth.AUTHORIZATION_HEADER.value, PushAuth.ENDPOINT_URL_TOKEN.value):
        if member not in sent:
            continue
        old, now = before.delivery.get(member), after.delivery.get(member)
        return isinstance(now, str) and now == old and now != sent[member] and _looks_like_our_token(now)
    return False


def _looks_like_our_token(value: str) -> bool:
    token = value.removeprefix("Bearer ").strip()
    return token.startswith("eyJ") and token.count(".") == 2
