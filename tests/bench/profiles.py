"""Reads py-spy's collapsed stacks (``--format raw --threads --idle``) and says where the
hub's time went: samples per thread, then the event-loop thread's heaviest functions,
inclusive (the function and what it calls) and self (the innermost frame).

    .venv/bin/python -m tests.bench.profiles tests/bench/results/profiles/emit_poll-ES256-FULL.txt
        [--focus poll_endpoint]

Samples whose innermost frame is the loop runner itself are the event loop in C: waiting in
``epoll`` (idle) or doing uvloop/httptools work that py-spy cannot see without ``--native``.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(?:thread \((?P<tid>\w+)\): )?(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^():]+)(?::\d+)?\)$")
MAIN = "MainThread"
LOOP_RUNNER = {"Runner.run", "run_until_complete", "BaseEventLoop.run_forever", "asyncio_run"}


def frame_name(frame: str) -> str:
    """``func (file:line)`` -> ``func (file)``: lines of one function count together."""
    m = _FRAME.match(frame)
    return f"{m['func']} ({m['file']})" if m else frame


def read(path: Path, *, lines: bool = False) -> list[tuple[str, list[str], int]]:
    """(thread name, frames outermost first, samples) per distinct stack; ``lines`` keeps
    each frame's line number."""
    out = []
    for line in Path(path).read_text().splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        frames = m["stack"].split(";")
        thread = frames.pop(0) if frames and not _FRAME.match(frames[0]) else "?"
        out.append((thread, frames if lines else [frame_name(f) for f in frames], int(m["count"])))
    return out


def summarise(path: Path, *, title: str, top: int = 18, focus: str | None = None) -> str:
    """The report; ``focus`` (a function name, e.g. ``emit_endpoint``) keeps only the event-loop
    stacks through that function and shows what its time went to."""
    stacks = read(path)
    per_thread: Counter[str] = Counter()
    for thread, _, n in stacks:
        per_thread[thread.split("_")[0]] += n
    total = sum(per_thread.values())
    lines = [f"== {title} ({path})", "samples per thread: " + ", ".join(
        f"{t} {n} ({100 * n / total:.0f} %)" for t, n in per_thread.most_common()
    )]  # fmt: skip
    main = [(frames, n) for thread, frames, n in stacks if thread == MAIN]
    if focus is not None:
        everything = sum(n for _, n in main) or 1
        main = [(frames, n) for frames, n in main if any(f.split(" (")[0] == focus for f in frames)]
        lines.append(f"focus {focus}: {100 * sum(n for _, n in main) / everything:.1f} % of {MAIN}")
    main_total = sum(n for _, n in main) or 1
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, n in main:
        for name in set(frames):
            inclusive[name] += n
        leaf = frames[-1] if frames else "?"
        if leaf.split(" (")[0] in LOOP_RUNNER:
            leaf = "(event loop in C: epoll wait / uvloop / httptools)"
        own[leaf] += n
    # Frames on (nearly) every stack are the server's scaffolding; they say nothing.
    scaffolding = {name for name, n in inclusive.items() if n > 0.97 * main_total}
    lines.append(f"{MAIN}: heaviest functions, inclusive % of its {main_total} samples")
    shown = [(name, n) for name, n in inclusive.most_common() if name not in scaffolding][:top]
    lines += [f"  {100 * n / main_total:5.1f} %  {name}" for name, n in shown]
    lines.append(f"{MAIN}: innermost frames (self %)")
    lines += [f"  {100 * n / main_total:5.1f} %  {name}" for name, n in own.most_common(top)]
    others: dict[str, Counter[str]] = {}
    for thread, frames, n in read(path, lines=True):
        if thread != MAIN and frames:
            others.setdefault(thread.split("_")[0], Counter())[frames[-1]] += n
    for thread, leaves in others.items():
        count = sum(leaves.values())
        lines.append(f"{thread}: innermost frames with line (self %)")
        lines += [f"  {100 * n / count:5.1f} %  {name}" for name, n in leaves.most_common(5)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--focus", help="only stacks through this function, e.g. poll_endpoint")
    parser.add_argument("--top", type=int, default=18)
    args = parser.parse_args()
    for path in args.profiles:
        print(summarise(path, title=path.stem, top=args.top, focus=args.focus))


if __name__ == "__main__":
    main()
