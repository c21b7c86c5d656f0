"""Where a stream's first token goes inside the worker: its socket calls, timed, stream by stream.

    .venv/bin/python bench/tools/timeline.py [--repo CHECKOUT] [--kind openai|anthropic] [--streams 200]
                                             [--chunks 20] [--interval-ms 5]

Starts the bench upstream (CPU 1) and zengate with one gevent worker (CPU 0; the repo's
``gunicorn.conf.py``, wrapped), and runs ``streams.py`` at concurrency 1 (CPU 1). Inside the
worker, every ``recv``/``recv_into``/``send``/``sendall`` of gevent's sockets is timed (wall
clock and the thread's CPU time), and so is each run of the work kept for idle moments. From
those calls each stream's way to its first token is cut into:

* **pre**: from the client's request read to the upstream request's first byte sent (gunicorn,
  Flask, the view, routing, the upstream client);
* **upstream**: until the upstream's answer (head and first event) is read;
* **post**: from there to the first client bytes handed to the kernel (the answer's head, the
  pump, the adapter, the response head);

with the CPU time of pre and post beside their wall time, and the client's time to first token.
``--interval-ms 0`` makes the upstream send its chunks back to back, so the worker never waits
between them: on a VM, compare the figures with and without it to see how much slower the same
code runs after the worker waited (docs/performance-history.md, ninth session). A timing tool: the
wrappers cost a few µs per call; read the split, not the totals, from it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent  # bench/; this file is in bench/tools/
sys.path[:0] = [str(BENCH)]

import run  # noqa: E402  (bench/ is not a package)

#: The worker's hooks (after the repo's gunicorn.conf.py: run.wrapped_gunicorn_conf): gevent's
#: socket calls and the idle-moment work, timed, written as JSON to $TIMELINE_OUT on SIGRTMIN+6.
_HOOKS = """
def _bench_hooks(worker):
    import json, signal, time
    import gevent.socket
    from zengate.runtime import helpers

    calls = []  # (start, end, what, fd, bytes, thread CPU time at the start, at the end)
    clock, cpu = time.perf_counter, time.thread_time

    def timed(name):
        call = getattr(gevent.socket.socket, name)

        def wrapper(self, data, *args, **kwargs):
            start, cpu_start = clock(), cpu()
            result = call(self, data, *args, **kwargs)
            size = len(data) if name == "sendall" else result if isinstance(result, int) else len(result)
            calls.append((start, clock(), name, self.fileno(), size, cpu_start, cpu()))
            return result
        setattr(gevent.socket.socket, name, wrapper)

    for name in ("recv", "recv_into", "send", "sendall"):
        timed(name)
    run_pending = helpers._IdleWork.run_pending

    def timed_run_pending(self):
        start, cpu_start = clock(), cpu()
        run_pending(self)
        calls.append((start, clock(), "idle work", -1, 0, cpu_start, cpu()))
    helpers._IdleWork.run_pending = timed_run_pending

    def dump(*_):
        path = os.environ["TIMELINE_OUT"]
        with open(path + ".part", "w") as out:
            json.dump(calls, out)
        os.replace(path + ".part", path)  # whole when it appears

    signal.signal(signal.SIGRTMIN + 6, dump)
