"""``POST /ssf/receipts``: a receiver reports what it did with SETs of its own stream.

A hub extension (:mod:`hub.core.remediation`): authenticated like the stream management
endpoints (``ssf.manage``, the stream's owner; another owner's stream is not found).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from hub.auth.tokens import SCOPE_MANAGE
from hub.core.remediation import parse_receipts
from hub.logs import event
from hub.metrics import REMEDIATION_RECEIPTS
from hub.web.http import authorize, hub_of, json_response, read_json

log = logging.getLogger("hub.receipts")


async def receipts_endpoint(request: Request) -> Response:
    """POST {"stream_id", "receipts": [{"jti", "action", "count"?, "at"?}]} -> 202
    {"kept", "skipped"}; receipts for SETs the stream never held are skipped."""
    hub = hub_of(request)
    principal = await authorize(request, SCOPE_MANAGE)
    body = await read_json(request, hub.settings.max_body_bytes)
    batch = parse_receipts(body, now=hub.transmitter.clock())
    stream = await hub.streams.get(principal, batch.stream_id)  # 404 unless the caller owns it
    kept = await hub.store.record_receipts(stream.stream_id, batch.receipts)
    skipped = len(batch.receipts) - kept
    for receipt in batch.receipts:
        REMEDIATION_RECEIPTS.labels(receipt.action, "received").inc()
    if skipped:
        REMEDIATION_RECEIPTS.labels("any", "skipped").inc(skipped)
        event(log, logging.INFO, "receipts_skipped", stream_id=stream.stream_id, skipped=skipped)
    return json_response({"kept": kept, "skipped": skipped}, 202)
