"""Real ``redis-server`` processes for tests, each on a free loopback port.

``redis_server`` (session fixture, in tests/conftest.py) is one fast, non-persistent
server shared by the whole run; ``redis_url`` flushes it and hands a test its URL. For
durability tests, :func:`start_redis` with ``appendonly=True`` starts a private server
with AOF ``everysec`` that a test may stop (SIGTERM or SIGKILL) and start again on the
same port and data directory.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support.hub import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
START_TIMEOUT = 10.0


@dataclass
class RedisServer:
    """One redis-server child process; ``start``/``stop`` keep its port and directory."""

    directory: Path
    port: int = field(default_factory=free_port)
    appendonly: bool = False
    appendfsync: str = "everysec"  # with appendonly: "always" fsyncs every write
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.directory / "redis.log"

    def _command(self) -> list[str]:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", ""]
            if self.appendonly
            else ["--appendonly", "no", "--save", ""]
        )
        return [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--logfile",
            str(self.log),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            *persistence,
        ]

    def start(self) -> None:
        """Start it and wait until it answers PING (after loading its AOF, if any)."""
        if not Path(REDIS_SERVER).exists():
            raise RuntimeError("redis-server is not installed (tests/check.sh installs it)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=1)
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited: {self._last_words()}")
                with contextlib.suppress(redis.ConnectionError, redis.BusyLoadingError):
                    if client.ping():
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer in time: {self._last_words()}")
                time.sleep(0.02)
        finally:
            client.close()

    def _last_words(self) -> str:
        stderr = self.process.stderr if self.process else None
        err = stderr.read().decode(errors="replace") if stderr else ""
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        return (err + tail).strip()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop it with ``sig``: SIGTERM shuts down cleanly (AOF flushed), SIGKILL does not."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def restart(self, sig: signal.Signals = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    def flush(self) -> None:
        with redis.Redis(port=self.port, socket_timeout=5) as client:
            client.flushall()


@contextlib.contextmanager
def start_redis(directory: Path, *, appendonly: bool = False) -> Iterator[RedisServer]:
    """A private redis-server for one test, stopped at the end whatever state it is in."""
    server = RedisServer(directory, appendonly=appendonly)
    server.start()
    try:
        yield server
    finally:
        server.stop(signal.SIGKILL)


# -- Redis Cluster ----------------------------------------------------------------------------
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
CLUSTER_MASTERS = 3
BUS_PORT_OFFSET = 10000  # Redis's cluster bus listens on port + 10000


def free_cluster_port() -> int:
    """A free loopback port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if port + BUS_PORT_OFFSET > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + BUS_PORT_OFFSET))
            except OSError:
                continue
        return port


@dataclass
class ClusterNode(RedisServer):
    """One ``--cluster-enabled`` master; its nodes.conf lives in its own directory."""

    def _command(self) -> list[str]:
        nodes_conf = str(self.directory / "nodes.conf")
        return [*super()._command(), "--cluster-enabled", "yes", "--cluster-config-file", nodes_conf]


def _in_sync(client: redis.Redis) -> bool:
    info = client.info("replication")
    return info.get("role") != "slave" or info.get("master_link_status") == "up"


@dataclass
class RedisCluster:
    """Three masters, no replicas: every slot covered, each node owning a third of them."""

    nodes: list[ClusterNode]

    @property
    def url(self) -> str:
        """What an operator passes: one node's plain URL (the hub detects cluster mode)."""
        return self.nodes[0].url

    @property
    def cluster_url(self) -> str:
        """The explicit form, ``redis+cluster://``."""
        return f"redis+cluster://127.0.0.1:{self.nodes[1].port}"

    def flush(self) -> None:
        for node in self.nodes:
            with redis.Redis(port=node.port, socket_timeout=5) as client:
                client.flushall()

    def wait_ok(self) -> None:
        """Every node sees the cluster ok, and every replica is in sync with its master (a
        manual failover on a replica still syncing times out and changes nothing)."""
        deadline = time.monotonic() + START_TIMEOUT
        for node in self.nodes:
            with redis.Redis(port=node.port, socket_timeout=2, decode_responses=True) as client:
                while client.cluster("info").get("cluster_state") != "ok" or not _in_sync(client):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"cluster not ok on port {node.port}: {node._last_words()}")
                    time.sleep(0.05)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop(signal.SIGKILL)

    def replica_ports(self) -> list[int]:
        """The ports of the nodes that are replicas now (``CLUSTER NODES`` flags)."""
        nodes = subprocess.run(
            [REDIS_CLI, "-p", str(self.nodes[0].port), "cluster", "nodes"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        ports = []
        for line in nodes.splitlines():
            fields = line.split()  # id host:port@bus flags master ...
            if len(fields) > 2 and "slave" in fields[2]:
                ports.append(int(fields[1].split("@")[0].rsplit(":", 1)[1]))
        return ports

    def fail_over(self, replica_port: int) -> None:
        """``CLUSTER FAILOVER`` on a replica: it takes over its master's slots (no data lost)."""
        done = subprocess.run(
            [REDIS_CLI, "-p", str(replica_port), "cluster", "failover"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode != 0 or "OK" not in done.stdout:
            raise RuntimeError(f"cluster failover on {replica_port}: {done.stdout}{done.stderr}")


@contextlib.contextmanager
def start_redis_cluster(directory: Path, *, replicas: int = 0) -> Iterator[RedisCluster]:
    """A three-master Redis Cluster on free loopback ports (``replicas`` per master), stopped
    at the end."""
    if not Path(REDIS_CLI).exists():
        raise RuntimeError("redis-cli is not installed (tests/check.sh installs redis-tools)")
    count = CLUSTER_MASTERS * (1 + replicas)
    cluster = RedisCluster([ClusterNode(directory / f"node-{n}", free_cluster_port()) for n in range(count)])
    try:
        for node in cluster.nodes:
            node.start()
        create = [REDIS_CLI, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in cluster.nodes)]
        create += ["--cluster-replicas", str(replicas), "--cluster-yes"]
        done = subprocess.run(create, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout}{done.stderr}")
        cluster.wait_ok()
        yield cluster
    finally:
        cluster.stop()
