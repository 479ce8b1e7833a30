"""``ssf-hub demo --quick`` (issue #14): one command starts a hub, a simulated IdP and three
example receivers, revokes a session as the IdP and prints the whole chain with timings."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.process import SSF_HUB

CHAIN = [
    "IdP pushed session-revoked for alice@example.com",
    "hub accepted it",
    "SET delivered to agent",
    "SET delivered to tool-server",
    "SET delivered to llm-gateway",
    "agent dropped its token",
    "tool refused the stale call",
    "agent re-authenticated and was served",
]


@pytest.mark.timeout(180)
def test_the_demo_prints_the_revocation_chain_complete_and_cleans_up() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSF_HUB_")}
    done = subprocess.run([SSF_HUB, "demo", "--quick"], capture_output=True, text=True, timeout=170, env=env)

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    steps = re.findall(r"^\s+(-?[\d.]+) ms  (.+?)(?:  \[|$)", out, flags=re.MULTILINE)
    labels = [label.split(" (stream")[0] for _, label in steps]
    assert labels == CHAIN, out
    times = {label: float(ms) for ms, label in zip((m for m, _ in steps), labels, strict=True)}
    assert times[CHAIN[0]] == 0.0
    # Causality: each step after the one it depends on. (The 202 may reach the IdP after a
    # long-polling receiver already has the SET: the hub commits, wakes the poll, then answers.)
    assert all(times[s] >= 0 for s in CHAIN)
    assert times["SET delivered to agent"] <= times["agent dropped its token"]
    assert times["agent dropped its token"] <= times["tool refused the stale call"]
    assert times["tool refused the stale call"] <= times["agent re-authenticated and was served"]
    assert "[401]" in out and "chain complete in" in out and "missing" not in out
    # The hub holds what each receiver did: the agent's dropped token, the tool's refusal.
    assert re.search(r"agent\s+delivered\s+receipts: token_dropped x1", out), out
    assert re.search(r"tool-server\s+delivered\s+receipts: request_refused x\d", out), out
    assert re.search(r"llm-gateway\s+delivered\s+receipts: delivered, no receipt", out), out
    data_dir = Path(re.search(r"\(data in (\S+)\)", out).group(1))  # type: ignore[union-attr]
    assert not data_dir.exists()  # the temporary data dir is gone


# A shell that starts a command in the background without job control (as a CI runner may) makes
# it ignore SIGINT, and the ignore is inherited. A terminal's Ctrl-C reaches a process whose
# SIGINT is at its default, so the demo is started that way: reset, then exec.
AS_FROM_A_TERMINAL = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])",
]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_demo_console_keeps_running_with_a_sign_in_token_until_stopped(stop: signal.Signals) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSF_HUB_")}
    argv = [*AS_FROM_A_TERMINAL, SSF_HUB, "demo", "--quick", "--console"]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    ) as demo:
        try:
            assert demo.stdout is not None
            lines: list[str] = []
            for line in demo.stdout:
                lines.append(line)
                if line.startswith("console: "):
                    token = demo.stdout.readline().strip()
                    break
            else:
                raise AssertionError("".join(lines))
            url = lines[-1].split()[1]
            data_dir = Path(re.search(r"\(data in (\S+)\)", "".join(lines)).group(1))  # type: ignore[union-attr]
            overview = httpx.get(
                url + "/api/overview", headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            assert overview.status_code == 200 and 'id="streams-total">3<' in overview.text
            assert httpx.get(url, timeout=30).status_code == 200

            demo.send_signal(stop)
            assert demo.wait(timeout=60) == 0
            assert not data_dir.exists()
            with pytest.raises(httpx.ConnectError):
                httpx.get(url, timeout=5)
        finally:
            if demo.poll() is None:
                demo.kill()
