"""The Store contract for upstream subscriptions (issue #4), run against every backend."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from hub.core.upstream_compat import Compatibility, PushAuth, RenewalStyle
from hub.core.upstreams import ClientCredentials, DeliveryMode, Health, StaticBearer, Upstream, UpstreamState
from hub.keys.secrets import SecretBox
from hub.store import Store

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"

StoreFactory = Callable[[], Store]


def make_upstream(upstream_id: str = "okta", created_at: float = 1000.0, **changes: object) -> Upstream:
    upstream = Upstream(
        upstream_id=upstream_id,
        config_url="https://idp.example.com/.well-known/ssf-configuration",
        token_source=ClientCredentials(
            token_endpoint="https://idp.example.com/oauth2/token",
            client_id="ssf-hub",
            private_key_file="/etc/ssf-hub/idp-client.pem",
            scope="ssf.manage",
        ),
        delivery=DeliveryMode.POLL,
        events_requested=(CAEP + "session-revoked",),
        description="the workforce IdP",
        created_at=created_at,
    )
    return dataclasses.replace(upstream, **changes)  # type: ignore[arg-type]


async def test_an_added_upstream_reads_back_equal(store: Store) -> None:
    upstream = make_upstream()
    assert await store.add_upstream(upstream) is True
    assert await store.get_upstream("okta") == upstream
    assert await store.get_upstream("missing") is None


async def test_a_bearer_token_source_round_trips(store: Store) -> None:
    upstream = make_upstream(token_source=StaticBearer("dev-token"), delivery=DeliveryMode.PUSH)
    await store.add_upstream(upstream)
    assert await store.get_upstream("okta") == upstream


async def test_an_id_cannot_be_added_twice(store: Store) -> None:
    await store.add_upstream(make_upstream(description="first"))
    assert await store.add_upstream(make_upstream(description="second")) is False
    found = await store.get_upstream("okta")
    assert found is not None and found.description == "first"


async def test_upstreams_are_listed_oldest_first(store: Store) -> None:
    await store.add_upstream(make_upstream("b", created_at=2.0))
    await store.add_upstream(make_upstream("a", created_at=3.0))
    await store.add_upstream(make_upstream("c", created_at=1.0))
    assert [u.upstream_id for u in await store.list_upstreams()] == ["c", "b", "a"]


async def test_saving_state_leaves_the_configuration_alone(store: Store) -> None:
    upstream = make_upstream()
    await store.add_upstream(upstream)
    state = UpstreamState(
        issuer="https://idp.example.com",
        jwks_uri="https://idp.example.com/jwks",
        stream_id="s-1",
        remote_status="enabled",
        health=Health.HEALTHY,
        connected_at=1001.0,
        verified_at=1002.0,
        last_event_at=1003.5,
    )
    assert await store.save_upstream_state("okta", state) is True
    assert await store.get_upstream("okta") == dataclasses.replace(upstream, state=state)


async def test_state_is_not_saved_for_a_removed_upstream(store: Store) -> None:
    await store.add_upstream(make_upstream())
    assert await store.remove_upstream("okta") is True
    assert await store.remove_upstream("okta") is False
    assert await store.save_upstream_state("okta", UpstreamState(stream_id="s-1")) is False
    assert await store.get_upstream("okta") is None
    assert await store.list_upstreams() == []


async def test_upstreams_survive_reopening(new_store: StoreFactory) -> None:
    first = new_store()
    await first.open()
    await first.add_upstream(make_upstream())
    await first.save_upstream_state("okta", UpstreamState(stream_id="s-9", failures=3))
    await first.close()
    second = new_store()
    await second.open()
    try:
        found = await second.get_upstream("okta")
        assert found is not None and found.state.stream_id == "s-9" and found.state.failures == 3
    finally:
        await second.close()


async def test_a_static_bearer_token_is_sealed_at_rest(new_store: StoreFactory) -> None:
    sealed_store = new_store()
    await sealed_store.open()
    sealed_store.use_secrets(SecretBox.generate())
    bearer = make_upstream("dev", token_source=StaticBearer("dev-token-abc"))
    try:
        assert await sealed_store.add_upstream(bearer)
        assert (await sealed_store.get_upstream("dev")) == bearer
    finally:
        await sealed_store.close()
    raw = new_store()  # without the key
    await raw.open()
    try:
        stored = await raw.get_upstream("dev")
        assert stored is not None and isinstance(stored.token_source, StaticBearer)
        assert (
            stored.token_source.token.startswith("sealed:") and "dev-token" not in stored.token_source.token
        )
    finally:
        await raw.close()


async def test_compatibility_options_and_adaptations_round_trip(store: Store) -> None:
    """Issue #15: an upstream's compatibility options, its "auto" delivery and what its link
    adapted to are stored with it."""
    compatibility = Compatibility(
        expected_issuer="https://idp.example.com/.well-known/ssf-configuration",
        create_fields={"aud": ["https://hub.example.com"], "tenant": "t-1"},
        omit_fields=("description",),
        renewal=RenewalStyle.REPLACE,
        push_auth=PushAuth.ENDPOINT_URL_TOKEN,
    )
    upstream = make_upstream(delivery=None, compatibility=compatibility)
    await store.add_upstream(upstream)
    assert await store.get_upstream("okta") == upstream
    state = UpstreamState(health=Health.DEGRADED, delivery="push").adapted("first").adapted("second")
    assert await store.save_upstream_state("okta", state) is True
    found = await store.get_upstream("okta")
    assert found is not None and found.state == state and found.state.adaptations == ("first", "second")
    assert found.compatibility == compatibility and found.delivery is None
