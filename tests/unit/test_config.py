"""Settings: defaults < TOML file < ``SSF_HUB_*`` environment < command-line flags.

DESIGN.md fixes the defaults (127.0.0.1:8080, SQLite under ./.ssf-hub/, issuer
http://HOST:PORT). Every bad value is a :class:`ConfigError` naming the setting and where
it came from. These tests never read ``os.environ``: ``environ=`` is always explicit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.config import ExternalIssuerSettings, Settings, load_settings
from hub.errors import ConfigError


def load(
    toml: str | None = None, *, env: dict[str, str] | None = None, tmp: Path | None = None, **flags: Any
) -> Settings:
    config_file = None
    if toml is not None:
        assert tmp is not None
        config_file = tmp / "ssf-hub.toml"
        config_file.write_text(toml, encoding="utf-8")
    return load_settings(config_file=config_file, environ=env or {}, overrides=flags)


# --- defaults (DESIGN.md contract) --------------------------------------------------------------


def test_the_defaults_are_the_documented_ones() -> None:
    settings = load()
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.data_dir == Path(".ssf-hub")
    assert settings.store == "sqlite"
    assert settings.issuer is None
    assert settings.issuer_url == "http://127.0.0.1:8080"
    assert settings.default_subjects == "NONE"  # least disclosure
    assert (settings.max_body_bytes, settings.max_events_default, settings.max_events_limit) == (
        262144,
        100,
        1000,
    )
    assert (settings.long_poll_seconds, settings.long_poll_max_seconds) == (20.0, 30.0)
    assert settings.allow_private_endpoints is False
    assert settings.token_leeway == 30
    assert settings == Settings()


def test_the_default_issuer_follows_host_and_port() -> None:
    assert load(host="0.0.0.0", port=9000).issuer_url == "http://0.0.0.0:9000"


@pytest.mark.parametrize(
    ("host", "url"), [("::1", "http://[::1]:8080"), ("fe80::1", "http://[fe80::1]:8080")]
)
def test_an_ipv6_host_is_bracketed_in_the_default_issuer(host: str, url: str) -> None:
    assert load(host=host).issuer_url == url


def test_an_explicit_issuer_wins_and_loses_its_trailing_slash() -> None:
    assert load(issuer="https://hub.example.com/tenant1/").issuer_url == "https://hub.example.com/tenant1"


# --- precedence: flags > environment > TOML > defaults ------------------------------------------


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    toml = 'port = 9001\nlog_level = "debug"\nstore = "sqlite"\n'
    env = {"SSF_HUB_PORT": "9002", "SSF_HUB_LOG_LEVEL": "warning"}
    assert load(toml, tmp=tmp_path).port == 9001
    assert load(toml, tmp=tmp_path, env=env).port == 9002
    flagged = load(toml, tmp=tmp_path, env=env, port=9003)
    assert flagged.port == 9003
    assert flagged.log_level == "warning"  # no flag for it: the environment still wins over TOML
    assert flagged.store == "sqlite"


def test_a_flag_left_as_none_is_unset() -> None:
    assert load(env={"SSF_HUB_PORT": "9002"}, port=None).port == 9002


def test_the_config_file_can_be_named_in_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "from-env.toml"
    path.write_text("port = 9100\n", encoding="utf-8")
    assert load(env={"SSF_HUB_CONFIG": str(path)}).port == 9100


def test_environment_strings_are_coerced_to_the_field_types() -> None:
    settings = load(
        env={
            "SSF_HUB_DATA_DIR": "/var/lib/ssf-hub",
            "SSF_HUB_LONG_POLL_SECONDS": "2.5",
            "SSF_HUB_INACTIVITY_TIMEOUT": "3600",
            "SSF_HUB_ALL_SUBJECTS_RECEIVERS": " agent-a, ,gateway-b ",
        }
    )
    assert settings.data_dir == Path("/var/lib/ssf-hub")
    assert settings.long_poll_seconds == 2.5
    assert settings.inactivity_timeout == 3600
    assert settings.all_subjects_receivers == ("agent-a", "gateway-b")


@pytest.mark.parametrize("text", ["", "none", "off"])
def test_an_optional_integer_can_be_unset_from_the_environment(text: str) -> None:
    assert load(env={"SSF_HUB_INACTIVITY_TIMEOUT": text}).inactivity_timeout is None


@pytest.mark.parametrize("text", ["true", "1", "Yes", "on"])
def test_true_booleans_from_the_environment(text: str) -> None:
    assert load(env={"SSF_HUB_ALLOW_PRIVATE_ENDPOINTS": text}).allow_private_endpoints is True


@pytest.mark.parametrize("text", ["false", "0", "no", "OFF"])
def test_false_booleans_from_the_environment(tmp_path: Path, text: str) -> None:
    # The file says true, so only a parsed false from the environment can make it False.
    settings = load(
        "allow_private_endpoints = true\n", tmp=tmp_path, env={"SSF_HUB_ALLOW_PRIVATE_ENDPOINTS": text}
    )
    assert settings.allow_private_endpoints is False


# --- bad values name the setting and where it came from -----------------------------------------


@pytest.mark.parametrize(
    ("env", "origin"),
    [
        ({"SSF_HUB_PORT": "eighty"}, "environment SSF_HUB_PORT"),
        ({"SSF_HUB_PORT": "70000"}, "environment SSF_HUB_PORT"),
        ({"SSF_HUB_PORT": "80.5"}, "environment SSF_HUB_PORT"),
        ({"SSF_HUB_ALLOW_PRIVATE_ENDPOINTS": "maybe"}, "environment SSF_HUB_ALLOW_PRIVATE_ENDPOINTS"),
        ({"SSF_HUB_LONG_POLL_SECONDS": "soon"}, "environment SSF_HUB_LONG_POLL_SECONDS"),
        ({"SSF_HUB_STORE": "mysql"}, "environment SSF_HUB_STORE"),
        ({"SSF_HUB_DEFAULT_SUBJECTS": "SOME"}, "environment SSF_HUB_DEFAULT_SUBJECTS"),
        ({"SSF_HUB_ISSUER": "https://hub.example.com/?tenant=1"}, "environment SSF_HUB_ISSUER"),
        ({"SSF_HUB_INACTIVITY_TIMEOUT": "30"}, "environment SSF_HUB_INACTIVITY_TIMEOUT"),
        ({"SSF_HUB_SIGNING_ALG": "HS256"}, "environment SSF_HUB_SIGNING_ALG"),
        ({"SSF_HUB_SIGNING_PROCESSES": "-1"}, "environment SSF_HUB_SIGNING_PROCESSES"),
        ({"SSF_HUB_SIGNING_PROCESSES": "many"}, "environment SSF_HUB_SIGNING_PROCESSES"),
        ({"SSF_HUB_PUSH_ORDER": "global"}, "environment SSF_HUB_PUSH_ORDER"),
        ({"SSF_HUB_PUSH_STREAM_IN_FLIGHT": "0"}, "environment SSF_HUB_PUSH_STREAM_IN_FLIGHT"),
    ],
)
def test_a_bad_environment_value_names_the_variable(env: dict[str, str], origin: str) -> None:
    name = next(iter(env)).removeprefix("SSF_HUB_").lower()
    with pytest.raises(ConfigError) as caught:
        load(env=env)
    assert origin in str(caught.value)
    assert name in str(caught.value)


def test_a_bad_flag_value_names_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"--port.*port"):
        load(port="http")
    with pytest.raises(ConfigError, match="--port: setting port=0"):
        load(port=0)


def test_a_bad_file_value_names_the_file_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load('port = "eighty"\n', tmp=tmp_path)
    assert "ssf-hub.toml: port" in str(caught.value)
    with pytest.raises(ConfigError, match=r"ssf-hub\.toml: max_body_bytes: setting max_body_bytes=10"):
        load("max_body_bytes = 10\n", tmp=tmp_path)


def test_a_redis_store_needs_a_redis_url() -> None:
    with pytest.raises(ConfigError, match="redis_url"):
        load(store="redis")
    assert load(store="redis", redis_url="redis://localhost:6379/0").redis_url == "redis://localhost:6379/0"


def test_long_poll_must_stay_under_its_ceiling() -> None:
    with pytest.raises(ConfigError, match="long_poll_seconds"):
        load(long_poll_seconds=40.0)


def test_the_default_max_events_must_not_exceed_the_limit() -> None:
    with pytest.raises(ConfigError, match="max_events_default"):
        load(max_events_default=2000)


# --- the TOML file ------------------------------------------------------------------------------


def test_unknown_toml_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown setting.*prot"):
        load("prot = 9000\n", tmp=tmp_path)


def test_invalid_toml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load("port = = 1\n", tmp=tmp_path)


def test_a_missing_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "absent.toml", environ={})


def test_a_hub_table_is_accepted(tmp_path: Path) -> None:
    settings = load(
        '[hub]\nhost = "0.0.0.0"\nport = 9443\nissuer = "https://hub.example.com"\n', tmp=tmp_path
    )
    assert (settings.host, settings.port, settings.issuer_url) == ("0.0.0.0", 9443, "https://hub.example.com")


def test_unknown_keys_inside_the_hub_table_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        load("[hub]\nbogus = 1\n", tmp=tmp_path)


def test_external_issuers_come_from_toml_tables(tmp_path: Path) -> None:
    toml = """
