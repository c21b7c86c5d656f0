"""What holds a worker's requests: its greenlets' long stretches and its gc pauses, under sequential load or wrk.

    .venv/bin/python bench/tools/stalls.py [--repo CHECKOUT] [--kind openai|anthropic] [--requests 6000]
                                           [--slice-ms 2] [--connections 32 --seconds 10]

Starts the bench upstream and zengate with one gevent worker (the repo's ``gunicorn.conf.py``,
wrapped), puts the worker on CPU 0 and this client and the upstream on CPU 1 (on a machine with
two CPUs or more), and sends requests one after another on one kept-alive connection. Inside the
worker, ``greenlet.settrace`` times every stretch a greenlet (or the hub) ran without switching;
those longer than ``--slice-ms`` are kept with the frames where it resumed and where it switched
out, and gc callbacks time every collection. It prints the client's latency percentiles and its
stalls (5 ms or more, with when they came: a fixed spacing points at a timer), the worker's long
stretches grouped by greenlet and frames, and the gc pauses per generation.

With ``--connections N`` (N > 1) zengate runs as production does (its default workers, nothing
pinned), is loaded by ``wrk`` on N kept-alive connections for ``--seconds``, and wrk's
percentiles and each worker's stretches are printed: how the tenth session found one connection
keeping a worker while its others waited (``docs/performance-history.md``; pinned apart, one
worker, the upstream's answer is never there before it is read, and this does not show). Each
stretch also gives the worker's own CPU time in it: near 100 % is the worker's work, far less is
time the worker was not running (the kernel, the VM's host).

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

TOOLS = Path(__file__).resolve().parent
BENCH = TOOLS.parent  # bench/; this file is in bench/tools/
sys.path[:0] = [str(TOOLS), str(BENCH)]

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
    state = {"t": time.perf_counter(), "cpu": time.thread_time()}
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
        now, cpu_now = time.perf_counter(), time.thread_time()
        ran, state["t"] = now - state["t"], now
        cpu, state["cpu"] = cpu_now - state["cpu"], cpu_now
        here = frames(origin.gr_frame)
        if ran > threshold:
            who = "hub" if type(origin).__name__ == "Hub" else "greenlet"
            stretches.append({"at": now, "ms": ran * 1000, "cpu_ms": cpu * 1000, "who": who,
                              "resumed": suspended.get(origin, ""),
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


def _under_wrk(gw: run.Gateway, args: argparse.Namespace, request: tuple, workdir: Path) -> dict:
    """wrk on ``args.connections`` kept-alive connections for ``args.seconds``, every worker's records
    forgotten after a 2 s warm-up: wrk's result (``run.Loads.wrk``)."""
    path, data, headers = request
    body = workdir / "body.json"
    body.write_bytes(data)
    loads = run.Loads(workdir, argparse.Namespace(wrk_cpu=None))
    header_lines = [f"{name}: {value}" for name, value in headers.items()]
    loads.wrk(gw.url + path, body, args.connections, 2, header_lines)
    for worker in gw.workers():
        os.kill(worker, signal.SIGRTMIN + 5)  # forget the start and the warm-up
    time.sleep(0.2)  # the workers handle the signal at their loop's next turn (a few ms under no load)
    return loads.wrk(gw.url + path, body, args.connections, args.seconds, header_lines)


def _dump(worker: int, out: Path) -> dict:
    """The worker's stretches and gc passes, written on request to ``out``."""
    out.unlink(missing_ok=True)
    os.kill(worker, signal.SIGRTMIN + 4)
    run.wait_until(out.exists, 10, "the worker's dump")
    return json.loads(out.read_text())


