"""Instructions per request through zengate, counted by callgrind: repeatable under load.

    .venv/bin/python bench/tools/icount.py [openai|anthropic|openai-stream|anthropic-stream] [CHUNKS]
    .venv/bin/python bench/tools/icount.py --gunicorn [--repo CHECKOUT] [KIND] [CHUNKS]

Starts the bench upstream, then runs this file twice under ``valgrind --tool=callgrind`` as a child
(gevent-patched, zengate's app built in-process, 50 and then 250 requests) and prints the
difference divided by 200: the instructions one request costs, start-up excluded. Unlike a
timing, the count does not move with what else the machine is doing, so it can judge a small
change on a busy machine. It leaves out gunicorn and the kernel; bench/run.py measures those.
Streams have 20 chunks, or CHUNKS: with 1, a stream costs little more than the way to its first
token. Needs valgrind (Debian's package). Counts still move between sittings (a few per cent
within a batch; on some VMs they jumped between two levels): compare versions counted one after
the other in one sitting, several counts each (docs/performance-history.md, seventh and tenth
sessions).

``--gunicorn`` counts the whole worker instead: gunicorn (one gevent worker, the repo's
gunicorn.conf.py) runs under callgrind, and after 100 requests of warm-up the worker's counters
are zeroed, 300 requests are made (one kept-alive connection), and the count is read: gunicorn's
own work per request (reading the head, the environ, writing the answer), the background loop's
share and the app, all in one figure. Valgrind cannot run the SSE 4.2 code of gunicorn's C
request parser (``gunicorn_h1c``), so this mode uses gunicorn's Python parser: the count is higher
than production's by that parser's share. The counters are zeroed and read through callgrind's
client requests, by a small helper compiled here with gcc (``valgrind/callgrind.h`` comes with
Debian's valgrind).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent  # bench/; this file is in bench/tools/


def request_of(which: str, run) -> tuple[str, bytes, dict[str, str]]:
    """The path, body and extra headers of a request of kind ``which`` (bench/run.py's bodies)."""
    import json

    if which.startswith("openai"):
        body, path, headers = dict(run.OPENAI_BODY), "/v1/chat/completions", {}
    else:
        body, path = dict(run.ANTHROPIC_BODY), "/v1/messages"
        headers = dict(h.split(": ", 1) for h in run.ANTHROPIC_HEADERS)
    if which.endswith("stream"):
        body["stream"] = True
    return path, json.dumps(body).encode(), headers


def child() -> None:
    """The measured process: ``N`` requests of kind ``WHICH`` against the upstream at ``UP``."""
    from gevent import monkey

    monkey.patch_all()
    import io
    import logging

    sys.path[:0] = [str(BENCH), str(BENCH.parent)]
    import run

    workdir = Path(os.environ["WD"]) / f"d{os.environ['N']}"
    os.environ.update({"ZENGATE_UPSTREAM_URL": os.environ["UP"], "ZENGATE_GO_UPSTREAM_URL": os.environ["UP"],
                       "ZENGATE_DATA_DIR": str(workdir), "DATABASE_URL": f"sqlite:///{workdir / 'z.db'}",
                       "ZENGATE_ADMIN_PASSWORD": "icount-" + os.urandom(6).hex(), "ZENGATE_LOG_LEVEL": "info"})
    from zengate.web import create_app

    app = create_app()
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # lives as long as the process
    gw = app.extensions["zengate"]
    path, data, headers = request_of(os.environ["WHICH"], run)
    for _ in range(int(os.environ["N"])):
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
                   "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(data),
                   "wsgi.errors": sys.stderr, "CONTENT_TYPE": "application/json",
                   "CONTENT_LENGTH": str(len(data))}
        environ.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})
        answer = app(environ, lambda status, headers, exc_info=None: None)
        for _chunk in answer:
            pass
        answer.close()
        if gw.request_log.pending >= 50:  # the log is written in batches, as the background loop does
            gw.request_log.flush(force=True)


#: The worker's hooks for ``--gunicorn`` (after the repo's gunicorn.conf.py: run.wrapped_gunicorn_conf):
#: signals that zero and dump the callgrind counters of the worker that receives them.
_HOOKS = """
def _bench_hooks(worker):
    import ctypes
    import signal

    helper = ctypes.CDLL(os.environ["ICOUNT_HELPER"])
    # Under callgrind every request outlasts the worker's turn slice, so each would take a turn of
    # the event loop, as 1 % of them do at concurrency 1 in real time: count the requests' own work.
    from zengate.runtime import helpers
    helpers.TURN_SLICE = float("inf")
    signal.signal(signal.SIGRTMIN + 2, lambda *_: helper.cg_zero())
    signal.signal(signal.SIGRTMIN + 3, lambda *_: helper.cg_dump())
"""
_HELPER_C = """
#include <valgrind/callgrind.h>
void cg_zero(void) { CALLGRIND_ZERO_STATS; }
void cg_dump(void) { CALLGRIND_DUMP_STATS; }
"""


