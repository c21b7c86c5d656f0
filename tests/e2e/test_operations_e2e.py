"""Operating the real gateway (gunicorn, gevent workers): metrics merged across workers, JSON logs
without a secret in them or in the request log, and a SIGTERM that loses neither a stream nor a row."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fake_upstream import error, openai_text
from tests.support.gateway import ADMIN_PASSWORD, GatewayProcess

pytestmark = pytest.mark.e2e

METRICS_TOKEN = "metrics-token-for-the-e2e-tests"
ROUTE = "/v1/chat/completions"


def metrics(gw: GatewayProcess) -> dict[tuple[str, tuple], float]:
    # a new connection each time, so that scrapes land on whichever worker accepts
    r = requests.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}",
                                                   "Connection": "close"}, timeout=10)
    assert r.status_code == 200, r.text
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def chat(url: str, marker: str, *, stream: bool = False, headers: dict | None = None, timeout: float = 30,
         read: bool = True):
    body = {"model": "big-pickle", "stream": stream, "messages": [{"role": "user", "content": marker}]}
    return requests.post(url + ROUTE, json=body, headers={"Connection": "close", **(headers or {})}, timeout=timeout,
                         stream=not read)


def worker_pids(gw: GatewayProcess) -> set[int]:
    children = Path(f"/proc/{gw.process.pid}/task/{gw.process.pid}/children").read_text().split()
    return {int(pid) for pid in children}


def request_pids(gw: GatewayProcess) -> set[int]:
    """The workers that wrote a request line."""
    return set(gw.answered())


class Streamer(threading.Thread):
    """Reads one streaming chat completion in the background; ``first`` is set at its first bytes."""

    def __init__(self, url: str, marker: str):
        super().__init__(daemon=True)
        self.url, self.marker = url, marker
        self.first = threading.Event()
        self.body = b""
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with chat(self.url, self.marker, stream=True, timeout=60, read=False) as r:
                r.raise_for_status()
                for chunk in r.iter_content(None):
                    self.body += chunk
                    self.first.set()
        except BaseException as exc:  # inspected by the test
            self.error = exc
        finally:
            self.first.set()


# --- metrics ---------------------------------------------------------------------------------------

def test_metrics_add_up_across_workers_and_survive_a_dead_worker(tmp_path, up):
    gw = GatewayProcess(tmp_path, up.url, workers=3, env={"ZENGATE_METRICS_TOKEN": METRICS_TOKEN}).start()
    try:
        assert requests.get(gw.url + "/metrics", timeout=10).status_code == 401
        sent = 0

        def burst() -> set[int]:
            nonlocal sent
            with ThreadPoolExecutor(12) as pool:
                statuses = list(pool.map(lambda i: chat(gw.url, f"m{i}").status_code, range(36)))
            assert statuses == [200] * 36
            sent += 36
            return request_pids(gw)

        gw.wait_for(lambda: len(burst()) >= 2, timeout=30, interval=0)  # served by several workers
        for _ in range(8):  # whichever worker answers the scrape sees every worker's requests
            samples = metrics(gw)
            labels = {"route": ROUTE, "model": "big-pickle", "status": "200"}
            assert value(samples, "zengate_requests_total", **labels) == sent
            assert value(samples, "zengate_request_duration_seconds_count", route=ROUTE, model="big-pickle") == sent
            assert value(samples, "zengate_tokens_total", model="big-pickle", direction="input") == 10 * sent
            assert value(samples, "zengate_build_info", version=__import__("zengate").__version__) == 1
        assert gw.wait_for(lambda: value(metrics(gw), "zengate_request_log_rows_written_total") == sent)
        assert METRICS_TOKEN not in requests.get(gw.url + "/metrics", timeout=10,
                                                 headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text

        # open streams are summed over the workers while they run…
        up.script("big-pickle", *[openai_text("one two three four five six", chunks=6, delay=0.4)] * 2)
        streams = [Streamer(gw.url, f"stream {i}") for i in range(2)]
        for s in streams:
            s.start()
        gw.wait_for(lambda: value(metrics(gw), "zengate_open_streams") == 2, timeout=10)
        for s in streams:
            s.join(30)
            assert s.error is None and b"[DONE]" in s.body
        gw.wait_for(lambda: value(metrics(gw), "zengate_open_streams") == 0, timeout=10)

        # …and a worker killed in the middle of one takes its live gauges along, not the counters
        up.script("big-pickle", openai_text("slow " * 40, chunks=40, delay=0.25))
        doomed = Streamer(gw.url, "killed stream")
        doomed.start()
        gw.wait_for(lambda: value(metrics(gw), "zengate_open_streams") == 1, timeout=10)
        before = worker_pids(gw)
        for pid in before:
            os.kill(pid, signal.SIGKILL)
        gw.wait_for(lambda: len(worker_pids(gw) - before) == 3, timeout=30)
        # (ready: its signal handlers are in place; a SIGTERM during a worker's boot is lost in gunicorn)
        gw.wait_for(lambda: all(f"Worker ready (pid: {pid})" in gw.log() for pid in worker_pids(gw) - before),
                    timeout=30)
        def no_open_stream():
            samples = metrics(gw)
            return samples if value(samples, "zengate_open_streams") == 0 else None

        samples = gw.wait_for(no_open_stream, timeout=15)
        assert value(samples, "zengate_requests_total", route=ROUTE, model="big-pickle", status="200") == sent + 2
        doomed.join(30)
    finally:
        assert gw.stop() == 0


# --- logs and secrets ------------------------------------------------------------------------------

def test_json_logs_carry_one_line_per_request_and_no_secret(tmp_path, up):
    upstream_key = "zen-upstream-secret-e2e-0001"
    proxy_password = "proxy-pass-e2e-0002"
    gw = GatewayProcess(tmp_path, up.url, env={
        "ZENGATE_LOG_FORMAT": "json", "ZENGATE_LOG_LEVEL": "debug", "OPENCODE_API_KEY": upstream_key,
        "ZENGATE_SETTINGS_TTL": "0",
        "ZENGATE_METRICS_TOKEN": METRICS_TOKEN, "ZENGATE_PROXIES": f"http://puser:{proxy_password}@127.0.0.1:9",
    }).start()
    wrong_password = "not-the-admin-password-0003"
    try:
        assert requests.post(gw.url + "/_admin/login", json={"password": wrong_password}, timeout=10).status_code \
            == 401
        token = gw.admin_headers()["Authorization"].split()[1]
        key = gw.admin("POST", "/_admin/api-keys", json={"name": "e2e"}).json()["key"]
        gw.set_setting("require_auth", True)
        bearer = {"Authorization": f"Bearer {key}"}
        ids = []
        r = chat(gw.url, "plain", headers=bearer)
        assert r.status_code == 200
        r = chat(gw.url, "streamed", stream=True, headers=bearer)
        assert r.status_code == 200 and b"[DONE]" in r.content
        r = requests.post(gw.url + "/v1/messages", timeout=30, json={
            "model": "claude-sonnet-5", "max_tokens": 20, "messages": [{"role": "user", "content": "x-api-key"}]},
            headers={"x-api-key": key, "anthropic-version": "2023-06-01"})
        assert r.status_code == 200
        wrong_key = key[:-6] + "zzzzzz"
        assert chat(gw.url, "wrong key", headers={"Authorization": f"Bearer {wrong_key}"}).status_code == 401
        assert chat(gw.url, "no key").status_code == 401
        # the upstream echoes our upstream key in an error, as some APIs do
        up.script("big-pickle", error(400, f"Incorrect API key provided: {upstream_key}", type="invalid_request"))
        assert chat(gw.url, "echo", headers=bearer).status_code == 400
        # proxy rotation through a proxy with credentials (nothing listens there: it fails)
        gw.set_setting("proxy_mode", "on")
        assert chat(gw.url, "via proxy", headers=bearer).status_code == 502
        gw.set_setting("proxy_mode", "off")
        assert requests.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
                            timeout=10).status_code == 200
        sent = up.received(path="/chat/completions")[0]
        assert sent.headers["authorization"] == f"Bearer {upstream_key}"  # it was sent upstream
        rows = gw.wait_for(lambda: (p := gw.admin("GET", "/_stats/requests?limit=100&bodies=1").json())["total"] >= 7
                           and p["requests"])
        ids = {row["request_id"] for row in rows}
    finally:
        assert gw.stop() == 0
    log = gw.log()
    with sqlite3.connect(tmp_path / "data" / "zengate.db") as db:
        db.row_factory = sqlite3.Row
        stored = json.dumps([dict(row) for row in db.execute("SELECT * FROM request_log")])
        settings = json.dumps([dict(row) for row in db.execute("SELECT * FROM settings")])
    for secret in (key, key[13:], wrong_key, token, ADMIN_PASSWORD, wrong_password, upstream_key, METRICS_TOKEN,
                   proxy_password):
        assert secret not in log, secret
        assert secret not in stored, secret
        assert secret not in settings, secret
    assert key[:13] in stored  # the prefix the dashboard shows stays

    lines = [line for line in log.splitlines() if line.strip()]
    objects = [json.loads(line) for line in lines]  # every line is one JSON object
    per_request = [o for o in objects if o["logger"] == "zengate.request"]
    assert {o["request_id"] for o in per_request} >= ids
    for o in per_request:
        assert o["level"] == "info"
        for name in ("method", "path", "model", "status", "ms", "ttfb_ms", "input_tokens", "output_tokens", "proxy"):
            assert name in o
    ok = [o for o in per_request if o["status"] == 200 and o["path"] == ROUTE]
    assert ok and all(o["ttfb_ms"] is not None and o["input_tokens"] == 10 for o in ok)
    assert any(o["proxy"] == "127.0.0.1:9" for o in per_request)
    assert any(o["logger"] == "gunicorn.error" and "Booting worker" in o["message"] for o in objects)


# --- graceful shutdown -----------------------------------------------------------------------------

def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    return False


def _rows(workdir: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(workdir / "data" / "zengate.db") as db:
        db.row_factory = sqlite3.Row
        return list(db.execute("SELECT request_id, stream, status, error, input_messages, output_content "
                               "FROM request_log"))


def test_sigterm_lets_open_streams_finish_and_loses_no_row(tmp_path, up):
    gw = GatewayProcess(tmp_path, up.url, workers=2).start()
    words = [f"w{i} " for i in range(20)]
    try:
        up.script("big-pickle", openai_text("".join(words), chunks=words, delay=0.5))  # ~10 s
        stream = Streamer(gw.url, "the-graceful-stream")
        stream.start()
        assert stream.first.wait(10) and stream.error is None
        with ThreadPoolExecutor(25) as pool:  # a burst just before the signal: rows still queued
            statuses = list(pool.map(lambda i: chat(gw.url, f"burst-{i}").status_code, range(100)))
        assert statuses == [200] * 100
        gw.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        gw.wait_for(lambda: _refused(gw.port), timeout=5)  # no new connection is accepted…
        assert stream.is_alive()  # …while the open stream goes on
        stream.join(30)
        assert stream.error is None, stream.error
        assert stream.body.rstrip().endswith(b"data: [DONE]")
        assert all(w.strip().encode() in stream.body for w in words)
        assert gw.process.wait(30) == 0
        assert time.monotonic() - signalled < 20
    finally:
        gw.stop()

    rows = _rows(tmp_path)
    assert len(rows) == 101
    assert sum("burst-" in (r["input_messages"] or "") for r in rows) == 100
    (row,) = [r for r in rows if "the-graceful-stream" in (r["input_messages"] or "")]
    assert row["stream"] and row["status"] == 200 and row["error"] is None
    assert row["output_content"] == "".join(words)
    assert "could not be written" not in gw.log()


def test_sigterm_exits_as_soon_as_the_last_stream_ends(tmp_path, up):
    """Ten streams on kept-alive connections, and idle kept-alive connections beside them: the
    master exits right after the last stream's end, not when the idle connections time out, nor
    at the graceful timeout."""
    gw = GatewayProcess(tmp_path, up.url, workers=2).start()
    words = [f"w{i} " for i in range(8)]
    sessions = [requests.Session() for _ in range(14)]
    ends: list[float] = []
    try:
        up.script("big-pickle", *[openai_text("".join(words), chunks=words, delay=0.4)] * 10)  # ~3 s each
        for idle in sessions[10:]:  # kept alive, then silent: they must not hold the stop
            r = idle.get(gw.url + "/healthz", timeout=10)
            assert r.status_code == 200 and r.headers.get("Connection", "").lower() != "close"
        started = threading.Barrier(11, timeout=20)

        def stream(session: requests.Session) -> bytes:
            body = {"model": "big-pickle", "stream": True, "messages": [{"role": "user", "content": "kept"}]}
            with session.post(gw.url + ROUTE, json=body, stream=True, timeout=60) as r:
                chunks = r.iter_content(None)
                got = next(chunks)
                started.wait()
                got += b"".join(chunks)
            ends.append(time.monotonic())
            return got

        with ThreadPoolExecutor(10) as pool:
            bodies = [pool.submit(stream, session) for session in sessions[:10]]
            started.wait()
            gw.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            assert gw.process.wait(40) == 0
            exited = time.monotonic()
            answers = [b.result(timeout=40) for b in bodies]
        assert all(a.rstrip().endswith(b"data: [DONE]") for a in answers)
        assert all(w.strip().encode() in a for a in answers for w in words)
        assert len(ends) == 10 and max(ends) - signalled > 2  # the streams ran on after the signal…
        assert exited - max(ends) < 1.5, (exited - signalled, max(ends) - signalled)  # …and the exit followed
    finally:
        for session in sessions:
            session.close()
        gw.stop()


def test_a_stream_longer_than_the_grace_period_is_cut_but_still_logged(tmp_path, up):
    gw = GatewayProcess(tmp_path, up.url, workers=1, env={"ZENGATE_GRACEFUL_TIMEOUT": "1"}).start()
    try:
        up.script("big-pickle", openai_text("slow " * 60, chunks=60, delay=0.25))  # ~15 s
        stream = Streamer(gw.url, "the-cut-stream")
        stream.start()
        assert stream.first.wait(10)
        signalled = time.monotonic()
        gw.process.send_signal(signal.SIGTERM)
        assert gw.process.wait(30) == 0
        assert time.monotonic() - signalled < 10  # the grace (1 s), not the stream, decided
        stream.join(30)
        assert b"[DONE]" not in stream.body
    finally:
        gw.stop()
    rows = _rows(tmp_path)
    assert [r["input_messages"] is not None and "the-cut-stream" in r["input_messages"] for r in rows] == [True]
