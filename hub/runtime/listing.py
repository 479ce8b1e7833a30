"""The admin view of streams (``GET /ssf/admin/streams``, ``ssf-hub streams``, the console):
each stream's config without its secrets, its queue and its delivery health."""

from __future__ import annotations

from typing import Any

from hub.core.model import PUSH_METHOD, Stream
from hub.core.streams import stream_config
from hub.runtime.context import HubContext


async def stream_rows(hub: HubContext, streams: list[Stream] | None = None) -> list[dict[str, Any]]:
    """The admin view of ``streams`` (all when None): config without secrets, queue, health."""
    now = hub.transmitter.clock()
    out = []
    for stream in await hub.store.list_streams() if streams is None else streams:
        config = stream_config(stream, hub.policy.supported_events)
        stats = await hub.store.queue_stats(stream.stream_id)
        health = await hub.store.get_health(stream.stream_id)
        retry_at = None
        if stream.delivery.method == PUSH_METHOD and health.consecutive_failures:
            head = await hub.store.pending(stream.stream_id, 1)
            retry_at = head[0].next_attempt_at if head and head[0].next_attempt_at > now else None
        config.pop("events_supported")  # the same for every stream; noise here
        config["delivery"].pop("authorization_header", None)  # the receiver's secret
        config.update(
            owner=stream.owner,
            status=stream.status.value,
            status_reason=stream.status_reason,
            subject_mode=stream.subject_mode.value,
            queued=stats.depth,
            oldest_undelivered_age=None
            if stats.oldest_queued_at is None
            else round(now - stats.oldest_queued_at, 3),
            last_seen_at=stream.last_activity_at or None,  # the receiver's last call (to the minute)
            last_success_at=health.last_success_at,
            next_retry_at=retry_at,  # a failing push stream: when its head SET is tried again
            last_error=health.last_error,
            last_error_at=health.last_error_at,
            credentials_failing=health.auth_failing,
            failing_since=health.failing_since,
        )
        out.append(config)
    return out
