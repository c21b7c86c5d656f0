"""Request-log retention by age and by row count, bounded deletes, one pass at a time, the background loop."""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from zengate.config import Config
from zengate.settings import Settings
from zengate.store import retention
from zengate.store.db import database
from zengate.store.migrate import prepare_database
from zengate.store.models import RequestLog, Setting, utcnow


@pytest.fixture
def store(database_url):
    prepare_database(Config(database_url=database_url))
    yield database_url
    database.close()


def add(created: list[dt.datetime]) -> None:
    rows = [{"created_at": c, "request_id": f"req_{i}", "method": "POST", "path": "/v1/chat/completions",
             "format": "openai", "status": 200, "latency_ms": 1.0} for i, c in enumerate(created)]
    for start in range(0, len(rows), 100):
        RequestLog.insert_many(rows[start:start + 100]).execute()


def remaining() -> list[str]:
    return [r.request_id for r in RequestLog.select(RequestLog.request_id).order_by(RequestLog.created_at)]


def test_by_age_deletes_only_older_rows(store):
    now = utcnow()
    add([now - dt.timedelta(days=d, minutes=1) for d in (10, 8, 3, 1, 0)])
    result = retention.enforce(days=7, rows=0, now=now)
    assert (result.by_age, result.by_rows, result.more) == (2, 0, False)
    assert remaining() == ["req_2", "req_3", "req_4"]


def test_by_rows_keeps_the_newest(store):
    now = utcnow()
    # inserted out of time order, as batches from several workers are
    add([now - dt.timedelta(minutes=m) for m in (5, 50, 1, 40, 3, 30, 2)])
    result = retention.enforce(days=0, rows=3, now=now)
    assert result.by_rows == 4
    assert sorted(remaining()) == ["req_2", "req_4", "req_6"]  # minutes 1, 3, 2 ago
    assert retention.enforce(days=0, rows=3).deleted == 0  # under the limit: nothing to do


def test_zero_means_keep_everything(store):
    add([utcnow() - dt.timedelta(days=4000)] * 5)
    assert retention.enforce(days=0, rows=0).deleted == 0
    assert len(remaining()) == 5


def test_deletes_are_bounded_and_a_backlog_takes_several_passes(store, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 10)
    monkeypatch.setattr(retention, "MAX_BATCHES", 3)
    old = utcnow() - dt.timedelta(days=30)
    add([old + dt.timedelta(seconds=i) for i in range(75)])
    pauses = []
    first = retention.enforce(days=1, rows=0, pause=lambda: pauses.append(1))
    assert (first.by_age, first.more) == (30, True) and len(pauses) == 3
    second = retention.enforce(days=1, rows=0)
    assert (second.by_age, second.more) == (30, True)
    third = retention.enforce(days=1, rows=0)
    assert (third.by_age, third.more) == (15, False)
    assert remaining() == []


def test_both_rules_share_one_pass(store):
    now = utcnow()
    add([now - dt.timedelta(days=9)] * 2 + [now - dt.timedelta(minutes=m) for m in range(6)])
    result = retention.enforce(days=7, rows=4, now=now)
    assert (result.by_age, result.by_rows) == (2, 2)
    assert len(remaining()) == 4


def test_one_claim_per_interval_across_racing_workers(store):
    now = time.time()
    url = store

    def claim(_):
        prepare_database(Config(database_url=url)) if database.obj is None else None
        try:
            return retention.claim(now, interval=60)
        finally:
            database.close()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(claim, range(8)))
    assert results.count(True) == 1
    assert retention.claim(now + 30, interval=60) is False
    assert retention.claim(now + 61, interval=60) is True
    retention.reschedule(now + 62)
    assert retention.claim(now + 61.5, interval=60) is False
    assert retention.claim(now + 62, interval=60) is True
    assert Setting.get(Setting.key == retention.LEASE_KEY).value  # a private setting: not in the settings API


def test_retention_settings_are_validated(store):
    from zengate.settings import SettingError

    settings = Settings(cache_seconds=0)
    assert settings.get("log_retention_days") == 0 and settings.get("log_retention_rows") == 0
    settings.set("log_retention_days", 30)
    settings.set("log_retention_rows", 100_000)
    with pytest.raises(SettingError):
        settings.set("log_retention_days", -1)
    with pytest.raises(SettingError):
        settings.set("log_retention_rows", 1.5)
    assert "log_retention_due" not in settings.public()


def test_the_background_loop_enforces_retention(app, gateway, client, admin_headers):
    now = utcnow()
    add([now - dt.timedelta(days=40)] * 3 + [now - dt.timedelta(minutes=m) for m in range(10)])
    r = client.post("/_admin/settings", headers=admin_headers, json={"key": "log_retention_days", "value": 30})
    assert r.status_code == 200
    client.post("/_admin/settings", headers=admin_headers, json={"key": "log_retention_rows", "value": 5})
    gateway.start_background()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and RequestLog.select().count() != 5:
            time.sleep(0.05)  # polling the condition, bounded by the deadline
        assert RequestLog.select().count() == 5
    finally:
        gateway.stop_background()
    body = client.get("/metrics", headers=admin_headers).get_data(as_text=True)
    assert 'zengate_request_log_rows_deleted_total{reason="age"}' in body


def test_body_logging_can_be_turned_off_or_truncated(client, admin_headers, gateway):
    body = {"model": "big-pickle", "messages": [{"role": "user", "content": "a fairly long message " * 20}]}

    def last_row():
        gateway.request_log.flush(force=True)
        return RequestLog.select().order_by(RequestLog.id.desc()).get()

    assert client.post("/v1/chat/completions", json=body).status_code == 200
    row = last_row()
    assert "a fairly long message" in row.input_messages and row.output_content

    client.post("/_admin/settings", headers=admin_headers, json={"key": "log_body_max_chars", "value": 50})
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    row = last_row()
    assert row.input_messages.endswith("…[truncated]") and len(row.input_messages) <= 50 + len("…[truncated]")

    client.post("/_admin/settings", headers=admin_headers, json={"key": "log_bodies", "value": False})
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    row = last_row()
    assert row.input_messages is None and row.output_content is None
    assert row.status == 200 and row.input_tokens == 10  # the numbers are still logged
