"""Typed events: a frozen dataclass per CAEP/RISC event type, defined against the catalogue,
and handlers registered by class get the typed view."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from receivers import ContinuousAccess, Dispatcher, ReceivedEvent
from receivers.audit import ACCESS_REVOKED
from receivers.events import CATALOGUE, RISK_LEVEL_CHANGE, SESSION_REVOKED
from receivers.typed import (
    TYPED_EVENTS,
    AccountDisabled,
    IdentifierChanged,
    RiskLevelChange,
    SecurityEvent,
    SessionRevoked,
)
from tests.receivers.support import ALICE


def received(uri: str, payload: dict[str, Any], *, iat: float = 1_700_000_000) -> ReceivedEvent:
    return ReceivedEvent(
        iss="https://hub", jti="j-1", iat=iat, aud=("r",), subject=ALICE, events={uri: payload}, txn="t-1"
    )


def test_every_caep_and_risc_type_has_a_class_with_a_field_per_claim() -> None:
    # URIs are defined once (the catalogue); this keeps the classes in step with its schemas.
    wanted = {t.uri: t for t in CATALOGUE if t.family in ("caep", "risc")}
    assert set(TYPED_EVENTS) == set(wanted)
    for uri, cls in TYPED_EVENTS.items():
        assert cls.uri == uri and cls.name == wanted[uri].name
        assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
        names = {f.name for f in dataclasses.fields(cls)}
        claims = {p.replace("-", "_") for p in wanted[uri].schema["properties"]}
        assert claims <= names, (cls.__name__, claims - names)
        required = {p.replace("-", "_") for p in wanted[uri].schema.get("required", [])}
        optional = {f.name for f in dataclasses.fields(cls) if f.default is None}
        assert not required & optional, cls.__name__


def test_a_typed_view_has_typed_fields() -> None:
    event = received(
        SESSION_REVOKED,
        {
            "event_timestamp": 1_700_000_000_123,
            "reason_admin": {"en": "stolen laptop"},
            "initiating_entity": "admin",
        },
    )
    typed = SessionRevoked.from_received(event)
    assert typed.subject == ALICE and typed.event_timestamp == pytest.approx(1_700_000_000.123)  # ms (AMB-16)
    assert typed.reason == "stolen laptop" and typed.initiating_entity == "admin"
    assert typed.jti == "j-1" and typed.txn == "t-1" and typed.received is event
    with pytest.raises(dataclasses.FrozenInstanceError):
        typed.subject = {}  # type: ignore[misc]
    renamed = IdentifierChanged.from_received(
        received(IdentifierChanged.uri, {"new-value": "alice@new.example.com"})
    )
    assert renamed.new_value == "alice@new.example.com"
    assert renamed.event_timestamp == 1_700_000_000  # no claim: the SET's iat


async def test_handlers_registered_by_class_get_the_typed_event() -> None:
    dispatcher = Dispatcher()
    revoked: list[SessionRevoked] = []
    risks: list[RiskLevelChange] = []
    untyped: list[ReceivedEvent] = []

    @dispatcher.on(SessionRevoked)
    def on_revoked(event: SessionRevoked) -> None:
        revoked.append(event)

    @dispatcher.on(RiskLevelChange)
    async def on_risk(event: RiskLevelChange) -> None:
        risks.append(event)

    dispatcher.add(SESSION_REVOKED, untyped.append)  # the untyped form keeps working
    assert await dispatcher.dispatch(received(SESSION_REVOKED, {"reason_admin": "bare string"})) == 0
    risk = {"principal": "USER", "current_level": "HIGH", "previous_level": "LOW"}
    assert await dispatcher.dispatch(received(RISK_LEVEL_CHANGE, risk)) == 0
    assert [e.reason for e in revoked] == ["bare string"] and len(untyped) == 1
    (change,) = risks
    assert (change.principal, change.current_level, change.previous_level) == ("USER", "HIGH", "LOW")

    # A RISK event that does not fit its schema is not forced into the class: skipped, not failed.
    assert await dispatcher.dispatch(received(RISK_LEVEL_CHANGE, {"current_level": "EXTREME"})) == 0
    assert len(risks) == 1
    with pytest.raises(TypeError):
        dispatcher.add(SecurityEvent, print)


async def test_typed_handlers_sit_beside_continuous_access() -> None:
    access = ContinuousAccess()
    disabled: list[AccountDisabled] = []
    access.dispatcher.on(AccountDisabled)(disabled.append)
    now = time.time()
    await access.dispatcher.dispatch(received(AccountDisabled.uri, {"reason": "hijacking"}, iat=now))
    assert disabled[0].reason == "hijacking"
    assert [r.subject for r in access.audit.find(ACCESS_REVOKED)] == [ALICE]  # the default still revokes
