"""What every benchmark shares: a real ``ssf-hub serve`` process, worker processes pinned to
the other CPU, run statistics, the machine description, the table on stdout and the JSON file.

The hub runs on CPU 1 and load generators / receivers on CPU 0 when ``taskset`` exists, so the
hub's figures are one-core figures and the load does not steal its core. Workers are other
processes (``python -m tests.bench.<worker>``) that read a JSON plan and write a JSON report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tests/bench/results"
SSF_HUB = str(Path(sys.executable).parent / "ssf-hub")
PY_SPY = str(Path(sys.executable).parent / "py-spy")
CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
SESSION_REVOKED = CAEP + "session-revoked"
HUB_CPU, LOAD_CPU = 1, 0

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pinned(cpu: int, argv: Sequence[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > cpu:
        return ["taskset", "-c", str(cpu), *argv]
    return list(argv)


def wait_http(url: str, proc: subprocess.Popen[bytes], limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early ({proc.returncode}): {proc.args!r}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {limit} s")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- process figures from /proc ---------------------------------------------------------------------
def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (the hub's signing processes, say)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found.extend(int(c) for c in (task / "children").read_text().split())
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process (all its threads) and its live children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(child) for child in children(pid))


# -- the hub ---------------------------------------------------------------------------------------
class Hub:
    """``ssf-hub serve`` on a free port in its own process, pinned to :data:`HUB_CPU`."""

    def __init__(
        self, data_dir: str | Path, *, alg: str = "ES256", port: int | None = None, **settings: object
    ) -> None:
        self.data_dir = str(data_dir)
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "SSF_HUB_SIGNING_ALG": alg,
            "SSF_HUB_LOG_LEVEL": "warning",
            "SSF_HUB_MIN_VERIFICATION_INTERVAL": "0",
        }
        self.env.update({f"SSF_HUB_{k.upper()}": str(v) for k, v in settings.items()})
        self.proc: subprocess.Popen[bytes] | None = None
        self._tokens: dict[tuple[str, str], str] = {}

    @property
    def several(self) -> bool:
        """``serve --processes`` above 1."""
        return int(self.env.get("SSF_HUB_PROCESSES", "1")) > 1

    def __enter__(self) -> Hub:
        argv = [SSF_HUB, "serve", "--port", str(self.port), "--data-dir", self.data_dir]
        argv.append("--allow-private-endpoints")
        # One hub process gets a core of its own; several (serve --processes) get every core,
        # shared with the load: what a 2-core machine running both offers.
        self.proc = subprocess.Popen(
            argv if self.several else pinned(HUB_CPU, argv), env=self.env, cwd=self.data_dir
        )
        try:
            wait_http(self.base + "/healthz", self.proc)
        except BaseException:
            stop(self.proc)
            raise
        # Signing processes (``signing_processes``) inherit the hub's CPU; the second core is
        # the load's, so they share it with the load generators: what a 2-core box offers.
        if shutil.which("taskset") and not self.several:
            for child in children(self.pid):
                os.sched_setaffinity(child, {LOAD_CPU})
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop(self.proc)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def token(self, sub: str, scope: str) -> str:
        """A token from ``ssf-hub token`` (the CLI contract), cached per (sub, scope)."""
        if (sub, scope) not in self._tokens:
            out = subprocess.run(
                [SSF_HUB, "token", "--data-dir", self.data_dir, "--sub", sub, "--scope", scope,
                 "--ttl", "7200"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            self._tokens[sub, scope] = out.stdout.strip()
        return self._tokens[sub, scope]

    def auth(self, sub: str, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, scope)}"}

    def create_streams(
        self,
        count: int,
        *,
        owner: str = "bench",
        push_urls: Sequence[str] | None = None,
        subjects: Sequence[Sequence[Mapping[str, Any]]] = (),
    ) -> list[dict[str, Any]]:
        """``count`` streams for session-revoked (poll, or push to ``push_urls[i]``), each with
        its ``subjects[i]`` registered through the API."""
        headers = self.auth(owner, "ssf.manage")
        streams = []
        with httpx.Client(base_url=self.base, headers=headers, timeout=60) as client:
            for i in range(count):
                body: dict[str, Any] = {"events_requested": [SESSION_REVOKED]}
                if push_urls is not None:
                    body["delivery"] = {"method": "urn:ietf:rfc:8935", "endpoint_url": push_urls[i]}
                r = client.post("/ssf/stream", json=body)
                r.raise_for_status()
                stream = r.json()
                for subject in subjects[i] if i < len(subjects) else ():
                    client.post(
                        "/ssf/subjects:add", json={"stream_id": stream["stream_id"], "subject": subject}
                    ).raise_for_status()
                streams.append(stream)
        return streams

    def profiled(self, out: Path | None, *, rate: int = 200) -> contextlib.AbstractContextManager[None]:
        """Sample the hub with py-spy (all threads) while the block runs; collapsed stacks to ``out``."""
        return profiled(self.pid, out, rate=rate, subprocesses=self.several)


@contextlib.contextmanager
def profiled(pid: int, out: Path | None, *, rate: int = 200, subprocesses: bool = False) -> Iterator[None]:
    """Sample process ``pid`` with py-spy (all threads) while the block runs; collapsed
    stacks to ``out`` (nothing when ``out`` is None)."""
    if out is None:
        yield
        return
    if not Path(PY_SPY).exists():
        raise RuntimeError(f"--profile needs py-spy: {Path(sys.executable).parent}/pip install py-spy")
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [PY_SPY, "record", "-p", str(pid), "-r", str(rate), "--threads", "--idle"]
    argv += ["--subprocesses"] if subprocesses else []
    spy = subprocess.Popen(
        pinned(LOAD_CPU, [*argv, "--format", "raw", "-o", str(out)]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)  # let py-spy attach before the measured work starts
    try:
        yield
    finally:
        stop(spy, signal.SIGINT, timeout=30)


# -- workers in other processes -----------------------------------------------------------------------
class Worker:
    """``python -m tests.bench.<module> PLAN REPORT`` on :data:`LOAD_CPU`; :meth:`report` waits for it."""

    def __init__(self, module: str, plan: Mapping[str, Any], workdir: str | Path, *, cpu: int = LOAD_CPU):
        fd, self.plan_path = tempfile.mkstemp(suffix=".json", prefix=module + "-", dir=workdir)
        with os.fdopen(fd, "w") as f:
            json.dump(plan, f)
        self.report_path = self.plan_path[: -len(".json")] + ".report.json"
        argv = [sys.executable, "-m", f"tests.bench.{module}", self.plan_path, self.report_path]
        self.proc = subprocess.Popen(pinned(cpu, argv), cwd=ROOT)

    def report(self, timeout: float = 300) -> dict[str, Any]:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stop(self.proc)
            raise RuntimeError(f"worker {self.proc.args!r} did not finish in {timeout} s") from None
        if code != 0:
            raise RuntimeError(f"worker {self.proc.args!r} failed with exit code {code}")
        data: dict[str, Any] = json.loads(Path(self.report_path).read_text())
        return data

    def kill(self) -> None:
        stop(self.proc)


def ready_file(workdir: str | Path, name: str) -> Path:
    return Path(workdir) / f"{name}.ready"


def wait_ready(paths: Sequence[Path], workers: Sequence[Worker], limit: float = 60) -> None:
    """Wait until every worker touched its ready file (it holds its connections / listens)."""
    deadline = time.monotonic() + limit
    while not all(p.exists() for p in paths):
        for w in workers:
            if w.proc.poll() is not None:
                raise RuntimeError(f"worker {w.proc.args!r} exited early ({w.proc.returncode})")
        if time.monotonic() > deadline:
            raise RuntimeError("workers not ready in time")
        time.sleep(0.02)


# -- statistics and output ----------------------------------------------------------------------------
def spread(values: Sequence[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def fmt(value: object) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def msr(values: Sequence[float]) -> str:
    """min / median / max as one cell."""
    s = spread(values)
    return f"{fmt(s['min'])} / {fmt(s['median'])} / {fmt(s['max'])}"


def delivery_cells(samples: Sequence[dict[str, Any]]) -> tuple[object, ...]:
    """The table cells every emit -> deliver benchmark prints: SETs/s min/med/max, then the
    medians of emit rate, p50, p99 and hub CPU per SET."""

    def median(key: str) -> float:
        return spread([s[key] for s in samples])["median"]

    return (
        msr([s["sets_per_s"] for s in samples]),
        median("emit_per_s"),
        median("p50_ms"),
        median("p99_ms"),
        median("hub_cpu_us_per_set"),
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(lines)


def cpu_model() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def busy_share(seconds: float) -> float:
    """How busy the whole machine's CPUs were over the next ``seconds`` (0..1), from /proc/stat."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values) - idle, sum(values)

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(1, total1 - total0)


