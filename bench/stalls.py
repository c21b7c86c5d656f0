"""What holds a worker's requests: its greenlets' long stretches and its gc pauses, under sequential load.

    .venv/bin/python bench/stalls.py [--repo CHECKOUT] [--kind openai|anthropic] [--requests 6000]
                                     [--slice-ms 2]

Starts the bench upstream and zengate with one gevent worker (the repo's ``gunicorn.conf.py``,
wrapped), puts the worker on CPU 0 and this client and the upstream on CPU 1 (on a machine with
two CPUs or more), and sends requests one after another on one kept-alive connection. Inside the
worker, ``greenlet.settrace`` times every stretch a greenlet (or the hub) ran without switching;
those longer than ``--slice-ms`` are kept with the frames where it resumed and where it switched
out, and gc callbacks time every collection. It prints the client's latency percentiles and its
stalls (5 ms or more, with when they came: a fixed spacing points at a timer), the worker's long
stretches grouped by greenlet and frames, and the gc pauses per generation.

A request the client saw stall while no stretch of the worker was long waited outside the worker's
CPU: the kernel, the upstream, or (on a VM) the host. The tracer costs a few µs per switch: read
the stalls and their causes, not the latencies, from this tool; ``bench/run.py`` measures speed.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import itertools
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH)]

import icount  # noqa: E402  (bench/ is not a package)
import run  # noqa: E402

#: The worker's hooks (after the repo's gunicorn.conf.py: run.wrapped_gunicorn_conf): a switch
#: tracer and gc timing, written out as JSON to $STALLS_OUT on SIGRTMIN+4 and forgotten on
#: SIGRTMIN+5 (after the warm-up).
_HOOKS = """
def _bench_hooks(worker):
    import gc, json, signal, time, weakref
    import greenlet

    threshold = float(os.environ["STALLS_SLICE"])
    state = {"t": time.perf_counter()}
    stretches, pauses, gc_started = [], [], {}
    suspended = weakref.WeakKeyDictionary()

    def frames(frame, depth=3):
        out = []
        while frame is not None and len(out) < depth:
            out.append(f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}:{frame.f_code.co_name}")
            frame = frame.f_back
        return " < ".join(out)

    def tracer(event, args):
        if event not in ("switch", "throw"):
            return
        origin, _target = args
        now = time.perf_counter()
        ran, state["t"] = now - state["t"], now
        here = frames(origin.gr_frame)
        if ran > threshold:
            who = "hub" if type(origin).__name__ == "Hub" else "greenlet"
            stretches.append({"at": now, "ms": ran * 1000, "who": who, "resumed": suspended.get(origin, ""),
                              "switched_out": here})
        try:
            suspended[origin] = here
        except TypeError:
            pass

    def on_gc(phase, info):
        if phase == "start":
            gc_started["t"] = time.perf_counter()
        else:
            pauses.append({"generation": info["generation"], "ms": (time.perf_counter() - gc_started["t"]) * 1000})

    def dump(*_):
        path = os.environ["STALLS_OUT"]
        with open(path + ".part", "w") as out:
            json.dump({"stretches": stretches, "gc": pauses}, out)
        os.replace(path + ".part", path)  # whole when it appears

    def reset(*_):
        stretches.clear()
        pauses.clear()

    greenlet.settrace(tracer)
    gc.callbacks.append(on_gc)
    signal.signal(signal.SIGRTMIN + 4, dump)
    signal.signal(signal.SIGRTMIN + 5, reset)
"""


def _pin(pid: int, cpu: int) -> None:
    try:
        os.sched_setaffinity(pid, {cpu})
    except OSError:
        pass


def _percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", type=Path, default=BENCH.parent, help="zengate checkout to run")
    parser.add_argument("--kind", choices=("openai", "anthropic"), default="openai")
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--slice-ms", type=float, default=2.0, help="report stretches longer than this")
    args = parser.parse_args()

    two_cpus = (os.cpu_count() or 1) >= 2
    workdir = Path(tempfile.mkdtemp(prefix="zengate-stalls-"))
    conf = workdir / "stalls.conf.py"
    conf.write_text(run.wrapped_gunicorn_conf(_HOOKS))
    out = workdir / "stalls.json"
    up = run.Upstream(workdir, cpu=1 if two_cpus else None, chunks=20, interval_ms=5.0, hold_max=10.0)
    gw = None
    try:
        gw = run.Gateway(args.repo.resolve(), workdir, up.url, 1, config=str(conf),
                         env={"STALLS_OUT": str(out), "STALLS_SLICE": str(args.slice_ms / 1000)})
        [worker] = gw.workers()
        if two_cpus:
            _pin(worker, 0)
            _pin(0, 1)
        request = icount.request_of(args.kind, run)
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
        for _ in range(200):  # warm-up
            icount.request_once(conn, request)
        os.kill(worker, signal.SIGRTMIN + 5)  # forget the start (its gc.collect before freezing, the warm-up)
        icount.request_once(conn, request)  # the signal is handled by the time this is answered
        started = time.perf_counter()
        latencies, stalls = [], []
        for _ in range(args.requests):
            t0 = time.perf_counter()
            icount.request_once(conn, request)
            took = time.perf_counter() - t0
            latencies.append(took * 1000)
            if took >= 0.005:
                stalls.append((t0 - started, took * 1000))
        conn.close()
        os.kill(worker, signal.SIGRTMIN + 4)
        run.wait_until(out.exists, 10, "the worker's dump")
        traced = json.loads(out.read_text())
    finally:
        if gw is not None:
            gw.stop()
        up.stop()

    ordered = sorted(latencies)
    print(f"client: {len(ordered)} {args.kind} requests, p50 {_percentile(ordered, .5):.2f} ms, "
          f"p90 {_percentile(ordered, .9):.2f}, p99 {_percentile(ordered, .99):.2f}, "
          f"p99.9 {_percentile(ordered, .999):.2f}, max {ordered[-1]:.1f}")
    print(f"client stalls ≥ 5 ms: {len(stalls)}")
    if len(stalls) > 2:
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(stalls)]
        print(f"  spacing: median {statistics.median(gaps) * 1000:.0f} ms; first ones at "
              + ", ".join(f"{s:.3f} s ({ms:.1f} ms)" for s, ms in stalls[:8]))
    groups: dict[tuple[str, str, str], list[float]] = collections.defaultdict(list)
    for s in traced["stretches"]:
        groups[(s["who"], s["resumed"], s["switched_out"])].append(s["ms"])
    print(f"worker stretches > {args.slice_ms:g} ms without a switch (the hub's include waiting for I/O):")
    for (who, resumed, switched_out), values in sorted(groups.items(), key=lambda kv: -sum(kv[1]))[:15]:
        print(f"  {len(values):5d} × {statistics.median(values):6.2f} ms median, {max(values):6.1f} max  {who}: "
              f"resumed at {resumed or '(start)'}; switched out at {switched_out}")
    by_generation: dict[int, list[float]] = collections.defaultdict(list)
    for p in traced["gc"]:
        by_generation[p["generation"]].append(p["ms"])
    for generation, values in sorted(by_generation.items()):
        print(f"gc generation {generation}: {len(values)} passes, {sum(values):.1f} ms in all, "
              f"max {max(values):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