"""

PHASES = ("pre", "pre CPU", "upstream", "post", "post CPU", "worker total")


def first_tokens(calls: list[list], request_min_bytes: int = 200) -> list[dict[str, float]]:
    """Per stream, in µs: each phase of the way from the request read to the first client bytes.

    A stream starts with a ``recv`` of the client's request; the first write to another socket is
    the upstream request; the first read of that socket that returns bytes is its answer; the
    next write to the client's socket is the first token.
    """
    calls = sorted(calls)

    def find(start: int, match) -> int | None:
        return next((j for j in range(start, len(calls)) if match(calls[j])), None)

    out = []
    for i, (_start, end, what, fd, size, _cpu_start, cpu) in enumerate(calls):
        if what != "recv" or size < request_min_bytes:
            continue
        j = find(i + 1, lambda c, fd=fd: c[2] in ("send", "sendall") and c[3] != fd)
        k = None if j is None else find(j + 1, lambda c, up=calls[j][3]: c[2] == "recv_into" and c[3] == up and c[4])
        m = None if k is None else find(k + 1, lambda c, fd=fd: c[2] in ("send", "sendall") and c[3] == fd)
        if m is None:
            break  # the dump ended inside this stream
        sent, answer, first = calls[j], calls[k], calls[m]
        out.append({
            "pre": (sent[0] - end) * 1e6, "pre CPU": (sent[5] - cpu) * 1e6,
            "upstream": (answer[1] - sent[0]) * 1e6,
            "post": (first[0] - answer[1]) * 1e6, "post CPU": (first[5] - answer[6]) * 1e6,
            "worker total": (first[1] - end) * 1e6,
        })
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", type=Path, default=BENCH.parent, help="zengate checkout to run")
    parser.add_argument("--kind", choices=("openai", "anthropic"), default="openai")
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--interval-ms", type=float, default=5.0, help="between the upstream's chunks")
    args = parser.parse_args()
    if (os.cpu_count() or 1) < 2:
        parser.error("needs two CPUs: the worker on one, the client and the upstream on the other")

    workdir = Path(tempfile.mkdtemp(prefix="zengate-timeline-"))
    conf = workdir / "timeline.conf.py"
    conf.write_text(run.wrapped_gunicorn_conf(_HOOKS))
    out = workdir / "timeline.json"
    body = workdir / "body.json"
    if args.kind == "openai":
        body.write_text(json.dumps({**run.OPENAI_BODY, "stream": True}))
        path, headers = "/v1/chat/completions", []
    else:
        body.write_text(json.dumps({**run.ANTHROPIC_BODY, "stream": True}))
        path, headers = "/v1/messages", run.ANTHROPIC_HEADERS
    up = run.Upstream(workdir, cpu=1, chunks=args.chunks, interval_ms=args.interval_ms, hold_max=10.0)
    gw = None
    try:
        gw = run.Gateway(args.repo.resolve(), workdir, up.url, 1, config=str(conf), env={"TIMELINE_OUT": str(out)})
        [worker] = gw.workers()
        os.sched_setaffinity(worker, {0})
        argv = ["taskset", "-c", "1", sys.executable, str(BENCH / "streams.py"), "latency", gw.url + path,
                "--body", str(body), "--concurrency", "1"]
        for header in headers:
            argv += ["--header", header]
        subprocess.run([*argv, "--streams", "20"], check=True, capture_output=True)  # warm-up
        done = subprocess.run([*argv, "--streams", str(args.streams)], check=True, capture_output=True, text=True)
        client = json.loads(next(line[7:] for line in done.stdout.splitlines() if line.startswith("RESULT ")))
        os.kill(worker, signal.SIGRTMIN + 6)
        run.wait_until(out.exists, 10, "the worker's dump")
        streams = first_tokens(json.loads(out.read_text()))[20:]  # the warm-up's left out
    finally:
        if gw is not None:
            gw.stop()
        up.stop()

    if not streams:
        print("no stream was recognised in the worker's socket calls")
        return 1
    ttft = client["ttft_ms"]
    print(f"{args.kind} streams at c=1, {args.chunks} chunks {args.interval_ms:g} ms apart: client's time to first "
          f"token p50 {ttft['p50']:.2f} ms, p90 {ttft['p90']:.2f} ms ({len(streams)} streams in the worker)")
    print(f"{'in the worker (µs)':20} {'p10':>7} {'p50':>7} {'p90':>7}")
    for phase in PHASES:
        values = sorted(s[phase] for s in streams)
        print(f"{phase:20} {values[len(values) // 10]:7.0f} {statistics.median(values):7.0f} "
              f"{values[int(len(values) * 0.9)]:7.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
