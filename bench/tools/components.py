"""What one request's parts cost, in microseconds of one core, measured in-process.

    .venv/bin/python bench/tools/components.py [--n 2000] [--repo CHECKOUT] [--json PATH]

Starts the bench upstream, builds zengate's Flask app in this process (no gunicorn, no gevent,
SQLite in a temporary directory) and times, each over ``--n`` calls after a warm-up:

* the whole request path through the WSGI app (OpenAI, and Anthropic translated to OpenAI),
  with the upstream round trip and the request's bookkeeping (its record finished when the
  answer is closed: the queued log row, metrics, the log line), without the request-log flush;
* the upstream call alone three ways: ``requests`` as zengate configures it, ``urllib3``'s pool,
  and a bare ``http.client`` keep-alive connection (the floor for a blocking Python client);
* Flask alone (a route answering ``jsonify`` of the same size);
* writing the request log: zengate's batch writer per row, and ``sqlite3.executemany`` of the
  same rows (the floor); and rows holding a long session of real Claude Code turns
  (``tests/fixtures/clients``), where serialising and redacting the body is most of the cost;
* small pieces on every request: the ``info`` log line, ids, ``Settings.get``.

CPU µs is this process's CPU time per call (what a worker would spend); wall µs adds the waits
(the upstream's turn on the CPU, the loopback round trip). Compare them with each other, not
across machines.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import logging
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent  # bench/; this file is in bench/tools/
sys.path.insert(0, str(BENCH))

import run  # noqa: E402  (the Upstream process helper)


def timeit(fn, n: int, warmup: int = 200) -> dict[str, float]:
    """Mean microseconds per call of ``fn``: wall time, and CPU time of this process."""
    for _ in range(min(warmup, n)):
        fn()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    return {"wall_us": (time.perf_counter() - t0) / n * 1e6, "cpu_us": (time.process_time() - c0) / n * 1e6}


def per_row(t0: float, c0: float, rows: int) -> dict[str, float]:
    rows = max(1, rows)
    return {"wall_us": (time.perf_counter() - t0) / rows * 1e6, "cpu_us": (time.process_time() - c0) / rows * 1e6}


def wsgi_call(app, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    env = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
           "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
           "wsgi.errors": sys.stderr, "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body))}
    for name, value in (headers or {}).items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    status = []
    answer = app(env, lambda s, h, e=None: status.append(s))
    try:
        data = b"".join(answer)
    finally:
        getattr(answer, "close", lambda: None)()  # as a server does: the request record is finished then
    if not status[0].startswith("200"):
        raise RuntimeError(f"{path}: {status[0]} {data[:200]!r}")
    return data


def _claude_code_bodies(paths: tuple[str, ...] = ("/v1/messages",)) -> list[dict]:
    """The bodies Claude Code sent to ``paths`` in the recorded sessions (tests/fixtures/clients)."""
    fixtures = BENCH.parent / "tests" / "fixtures" / "clients"
    return [request["body"] for path in sorted(fixtures.glob("cc_*.json"))
            for request in json.loads(path.read_text())["requests"]
            if request.get("path") in paths and isinstance(request.get("body"), dict)]


def largest_claude_code_request() -> dict | None:
    """The largest request Claude Code sent (system prompt, ~20 tools, the conversation), if recorded."""
    bodies = _claude_code_bodies()
    return max(bodies, key=lambda body: len(json.dumps(body))) if bodies else None


def long_conversation() -> list | None:
    """A long agent session made of real turns: every ``messages`` list Claude Code sent in the
    recorded sessions (tests/fixtures/clients), one after the other; None without them."""
    turns: list = []
    for body in _claude_code_bodies(("/v1/messages", "/v1/messages/count_tokens")):
        if isinstance(body.get("messages"), list):
            turns += body["messages"]
    return turns or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="per-request component costs (in-process)")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repo", type=Path, default=run.DEFAULT_REPO)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    n = args.n
    workdir = Path(tempfile.mkdtemp(prefix="zengate-components-"))
    up = run.Upstream(workdir, cpu=None, chunks=20, interval_ms=5.0, hold_max=10.0)
    results: dict[str, float] = {}
    try:
        os.environ.update({
            "ZENGATE_UPSTREAM_URL": up.url, "ZENGATE_GO_UPSTREAM_URL": up.url,
            "ZENGATE_DATA_DIR": str(workdir / "data"), "DATABASE_URL": f"sqlite:///{workdir / 'data' / 'z.db'}",
            "ZENGATE_ADMIN_PASSWORD": "components-bench", "ZENGATE_LOG_LEVEL": "info",
        })
        sys.path.insert(0, str(args.repo))
        from flask import Flask, jsonify

        from zengate import ids
        from zengate.store.models import RequestLog
        from zengate.web import create_app

        app = create_app()
        log_file = open(workdir / "app.log", "w")  # closed below
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(log_file)
        gw = app.extensions["zengate"]
        writer = gw.request_log

        openai_body = json.dumps(run.OPENAI_BODY).encode()
        anthropic_body = json.dumps(run.ANTHROPIC_BODY).encode()
        anthropic_headers = dict(h.split(": ", 1) for h in run.ANTHROPIC_HEADERS)

        def drained(fn):
            def call():
                fn()
                if writer.pending > 5000:
                    writer._queue.clear()  # the flush is timed on its own below
            return call

        results["zengate OpenAI request (WSGI, upstream and bookkeeping included, no log flush)"] = timeit(
            drained(lambda: wsgi_call(app, "/v1/chat/completions", openai_body)), n)
        try:
            results["zengate Anthropic→OpenAI request (same)"] = timeit(
                drained(lambda: wsgi_call(app, "/v1/messages", anthropic_body, anthropic_headers)), n)
        except RuntimeError as exc:
            print(f"(Anthropic path not measured: {exc})", file=sys.stderr)
        claude_code = largest_claude_code_request()
        if claude_code is not None:
            big_body = json.dumps({**claude_code, "model": run.ANTHROPIC_BODY["model"], "stream": False}).encode()
            try:
                results[f"zengate Anthropic→OpenAI request, Claude Code's body ({len(big_body) / 1000:.0f} KB)"] = (
                    timeit(drained(lambda: wsgi_call(app, "/v1/messages", big_body, anthropic_headers)), n // 4))
            except RuntimeError as exc:
                print(f"(Claude Code's body not measured: {exc})", file=sys.stderr)

        # The upstream call alone.
        url = up.url + "/chat/completions"
        upstream_body = json.dumps({**run.OPENAI_BODY}).encode()
        headers = gw.upstream.headers(key="public", protocol="openai", stream=False)

        def via_requests():
            r = gw.upstream.session.post(url, data=upstream_body, headers=headers, stream=True, timeout=(10, 300))
            json.loads(r.content)
            r.close()

        results["upstream call: requests.Session (as zengate)"] = timeit(via_requests, n)
        import urllib3

        pool = urllib3.HTTPConnectionPool("127.0.0.1", up.port, maxsize=4)

        def via_urllib3():
            r = pool.urlopen("POST", "/chat/completions", body=upstream_body, headers=headers, retries=False)
            json.loads(r.data)

        results["upstream call: urllib3 pool"] = timeit(via_urllib3, n)
        conn = http.client.HTTPConnection("127.0.0.1", up.port)

        def via_http_client():
            conn.request("POST", "/chat/completions", body=upstream_body, headers=headers)
            json.loads(conn.getresponse().read())

        results["upstream call: http.client keep-alive"] = timeit(via_http_client, n)
        conn.close()

        # Flask alone, answering a body of the same size.
        answer = json.loads(run.http("POST", url, upstream_body, {"Content-Type": "application/json"})[1])
        bare = Flask("bare")

        @bare.post("/v1/chat/completions")
        def _bare():
            return jsonify(answer)

        results["Flask alone (route + jsonify, no upstream)"] = timeit(
            lambda: wsgi_call(bare, "/v1/chat/completions", openai_body), n)

        # The request log: zengate's writer, per row, and the sqlite3 floor.
        writer._queue.clear()
        for _ in range(n):
            wsgi_call(app, "/v1/chat/completions", openai_body)
        rows = list(writer._queue)
        t0, c0 = time.perf_counter(), time.process_time()
        writer.flush(force=True)
        results["request log: zengate flush, per row"] = per_row(t0, c0, len(rows))
        conversation = long_conversation()
        if conversation is not None and rows:
            size = len(json.dumps(conversation))
            big = [{**rows[0], "request_id": f"req_big_{i}", "input_messages": conversation} for i in range(50)]
            writer._queue.extend(big)
            t0, c0 = time.perf_counter(), time.process_time()
            writer.flush(force=True)
            results[f"request log: a row of a long Claude Code session ({size / 1000:.0f} KB), per row"] = per_row(
                t0, c0, len(big))
        columns = [f.column_name for f in RequestLog._meta.sorted_fields if f.name != "id"]
        names = [f.name for f in RequestLog._meta.sorted_fields if f.name != "id"]
        db = sqlite3.connect(workdir / "floor.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=wal")
        db.execute("PRAGMA synchronous=normal")
        db.execute(f"CREATE TABLE request_log (id INTEGER PRIMARY KEY, {', '.join(columns)})")
        sql = f"INSERT INTO request_log ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        t0, c0 = time.perf_counter(), time.process_time()
        db.execute("BEGIN")
        def floor_value(value):
            if isinstance(value, bool):
                return int(value)
            return json.dumps(value) if isinstance(value, (list, dict)) else value

        db.executemany(sql, ([floor_value(row.get(name)) for name in names] for row in rows))
        db.execute("COMMIT")
        results["request log: sqlite3.executemany floor, per row"] = per_row(t0, c0, len(rows))
        db.close()

        # Small pieces of every request.
        req_log = logging.getLogger("zengate.request")
        results["log line (logging.info to a file)"] = timeit(
            lambda: req_log.info("%s %s %s model=%s status=%s ms=%.1f", "req_x", "POST", "/v1/x", "m", 200, 1.0), n)
        results["ids.opencode_id (x-opencode-request)"] = timeit(lambda: ids.opencode_id("msg"), n)
        results["ids.request_id"] = timeit(ids.request_id, n)
        results["Settings.get"] = timeit(lambda: gw.settings.get("log_bodies"), n)
        log_file.close()
    finally:
        up.stop()

    width = max(len(k) for k in results)
    print(f"{'component':<{width}}  {'CPU µs':>8}  {'wall µs':>8}")
    for name, r in results.items():
        print(f"{name:<{width}}  {r['cpu_us']:8.1f}  {r['wall_us']:8.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
