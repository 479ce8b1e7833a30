"""What the hub does with each SET it polls from an upstream: control events stay with the
subscription, everything else goes to ingest, whose refusals become ``setErrs`` (R-POLL-2)."""

from __future__ import annotations

from typing import Any

import pytest

from hub.errors import HubError, InvalidRequest, Unavailable
from hub.upstreams.feed import UpstreamFeed
from receivers import Receiver, SetVerifier, StaticKeys
from receivers.errors import InvalidKey, KeysUnavailable
from receivers.errors import InvalidRequest as SetInvalidRequest
from receivers.events import STREAM_UPDATED, VERIFICATION
from tests.receivers.support import FakeTransmitter

STREAM = {"format": "opaque", "id": "stream-1"}
Controls = list[tuple[str, dict[str, Any]]]  # the control events the link was given


class Recorder:
    """An ingest sink that records what it was given and answers as scripted."""

    def __init__(self, error: HubError | None = None) -> None:
        self.error = error
        self.accepted: list[str] = []

    async def __call__(self, compact_set: str, /) -> object:
        if self.error is not None:
            raise self.error
        self.accepted.append(compact_set)
        return "accepted"


def feed(tr: FakeTransmitter, sink: Recorder, control: Controls) -> UpstreamFeed:
    receiver = Receiver(
        SetVerifier(issuer=tr.issuer, audience=tr.aud), StaticKeys([tr.key]), stream_id="stream-1"
    )

    async def on_control(event_type: str, payload: Any) -> None:
        control.append((event_type, dict(payload)))

    return UpstreamFeed(receiver, sink, on_control=on_control, on_event=lambda: None)


async def test_an_ordinary_event_goes_to_ingest_as_received() -> None:
    tr, sink, control = FakeTransmitter(), Recorder(), Controls()
    token = tr.set()
    assert await feed(tr, sink, control).process(token) == "accepted"
    assert sink.accepted == [token] and control == []


async def test_stream_updated_is_verified_here_and_not_sent_to_ingest() -> None:
    tr, sink, control = FakeTransmitter(), Recorder(), Controls()
    token = tr.set(STREAM_UPDATED, payload={"status": "paused", "reason": "maintenance"}, subject=STREAM)
    await feed(tr, sink, control).process(token)
    assert control == [(STREAM_UPDATED, {"status": "paused", "reason": "maintenance"})]
    assert sink.accepted == []


async def test_a_forged_control_event_is_refused_with_invalid_key() -> None:
    tr, other, sink, control = FakeTransmitter(), FakeTransmitter(), Recorder(), Controls()
    other.issuer = tr.issuer  # same issuer name, another key: a forgery
    token = other.set(VERIFICATION, payload={}, subject=STREAM)
    with pytest.raises(InvalidKey):
        await feed(tr, sink, control).process(token)
    assert control == []


@pytest.mark.parametrize(
    ("refusal", "raised"),
    [
        (HubError("bad signature", err="invalid_key"), InvalidKey),
        (InvalidRequest("no subject"), SetInvalidRequest),
        (HubError("odd", err="not_an_rfc8935_code"), SetInvalidRequest),
    ],
)
async def test_an_ingest_refusal_keeps_its_err_code(refusal: HubError, raised: type[Exception]) -> None:
    tr = FakeTransmitter()
    with pytest.raises(raised) as caught:
        await feed(tr, Recorder(refusal), []).process(tr.set())
    assert str(caught.value) == refusal.description


async def test_ingest_unavailable_leaves_the_set_unacknowledged_for_redelivery() -> None:
    tr = FakeTransmitter()
    with pytest.raises(KeysUnavailable) as caught:
        await feed(tr, Recorder(Unavailable("store down", retry_after=7)), []).process(tr.set())
    assert caught.value.retry_after == 7.0
