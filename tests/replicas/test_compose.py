"""compose/: the docker-compose topology (Redis with AOF, two replicas, a load balancer, the
example receivers) and ``compose/loopback.py``, which runs the same topology as plain
processes, stay in step; the loopback run passes its smoke check."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

COMPOSE = Path(__file__).resolve().parents[2] / "compose"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"compose_{name}", COMPOSE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


loopback = load("loopback")


def flags(command: list[str]) -> dict[str, str]:
    return dict(str(arg).removeprefix("--").split("=", 1) for arg in command if "=" in str(arg))


def test_compose_runs_redis_with_aof_two_replicas_behind_a_checked_balancer_and_the_examples() -> None:
    services: dict[str, Any] = loopback.load_compose()["services"]
    kinds = {name: loopback.kind_of(service) for name, service in services.items()}
    hubs = sorted(name for name, kind in kinds.items() if kind == "hub")
    assert hubs == ["hub-1", "hub-2"]
    assert sorted(name for name, kind in kinds.items() if kind == "example") == [
        "agent",
        "llm-gateway",
        "tool-server",
    ]

    redis = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis and "--appendfsync everysec" in redis  # the documented loss window
    assert "healthcheck" in services["redis"]

    issuers = {services[h]["environment"]["SSF_HUB_ISSUER"] for h in hubs}
    assert len(issuers) == 1  # every replica announces the balancer's URL
    (issuer,) = issuers
    balancer = services["lb"]
    assert issuer == f"http://{balancer['networks']['default']['aliases'][0]}:8080"
    for hub in hubs:
        assert flags(services[hub]["command"])["store"] == "redis"
        assert flags(services[hub]["command"])["redis-url"] == "redis://redis:6379/0"
        assert "healthcheck" in services[hub] and "/healthz" in " ".join(services[hub]["healthcheck"]["test"])
    port, servers = loopback.haproxy_servers()
    assert port == 8080 and servers == [(hub, f"{hub}:8080") for hub in hubs]
    haproxy = (COMPOSE / "haproxy.cfg").read_text()
    assert "option httpchk GET /healthz" in haproxy and "retry-on conn-failure" in haproxy
    assert '"err": "temporarily_unavailable"' in (COMPOSE / "lb-503.http").read_text()
    for name, kind in kinds.items():
        if kind == "example":
            assert flags(services[name]["command"])["hub"] == issuer


def test_the_loopback_plan_is_the_compose_file_on_loopback_addresses(tmp_path: Path) -> None:
    compose = loopback.load_compose()
    ports = {name: 40000 + i for i, name in enumerate(compose["services"])}
    plan = {p.service: p for p in loopback.plan(compose, tmp_path, ports)}
    assert list(plan) == [
        "redis",
        "hub-1",
        "hub-2",
        "lb",
        "tool-server",
        "llm-gateway",
        "agent",
    ]  # depends_on
    lb = f"127.0.0.1:{ports['lb']}"
    for hub in ("hub-1", "hub-2"):
        process, service = plan[hub], compose["services"][hub]
        assert process.env == {**service["environment"], "SSF_HUB_ISSUER": f"http://{lb}"}
        local, original = flags(process.argv[1:]), flags(service["command"])
        assert local.keys() == original.keys()  # the same flags, each one translated
        assert local["port"] == str(ports[hub]) and local["host"] == "127.0.0.1"
        assert local["redis-url"] == f"redis://127.0.0.1:{ports['redis']}/0"
        assert local["data-dir"].startswith(str(tmp_path / hub))
    assert plan["redis"].argv[:7] == compose["services"]["redis"]["command"]
    backends = [a for a in plan["lb"].argv if a.startswith("--backend=")]
    assert backends == [f"--backend={h}=http://127.0.0.1:{ports[h]}" for h in ("hub-1", "hub-2")]
    demo_dirs = {flags(plan[name].argv)["demo-dir"] for name in ("tool-server", "llm-gateway", "agent")}
    assert demo_dirs == {str(tmp_path / "volumes" / "demo")}  # one shared volume, as in compose
    assert flags(plan["agent"].argv)["tool"] == f"http://127.0.0.1:{ports['tool-server']}"
    assert f"redis://127.0.0.1:{ports['redis']}/0" in flags(plan["agent"].argv)["token-command"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_the_loopback_topology_passes_its_smoke_check() -> None:
    done = subprocess.run(
        [sys.executable, str(COMPOSE / "loopback.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "smoke check passed" in done.stdout
    assert "the long poll held on hub-2 returned it" in done.stdout
