"""The store on SQLite and PostgreSQL: migrations, request-log batches, settings, keys."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from zengate import auth
from zengate.config import Config
from zengate.settings import SettingError, Settings
from zengate.store import migrate as migrate_mod
from zengate.store.db import database
from zengate.store.migrate import prepare_database
from zengate.store.models import ApiKey, RequestLog, Setting, utcnow
from zengate.store.requestlog import RequestLogWriter

ROOT = migrate_mod.MIGRATIONS_DIR.parent


@pytest.fixture
def store(database_url):
    prepare_database(Config(database_url=database_url))
    yield database_url
    database.close()


def _row(i: int, **extra) -> dict:
    return {"created_at": utcnow(), "request_id": f"req_{i}", "method": "POST", "path": "/v1/chat/completions",
            "model": "m", "format": "openai", "stream": False, "status": 200, "latency_ms": 1.0, **extra}


def test_migrations_apply_once_when_processes_race(database_url):
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "from zengate.store.migrate import prepare_database\n"
        "from zengate.config import Config\n"
        "from zengate.store.migrate import applied\n"
        f"prepare_database(Config(database_url={database_url!r})); print(','.join(applied()))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outputs = [p.communicate(timeout=60) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == ",".join(name for _, name, _ in migrate_mod.available())
    prepare_database(Config(database_url=database_url))
    rows = list(migrate_mod.SchemaMigration.select())
    assert [(r.version, r.name) for r in rows] == [(v, n) for v, n, _ in migrate_mod.available()]
    assert len(rows) >= 2
    assert migrate_mod.migrate() == []  # nothing left to apply
    database.close()


def test_burst_of_rows_loses_nothing(store):
    writer = RequestLogWriter(batch_size=128)
    with ThreadPoolExecutor(50) as pool:
        list(pool.map(lambda i: writer.record(_row(i)), range(1000)))
    assert writer.pending == 1000
    assert writer.flush(force=True) == 1000
    assert RequestLog.select().count() == 1000
    assert {r.request_id for r in RequestLog.select(RequestLog.request_id)} == {f"req_{i}" for i in range(1000)}


def test_failed_write_keeps_rows_and_retries(store, monkeypatch):
    writer = RequestLogWriter(batch_size=10)
    for i in range(25):
        writer.record(_row(i))
    real_write = writer._write
    calls = {"n": 0}

    def flaky(batch, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second batch fails once
            raise RuntimeError("database is locked")
        return real_write(batch, **kwargs)

    monkeypatch.setattr(writer, "_write", flaky)
    assert writer.flush(force=True) == 10
    assert writer.pending == 15 and writer.failures == 1
    assert writer.flush() == 0  # backing off: nothing attempted yet
    assert writer.flush(force=True) == 15
    assert writer.pending == 0 and writer.failures == 0
    ids = sorted(int(r.request_id[4:]) for r in RequestLog.select(RequestLog.request_id))
    assert ids == list(range(25))


def test_rows_stamp_last_used_on_keys(store):
    new = auth.create_key("ci")
    writer = RequestLogWriter()
    writer.record(_row(1, key_id=new.record.id, key_prefix=new.record.prefix))
    writer.flush(force=True)
    assert ApiKey.get_by_id(new.record.id).last_used_at is not None
    assert RequestLog.get().key_prefix == new.record.prefix


def test_keys_are_stored_hashed_and_revocable(store):
    new = auth.create_key("laptop")
    assert new.key.startswith("sk-zen-") and len(new.key) >= len("sk-zen-") + 43  # 32 random bytes
    stored = ApiKey.get_by_id(new.record.id)
    assert new.key not in (stored.key_hash, stored.prefix, stored.name)
    assert auth.find_active_key(new.key).id == stored.id
    assert auth.find_active_key(new.key + "x") is None
    assert auth.revoke_key(prefix=stored.prefix) == 1
    assert auth.find_active_key(new.key) is None


def test_settings_validate_and_propagate(store):
    a, b = Settings(cache_seconds=60), Settings(cache_seconds=0)
    assert a.get("require_auth") is False
    a.set("require_auth", True)
    assert b.get("require_auth") is True  # another worker with no cache sees it at once
    with pytest.raises(SettingError) as exc:
        a.set("require_auth", "yes")
    assert exc.value.field == "require_auth"
    with pytest.raises(SettingError) as exc:
        a.set("no_such_setting", 1)
    assert exc.value.field == "key" and "no_such_setting" in exc.value.message
    with pytest.raises(SettingError):
        a.set("max_body_bytes", 10)
    with pytest.raises(SettingError):
        a.set("admin_password_hash", "x")  # private: only settable internally
    assert Setting.get_by_id("require_auth").value == "true"


def test_settings_ensure_first_writer_wins(store):
    a, b = Settings(), Settings()
    first = a.ensure("opencode_session", lambda: "ses_0123456789abAAAAAAAAAAAAAA")
    second = b.ensure("opencode_session", lambda: "ses_ba9876543210BBBBBBBBBBBBBB")
    assert first == second == "ses_0123456789abAAAAAAAAAAAAAA"


def test_concurrent_writers_from_threads(store):
    writer = RequestLogWriter(batch_size=64)
    stop = threading.Event()

    def flusher():
        while not stop.is_set():
            writer.flush(force=True)

    thread = threading.Thread(target=flusher)
    thread.start()
    with ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda i: writer.record(_row(i)), range(500)))
    stop.set()
    thread.join()
    writer.flush(force=True)
    assert RequestLog.select().count() == 500
