"""Trimming's figures: the request log's before/after columns (migration 006 on SQLite and
PostgreSQL), ``zengate_trim_tokens_saved_total`` in /metrics, ``tokens_saved`` in the stats API,
and where the dashboard shows them."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.fake_upstream import anthropic_text
from tests.unit.test_api_stats import add_rows, ago
from tests.unit.test_metrics import scrape, value
from tests.unit.test_trim import session
from zengate.store import migrate as migrate_mod
from zengate.store.db import database, open_database
from zengate.store.models import RequestLog, utcnow
from zengate.store.requestlog import RequestLogWriter

ANTHROPIC = {"anthropic-version": "2023-06-01"}
DASHBOARD = Path(__file__).resolve().parents[2] / "zengate" / "web" / "dashboard"
ALL_STEPS = {"thinking": True, "tool_results": True, "repeats": True, "reminders": True}


def test_migration_006_adds_the_columns_to_a_log_with_rows(database_url, tmp_path):
    earlier = tmp_path / "migrations"
    earlier.mkdir()
    for _version, _name, path in migrate_mod.available():
        if _version < 6:
            shutil.copy(path, earlier / path.name)
    open_database(database_url)
    try:
        migrate_mod.migrate(earlier)
        mark = database.obj.param
        database.execute_sql(
            "INSERT INTO request_log (created_at, request_id, method, path, format, stream, status, latency_ms,"
            f" input_tokens, output_tokens) VALUES ({', '.join([mark] * 10)})",
            (utcnow().isoformat(" "), "req_old", "POST", "/v1/messages", "anthropic", False, 200, 1.0, 10, 5))
        assert migrate_mod.migrate() == ["006_request_trimming"]
        old = RequestLog.get(RequestLog.request_id == "req_old")
        assert (old.trim_tokens_before, old.trim_tokens_after, old.input_tokens) == (None, None, 10)

        writer = RequestLogWriter()
        row = {"created_at": utcnow(), "method": "POST", "path": "/v1/messages", "format": "anthropic",
               "status": 200, "latency_ms": 1.0}
        writer.record({**row, "request_id": "req_trimmed", "trim_tokens_before": 41_200, "trim_tokens_after": 15_800})
        writer.record({**row, "request_id": "req_plain"})
        assert writer.flush(force=True) == 2
        trimmed = RequestLog.get(RequestLog.request_id == "req_trimmed")
        plain = RequestLog.get(RequestLog.request_id == "req_plain")
        assert (trimmed.trim_tokens_before, trimmed.trim_tokens_after) == (41_200, 15_800)
        assert (plain.trim_tokens_before, plain.trim_tokens_after) == (None, None)
    finally:
        database.close()


def test_a_trimmed_request_counts_its_saved_tokens_in_metrics(client, upstream, setting, admin_headers):
    from tests.unit.test_api_guards import last_row

    setting("trimming", ALL_STEPS)
    start = value(scrape(client, admin_headers), "zengate_trim_tokens_saved_total")
    upstream.script("minimax-m2.5-free", anthropic_text("done"), anthropic_text("again"))
    r = client.post("/v1/messages", json={**session(12)[-1], "model": "minimax-m2.5-free"}, headers=ANTHROPIC)
    assert r.status_code == 200 and r.get_json()["content"][0]["text"] == "done"
    row = last_row(client, admin_headers)
    saved = row["trim_tokens_before"] - row["trim_tokens_after"]
    assert saved > 1000
    assert value(scrape(client, admin_headers), "zengate_trim_tokens_saved_total") == start + saved

    setting("trimming", {})  # off: the same request costs nothing and counts nothing
    r = client.post("/v1/messages", json={**session(12)[-1], "model": "minimax-m2.5-free"}, headers=ANTHROPIC)
    assert r.status_code == 200 and r.get_json()["content"][0]["text"] == "again"
    assert last_row(client, admin_headers)["trim_tokens_before"] is None
    assert value(scrape(client, admin_headers), "zengate_trim_tokens_saved_total") == start + saved


def test_tokens_saved_in_the_stats_and_the_window(client, admin_headers):
    empty = client.get("/_stats", headers=admin_headers).get_json()
    assert empty["tokens_saved"] == 0
    ids = add_rows({"trim_tokens_before": 41_200, "trim_tokens_after": 15_800},
                   {"trim_tokens_before": 9_000, "trim_tokens_after": 8_000, "created_at": ago(minutes=30)},
                   {"trim_tokens_before": 5_000, "trim_tokens_after": 1_000, "created_at": ago(hours=3)},
                   {})  # not trimmed
    body = client.get("/_stats", headers=admin_headers).get_json()
    assert body["tokens_saved"] == 25_400 + 1_000 + 4_000 and body["saved_calls"] == 0
    window = client.get("/_stats/timeseries?minutes=60", headers=admin_headers).get_json()
    assert window["totals"]["tokens_saved"] == 26_400 and window["totals"]["requests"] == 3
    detail = client.get(f"/_stats/requests/{ids[0]}", headers=admin_headers).get_json()
    assert (detail["trim_tokens_before"], detail["trim_tokens_after"]) == (41_200, 15_800)
    plain = client.get(f"/_stats/requests/{ids[3]}", headers=admin_headers).get_json()
    assert (plain["trim_tokens_before"], plain["trim_tokens_after"]) == (None, None)
    page = client.get("/_stats/requests?bodies=0", headers=admin_headers).get_json()["requests"]
    assert sorted(r["trim_tokens_before"] or 0 for r in page) == [0, 5_000, 9_000, 41_200]


def test_the_dashboard_shows_tokens_trimmed_and_a_requests_before_and_after(client):
    html = client.get("/_admin/ui").get_data(as_text=True)
    assert '<h2>Tokens trimmed</h2><p class="stat-value" data-stat="trimmed">' in html
    overview = (DASHBOARD / "static" / "overview.js").read_text()
    assert 'setStat("trimmed", fmtCompact(summary.tokens_saved), `${fmtCompact(w.tokens_saved)}' in overview
    requests = (DASHBOARD / "static" / "requests.js").read_text()
    assert 'metaItem("Trimmed",' in requests
    assert "${fmtInt(r.trim_tokens_before)} → ${fmtInt(r.trim_tokens_after)} tokens" in requests
