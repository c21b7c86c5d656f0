"""The database locked or down while the real gateway serves: requests go on, the request log
queues (bounded, spilling to disk) and every row reaches the database exactly once when it is back.

(a) SQLite held by another process's exclusive transaction; (b) PostgreSQL behind a TCP relay the
test cuts (every connection dropped, new ones refused) and restores.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.support.gateway import GatewayProcess
from tests.support.tcp_relay import TcpRelay

pytestmark = pytest.mark.e2e

METRICS_TOKEN = "e2e-metrics-token-0123456789"
ROWS_BACK_WITHIN = 60.0  # the writer's backoff after a long outage is up to 30 s


def _chat(gw: GatewayProcess, marker: str, key: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"model": "big-pickle", "messages": [{"role": "user", "content": marker}]}
    return requests.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)


def _serve(gw: GatewayProcess, prefix: str, n: int, key: str | None = None) -> list[int]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda i: _chat(gw, f"{prefix}-{i}", key).status_code, range(n)))


def _marker_counts(bodies: list[str | None], prefix: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    for body in bodies:
        for found in re.findall(re.escape(prefix) + r"-(\d+)\b", body or ""):
            counts[int(found)] = counts.get(int(found), 0) + 1
    return counts


def _spill_files(gw: GatewayProcess) -> list[Path]:
    return sorted((gw.workdir / "data" / "request-log-spill").rglob("*.jsonl"))


def _health(gw: GatewayProcess) -> tuple[int, dict]:
    r = requests.get(gw.url + "/healthz", timeout=10)
    return r.status_code, r.json()


LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
"""


def test_sqlite_locked_by_another_process(tmp_path, up):
    n = 40
    gw = GatewayProcess(tmp_path, up.url, workers=2, env={"ZENGATE_LOG_QUEUE_MAX": "5"}).start()
    db_path = tmp_path / "data" / "zengate.db"
    locker = None
    try:
        assert _chat(gw, "warm-up").status_code == 200
        locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(db_path)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        assert locker.stdout.readline().strip() == "locked"

        assert _serve(gw, "dbfault-lite", n) == [200] * n  # served while the database takes no writes
        gw.wait_for(lambda: _spill_files(gw), timeout=20)  # past ZENGATE_LOG_QUEUE_MAX: rows spill to disk
        with sqlite3.connect(db_path, timeout=0) as reader:  # WAL: reading still works
            bodies = [b for (b,) in reader.execute("SELECT input_messages FROM request_log")]
        assert _marker_counts(bodies, "dbfault-lite") == {}

        locker.stdin.write("\n")
        locker.stdin.flush()
        assert locker.wait(timeout=10) == 0

        def all_rows() -> dict[int, int] | None:
            with sqlite3.connect(db_path, timeout=5) as reader:
                rows = [b for (b,) in reader.execute("SELECT input_messages FROM request_log")]
            counts = _marker_counts(rows, "dbfault-lite")
            return counts if len(counts) == n else None

        counts = gw.wait_for(all_rows, timeout=ROWS_BACK_WITHIN, interval=0.2)
        assert counts == {i: 1 for i in range(n)}  # every row exactly once
        gw.wait_for(lambda: not _spill_files(gw), timeout=20)
        assert "Traceback" not in gw.log()
    finally:
        if locker is not None and locker.poll() is None:
            locker.kill()
        gw.stop()


@pytest.mark.postgres
def test_postgresql_down_behind_a_relay(tmp_path, up, pg_url):
    n = 30
    real = urlsplit(pg_url)
    relay = TcpRelay(real.hostname or "127.0.0.1", real.port or 5432).start()
    relayed = urlunsplit(real._replace(netloc=f"{real.username}@127.0.0.1:{relay.port}"))
    # one worker: the keys a worker has seen accepted are its own (a second worker would not know the key)
    gw = GatewayProcess(tmp_path, up.url, workers=1, database_url=relayed,
                        env={"ZENGATE_LOG_QUEUE_MAX": "3", "ZENGATE_SETTINGS_TTL": "0",
                             "ZENGATE_METRICS_TOKEN": METRICS_TOKEN})
    gw.start(timeout=60)
    try:
        key = gw.admin("POST", "/_admin/api-keys", json={"name": "used"}).json()["key"]
        never_used = gw.admin("POST", "/_admin/api-keys", json={"name": "never used"}).json()["key"]
        gw.set_setting("require_auth", True)
        assert _chat(gw, "warm-up", key).status_code == 200  # the worker has seen the key accepted

        relay.cut()
        assert _serve(gw, "dbfault-pg", n, key) == [200] * n  # the database is gone: still served

        r = _chat(gw, "unknown key", never_used)  # cannot be checked: a clear 503, OpenAI's shape
        assert r.status_code == 503 and r.headers.get("Retry-After")
        assert "database is unavailable" in r.json()["error"]["message"]
        r = requests.post(gw.url + "/v1/messages", timeout=30,
                          headers={"x-api-key": never_used, "anthropic-version": "2023-06-01"},
                          json={"model": "big-pickle", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 503 and r.json()["type"] == "error"  # Anthropic's shape
        r = gw.admin("GET", "/_admin/api-keys")
        assert r.status_code == 503 and "database is unavailable" in r.json()["error"]["message"]

        def spilled_down_to_the_bound() -> tuple[int, dict] | None:
            status, health = _health(gw)
            queue = health["request_log"]
            return (status, health) if queue["spilled"] and queue["queued"] <= 3 else None

        # the background loop keeps at most ZENGATE_LOG_QUEUE_MAX rows in memory; the rest are on disk
        status, health = gw.wait_for(spilled_down_to_the_bound, timeout=20)
        assert status == 503 and health["database"] == "unavailable"
        assert health["request_log"]["write_failures"] >= 1
        assert _spill_files(gw)
        metrics = requests.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10)
        spilled = re.search(r"^zengate_request_log_spilled_rows (\S+)$", metrics.text, re.M)
        assert spilled and float(spilled.group(1)) > 0
        assert key not in "".join(p.read_text() for p in _spill_files(gw))  # never a key on disk

        relay.restore()
        import psycopg2

        def all_rows() -> dict[int, int] | None:
            with psycopg2.connect(pg_url, connect_timeout=5) as conn, conn.cursor() as cur:
                cur.execute("SELECT input_messages FROM request_log")
                counts = _marker_counts([b for (b,) in cur.fetchall()], "dbfault-pg")
            conn.close()
            return counts if len(counts) == n else None

        counts = gw.wait_for(all_rows, timeout=ROWS_BACK_WITHIN, interval=0.2)
        assert counts == {i: 1 for i in range(n)}  # every row exactly once
        gw.wait_for(lambda: not _spill_files(gw), timeout=20)
        status, health = gw.wait_for(lambda: (lambda h: h if h[0] == 200 else None)(_health(gw)), timeout=20)
        assert health["request_log"]["spilled"] == 0
        assert _chat(gw, "after", never_used).status_code == 200  # checked against the database again
        assert key not in gw.log() and never_used not in gw.log()
        assert "Traceback" not in gw.log()
    finally:
        gw.stop()
        relay.stop()