[[external_issuers]]
issuer = "https://idp.example.com"
jwks_uri = "https://idp.example.com/jwks"
audience = "ssf-hub"

[[external_issuers]]
issuer = "https://login.example.org"
jwks_uri = "https://login.example.org/keys"
audience = ["a", "b"]

[[external_issuers]]
issuer = "https://third.example.net"
jwks_uri = "https://third.example.net/jwks"
"""
    assert load(toml, tmp=tmp_path).external_issuers == (
        ExternalIssuerSettings("https://idp.example.com", "https://idp.example.com/jwks", ("ssf-hub",)),
        ExternalIssuerSettings("https://login.example.org", "https://login.example.org/keys", ("a", "b")),
        ExternalIssuerSettings("https://third.example.net", "https://third.example.net/jwks", ()),
    )


@pytest.mark.parametrize(
    "toml",
    [
        'external_issuers = "https://idp.example.com"\n',
        '[[external_issuers]]\nissuer = "https://idp.example.com"\n',
        '[[external_issuers]]\njwks_uri = "https://idp.example.com/jwks"\n',
        '[[external_issuers]]\nissuer = "https://i.x"\njwks_uri = "https://i.x/j"\naudience = 5\n',
    ],
)
def test_malformed_external_issuers_are_refused(tmp_path: Path, toml: str) -> None:
    with pytest.raises(ConfigError, match="external_issuers"):
        load(toml, tmp=tmp_path)


def test_external_issuers_cannot_come_from_the_environment() -> None:
    with pytest.raises(ConfigError, match="environment SSF_HUB_EXTERNAL_ISSUERS"):
        load(env={"SSF_HUB_EXTERNAL_ISSUERS": "https://idp.example.com"})
