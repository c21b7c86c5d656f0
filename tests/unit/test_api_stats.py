"""The stats API: p95 and per-model numbers, the time series, request-log filters and one request."""

from __future__ import annotations

import datetime as dt
import itertools
import json

import pytest

from tests.support.gateway import ADMIN_PASSWORD
from zengate.store.models import RequestLog, utcnow
from zengate.web.admin.stats import P95_SAMPLE, percentile


def add_rows(*rows: dict) -> list[int]:
    """Insert request-log rows directly; each dict overrides the defaults below."""
    ids = []
    for row in rows:
        values = {
            "created_at": utcnow(), "request_id": "req", "method": "POST", "path": "/v1/chat/completions",
            "model": "big-pickle", "upstream_model": "big-pickle", "format": "openai", "stream": False,
            "status": 200, "latency_ms": 100.0, "input_tokens": 10, "output_tokens": 5, **row,
        }
        ids.append(RequestLog.create(**values).id)
    return ids


def ago(**kwargs) -> dt.datetime:
    return utcnow() - dt.timedelta(**kwargs)


def iso(value: dt.datetime) -> str:
    return value.replace(tzinfo=dt.UTC).isoformat()


def test_percentile_is_nearest_rank():
    assert percentile([]) is None
    assert percentile([7.0]) == 7.0
    assert percentile([float(v) for v in range(1, 101)]) == 95.0
    assert percentile([float(v) for v in range(100, 0, -1)]) == 95.0  # order does not matter
    assert percentile([1.0, 2.0, 3.0]) == 3.0


def test_summary_has_p95_and_models(client, admin_headers):
    empty = client.get("/_stats", headers=admin_headers).get_json()
    assert empty["total_requests"] == 0 and empty["p95_latency_ms"] is None and empty["models"] == []
    add_rows(*({"latency_ms": float(v)} for v in range(1, 91)))
    add_rows(*({"model": "gpt-5-nano", "latency_ms": float(v), "status": 429 if v > 98 else 200}
               for v in range(91, 101)))
    body = client.get("/_stats", headers=admin_headers).get_json()
    assert body["total_requests"] == 100 and body["errors"] == 2
    assert body["average_latency_ms"] == 50.5 and body["p95_latency_ms"] == 95.0 and body["p95_sample"] == 100
    assert body["input_tokens"] == 1000 and body["output_tokens"] == 500
    big, nano = body["models"]
    assert (big["model"], big["requests"], big["errors"], big["p95_latency_ms"]) == ("big-pickle", 90, 0, 86.0)
    assert (nano["model"], nano["requests"], nano["errors"], nano["avg_latency_ms"]) == ("gpt-5-nano", 10, 2, 95.5)
    assert len(body["recent_requests"]) == 10


def test_timeseries_buckets_and_models(client, admin_headers):
    add_rows({"created_at": ago(minutes=5), "latency_ms": 100.0},
             {"created_at": ago(minutes=5), "latency_ms": 300.0, "model": "gpt-5-nano"},
             {"created_at": ago(minutes=30), "status": 502, "error": "upstream down", "latency_ms": 50.0},
             {"created_at": ago(minutes=90), "latency_ms": 9999.0})  # outside the window
    body = client.get("/_stats/timeseries?minutes=60&bucket=300", headers=admin_headers).get_json()
    assert body["minutes"] == 60 and body["bucket_seconds"] == 300
    assert len(body["buckets"]) in (13, 14)  # the window's first bucket starts on a boundary
    starts = [dt.datetime.fromisoformat(b["start"]) for b in body["buckets"]]
    assert all(b - a == dt.timedelta(seconds=300) for a, b in itertools.pairwise(starts))
    assert all(s.timestamp() % 300 == 0 for s in starts)
    assert body["totals"] == {"requests": 3, "errors": 1, "avg_latency_ms": 150.0, "input_tokens": 30,
                              "output_tokens": 15, "p95_latency_ms": 300.0, "saved_calls": 0,
                              "tokens_saved": 0}
    busy = [b for b in body["buckets"] if b["requests"]]
    assert sum(b["requests"] for b in busy) == 3 and sum(b["errors"] for b in busy) == 1
    five = next(b for b in busy if b["requests"] == 2)
    assert five["avg_latency_ms"] == 200.0 and five["p95_latency_ms"] == 300.0 and five["errors"] == 0
    idle = next(b for b in body["buckets"] if not b["requests"])
    assert idle["avg_latency_ms"] is None and idle["p95_latency_ms"] is None
    assert [(m["model"], m["requests"]) for m in body["models"]] == [("big-pickle", 2), ("gpt-5-nano", 1)]


