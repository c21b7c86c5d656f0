"""The request-log queue when the database fails: bounded, spilled to disk, recovered exactly once.

The database is a real SQLite file; "locked" is another connection holding ``BEGIN EXCLUSIVE`` (a real
lock, as another process would hold it), "down" is a connection that cannot be opened.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import peewee
import pytest

from zengate import auth
from zengate.settings import Settings
from zengate.store import spill as spill_mod
from zengate.store.db import database
from zengate.store.models import RequestLog, utcnow
from zengate.store.requestlog import RequestLogWriter
from zengate.store.spill import SpillStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spill_dir(tmp_path) -> Path:
    return tmp_path / "spill"


@contextmanager
def locked(path: Path):
    """Another connection holds SQLite's write lock until the block ends."""
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        other.execute("COMMIT")
        other.close()


@contextmanager
def database_down(monkeypatch):
    """No connection can be opened (the server is gone); the open one is dropped."""
    def refuse():
        raise sqlite3.OperationalError("unable to open database file")

    database.close()
    with monkeypatch.context() as m:
        m.setattr(database.obj, "_connect", refuse)
        yield
    database.close()


def _row(i: int, **extra) -> dict:
    return {"created_at": utcnow(), "request_id": f"req_{i}", "method": "POST", "path": "/v1/chat/completions",
            "model": "m", "format": "openai", "stream": False, "status": 200, "latency_ms": 1.0, **extra}


def _ids() -> list[str]:
    return sorted(r.request_id for r in RequestLog.select(RequestLog.request_id))


def _expected(n: int) -> list[str]:
    return sorted(f"req_{i}" for i in range(n))


def _spill_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.jsonl")) if directory.exists() else []


def _recover_all(writer: RequestLogWriter) -> None:
    writer.flush(force=True)
    while writer.recover(force=True):
        pass


def test_locked_database_bounds_the_queue_spills_and_recovers_every_row(db_path, spill_dir):
    writer = RequestLogWriter(batch_size=5, max_queued=10, spill_dir=spill_dir)
    with locked(db_path):
        for i in range(50):
            writer.record(_row(i))
        assert writer.flush(force=True) == 0  # the lock holds: nothing written, nothing lost
        assert writer.failures == 1
        assert writer.pending == 10 and writer.spilled == 40
        files = _spill_files(spill_dir)
        assert len(files) == 1 and files[0].name.startswith("active-")
        lines = files[0].read_bytes().splitlines()
        assert [json.loads(line)["request_id"] for line in lines] == [f"req_{i}" for i in range(40)]  # oldest
        assert writer.recover(force=True) == 0  # still locked: the file stays
        assert writer.spilled == 40 and _spill_files(spill_dir)
    assert RequestLog.select().count() == 0
    _recover_all(writer)
    assert _ids() == _expected(50)  # every row, exactly once
    assert writer.pending == 0 and writer.spilled == 0 and writer.failures == 0
    assert _spill_files(spill_dir) == []


def test_a_locked_write_gives_up_within_a_fraction_of_a_second(db_path, spill_dir):
    import time

    writer = RequestLogWriter(spill_dir=spill_dir)
    writer.record(_row(0))
    with locked(db_path):
        started = time.monotonic()
        writer.flush(force=True)
        assert time.monotonic() - started < 2.0  # not the 10 s busy timeout: the worker keeps serving
    assert writer.pending == 1
    writer.flush(force=True)
    assert _ids() == ["req_0"]
    # the connection's own busy timeout is back to its normal value for other statements
    assert database.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 10_000


def test_spilled_rows_round_trip_exactly(db_path, spill_dir):
    when = dt.datetime(2026, 1, 31, 14, 0, 0, 123456)
    body = [{"role": "user", "content": "héllo \u2028 \"quoted\" \n" + "x" * 50}]
    attempts = [{"model": "m", "status": 429, "error": "slow down"}]
    direct = RequestLogWriter()
    direct.record(_row(1, created_at=when, input_messages=body, attempts=attempts, body_max_chars=20,
                       output_content="out", key_prefix="sk-zen-abcdef", ttfb_ms=None))
    direct.flush(force=True)
    spilled = RequestLogWriter(max_queued=1, spill_dir=spill_dir)
    with locked(db_path):
        spilled.record(_row(0))
        spilled.record(_row(2, created_at=when, input_messages=body, attempts=attempts, body_max_chars=20,
                            output_content="out", key_prefix="sk-zen-abcdef", ttfb_ms=None))
        spilled.flush(force=True)
        assert spilled.spilled == 1
    _recover_all(spilled)
    one, two = (RequestLog.get(RequestLog.request_id == rid) for rid in ("req_1", "req_2"))
    assert two.created_at == when  # microseconds kept
    for field in RequestLog._meta.sorted_fields:
        if field.name not in ("id", "request_id"):
            assert getattr(one, field.name) == getattr(two, field.name), field.name


