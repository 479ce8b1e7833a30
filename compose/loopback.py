"""The compose topology as plain processes on 127.0.0.1, read from docker-compose.yml.

    python compose/loopback.py            # start it all, print the URLs, run until Ctrl-C
    python compose/loopback.py --smoke    # start it, run the smoke check through it, stop

Docker does not run everywhere (not on this project's development machines), so this
script starts every service of ``compose/docker-compose.yml`` as a local process, from
that file, so the two cannot drift apart: the same commands, flags and environment, with
each ``service:port`` address replaced by a free loopback port, container paths by
directories under a temporary one (named volumes shared as in compose), ``redis`` by the
local ``redis-server`` and HAProxy by ``compose/balancer.py`` over the servers listed in
``compose/haproxy.cfg``. Services start in ``depends_on`` order, each once it is ready.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
COMPOSE_FILE = HERE / "docker-compose.yml"
HAPROXY_FILE = HERE / "haproxy.cfg"
BIN = Path(sys.executable).parent
READY_TIMEOUT = 20.0


@dataclass
class Process:
    """One compose service as a local process."""

    service: str
    kind: str  # redis | hub | balancer | example
    argv: list[str]
    env: dict[str, str]
    port: int | None  # where it listens on 127.0.0.1 (None: it does not listen)
    depends_on: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# -- reading the compose file ----------------------------------------------------------------------
def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def haproxy_servers(path: Path = HAPROXY_FILE) -> tuple[int, list[tuple[str, str]]]:
    """The balancer's listening port and its ``server NAME HOST:PORT`` lines."""
    bind, servers = 0, []
    for line in path.read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if words[:1] == ["bind"]:
            bind = int(words[1].rsplit(":", 1)[1])
        elif words[:1] == ["server"]:
            servers.append((words[1], words[2]))
    return bind, servers


def kind_of(service: Mapping[str, Any]) -> str:
    image = str(service.get("image", ""))
    entrypoint = list(service.get("entrypoint") or [])
    if image.startswith("redis"):
        return "redis"
    if image.startswith("haproxy"):
        return "balancer"
    if entrypoint == ["ssf-hub"]:
        return "hub"
    if entrypoint[:2] == ["python", "-m"]:
        return "example"
    raise ValueError(f"compose service with image {image!r} / entrypoint {entrypoint!r} has no loopback form")


def container_port(service: Mapping[str, Any], kind: str) -> int | None:
    if kind == "redis":
        return 6379
    if kind == "balancer":
        return haproxy_servers()[0]
    for arg in service.get("command") or []:
        if str(arg).startswith("--port="):
            return int(str(arg).split("=", 1)[1])
    return None


def plan(compose: Mapping[str, Any], workdir: Path, ports: Mapping[str, int]) -> list[Process]:
    """Every compose service as a :class:`Process`, in start order; ``ports`` gives each
    listening service its loopback port."""
    services: dict[str, Any] = compose["services"]
    kinds = {name: kind_of(s) for name, s in services.items()}
    addresses: dict[str, str] = {}
    for name, service in services.items():
        cport = container_port(service, kinds[name])
        if cport is None:
            continue
        addresses[f"{name}:{cport}"] = f"127.0.0.1:{ports[name]}"
        aliases = ((service.get("networks") or {}).get("default") or {}).get("aliases") or []
        for alias in aliases:
            addresses[f"{alias}:{cport}"] = f"127.0.0.1:{ports[name]}"

    def local(text: str, name: str) -> str:
        for compose_address, loopback in addresses.items():
            text = text.replace(compose_address, loopback)
        if text.startswith("/"):
            return str(volume_path(services[name], text, workdir, name))
        if text.startswith("ssf-hub "):
            return str(BIN / "ssf-hub") + text[len("ssf-hub") :]
        return text

    out = []
    for name in start_order(services):
        service, kind = services[name], kinds[name]
        env = {k: local(str(v), name) for k, v in (service.get("environment") or {}).items()}
        args = [
            _local_arg(str(a), ports[name], functools.partial(local, name=name))
            for a in service.get("command") or []
        ]
        if kind == "redis":
            data = volume_path(service, "/data", workdir, name)
            argv = [*args, "--port", str(ports[name]), "--bind", "127.0.0.1", "--dir", str(data)]
        elif kind == "balancer":
            _, servers = haproxy_servers()
            backends = [f"--backend={server}=http://{local(address, name)}" for server, address in servers]
            argv = [sys.executable, str(HERE / "balancer.py"), f"--listen=127.0.0.1:{ports[name]}", *backends]
        elif kind == "hub":
            argv = [str(BIN / "ssf-hub"), *args]
        else:
            argv = [sys.executable, *service["entrypoint"][1:], *args]
        listens = container_port(service, kind) is not None
        port = ports[name] if listens else None
        out.append(Process(name, kind, argv, env, port, list(service.get("depends_on") or [])))
    return out