def _percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def _report_worker(traced: dict, slice_ms: float) -> None:
    """One worker's long stretches, grouped by greenlet and frames, and its gc passes."""
    groups: dict[tuple[str, str, str], list[tuple[float, float]]] = collections.defaultdict(list)
    for s in traced["stretches"]:
        groups[(s["who"], s["resumed"], s["switched_out"])].append((s["ms"], s["cpu_ms"]))
    print(f"worker stretches > {slice_ms:g} ms without a switch (the hub's include waiting for I/O; "
          "cpu: the worker's own CPU time in them):")
    for (who, resumed, switched_out), values in sorted(groups.items(), key=lambda kv: -sum(v[0] for v in kv[1]))[:15]:
        wall = [v[0] for v in values]
        print(f"  {len(values):5d} × {statistics.median(wall):6.2f} ms median, {max(wall):6.1f} max, "
              f"cpu {sum(v[1] for v in values) / sum(wall):4.0%}  {who}: "
              f"resumed at {resumed or '(start)'}; switched out at {switched_out}")
    by_generation: dict[int, list[float]] = collections.defaultdict(list)
    for p in traced["gc"]:
        by_generation[p["generation"]].append(p["ms"])
    for generation, values in sorted(by_generation.items()):
        print(f"gc generation {generation}: {len(values)} passes, {sum(values):.1f} ms in all, "
              f"max {max(values):.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", type=Path, default=BENCH.parent, help="zengate checkout to run")
    parser.add_argument("--kind", choices=("openai", "anthropic"), default="openai")
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--slice-ms", type=float, default=2.0, help="report stretches longer than this")
    parser.add_argument("--connections", type=int, default=1,
                        help="above 1: load the worker with wrk on this many kept-alive connections instead")
    parser.add_argument("--seconds", type=float, default=10.0, help="with --connections: wrk's run")
    args = parser.parse_args()

    loaded_mode = args.connections > 1  # production's workers, nothing pinned, under wrk
    pinned = (os.cpu_count() or 1) >= 2 and not loaded_mode  # worker on CPU 0, the rest on CPU 1
    workdir = Path(tempfile.mkdtemp(prefix="zengate-stalls-"))
    conf = workdir / "stalls.conf.py"
    conf.write_text(run.wrapped_gunicorn_conf(_HOOKS))
    out = workdir / "stalls.json"
    up = run.Upstream(workdir, cpu=1 if pinned else None, chunks=20, interval_ms=5.0, hold_max=10.0)
    gw = None
    latencies, stalls, loaded, traced = [], [], None, {}
    try:
        gw = run.Gateway(args.repo.resolve(), workdir, up.url, None if loaded_mode else 1, config=str(conf),
                         env={"STALLS_OUT": str(out), "STALLS_SLICE": str(args.slice_ms / 1000)})
        workers = gw.workers()
        if pinned:
            _pin(workers[0], 0)
            _pin(0, 1)
        request = icount.request_of(args.kind, run)
        if loaded_mode:
            loaded = _under_wrk(gw, args, request, workdir)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
            for _ in range(200):  # warm-up
                icount.request_once(conn, request)
            os.kill(workers[0], signal.SIGRTMIN + 5)  # forget the start (its gc.collect before freezing, the warm-up)
            icount.request_once(conn, request)  # the signal is handled by the time this is answered
            started = time.perf_counter()
            for _ in range(args.requests):
                t0 = time.perf_counter()
                icount.request_once(conn, request)
                took = time.perf_counter() - t0
                latencies.append(took * 1000)
                if took >= 0.005:
                    stalls.append((t0 - started, took * 1000))
            conn.close()
        traced = {worker: _dump(worker, out) for worker in workers}
    finally:
        if gw is not None:
            gw.stop()
        up.stop()

    if loaded is not None:
        latency = loaded["latency_us"]
        print(f"wrk: {loaded['requests']} {args.kind} requests on {args.connections} connections, "
              f"{loaded['rps']:,.0f} req/s, p50 {latency['p50'] / 1000:.2f} ms, p90 {latency['p90'] / 1000:.2f}, "
              f"p99 {latency['p99'] / 1000:.2f}, max {latency['max'] / 1000:.1f}, errors {loaded['error_count']}")
    else:
        ordered = sorted(latencies)
        print(f"client: {len(ordered)} {args.kind} requests, p50 {_percentile(ordered, .5):.2f} ms, "
              f"p90 {_percentile(ordered, .9):.2f}, p99 {_percentile(ordered, .99):.2f}, "
              f"p99.9 {_percentile(ordered, .999):.2f}, max {ordered[-1]:.1f}")
        print(f"client stalls ≥ 5 ms: {len(stalls)}")
    if len(stalls) > 2:
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(stalls)]
        print(f"  spacing: median {statistics.median(gaps) * 1000:.0f} ms; first ones at "
              + ", ".join(f"{s:.3f} s ({ms:.1f} ms)" for s, ms in stalls[:8]))
    for worker, dumped in traced.items():
        if len(traced) > 1:
            print(f"worker {worker}:")
        _report_worker(dumped, args.slice_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
