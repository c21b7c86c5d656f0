"""Summarise py-spy collapsed stacks (``py-spy record --format raw``): where the workers' CPU goes.

    .venv/bin/python bench/tools/profile_summary.py bench/results/profiles/openai_zengate-c32-*.txt [--top 25]

Prints, over every file given (e.g. both workers), the share of samples per function
*inclusive* (the function or anything it called was running) and *self* (the function itself
was running), and the same inclusive view restricted to zengate's own code. py-spy without
``--idle`` only samples threads that are running, so shares are of busy CPU time. It sees one
stack per worker (the running greenlet's): time where gevent's hub runs compiled code is
attributed to the last Python frame.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]+)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    """``func (path/to/site-packages/pkg/mod.py:12)`` → ``pkg/mod.py:func``."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "/lib/python3", "/zengate/"):
        if marker in path:
            path = path.rsplit(marker, 1)[1] if marker == "/zengate/" else path.split(marker, 1)[1]
            if marker == "/lib/python3":
                path = "stdlib/" + path.split("/", 1)[1] if "/" in path else path
            elif marker == "/zengate/":  # the package, in whichever checkout (or --ref copy) ran
                path = "zengate/" + path
            break
    return f"{path}:{m.group('func')}"


def load(paths: list[Path]) -> list[tuple[list[str], int]]:
    stacks = []
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = [_short(f) for f in stack.split(";") if f and not f.startswith("process ")
                      and not f.startswith("thread ")]
            stacks.append((frames, int(count)))
    return stacks


def summarise(stacks, top: int, focus: str = "zengate/") -> str:
    total = sum(c for _, c in stacks) or 1
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        for frame in set(frames):
            inclusive[frame] += count
        if frames:
            own[frames[-1]] += count
    out = [f"samples: {total}"]

    def block(title, counter, keep=lambda _f: True):
        out.append(f"\n{title}")
        for frame, count in [(f, c) for f, c in counter.most_common() if keep(f)][:top]:
            out.append(f"  {100 * count / total:5.1f}%  {frame}")

    block("inclusive (function and its callees):", inclusive)
    block("self (the function itself):", own)
    block(f"inclusive, {focus} only:", inclusive, lambda f: f.startswith(focus))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="summarise py-spy raw profiles")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--focus", default="zengate/")
    args = parser.parse_args(argv)
    print(summarise(load(args.files), args.top, args.focus))
    return 0


if __name__ == "__main__":
    sys.exit(main())
