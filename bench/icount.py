"""Instructions per request through zengate's WSGI app, counted by callgrind: repeatable under load.

    .venv/bin/python bench/icount.py [openai|anthropic|openai-stream|anthropic-stream] [CHUNKS]

Starts the bench upstream, then runs this file twice under ``valgrind --tool=callgrind`` as a child
(gevent-patched, zengate's app built in-process, 50 and then 250 requests) and prints the
difference divided by 200: the instructions one request costs, start-up excluded. Unlike a
timing, the count does not move with what else the machine is doing, so it can judge a small
change on a busy machine. It leaves out gunicorn and the kernel; bench/run.py measures those.
Streams have 20 chunks, or CHUNKS: with 1, a stream costs little more than the way to its first
token. Needs valgrind (Debian's package).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def child() -> None:
    """The measured process: ``N`` requests of kind ``WHICH`` against the upstream at ``UP``."""
    from gevent import monkey

    monkey.patch_all()
    import io
    import json
    import logging

    sys.path[:0] = [str(BENCH), str(BENCH.parent)]
    import run

    workdir = Path(os.environ["WD"]) / f"d{os.environ['N']}"
    os.environ.update({"ZENGATE_UPSTREAM_URL": os.environ["UP"], "ZENGATE_GO_UPSTREAM_URL": os.environ["UP"],
                       "ZENGATE_DATA_DIR": str(workdir), "DATABASE_URL": f"sqlite:///{workdir / 'z.db'}",
                       "ZENGATE_ADMIN_PASSWORD": "icount-" + os.urandom(6).hex(), "ZENGATE_LOG_LEVEL": "info"})
    from zengate import create_app

    app = create_app()
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # lives as long as the process
    gw = app.extensions["zengate"]
    which = os.environ["WHICH"]
    if which.startswith("openai"):
        body, path, headers = dict(run.OPENAI_BODY), "/v1/chat/completions", {}
    else:
        body, path = dict(run.ANTHROPIC_BODY), "/v1/messages"
        headers = dict(h.split(": ", 1) for h in run.ANTHROPIC_HEADERS)
    if which.endswith("stream"):
        body["stream"] = True
    data = json.dumps(body).encode()
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


def main() -> int:
    which = sys.argv[1] if len(sys.argv) > 1 else "openai"
    chunks = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    sys.path.insert(0, str(BENCH))
    import run

    workdir = Path(tempfile.mkdtemp(prefix="zengate-icount-"))
    up = run.Upstream(workdir, cpu=None, chunks=chunks, interval_ms=0.0, hold_max=10.0)

    def count(n: int) -> int:
        out = workdir / f"callgrind.{n}"
        env = {**os.environ, "UP": up.url, "N": str(n), "WHICH": which, "WD": str(workdir), "ICOUNT_CHILD": "1"}
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__],
                       env=env, cwd=BENCH.parent, check=True, capture_output=True)
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
        raise RuntimeError("callgrind wrote no total")

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
