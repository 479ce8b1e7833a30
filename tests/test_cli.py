"""The command-line contract outside tools rely on (DESIGN.md): serve, token, emit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.hub import free_port
from tests.support.process import listens_on

SSF_HUB = str(Path(sys.executable).parent / "ssf-hub")
ALICE = '{"format": "email", "email": "alice@example.com"}'


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSF_HUB_")}
    return subprocess.run([SSF_HUB, *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=env)


class ServedHub:
    def __init__(self, url: str, data_dir: Path, proc: subprocess.Popen[str]) -> None:
        self.url, self.data_dir, self.proc = url, data_dir, proc

    def token(self, sub: str, scope: str) -> str:
        out = run("token", "--data-dir", str(self.data_dir), "--sub", sub, "--scope", scope)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()


def start(data_dir: Path, *extra: str, cwd: Path | None = None) -> tuple[subprocess.Popen[str], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSF_HUB_")}
    started = time.monotonic()
    proc = subprocess.Popen(
        [SSF_HUB, "serve", "--data-dir", str(data_dir), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        env=env,
    )
    return proc, started


def wait_healthy(url: str, proc: subprocess.Popen[str], limit: float = 10.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if proc.poll() is not None:
            raise AssertionError(f"hub exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            healthy = httpx.get(url + "/healthz", timeout=1).status_code == 200
            if healthy and listens_on(proc.pid, int(url.rsplit(":", 1)[1])):  # this hub's answer
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("hub not healthy in time")


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM the hub and return what it printed."""
    proc.send_signal(signal.SIGTERM)
    try:
        output, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    return output or ""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedHub]:
    port = free_port()
    data_dir = tmp_path / "data"
    proc, _ = start(data_dir, "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield ServedHub(url, data_dir, proc)
    finally:
        stop(proc)


def test_serve_is_ready_within_five_seconds(tmp_path: Path) -> None:
    port = free_port()
    proc, started = start(tmp_path / "d", "--port", str(port))
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        assert time.monotonic() - started < 5.0
        meta = httpx.get(f"http://127.0.0.1:{port}/.well-known/ssf-configuration").json()
        assert meta["issuer"] == f"http://127.0.0.1:{port}"  # default issuer http://HOST:PORT
        assert (tmp_path / "d" / "hub.sqlite3").exists()  # embedded SQLite store in the data dir
    finally:
        output = stop(proc)
    # uvicorn re-raises the SIGTERM it handled after a graceful shutdown
    assert proc.returncode in (0, -signal.SIGTERM)
    assert "Traceback" not in output


def test_serve_with_no_flags_uses_the_documented_defaults(tmp_path: Path) -> None:
    try:
        httpx.get("http://127.0.0.1:8080/healthz", timeout=0.5)
        pytest.skip("port 8080 is in use on this machine")
    except httpx.HTTPError:
        pass
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSF_HUB_")}
    proc = subprocess.Popen(
        [SSF_HUB, "serve"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_healthy("http://127.0.0.1:8080", proc)
        meta = httpx.get("http://127.0.0.1:8080/.well-known/ssf-configuration").json()
        assert meta["issuer"] == "http://127.0.0.1:8080"
        assert (tmp_path / ".ssf-hub" / "hub.sqlite3").exists()
    finally:
        stop(proc)


def test_bad_setting_is_one_clear_line(tmp_path: Path) -> None:
    out = run("serve", "--data-dir", str(tmp_path), "--issuer", "ftp://nope")
    assert out.returncode == 2
    assert "issuer" in out.stderr and "Traceback" not in out.stderr
    env_out = subprocess.run(
        [SSF_HUB, "serve", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "SSF_HUB_PORT": "eighty"},
    )
    assert env_out.returncode == 2
    assert "SSF_HUB_PORT" in env_out.stderr and "Traceback" not in env_out.stderr


def test_settings_from_a_toml_file(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "hub.toml"
    config.write_text(f'port = {port}\ndefault_subjects = "ALL"\n')
    proc, _ = start(tmp_path / "d", "--config", str(config))
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        meta = httpx.get(f"http://127.0.0.1:{port}/.well-known/ssf-configuration").json()
        assert meta["default_subjects"] == "ALL"
    finally:
        stop(proc)


def test_token_is_accepted_by_the_hub(served: ServedHub) -> None:
    token = served.token("agent-7", "ssf.manage")
    assert token.count(".") == 2
    r = httpx.post(served.url + "/ssf/stream", json={}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201
    assert r.json()["aud"] == "agent-7"


def test_token_ttl_and_scopes(tmp_path: Path) -> None:
    out = run(
        "token",
        "--data-dir",
        str(tmp_path / "new"),
        "--sub",
        "x",
        "--scope",
        "ssf.metrics ssf.read",
        "--ttl",
        "60",
    )
    assert out.returncode == 0, out.stderr
    payload = out.stdout.strip().split(".")[1]
    claims = json.loads(__import__("base64").urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["scope"] == "ssf.metrics ssf.read"
    assert claims["exp"] - claims["iat"] == 60
    assert {"iss", "sub", "aud", "iat", "exp", "jti", "scope"} <= set(claims)
    assert (tmp_path / "new").is_dir()  # --data-dir created when missing


def test_an_unknown_scope_is_refused_in_one_line(tmp_path: Path) -> None:  # DESIGN.md: exit 2
    out = run("token", "--data-dir", str(tmp_path / "d"), "--sub", "x", "--scope", "ssf.admn")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [
        "ssf-hub: unknown scope 'ssf.admn'; known: ssf.manage, ssf.read, ssf.ingest, ssf.admin, ssf.metrics"
    ]


def test_emit_prints_the_txn_and_queues_one_set_per_stream(served: ServedHub) -> None:
    manage = {"Authorization": f"Bearer {served.token('agent-1', 'ssf.manage')}"}
    body = {"events_requested": ["https://schemas.openid.net/secevent/caep/event-type/session-revoked"]}
    stream = httpx.post(served.url + "/ssf/stream", json=body, headers=manage).json()
    httpx.post(
        served.url + "/ssf/subjects:add",
        json={"stream_id": stream["stream_id"], "subject": json.loads(ALICE)},
        headers=manage,
    ).raise_for_status()
    admin = served.token("secops", "ssf.admin")
    out = run("emit", "--url", served.url, "--token", admin, "--event", "session-revoked", "--subject", ALICE)
    assert out.returncode == 0, out.stderr
    txn = out.stdout.strip()
    assert txn and "\n" not in txn
    polled = httpx.post(
        stream["delivery"]["endpoint_url"], json={"returnImmediately": True}, headers=manage
    ).json()
    (token,) = polled["sets"].values()
    payload = token.split(".")[1]
    claims = json.loads(__import__("base64").urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["txn"] == txn

    out = run(
        "emit", "--url", served.url, "--token", admin, "--event",
        "https://schemas.openid.net/secevent/caep/event-type/session-revoked",
        "--subject", ALICE, "--claims", '{"initiating_entity": "admin"}', "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) == {"txn", "sets"}
    assert [s["stream_id"] for s in result["sets"]] == [stream["stream_id"]]


def test_emit_refuses_an_event_missing_a_required_claim(served: ServedHub) -> None:
    admin = served.token("secops", "ssf.admin")
    out = run(
        "emit", "--url", served.url, "--token", admin, "--event", "credential-change", "--subject", ALICE
    )
    assert out.returncode == 1
    assert "400" in out.stderr and "credential_type" in out.stderr


def test_emit_with_bad_json_or_token(served: ServedHub) -> None:
    out = run("emit", "--url", served.url, "--token", "x", "--event", "session-revoked", "--subject", "{bad")
    assert out.returncode == 2 and "--subject" in out.stderr
    out = run("emit", "--url", served.url, "--token", "x", "--event", "session-revoked", "--subject", ALICE)
    assert out.returncode == 1 and "401" in out.stderr


@pytest.mark.slow
def test_an_emitted_set_survives_kill_9(tmp_path: Path) -> None:  # DESIGN.md: 200 means durably queued
    port = free_port()
    data_dir = tmp_path / "data"
    proc, _ = start(data_dir, "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    hub = ServedHub(url, data_dir, proc)
    try:
        wait_healthy(url, proc)
        manage = {"Authorization": f"Bearer {hub.token('agent-1', 'ssf.manage')}"}
        body = {"events_requested": ["https://schemas.openid.net/secevent/caep/event-type/session-revoked"]}
        stream = httpx.post(url + "/ssf/stream", json=body, headers=manage).json()
        subject = {"stream_id": stream["stream_id"], "subject": json.loads(ALICE)}
        httpx.post(url + "/ssf/subjects:add", json=subject, headers=manage).raise_for_status()
        admin = hub.token("secops", "ssf.admin")
        out = run(
            "emit", "--url", url, "--token", admin, "--event", "session-revoked", "--subject", ALICE, "--json"
        )
        assert out.returncode == 0, out.stderr
        (queued,) = json.loads(out.stdout)["sets"]
    finally:
        proc.kill()  # SIGKILL: no shutdown hooks, no flush
        proc.communicate()
    proc, _ = start(data_dir, "--port", str(port))
    try:
        wait_healthy(url, proc)
        polled = httpx.post(
            stream["delivery"]["endpoint_url"], json={"returnImmediately": True}, headers=manage
        )
        assert list(polled.json()["sets"]) == [queued["jti"]]
    finally:
        stop(proc)


@pytest.mark.parametrize("command", ["issuers", "upstreams"])
def test_registry_commands_on_an_unreachable_redis_say_so_in_one_line(command: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    out = run(command, "list", "--store", "redis", "--redis-url", dead)
    assert out.returncode != 0
    assert "cannot reach Redis" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_a_token_minted_with_only_the_environment_is_accepted_by_the_running_hub(served: ServedHub) -> None:
    # Issue 13: SSF_HUB_DATA_DIR used to be ignored; the token then named an unknown key.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSF_HUB_")}
    env["SSF_HUB_DATA_DIR"] = str(served.data_dir)
    out = subprocess.run(
        [SSF_HUB, "token", "--sub", "agent-9", "--scope", "ssf.manage"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=served.data_dir.parent,  # not where ./.ssf-hub would be the data dir
    )
    assert out.returncode == 0, out.stderr
    r = httpx.get(served.url + "/ssf/stream", headers={"Authorization": f"Bearer {out.stdout.strip()}"})
    assert r.status_code == 200, r.text
    assert not (served.data_dir.parent / ".ssf-hub").exists()


def test_emit_reads_the_hub_and_token_from_the_environment_and_says_how_far_it_got(
    served: ServedHub, tmp_path: Path
) -> None:
    token_file = tmp_path / "admin.token"
    token_file.write_text(served.token("secops", "ssf.admin") + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSF_HUB_")}
    env |= {"SSF_HUB_URL": served.url, "SSF_HUB_TOKEN_FILE": str(token_file)}
    subject = '{"format": "email", "email": "nobody@example.com"}'
    out = subprocess.run(
        [SSF_HUB, "emit", "--event", "session-revoked", "--subject", subject],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 1  # the txn alone, for scripts
    assert out.stderr.strip() == (
        "ssf-hub emit: warning: the event reached no stream (no stream has this subject and event)"
    )
    manage = {"Authorization": f"Bearer {served.token('agent-1', 'ssf.manage')}"}
    stream = httpx.post(
        served.url + "/ssf/stream", json={"events_requested": ["session-revoked"]}, headers=manage
    )
    sid = stream.json()["stream_id"]
    httpx.post(
        served.url + "/ssf/subjects:add",
        json={"stream_id": sid, "subject": json.loads(subject)},
        headers=manage,
    ).raise_for_status()
    again = subprocess.run(
        [SSF_HUB, "emit", "--event", "session-revoked", "--subject", subject],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert again.stderr.strip() == "ssf-hub emit: queued for 1 stream(s)"


def test_api_commands_without_a_hub_or_token_say_so_in_one_line() -> None:
    out = run("streams")
    assert out.returncode == 2
    assert out.stderr.strip() == "ssf-hub: which hub? give --url or set SSF_HUB_URL"
    out = run("streams", "--url", "http://127.0.0.1:9")
    assert out.returncode == 2
    assert "no access token" in out.stderr


def test_streams_shows_when_a_poller_last_called(served: ServedHub) -> None:
    manage = {"Authorization": f"Bearer {served.token('agent-1', 'ssf.manage')}"}
    httpx.post(served.url + "/ssf/stream", json={"events_requested": ["session-revoked"]}, headers=manage)
    out = run("streams", "--url", served.url, "--token", served.token("secops", "ssf.admin"))
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()[1:]
    assert " poll " in line and " polled 20" in line  # created by its owner just now


def test_a_second_serve_on_the_same_data_dir_is_refused_naming_the_first(served: ServedHub) -> None:
    out = run("serve", "--data-dir", str(served.data_dir), "--port", str(free_port()))
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"ssf-hub: data dir {served.data_dir} is in use by ssf-hub serve pid {served.proc.pid} at "
        f"{served.url}; stop it or give another --data-dir"
    )


def test_keys_rotate_retire_now_drops_the_old_key_from_the_jwks(served: ServedHub) -> None:
    before = [k["kid"] for k in httpx.get(served.url + "/ssf/jwks.json").json()["keys"]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSF_HUB_")}
    env |= {"SSF_HUB_URL": served.url, "SSF_HUB_TOKEN": served.token("secops", "ssf.admin")}
    out = subprocess.run(
        [SSF_HUB, "keys", "rotate", "--retire-now"], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 0, out.stderr
    active = out.stdout.strip()
    after = [k["kid"] for k in httpx.get(served.url + "/ssf/jwks.json").json()["keys"]]
    assert after == [active] and active not in before


def test_backup_of_a_running_hub_restores_to_a_hub_with_the_same_streams_queue_and_keys(
    served: ServedHub, tmp_path: Path
) -> None:
    manage = {"Authorization": f"Bearer {served.token('agent-1', 'ssf.manage')}"}
    admin = {"Authorization": f"Bearer {served.token('secops', 'ssf.admin')}"}
    body = {"events_requested": ["session-revoked"]}
    sid = httpx.post(served.url + "/ssf/stream", json=body, headers=manage).json()["stream_id"]
    subject = {"format": "email", "email": "alice@example.com"}
    httpx.post(served.url + "/ssf/subjects:add", json={"stream_id": sid, "subject": subject}, headers=manage)
    emitted = httpx.post(
        served.url + "/ssf/admin/events", json={"event": "session-revoked", "subject": subject}, headers=admin
    ).json()["sets"]

    archive = tmp_path / "hub-backup.tar.gz"
    out = run("backup", str(archive), "--data-dir", str(served.data_dir))  # while it serves
    assert out.returncode == 0, out.stderr
    assert archive.stat().st_mode & 0o777 == 0o600  # it holds the private keys

    restored = tmp_path / "restored"
    restored.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(restored, filter="data")
    port = free_port()
    proc, _ = start(restored, "--port", str(port))
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        # The old token verifies (same token key) and the queued SET is there (same store).
        polled = httpx.post(f"{url}/ssf/poll/{sid}", json={"returnImmediately": True}, headers=manage)
        assert polled.status_code == 200, polled.text
        assert list(polled.json()["sets"]) == [emitted[0]["jti"]]
        assert httpx.get(url + "/ssf/jwks.json").json() == httpx.get(served.url + "/ssf/jwks.json").json()
    finally:
        stop(proc)


def test_backup_refuses_a_redis_hub_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSF_HUB_")}
    env |= {"SSF_HUB_STORE": "redis", "SSF_HUB_REDIS_URL": "redis://127.0.0.1:1/0"}
    out = subprocess.run(
        [SSF_HUB, "backup", str(tmp_path / "b.tgz")], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "ssf-hub: with store=redis the streams, queues and keys live in Redis: back up Redis itself"
    )


def test_a_refused_or_unanswered_api_call_is_one_line_naming_the_command(served: ServedHub) -> None:
    out = run("streams", "--url", served.url, "--token", served.token("agent-1", "ssf.manage"))
    assert out.returncode == 1
    assert out.stderr.startswith("ssf-hub streams: 403 insufficient_scope: ")
    out = run("keys", "rotate", "--url", f"http://127.0.0.1:{free_port()}", "--token", "x")
    assert out.returncode == 1
    assert out.stderr.startswith("ssf-hub keys rotate: cannot reach http://127.0.0.1:")