def machine(busy_seconds: float = 0.0) -> dict[str, Any]:
    """The machine; with ``busy_seconds``, also how busy it was (other processes: call this
    before starting anything) over that long."""
    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
        "pinning": bool(shutil.which("taskset")),
    }
    if busy_seconds and Path("/proc/stat").exists():
        info["busy_before_start"] = busy_share(busy_seconds)
    return info


def command() -> str:
    module = Path(sys.argv[0]).stem
    return " ".join([".venv/bin/python -m tests.bench." + module, *sys.argv[1:]])


def write_result(name: str, data: Mapping[str, Any], out: str | Path | None = None) -> Path:
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {**machine(), "command": command()}
    path.write_text(json.dumps({"meta": meta, **data}, indent=2) + "\n")
    print(f"\nwrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run a worker's coroutine on uvloop (what the hub runs on) when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def delivery_figures(emitted: Mapping[str, Any], arrived: Mapping[str, float]) -> dict[str, Any]:
    """Throughput and latency of one emit-then-deliver run.

    ``emitted`` is an emitter report, ``arrived`` maps jti to its first arrival. Throughput is
    SETs that arrived per second from the first emit sent to the last arrival; latency is
    from the emit being sent (and from its 200, the SET durably queued) to the arrival."""
    if emitted["failures"]:
        raise RuntimeError(f"{len(emitted['failures'])} emits failed, e.g. {emitted['failures'][0]}")
    records = emitted["records"]
    times = [(arrived[jti], sent, acked) for jti, _sid, sent, acked in records if jti in arrived]
    if len(times) != len(records):  # leaving the slowest out would flatter every figure
        raise RuntimeError(f"{len(records) - len(times)} of {len(records)} emitted SETs never arrived")
    first, last = min(r[2] for r in records), max(t[0] for t in times)
    from_sent = [(a - s) * 1000 for a, s, _ in times]
    from_acked = [(a - k) * 1000 for a, _, k in times]
    return {
        "emitted_sets": len(records),
        "arrived_sets": len(times),
        "emit_failures": len(emitted["failures"]),
        "emit_per_s": len(records) / (emitted["finished"] - emitted["started"]),
        "sets_per_s": len(times) / (last - first),
        "p50_ms": percentile(from_sent, 50),
        "p99_ms": percentile(from_sent, 99),
        "max_ms": max(from_sent),
        "p50_from_ack_ms": percentile(from_acked, 50),
        "p99_from_ack_ms": percentile(from_acked, 99),
    }


def add_hub_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every emit benchmark passes to its hub, and --profile / --out."""
    parser.add_argument(
        "--sync", default="FULL", help="the hub's sqlite_synchronous (default FULL, as shipped)"
    )
    parser.add_argument(
        "--signing-processes",
        type=int,
        default=0,
        help="the hub's signing_processes (0: sign on the hub's core; N: N children on the load's core)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="hub processes (serve --processes; above 1 the hub is unpinned: both cores, with the load)",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the hub in the first run")
    parser.add_argument("--out", default=None)