def test_timeseries_picks_a_bucket_and_validates(client, admin_headers):
    body = client.get("/_stats/timeseries?minutes=1440", headers=admin_headers).get_json()
    assert body["bucket_seconds"] == 1800 and len(body["buckets"]) <= 50
    assert client.get("/_stats/timeseries", headers=admin_headers).get_json()["bucket_seconds"] == 60
    for query, param in [("minutes=0", "minutes"), ("minutes=abc", "minutes"), ("minutes=99999999", "minutes"),
                         ("bucket=5", "bucket"), ("minutes=10080&bucket=10", "bucket")]:
        r = client.get(f"/_stats/timeseries?{query}", headers=admin_headers)
        assert r.status_code == 400 and r.get_json()["error"]["param"] == param, query


@pytest.fixture
def varied_log():
    return add_rows(
        {"model": "big-pickle", "status": 200, "key_prefix": "sk-zen-aaaaaa", "created_at": ago(hours=3)},
        {"model": "big-pickle", "status": 429, "key_prefix": "sk-zen-aaaaaa", "created_at": ago(hours=2)},
        {"model": "gpt-5-nano", "status": 502, "key_prefix": "sk-zen-bbbbbb", "created_at": ago(hours=1)},
        {"model": "gpt-5-nano", "status": 200, "key_prefix": None, "error": "client went away",
         "created_at": ago(minutes=1)},
        {"model": "gpt-5-nano", "status": 200, "key_prefix": "sk-zen-bbbbbb", "created_at": ago(seconds=10),
         "input_messages": json.dumps([{"role": "user", "content": "<b>hi</b>"}]), "output_content": "hello"},
    )


@pytest.mark.parametrize(("query", "expected"), [
    ("", [5, 4, 3, 2, 1]),
    ("model=big-pickle", [2, 1]),
    ("status=429", [2]),
    ("status=4xx", [2]),
    ("status=5XX", [3]),
    ("status=error", [4, 3, 2]),
    ("status=ok", [5, 1]),
    ("key=sk-zen-bb", [5, 3]),
    ("key=sk-zen-aaaaaaTHE-REST-OF-A-WHOLE-KEY", [2, 1]),
    ("model=gpt-5-nano&status=ok", [5]),
    ("model=nobody", []),
])
def test_request_log_filters(client, admin_headers, varied_log, query, expected):
    body = client.get(f"/_stats/requests?{query}", headers=admin_headers).get_json()
    position = {row_id: n for n, row_id in enumerate(varied_log, start=1)}
    assert [position[r["id"]] for r in body["requests"]] == expected
    assert body["total"] == len(expected)


def test_request_log_time_range(client, admin_headers, varied_log):
    def total(**query):
        return client.get("/_stats/requests", query_string=query, headers=admin_headers).get_json()["total"]

    since, until = iso(ago(minutes=150)), iso(ago(minutes=30))
    body = client.get("/_stats/requests", query_string={"since": since, "until": until},
                      headers=admin_headers).get_json()
    assert body["total"] == 2 and body["filters"].keys() == {"since", "until"}
    start = ago(minutes=150)
    elsewhere = start.replace(tzinfo=dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=2)))  # same instant
    assert total(since=elsewhere.isoformat()) == 4
    assert total(since=start.isoformat()) == 4  # no offset: UTC
    assert total(since=start.strftime("%Y-%m-%dT%H:%M:%SZ")) == 4


