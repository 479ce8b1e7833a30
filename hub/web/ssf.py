"""SSF 1.0 receiver-facing endpoints: streams, status, subjects, verification, poll.

Handlers only translate HTTP to :mod:`hub.transmitter.management` / :mod:`hub.delivery.polling` calls.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.requests import Request
from starlette.responses import Response

from hub.auth.tokens import SCOPE_MANAGE, SCOPE_READ
from hub.core.model import POLL_METHOD
from hub.core.poll import parse_poll_request
from hub.core.status import parse_status_update, status_object
from hub.core.streams import stream_config
from hub.errors import InvalidRequest, NotFound
from hub.transmitter.management import owner_of
from hub.web.http import authorize, empty_response, hub_of, json_response, read_json


async def stream_endpoint(request: Request) -> Response:
    hub = hub_of(request)
    method = request.method
    if method == "GET":
        principal = await authorize(request, SCOPE_READ, SCOPE_MANAGE)
        stream_id = request.query_params.get("stream_id")
        if stream_id is None:  # R-STREAM-9: all of this receiver's streams, [] when none
            streams = await hub.streams.list_streams(principal)
            return json_response([stream_config(s, hub.policy.supported_events) for s in streams])
        stream = await hub.streams.get(principal, stream_id)
        return json_response(stream_config(stream, hub.policy.supported_events))
    principal = await authorize(request, SCOPE_MANAGE)
    if method == "DELETE":
        stream_id = request.query_params.get("stream_id")
        if not stream_id:
            raise InvalidRequest("the stream_id query parameter is required (R-STREAM-13)")
        await hub.streams.delete(principal, stream_id)
        return empty_response(204)
    body = await read_json(request, hub.settings.max_body_bytes)
    if method == "POST":
        stream = await hub.streams.create(principal, body)
        return json_response(stream_config(stream, hub.policy.supported_events), 201)
    stream = await hub.streams.update(principal, body, replace_all=method == "PUT")
    return json_response(stream_config(stream, hub.policy.supported_events))


async def status_endpoint(request: Request) -> Response:
    hub = hub_of(request)
    if request.method == "GET":
        principal = await authorize(request, SCOPE_READ, SCOPE_MANAGE)
        stream_id = request.query_params.get("stream_id")
        if not stream_id:
            raise InvalidRequest("the stream_id query parameter is required (R-STATUS-1)")
        stream = await hub.streams.get(principal, stream_id)
        return json_response(status_object(stream))
    principal = await authorize(request, SCOPE_MANAGE)
    update = parse_status_update(await read_json(request, hub.settings.max_body_bytes))
    stream = await hub.streams.get(principal, update.stream_id)
    stream = await hub.streams.set_status(stream, update, by_transmitter=False, by=principal.sub)
    return json_response(status_object(stream))


async def add_subject_endpoint(request: Request) -> Response:
    hub = hub_of(request)
    principal = await authorize(request, SCOPE_MANAGE)
    hub.subject_limits.spend(owner_of(principal))  # R-SUBJ-3: 429 with Retry-After
    await hub.streams.add_subject(principal, await read_json(request, hub.settings.max_body_bytes))
    return empty_response(200)  # R-SUBJ-2: 200 with an empty body


async def remove_subject_endpoint(request: Request) -> Response:
    hub = hub_of(request)
    principal = await authorize(request, SCOPE_MANAGE)
    hub.subject_limits.spend(owner_of(principal))  # R-SUBJ-3: 429 with Retry-After
    await hub.streams.remove_subject(principal, await read_json(request, hub.settings.max_body_bytes))
    return empty_response(204)  # R-SUBJ-4


async def verify_endpoint(request: Request) -> Response:
    hub = hub_of(request)
    principal = await authorize(request, SCOPE_MANAGE)
    await hub.streams.verify(principal, await read_json(request, hub.settings.max_body_bytes))
    return empty_response(204)  # R-VERIFY-1


async def poll_endpoint(request: Request) -> Response:
    hub = hub_of(request)
    principal = await authorize(request, SCOPE_MANAGE)
    stream_id = request.path_params["stream_id"]
    body = await read_json(request, hub.settings.max_body_bytes, required=False)
    poll = parse_poll_request(
        body, default_max=hub.settings.max_events_default, limit=hub.settings.max_events_limit
    )
    stream = await hub.streams.get(principal, stream_id)  # also restarts the inactivity timer
    if stream.delivery.method != POLL_METHOD:
        raise NotFound(f"stream {stream_id} is not a poll stream")
    await hub.polls.acknowledge(stream_id, poll)
    answer = await hub.polls.answer_now(stream, poll)
    if answer is not None:
        return json_response(answer)
    # A long poll whose client went away stops waiting; nothing is lost, since SETs
    # leave the queue only when acknowledged.
    polling = asyncio.ensure_future(hub.polls.wait(stream, poll))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({polling, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (gone, polling):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    if polling.cancelled():
        return empty_response(204)  # nobody is listening any more
    return json_response(polling.result())


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
