"""``ssf-hub demo``: a hub, a simulated IdP and example receivers, to watch a revocation travel
end to end with timings (:mod:`hub.cli.demo_run`; imported only when the command runs, so
every other command starts as fast as before)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from hub import logs


def add_parser(sub: Any) -> None:
    demo = sub.add_parser("demo", help="a hub, an IdP and example receivers: watch a revocation travel")
    demo.add_argument("--console", action="store_true", help="keep running and print the console URL")
    demo.add_argument("--quick", action="store_true", help="no pauses between steps (for tests)")
    demo.set_defaults(func=demo_command)


def demo_command(args: argparse.Namespace) -> int:
    from hub.cli.demo_run import run_demo

    logs.configure("warning", "text")
    try:
        return asyncio.run(run_demo(quick=args.quick, keep_running=args.console, out=sys.stdout))
    except KeyboardInterrupt:
        print("ssf-hub demo: stopped", file=sys.stderr)
        return 0