@pytest.mark.parametrize(("query", "param"), [
    ({"status": "teapot"}, "status"),
    ({"status": "600"}, "status"),
    ({"status": "6xx"}, "status"),
    ({"since": "yesterday"}, "since"),
    ({"until": "2026-13-40"}, "until"),
    ({"since": "2026-02-02T00:00:00Z", "until": "2026-02-01T00:00:00Z"}, "until"),
    ({"model": "m" * 201}, "model"),
    ({"key": "k" * 201}, "key"),
    ({"bodies": "maybe"}, "bodies"),
    ({"limit": "0"}, "limit"),
])
def test_request_log_filters_are_validated(client, admin_headers, query, param):
    r = client.get("/_stats/requests", query_string=query, headers=admin_headers)
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert error["param"] == param and error["message"].startswith(f"{param}:")


def test_request_detail_and_bodies_flag(client, admin_headers, varied_log):
    rows = client.get("/_stats/requests?bodies=0", headers=admin_headers).get_json()["requests"]
    assert rows and all("input_messages" not in r and "output_content" not in r for r in rows)
    rows = client.get("/_stats/requests", headers=admin_headers).get_json()["requests"]
    assert rows[0]["input_messages"] == [{"role": "user", "content": "<b>hi</b>"}]  # default unchanged: bodies
    detail = client.get(f"/_stats/requests/{varied_log[-1]}", headers=admin_headers).get_json()
    assert detail["id"] == varied_log[-1] and detail["output_content"] == "hello"
    assert detail["input_messages"] == [{"role": "user", "content": "<b>hi</b>"}]
    missing = client.get("/_stats/requests/999999", headers=admin_headers)
    assert missing.status_code == 404 and "999999" in missing.get_json()["error"]["message"]
    assert client.get(f"/_stats/requests/{varied_log[0]}").status_code == 401


def test_truncated_bodies_come_back_as_text(client, admin_headers):
    (row_id,) = add_rows({"input_messages": '[{"role": "user", "content": "long…[truncated]'})
    detail = client.get(f"/_stats/requests/{row_id}", headers=admin_headers).get_json()
    assert detail["input_messages"] == '[{"role": "user", "content": "long…[truncated]'


def test_p95_over_a_capped_sample(client, admin_headers, monkeypatch):
    import zengate.web.admin.stats as stats

    monkeypatch.setattr(stats, "P95_SAMPLE", 10)
    add_rows(*({"latency_ms": 1000.0, "created_at": ago(minutes=40)} for _ in range(20)))
    add_rows(*({"latency_ms": float(v), "created_at": ago(minutes=2)} for v in range(1, 11)))
    body = client.get("/_stats", headers=admin_headers).get_json()
    assert body["p95_sample"] == 10 and body["p95_latency_ms"] == 10.0  # the newest ten only
    series = client.get("/_stats/timeseries?minutes=60&bucket=60", headers=admin_headers).get_json()
    old = [b for b in series["buckets"] if b["requests"] == 20]
    assert old and old[0]["p95_latency_ms"] is None and old[0]["avg_latency_ms"] == 1000.0  # not sampled: no p95
    assert series["totals"]["requests"] == 30
    assert P95_SAMPLE >= 10_000


def test_stats_on_each_database(make_app, database_url):
    """The SQL (time buckets, CASE, SUBSTR) runs on SQLite and PostgreSQL alike."""
    app = make_app(database_url=database_url)
    client = app.test_client()
    token = client.post("/_admin/login", json={"password": ADMIN_PASSWORD}).get_json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    add_rows({"created_at": ago(minutes=3), "latency_ms": 10.0, "key_prefix": "sk-zen-abcdef"},
             {"created_at": ago(minutes=3), "latency_ms": 30.0, "status": 500, "model": "gpt-5-nano"},
             {"created_at": ago(minutes=20), "latency_ms": 20.0})
    summary = client.get("/_stats", headers=headers).get_json()
    assert (summary["total_requests"], summary["errors"], summary["p95_latency_ms"]) == (3, 1, 30.0)
    series = client.get("/_stats/timeseries?minutes=60&bucket=600", headers=headers).get_json()
    assert sum(b["requests"] for b in series["buckets"]) == 3
    assert max(b["requests"] for b in series["buckets"]) == 2
    page = client.get("/_stats/requests", query_string={"key": "sk-zen-abc", "status": "2xx",
                                                        "since": iso(ago(minutes=10))}, headers=headers).get_json()
    assert page["total"] == 1 and page["requests"][0]["key_prefix"] == "sk-zen-abcdef"