def _local_arg(arg: str, port: int, local: Callable[[str], str]) -> str:
    flag, sep, value = arg.partition("=")
    if not sep:
        return local(arg)
    if flag == "--host":
        return "--host=127.0.0.1"
    if flag == "--port":
        return f"--port={port}"
    return f"{flag}={local(value)}"


def volume_path(service: Mapping[str, Any], path: str, workdir: Path, name: str) -> Path:
    """Where a container path lives on loopback: a named volume's directory (shared by
    every service that mounts it, as in compose) or the service's own directory."""
    for volume in service.get("volumes") or []:
        source, _, target = str(volume).partition(":")
        target = target.split(":", 1)[0]
        if not source.startswith(".") and (path == target or path.startswith(target + "/")):
            return workdir / "volumes" / source / path[len(target) :].lstrip("/")
    return workdir / name / path.lstrip("/")


def start_order(services: Mapping[str, Any]) -> list[str]:
    order: list[str] = []

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in trail:
            raise ValueError(f"depends_on cycle: {' -> '.join((*trail, name))}")
        for dependency in services[name].get("depends_on") or []:
            visit(dependency, (*trail, name))
        order.append(name)

    for name in services:
        visit(name, ())
    return order


# -- running it ------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Topology:
    def __init__(self, processes: list[Process], workdir: Path) -> None:
        self.processes = {p.service: p for p in processes}
        self.workdir = workdir
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def log(self, service: str) -> Path:
        return self.workdir / "logs" / f"{service}.log"

    def start(self) -> None:
        """Start the services in waves: each wave is every service whose dependencies are
        ready, started together and waited for together (the two replicas start at once,
        as compose starts them)."""
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        waiting = list(self.processes.values())
        while waiting:
            wave = [p for p in waiting if all(d in self.running for d in p.depends_on)]
            for process in wave:
                self.spawn(process)
            for process in wave:
                self.wait_ready(process)
            waiting = [p for p in waiting if p not in wave]

    def spawn(self, process: Process) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SSF_HUB_")}
        env.update(process.env)
        for path in (a.split("=", 1)[-1] for a in process.argv):
            if path.startswith(str(self.workdir)):
                Path(path).mkdir(parents=True, exist_ok=True)
        with self.log(process.service).open("ab") as out:
            # Its own process group, so stopping it stops anything it started.
            self.running[process.service] = subprocess.Popen(  # noqa: S603 - argv from docker-compose.yml
                process.argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, process: Process) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.ready(process):
            proc = self.running[process.service]
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{process.service} exited with {proc.returncode}:\n{self.tail(process.service)}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{process.service} not ready in {READY_TIMEOUT} s:\n{self.tail(process.service)}"
                )
            time.sleep(0.05)

    def ready(self, process: Process) -> bool:
        if process.port is None:
            return True
        if process.kind in {"hub", "balancer"}:
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(process.url + "/healthz", timeout=1).status_code == 200
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", process.port), timeout=1):
            return True  # redis answers, or an example has subscribed and serves
        return False

    def stop(self) -> None:
        for service in reversed(list(self.running)):
            proc = self.running.pop(service)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()

    def tail(self, service: str, lines: int = 30) -> str:
        path = self.log(service)
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def running_topology(workdir: Path) -> Iterator[Topology]:
    compose = load_compose()
    ports = {name: free_port() for name in compose["services"]}
    topology = Topology(plan(compose, workdir, ports), workdir)
    try:
        topology.start()
        yield topology
    except Exception:
        for service in topology.running:  # what each process said, for whoever reads the failure
            print(f"--- {service} (last lines)\n{topology.tail(service)}", file=sys.stderr)
        raise
    finally:
        topology.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="run the smoke check, then stop")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, AOF)")
    args = parser.parse_args(argv)
    if shutil.which("redis-server") is None:
        print(
            "loopback: redis-server is not installed (Debian: apt-get install redis-server)", file=sys.stderr
        )
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="ssf-hub-loopback-"))
    try:
        with running_topology(workdir) as topology:
            for process in topology.processes.values():
                where = process.url if process.port else "(no port)"
                print(f"{process.service:12} {where:24} {shlex.join(process.argv)[:120]}", flush=True)
            if args.smoke:
                from smoke import smoke_check

                smoke_check(topology)
                print("smoke check passed", flush=True)
                return 0
            print(f"running; logs in {workdir / 'logs'}; Ctrl-C stops", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
            return 0
    except Exception as exc:
        print(f"loopback: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