def test_secrets_in_bodies_are_redacted_before_they_reach_the_disk(db_path, spill_dir):
    secret = "sk-zen-" + "Ab3" * 12
    writer = RequestLogWriter(max_queued=1, spill_dir=spill_dir)
    with locked(db_path):
        writer.record(_row(1, input_messages=[{"role": "user", "content": f"my key {secret}"}], redact_secrets=True))
        writer.record(_row(0))
        writer.flush(force=True)
        assert writer.spilled == 1  # the oldest, with the secret
        spilled = "".join(f.read_text() for f in _spill_files(spill_dir))
        assert "my key" in spilled and secret not in spilled
    _recover_all(writer)
    stored = RequestLog.get(RequestLog.request_id == "req_1").input_messages
    assert secret not in stored and "my key" in stored


def test_spill_encoding_keeps_datetimes_and_aware_ones_too():
    naive = dt.datetime(2026, 2, 1, 0, 0, 0, 1)
    aware = dt.datetime(2026, 2, 1, 0, 0, 0, 1, tzinfo=dt.UTC)
    row = spill_mod.decode(spill_mod.encode({"a": naive, "b": aware, "c": {"$x": 1}, "d": None}))
    assert row == {"a": naive, "b": aware, "c": {"$x": 1}, "d": None}
    assert row["b"].tzinfo is not None and row["a"].tzinfo is None


def test_request_path_spills_only_past_twice_the_bound_and_never_raises(db_path, spill_dir):
    writer = RequestLogWriter(batch_size=5, max_queued=10, spill_dir=spill_dir)
    for i in range(20):
        writer.record(_row(i))
    assert writer.pending == 20 and not _spill_files(spill_dir)  # up to 2 × the bound: memory only, no I/O
    writer.record(_row(20))  # past it: the loop must be stuck; record spills the overflow itself
    assert writer.pending == 10 and writer.spilled == 11
    _recover_all(writer)
    assert _ids() == _expected(21)


