"""Two checkouts of zengate under the same wrk load, in alternating rounds: throughput and tails.

    .venv/bin/python bench/tools/alternate.py BEFORE AFTER [--concurrency 1,32,256] [--rounds 6]
                                              [--seconds 5] [--kind openai|anthropic]
                                              [--keys off|plain|limits[,…]] [--redis URL[,URL]]
                                              [--guards off|on[,…]] [--tools]
                                              [--settings FILE[,FILE]]

``paired.py`` compares two versions one request at a time (concurrency 1). This compares them
under load: it starts the bench upstream and one gateway per checkout (each as production starts
it, default workers, side by side on the same upstream), then for each round and each
concurrency runs ``wrk`` against one gateway and then the other, the order swapped every round,
so that both see the same moments of a shared machine. Per run it prints requests/s, p50, p90
and p99, and the workers' CPU time per request (both workers' user and system time over the run,
divided by its requests: steadier than requests/s on a noisy VM); then the medians over the
rounds. Give a checkout of an earlier commit as ``git worktree add /tmp/before REF`` with a
``.venv`` link to this one's. ``--keys`` and ``--redis`` measure a stage on one checkout: the
same directory twice, ``--keys plain,limits --redis ,redis://…`` for the cost of per-key limits
counted in Redis, ``--guards off,on --tools`` for the agent guards' (every guard on, and a request
that offers a tool, so that the tool-call guards read the answer). ``--settings ,FILE`` stores the
settings of a JSON file (``{"key": value, …}``) on one side: the cost of any other stage
(``bench/settings/`` holds the ones docs/performance.md cites).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent  # bench/; this file is in bench/tools/
sys.path.insert(0, str(BENCH))

import run  # noqa: E402  (bench/ is not a package)

FIGURES = ("rps", "p50_ms", "p90_ms", "p99_ms", "cpu_us_per_request")


def one_run(loads: run.Loads, gw: run.Gateway, url: str, body: Path, connections: int, seconds: float,
            headers: list[str]) -> dict[str, float]:
    """One wrk run against ``gw``: its figures (see ``FIGURES``) and its errors."""
    cpu_before = gw.cpu()
    out = loads.wrk(url, body, connections, seconds, headers)
    latency = out["latency_us"]
    return {"rps": out["rps"], "p50_ms": latency["p50"] / 1000, "p90_ms": latency["p90"] / 1000,
            "p99_ms": latency["p99"] / 1000, "errors": out["error_count"],
            "cpu_us_per_request": (gw.cpu() - cpu_before) / max(1, out["requests"]) * 1e6}


#: Limits on the bench's key that count every request and never refuse one.
NEVER_BINDING = {"rpm": 1_000_000, "requests_per_day": 1_000_000_000, "tokens_per_day": 10**15}


#: Every agent guard switched on (docs/guards.md).
ALL_GUARDS = {"tool_repair": True, "dangerous_commands": True, "context_window": True, "loop_breaking": True}
#: A shell tool as an agent offers one, in each API's shape.
ANTHROPIC_SHELL_TOOL = {"name": "Bash", "description": "Run a shell command",
                        "input_schema": {"type": "object", "properties": {"command": {"type": "string"},
                                                                          "description": {"type": "string"}},
                                         "required": ["command"]}}
SHELL_TOOL = {"type": "function", "function": {"name": "Bash", "description": "Run a shell command",
                                               "parameters": ANTHROPIC_SHELL_TOOL["input_schema"]}}


def _sides(value: str) -> dict[str, str]:
    """``X`` for both sides, or ``BEFORE,AFTER``."""
    parts = value.split(",")
    return {"before": parts[0], "after": parts[-1]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path, help="a zengate checkout")
    parser.add_argument("after", type=Path, help="another zengate checkout")
    parser.add_argument("--concurrency", default="1,32,256", help="comma-separated wrk connection counts")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=5.0, help="per wrk run")
    parser.add_argument("--kind", choices=("openai", "anthropic"), default="openai")
    parser.add_argument("--keys", default="off",
                        help="off, plain (keys required: a key without limits) or limits (a key whose limits "
                             "never bind: every request is counted); one for both, or BEFORE,AFTER")
    parser.add_argument("--redis", default="", help="a REDIS_URL for both, or BEFORE,AFTER ('' for none)")
    parser.add_argument("--guards", default="off", help="off or on (every agent guard); one for both, or BEFORE,AFTER")
    parser.add_argument("--tools", action="store_true", help="the request offers a shell tool, as an agent's do")
    parser.add_argument("--settings", default="", help="a JSON file of settings: one for both, or BEFORE,AFTER")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, databases) afterwards")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    keys, redis, guards = _sides(args.keys), _sides(args.redis), _sides(args.guards)
    stored = {name: json.loads(Path(file).read_text()) if file else {} for name, file in _sides(args.settings).items()}
    if not set(keys.values()) <= {"off", "plain", "limits"}:
        parser.error("--keys: off, plain or limits")
    if not set(guards.values()) <= {"off", "on"}:
        parser.error("--guards: off or on")
    workdir = Path(tempfile.mkdtemp(prefix="zengate-alternate-"))
    up = run.Upstream(workdir, cpu=None, chunks=20, interval_ms=5.0, hold_max=10.0)
    gateways: dict[str, run.Gateway] = {}
    try:
        for name in ("before", "after"):
            (workdir / name).mkdir()
            gateways[name] = run.Gateway(getattr(args, name).resolve(), workdir / name, up.url, None,
                                         env={"REDIS_URL": redis[name]} if redis[name] else None)
        loads = run.Loads(workdir, argparse.Namespace(wrk_cpu=None))
        openai = args.kind == "openai"
        request = run.OPENAI_BODY if openai else run.ANTHROPIC_BODY
        if args.tools:
            request = {**request, "tools": [SHELL_TOOL if openai else ANTHROPIC_SHELL_TOOL]}
        body = loads.body_file("body", request)
        path = "/v1/chat/completions" if openai else "/v1/messages"
        headers = {name: [] if openai else list(run.ANTHROPIC_HEADERS) for name in gateways}
        for name, gw in gateways.items():
            if keys[name] != "off":
                headers[name].append(gw.client_key(**(NEVER_BINDING if keys[name] == "limits" else {})))
        for name, gw in gateways.items():
            if guards[name] == "on":
                gw.admin("POST", "/_admin/settings", {"key": "guards", "value": ALL_GUARDS})
            for key, value in stored[name].items():
                gw.admin("POST", "/_admin/settings", {"key": key, "value": value})
        for name, gw in gateways.items():  # warm-up, not counted
            for connections in levels:
                loads.wrk(gw.url + path, body, connections, 2, headers[name])
        results: dict[tuple[str, int], list[dict[str, float]]] = {(n, c): [] for n in gateways for c in levels}
        for round_no in range(args.rounds):
            for connections in levels:
                for name in (("before", "after") if round_no % 2 == 0 else ("after", "before")):
                    figures = one_run(loads, gateways[name], gateways[name].url + path, body, connections,
                                      args.seconds, headers[name])
                    results[(name, connections)].append(figures)
                    run.log(f"round {round_no} c={connections} {name:6s} " + "  ".join(
                        f"{key} {figures[key]:,.1f}" for key in (*FIGURES, "errors")))
        print(f"\nmedians of {args.rounds} rounds ({args.kind}, {args.seconds:g} s each):")
        print(f"{'':14s}" + "".join(f"{key:>20s}" for key in FIGURES))
        for connections in levels:
            for name in gateways:
                runs = results[(name, connections)]
                print(f"c={connections:<4d} {name:7s}" + "".join(
                    f"{statistics.median(r[key] for r in runs):20,.1f}" for key in FIGURES))
    finally:
        for gw in gateways.values():
            gw.stop()
        up.stop()
        if args.keep:
            run.log(f"kept {workdir}")
        else:  # two gateways' request logs: a few hundred MB after a long run
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