def request_once(conn, request: tuple[str, bytes, dict[str, str]]) -> None:
    """One request (as :func:`request_of` makes it) on the kept-alive ``conn``, read to its end."""
    path, data, headers = request
    conn.request("POST", path, data, {"Content-Type": "application/json", **headers})
    answer = conn.getresponse()
    content = answer.read()
    if answer.status != 200:
        raise RuntimeError(f"{path}: HTTP {answer.status}: {content[:300]!r}")


def gunicorn_count(which: str, chunks: int, repo: Path, requests: int = 300, warmup: int = 100) -> int:
    """Instructions per request of one gunicorn worker (Python request parser), warm-up excluded."""
    import http.client
    import signal

    import run

    workdir = Path(tempfile.mkdtemp(prefix="zengate-icount-"))
    helper = workdir / "cgctl.so"
    (workdir / "cgctl.c").write_text(_HELPER_C)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(helper), str(workdir / "cgctl.c")], check=True)
    conf = workdir / "icount.conf.py"
    conf.write_text(run.wrapped_gunicorn_conf(_HOOKS))
    up = run.Upstream(workdir, cpu=None, chunks=chunks, interval_ms=0.0, hold_max=10.0)
    out = workdir / "callgrind.%p"
    gw = None
    try:
        gw = run.Gateway(repo, workdir, up.url, 1, config=str(conf), start_timeout=300,
                         wrapper=["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"],
                         env={"ICOUNT_HELPER": str(helper),
                              "GUNICORN_CMD_ARGS": "--timeout 900 --http-parser python"})
        [worker] = gw.workers()
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=300)
        measured, plain = request_of(which, run), request_of("openai", run)
        for _ in range(warmup):
            request_once(conn, measured)
        os.kill(worker, signal.SIGRTMIN + 2)  # zero
        request_once(conn, plain)  # the signal is handled by the time this is answered
        for _ in range(requests):
            request_once(conn, measured)
        os.kill(worker, signal.SIGRTMIN + 3)  # dump
        request_once(conn, plain)
        conn.close()
    finally:
        if gw is not None:
            gw.stop()
        up.stop()
    return callgrind_total(sorted(workdir.glob(f"callgrind.{worker}.*"))[-1]) // (requests + 1)


def callgrind_total(path: Path) -> int:
    """The instruction count a callgrind output file reports for the whole run (or dump)."""
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"callgrind wrote no total in {path}")


def main() -> int:
    sys.path.insert(0, str(BENCH))
    import run  # here, not at the top: the measured child must patch with gevent before run's imports

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("which", nargs="?", default="openai",
                        choices=["openai", "anthropic", "openai-stream", "anthropic-stream"])
    parser.add_argument("chunks", nargs="?", type=int, default=20, help="chunks per stream")
    parser.add_argument("--gunicorn", action="store_true", help="count a whole gunicorn worker")
    parser.add_argument("--repo", type=Path, default=BENCH.parent,
                        help="with --gunicorn: the checkout to run (a git worktree of an earlier commit, say)")
    args = parser.parse_args()
    which, chunks = args.which, args.chunks
    if args.gunicorn:
        per_request = gunicorn_count(which, chunks, args.repo.resolve())
        print(f"{which} (gunicorn worker, Python parser): {per_request / 1000:,.0f}k instructions per request")
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="zengate-icount-"))
    up = run.Upstream(workdir, cpu=None, chunks=chunks, interval_ms=0.0, hold_max=10.0)

    def count(n: int) -> int:
        out = workdir / f"callgrind.{n}"
        env = {**os.environ, "UP": up.url, "N": str(n), "WHICH": which, "WD": str(workdir), "ICOUNT_CHILD": "1"}
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__],
                       env=env, cwd=BENCH.parent, check=True, capture_output=True)
        return callgrind_total(out)

    try:
        low, high = count(50), count(250)
    finally:
        up.stop()
    print(f"{which}: {(high - low) / 200 / 1000:,.0f}k instructions per request")
    return 0


if __name__ == "__main__":
    if os.environ.get("ICOUNT_CHILD"):
        child()
    else:
        sys.exit(main())