def test_a_disk_that_refuses_keeps_rows_in_memory(db_path, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    writer = RequestLogWriter(batch_size=5, max_queued=3, spill_dir=blocker / "spill")
    with locked(db_path):
        for i in range(12):
            writer.record(_row(i))  # past twice the bound: the spill fails, record does not raise
        writer.flush(force=True)
        assert writer.pending == 12 and writer.spill_errors >= 1 and writer.spilled == 0
    writer.flush(force=True)
    assert _ids() == _expected(12)


def test_close_spills_what_the_database_refuses_and_the_next_worker_writes_it(db_path, spill_dir):
    first = RequestLogWriter(max_queued=100, spill_dir=spill_dir)
    with locked(db_path):
        for i in range(30):
            first.record(_row(i))
        assert first.close(timeout=5) == 0  # nothing left in memory: all on disk
    files = _spill_files(spill_dir)
    assert len(files) == 1 and len(files[0].read_bytes().splitlines()) == 30
    second = RequestLogWriter(spill_dir=spill_dir)
    _recover_all(second)
    assert _ids() == _expected(30)
    assert _spill_files(spill_dir) == []


KILLED_WORKER = """
import os, signal, sys
sys.path.insert(0, {root!r})
from zengate.store.spill import SpillStore, encode
store = SpillStore({directory!r})
store.append([encode({{"created_at": __import__("datetime").datetime(2026, 1, 1, 0, 0, 0, i),
                       "request_id": f"req_{{i}}", "method": "POST", "path": "/v1/chat/completions",
                       "format": "openai", "status": 200, "latency_ms": 1.0}}) for i in range({rows})])
print("spilled", flush=True)
sys.stdin.readline()
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_orphans_of_a_killed_worker_are_picked_up_once_it_is_dead(db_path, spill_dir):
    code = KILLED_WORKER.format(root=str(ROOT), directory=str(spill_dir), rows=25)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "spilled"
        writer = RequestLogWriter(batch_size=10, spill_dir=spill_dir)
        assert writer.recover(force=True) == 0  # alive, it holds its file: not touched
        assert writer.spill.adopt_orphans() == 0
        assert [f.name.split("-")[0] for f in _spill_files(spill_dir)] == ["active"]
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=30) == -9
    finally:
        if proc.poll() is None:
            proc.kill()
    writer._next_orphan_scan = 0
    _recover_all(writer)
    assert _ids() == _expected(25)
    assert _spill_files(spill_dir) == []


def _orphan(directory: Path, rows: range, created_ns: int) -> Path:
    """A spill file whose process is gone (nobody holds its lock)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"active-{created_ns}-99999-deadbeef.jsonl"
    path.write_bytes(b"".join(spill_mod.encode(_row(i)) for i in rows))
    return path


def test_two_workers_never_claim_the_same_file(spill_dir):
    for n in range(20):
        _orphan(spill_dir, range(n * 3, n * 3 + 3), 1_000 + n)
    stores = [SpillStore(spill_dir) for _ in range(8)]
    barrier = threading.Barrier(len(stores))

    def claim(store: SpillStore) -> None:
        barrier.wait()
        store.adopt_orphans()

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [f.path.name for s in stores for f in s._claimed]
    assert len(claimed) == len(set(claimed)) == 20  # each file exactly once
    assert sum(s.rows_on_disk for s in stores) == 60
    assert all(name.startswith("claimed-") for name in claimed)
    for s in stores:
        s.close()


def test_a_crash_half_way_through_an_import_duplicates_nothing(db_path, spill_dir):
    _orphan(spill_dir, range(30), 1_000)
    first = RequestLogWriter(batch_size=10, spill_dir=spill_dir)
    assert first.recover(force=True, max_batches=1) == 10  # one batch committed…
    first.spill.close()  # …then the worker dies: the claimed file stays, its lock goes
    assert [f.name.split("-")[0] for f in _spill_files(spill_dir)] == ["claimed"]
    second = RequestLogWriter(batch_size=10, spill_dir=spill_dir)
    _recover_all(second)
    assert _ids() == _expected(30)  # the 10 already written are not written again
    assert _spill_files(spill_dir) == []


def test_a_torn_last_line_is_skipped_and_the_rest_imported(db_path, spill_dir):
    path = _orphan(spill_dir, range(5), 1_000)
    with path.open("ab") as f:
        f.write(spill_mod.encode(_row(99))[:-20])  # the worker died mid-write
    writer = RequestLogWriter(spill_dir=spill_dir)
    _recover_all(writer)
    assert _ids() == _expected(5)
    assert writer.spill.skipped_lines == 1 and _spill_files(spill_dir) == []


def test_a_commit_acknowledged_too_late_is_not_written_twice(db_path, spill_dir, monkeypatch):
    writer = RequestLogWriter(batch_size=10, spill_dir=spill_dir)
    for i in range(10):
        writer.record(_row(i))
    real = writer._write
    calls = {"n": 0}

    def lost_ack(batch, **kwargs):
        real(batch, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:
            raise peewee.OperationalError("server closed the connection unexpectedly")  # after the COMMIT

    monkeypatch.setattr(writer, "_write", lost_ack)
    assert writer.flush(force=True) == 0 and writer.pending == 10
    writer.flush(force=True)
    assert _ids() == _expected(10)


def test_rows_made_before_a_clear_are_discarded_from_disk_too(db_path, spill_dir):
    cleared: dict[str, dt.datetime | None] = {"at": None}
    writer = RequestLogWriter(max_queued=1, spill_dir=spill_dir, cleared_before=lambda: cleared["at"])
    with locked(db_path):
        for i in range(5):
            writer.record(_row(i))
        writer.flush(force=True)
        assert writer.spilled == 4
    cleared["at"] = utcnow()  # the log was cleared while they waited
    writer.record(_row(5))
    _recover_all(writer)
    assert _ids() == ["req_5"] and writer.discarded == 5


def test_a_database_that_is_down_spills_and_recovers(db_path, spill_dir, monkeypatch):
    writer = RequestLogWriter(batch_size=5, max_queued=5, spill_dir=spill_dir)
    with database_down(monkeypatch):
        for i in range(40):
            writer.record(_row(i))
        writer.flush(force=True)
        assert writer.recover(force=True) == 0
        assert writer.pending == 5 and writer.spilled == 35
    _recover_all(writer)
    assert _ids() == _expected(40)


# --- the request path while the database is down ------------------------------------------------

def test_settings_keep_their_last_values_when_a_reload_fails(db_path, monkeypatch, caplog):
    settings = Settings(cache_seconds=0)
    settings.set("max_attempts", 7)
    assert settings.get("max_attempts") == 7
    with database_down(monkeypatch):
        assert settings.get("max_attempts") == 7
        assert settings.get("require_auth") is False
        with pytest.raises(peewee.OperationalError):
            settings.refresh(force=True)  # an explicit reload (admin) still says so
    warnings = [r for r in caplog.records if "keeping the last known values" in r.getMessage()]
    assert len(warnings) == 1
    settings._loaded_at = -1e18  # the retry delay passed
    assert settings.get("max_attempts") == 7


def test_a_slow_reload_holds_up_nobody_else(db_path):
    settings = Settings(cache_seconds=0)
    settings.set("max_attempts", 5)
    assert settings.get("max_attempts") == 5
    Settings(cache_seconds=0).set("max_attempts", 6)
    with settings._lock:  # another greenlet is reloading (a slow database): the last values serve meanwhile
        assert settings.get("max_attempts") == 5
    assert settings.get("max_attempts") == 6


def test_known_keys_keep_working_while_the_database_is_down(db_path, monkeypatch):
    cache = auth.KeyCache()
    known, other, revoked = auth.create_key("a"), auth.create_key("b"), auth.create_key("c")
    assert auth.verify_key(known.key, cache).id == known.record.id
    assert auth.verify_key(revoked.key, cache).id == revoked.record.id
    auth.revoke_key(key_id=revoked.record.id)
    assert auth.verify_key(revoked.key, cache) is None  # refused by the database: forgotten
    with database_down(monkeypatch):
        assert auth.verify_key(known.key, cache).id == known.record.id
        with pytest.raises(auth.KeyStoreUnavailable):
            auth.verify_key(other.key, cache)
        with pytest.raises(auth.KeyStoreUnavailable):
            auth.verify_key(revoked.key, cache)
        assert auth.verify_key("sk-other", cache) is None  # not a key at all: no need to ask
    assert known.key not in repr(cache._seen)  # only hashes are kept
    cache.seconds = 0
    with database_down(monkeypatch), pytest.raises(auth.KeyStoreUnavailable):
        auth.verify_key(known.key, cache)  # remembered too long ago


def test_the_gateway_serves_known_keys_and_answers_503_in_each_api_shape(make_app, tmp_path, monkeypatch,
                                                                         upstream):
    app = make_app(data_dir=tmp_path / "data")
    client, gateway = app.test_client(), app.extensions["zengate"]
    gateway.settings.set("require_auth", True)
    key, unknown = auth.create_key("ci").key, auth.create_key("never-used").key
    login = client.post("/_admin/login", json={"password": "e2e-admin-password"})
    token = login.get_json()["token"]
    chat = {"model": "big-pickle", "messages": [{"role": "user", "content": "hi"}]}
    assert client.post("/v1/chat/completions", json=chat, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    with database_down(monkeypatch):
        r = client.post("/v1/chat/completions", json=chat, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.get_json()
        r = client.post("/v1/chat/completions", json=chat, headers={"Authorization": f"Bearer {unknown}"})
        assert r.status_code == 503 and r.headers["Retry-After"]
        assert "database is unavailable" in r.get_json()["error"]["message"]
        r = client.post("/v1/messages", json={"model": "big-pickle", "max_tokens": 5,
                                              "messages": [{"role": "user", "content": "hi"}]},
                        headers={"x-api-key": unknown, "anthropic-version": "2023-06-01"})
        assert r.status_code == 503 and r.get_json()["type"] == "error"
        assert "database is unavailable" in r.get_json()["error"]["message"]
        for path in ("/_admin/settings", "/_stats"):
            r = client.get(path, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 503 and r.is_json, (path, r.data[:200])
            assert "database is unavailable" in r.get_json()["error"]["message"]
        health = client.get("/healthz")
        assert health.status_code == 503 and health.get_json()["request_log"]["queued"] >= 3
        gateway.request_log.flush(force=True)
    gateway.request_log.flush(force=True)
    statuses = sorted(r.status for r in RequestLog.select(RequestLog.status))
    assert statuses == [200, 200, 503, 503]
    assert client.get("/healthz").get_json()["request_log"] == {"queued": 0, "spilled": 0, "write_failures": 0}
