"""The request log's new filters (the model that answered, the key's name) and its export.

The encoding (zengate/store/export.py) is tested on its own; the endpoint is tested for what it
sends (headers, a streamed body, rows that parse back to what the log page shows) and for reading
the log in batches: every row once, in order, even when many rows share a ``created_at``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import pytest

from zengate import auth
from zengate.store import export
from zengate.store.db import database
from zengate.store.models import RequestLog, utcnow

BASE = {"request_id": "req", "method": "POST", "path": "/v1/chat/completions", "model": "big-pickle",
        "upstream_model": "big-pickle", "format": "openai", "stream": False, "status": 200, "latency_ms": 100.0,
        "input_tokens": 10, "output_tokens": 5}


def add_rows(*rows: dict) -> list[int]:
    """Insert request-log rows; each dict overrides :data:`BASE` (``created_at`` defaults to now)."""
    return [RequestLog.create(**{"created_at": utcnow(), **BASE, **row}).id for row in rows]


def ago(**kwargs) -> dt.datetime:
    return utcnow() - dt.timedelta(**kwargs)


def parse_jsonl(data: bytes) -> list[dict]:
    text = data.decode("utf-8")
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def parse_csv(data: bytes) -> tuple[list[str], list[dict]]:
    reader = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


# --- the encoding, without Flask -----------------------------------------------------------------------

@pytest.mark.parametrize(("value", "cell"), [
    (None, ""), (True, "true"), (False, "false"), (0, "0"), (42, "42"), (-3, "-3"), (12.5, "12.5"),
    ("plain text", "plain text"), ("a - b = c", "a - b = c"), ("", ""),
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1", "'+1"), ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\tcmd", "'\tcmd"), ("\rcmd", "'\rcmd"),
    ([{"model": "m", "status": 429}], '[{"model":"m","status":429}]'), ({"k": "é"}, '{"k":"é"}'),
])
def test_csv_cells(value, cell):
    assert export.csv_cell(value) == cell


def test_csv_lines_have_a_fixed_header_and_parse_back():
    rows = [
        {"id": 2, "model": "free-auto", "upstream_model": "big-pickle", "stream": True, "status": 200,
         "error": 'a "quoted", comma\nand a newline', "attempts": [{"model": "big-pickle", "status": 200}],
         "input_messages": [{"role": "user", "content": "=1+1"}], "output_content": "-rm"},
        {"id": 1, "status": 502, "unknown_field": "left out"},
    ]
    lines = list(export.csv_lines(rows, bodies=False))
    assert len(lines) == 3 and all(line.endswith("\r\n") for line in lines)
    header, parsed = parse_csv("".join(lines).encode())
    assert tuple(header) == export.CSV_COLUMNS and header[:3] == ["id", "created_at", "request_id"]
    assert parsed[0]["error"] == 'a "quoted", comma\nand a newline'
    assert json.loads(parsed[0]["attempts"]) == [{"model": "big-pickle", "status": 200}]
    assert (parsed[0]["stream"], parsed[0]["model"], parsed[0]["guards"]) == ("true", "free-auto", "")
    assert parsed[1]["id"] == "1" and parsed[1]["model"] == "" and "unknown_field" not in parsed[1]

    header, parsed = parse_csv("".join(export.csv_lines(rows, bodies=True)).encode())
    assert tuple(header) == (*export.CSV_COLUMNS, "input_messages", "output_content")
    assert json.loads(parsed[0]["input_messages"]) == [{"role": "user", "content": "=1+1"}]  # JSON: starts with [
    assert parsed[0]["output_content"] == "'-rm"  # text starting like a formula is defused
    assert list(export.csv_lines([], bodies=False)) == [",".join(export.CSV_COLUMNS) + "\r\n"]


def test_jsonl_lines_keep_the_row_as_it_is():
    rows = [{"id": 1, "error": "=not escaped in JSON", "input_messages": [{"content": "héllo\nworld"}]}, {"id": 2}]
    text = "".join(export.jsonl_lines(rows))
    assert text.count("\n") == 2 and "héllo" in text  # one line per row, UTF-8 rather than \\u escapes
    assert parse_jsonl(text.encode()) == rows


def test_encode_chunks_and_survives_a_lone_surrogate():
    lines = [f"line {n}\n" for n in range(100)]
    chunks = list(export.encode(lines, chunk_bytes=50))
    assert len(chunks) > 5 and all(len(c) < 50 + 10 for c in chunks)
    assert b"".join(chunks) == "".join(lines).encode()
    assert list(export.encode([])) == []
    lone = json.loads('{"content": "a\\ud800b"}')  # what a logged body's escape decodes to
    (data,) = export.encode(export.jsonl_lines([lone]))
    assert json.loads(data) == lone  # written back as its escape: the same value


def test_filename_is_utc():
    assert export.filename("csv", dt.datetime(2026, 1, 31, 14, 0, 5)) == "zengate-requests-20260131T140005Z.csv"
    berlin = dt.datetime(2026, 1, 31, 15, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert export.filename("jsonl", berlin) == "zengate-requests-20260131T140005Z.jsonl"


# --- reading in batches --------------------------------------------------------------------------------

class CountingSelects:
    """Counts the queries that read request-log rows (page by page) while installed."""

    def __init__(self, monkeypatch):
        self.sql: list[tuple[str, list]] = []
        db = database.obj
        original = db.execute_sql

        def execute_sql(sql, params=None, *args, **kwargs):
            if 'FROM "request_log"' in sql and "LIMIT" in sql:
                self.sql.append((sql, list(params or ())))
            return original(sql, params, *args, **kwargs)

        monkeypatch.setattr(db, "execute_sql", execute_sql)


@pytest.mark.parametrize(("rows", "batch"), [(10, 3), (9, 3), (3, 5), (0, 2), (7, 1)])
def test_newest_first_reads_every_row_once_in_order_in_batches(app, monkeypatch, rows, batch):
    base = utcnow().replace(microsecond=0)
    # three timestamps shared by many rows, written out of time order, ids not in time order either
    ids = add_rows(*({"created_at": base - dt.timedelta(seconds=(n * 7) % 3), "request_id": f"r{n}"}
                     for n in range(rows)))
    expected = sorted(RequestLog.select().where(RequestLog.id.in_(ids)), key=lambda r: (r.created_at, r.id),
                      reverse=True)
    counting = CountingSelects(monkeypatch)
    got = list(export.newest_first(RequestLog.select(), batch_size=batch))
    assert [r.id for r in got] == [r.id for r in expected]
    assert len({r.id for r in got}) == rows
    assert len(counting.sql) == rows // batch + 1  # full batches, then a short (maybe empty) one
    assert all(params[-1] == batch for _sql, params in counting.sql)  # LIMIT ?


def test_newest_first_is_lazy_and_keeps_to_the_query(app, monkeypatch):
    add_rows(*({"model": "a" if n % 2 else "b"} for n in range(20)))
    counting = CountingSelects(monkeypatch)
    rows = export.newest_first(RequestLog.select().where(RequestLog.model == "a"), batch_size=4)
    assert counting.sql == []
    first = [next(rows) for _ in range(4)]
    assert len(counting.sql) == 1 and {r.model for r in first} == {"a"}
    rest = list(rows)
    assert len(first) + len(rest) == 10 and {r.model for r in rest} == {"a"}
    with pytest.raises(ValueError):
        next(export.newest_first(RequestLog.select(), batch_size=0))


# --- the filters ---------------------------------------------------------------------------------------

@pytest.fixture
def keyed_log(app):
    """Three stored keys (two named "Team A" in different cases), a refused key's prefix, no key."""
    prefixes = {name: auth.create_key(name).record.prefix for name in ("team a", "Team A ", "solo")}
    rows = [
        {"key_prefix": prefixes["team a"], "model": "free-auto", "upstream_model": "big-pickle"},
        {"key_prefix": prefixes["Team A "], "model": "gpt-5-nano", "upstream_model": "gpt-5-nano"},
        {"key_prefix": prefixes["solo"], "model": "free-auto", "upstream_model": "mimo-v2-pro-free"},
        {"key_prefix": "sk-zen-nostor", "model": "big-pickle", "upstream_model": "big-pickle", "status": 401},
        {"key_prefix": None, "model": "big-pickle", "upstream_model": None, "status": 502},
    ]
    ids = add_rows(*({**row, "created_at": ago(minutes=5 - n)} for n, row in enumerate(rows)))  # oldest first
    return ids, prefixes


@pytest.mark.parametrize(("query", "expected"), [
    ({"upstream_model": "big-pickle"}, [4, 1]),
    ({"upstream_model": "mimo-v2-pro-free"}, [3]),
    ({"upstream_model": "free-auto"}, []),  # the model asked for is not the one that answered
    ({"model": "free-auto", "upstream_model": "big-pickle"}, [1]),
    ({"key_name": "team a"}, [2, 1]),  # two keys share the name (case and spaces aside)
    ({"key_name": "TEAM A"}, [2, 1]),
    ({"key_name": "solo"}, [3]),
    ({"key_name": "nobody has this name"}, []),
    ({"key_name": "solo", "upstream_model": "big-pickle"}, []),
    ({"key_name": "team a", "status": "ok", "upstream_model": "gpt-5-nano"}, [2]),
])
def test_answering_model_and_key_name_filters(client, admin_headers, keyed_log, query, expected):
    ids, _prefixes = keyed_log
    body = client.get("/_stats/requests", query_string=query, headers=admin_headers).get_json()
    position = {row_id: n for n, row_id in enumerate(ids, start=1)}
    assert [position[r["id"]] for r in body["requests"]] == expected
    assert body["total"] == len(expected)
    assert body["filters"] == {k: (v.strip() if k != "status" else v) for k, v in query.items()}


@pytest.mark.parametrize("path", ["/_stats/requests", "/_stats/requests/export"])
@pytest.mark.parametrize(("query", "param"), [
    ({"upstream_model": "m" * 201}, "upstream_model"),
    ({"upstream_model": "big\x00pickle"}, "upstream_model"),
    ({"key_name": "n" * 201}, "key_name"),
    ({"key_name": "a\x00b"}, "key_name"),
    ({"status": "teapot"}, "status"),
    ({"since": "yesterday"}, "since"),
    ({"bodies": "maybe"}, "bodies"),
])
def test_bad_filters_are_400s_naming_them(client, admin_headers, path, query, param):
    r = client.get(path, query_string=query, headers=admin_headers)
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert error["param"] == param and error["message"].startswith(f"{param}:")


# --- the export --------------------------------------------------------------------------------------

def export_get(client, headers, **query):
    return client.get("/_stats/requests/export", query_string=query, headers=headers)


@pytest.mark.parametrize("fmt", ["xml", "JSON", "csv\x00", "x" * 300])
def test_an_unknown_format_is_a_400_naming_format(client, admin_headers, fmt):
    r = export_get(client, admin_headers, format=fmt)
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert error["param"] == "format" and error["message"] == "format: must be one of jsonl, csv"


def test_the_export_needs_an_admin(client):
    r = client.get("/_stats/requests/export?format=csv")
    assert r.status_code == 401 and "admin login required" in r.get_json()["error"]["message"]


@pytest.mark.parametrize(("fmt", "media_type"), [("jsonl", "application/x-ndjson"), ("csv", "text/csv; charset=utf-8"),
                                                 ("", "application/x-ndjson")])
def test_the_export_is_a_streamed_attachment(client, admin_headers, fmt, media_type):
    add_rows({"model": "a"}, {"model": "b"})
    r = client.get("/_stats/requests/export", query_string={"format": fmt}, headers=admin_headers, buffered=False)
    try:
        assert r.status_code == 200 and r.is_streamed
        assert r.headers["Content-Type"] == media_type and "Content-Length" not in r.headers
        assert r.headers["Cache-Control"] == "no-store"
        ext = fmt or "jsonl"
        assert re.fullmatch(rf"attachment; filename=zengate-requests-\d{{8}}T\d{{6}}Z\.{ext}",
                            r.headers["Content-Disposition"])
        data = b"".join(r.response)
    finally:
        r.close()
    if ext == "csv":
        assert [row["model"] for row in parse_csv(data)[1]] == ["b", "a"]
    else:
        assert [row["model"] for row in parse_jsonl(data)] == ["b", "a"]


def test_the_export_is_the_log_pages_rows_filtered(client, admin_headers, keyed_log):
    add_rows({"model": "x", "upstream_model": "big-pickle", "error": "=cmd|' /C calc'!A0", "status": 500,
              "attempts": json.dumps([{"model": "big-pickle", "backend": "zen", "key": 0, "status": 500}]),
              "guards": json.dumps([{"guard": "loop", "action": "warned", "why": "+repeat"}]),
              "input_messages": json.dumps([{"role": "user", "content": "@secret plan"}]), "output_content": "done"})
    query = {"upstream_model": "big-pickle"}
    page = client.get("/_stats/requests", query_string={**query, "bodies": 0}, headers=admin_headers).get_json()
    assert page["total"] == 3
    jsonl = parse_jsonl(export_get(client, admin_headers, format="jsonl", **query).data)
    assert jsonl == page["requests"]  # the very rows the log page shows: no bodies by default
    assert all("input_messages" not in row and "output_content" not in row for row in jsonl)

    with_bodies = parse_jsonl(export_get(client, admin_headers, format="jsonl", bodies="1", **query).data)
    full = client.get("/_stats/requests", query_string=query, headers=admin_headers).get_json()["requests"]
    assert with_bodies == full and with_bodies[0]["input_messages"] == [{"role": "user", "content": "@secret plan"}]

    header, rows = parse_csv(export_get(client, admin_headers, format="csv", **query).data)
    assert tuple(header) == export.CSV_COLUMNS
    assert [int(row["id"]) for row in rows] == [r["id"] for r in page["requests"]]
    newest = rows[0]
    assert newest["error"] == "'=cmd|' /C calc'!A0"  # a formula, defused
    assert json.loads(newest["attempts"]) == page["requests"][0]["attempts"]
    assert json.loads(newest["guards"])[0]["why"] == "+repeat"  # inside JSON: left alone
    assert (newest["status"], newest["stream"], newest["key_prefix"], newest["ttfb_ms"]) == ("500", "false", "", "")
    header, rows = parse_csv(export_get(client, admin_headers, format="csv", bodies="true", **query).data)
    assert header[-2:] == ["input_messages", "output_content"] and rows[0]["output_content"] == "done"
    assert json.loads(rows[0]["input_messages"]) == [{"role": "user", "content": "@secret plan"}]

    by_name = parse_jsonl(export_get(client, admin_headers, key_name="Team a").data)
    assert [row["key_prefix"] for row in by_name] == [keyed_log[1]["Team A "], keyed_log[1]["team a"]]
    empty = export_get(client, admin_headers, format="csv", key_name="no such key")
    assert empty.status_code == 200 and empty.data.decode() == ",".join(export.CSV_COLUMNS) + "\r\n"
    assert export_get(client, admin_headers, format="jsonl", key_name="no such key").data == b""


def test_the_export_reads_the_log_batch_by_batch_as_it_is_sent(client, admin_headers, monkeypatch):
    base = utcnow().replace(microsecond=0)
    RequestLog.insert_many([{**BASE, "created_at": base - dt.timedelta(seconds=n // 10), "request_id": f"r{n}"}
                            for n in range(95)]).execute()  # ten rows to a second
    monkeypatch.setattr(export, "BATCH", 20)
    monkeypatch.setattr(export, "CHUNK_BYTES", 1)  # a chunk per line: the reading can be watched
    counting = CountingSelects(monkeypatch)
    r = client.get("/_stats/requests/export?format=jsonl", headers=admin_headers, buffered=False)
    try:
        chunks = iter(r.response)
        first = [json.loads(next(chunks)) for _ in range(20)]
        assert len(counting.sql) == 1  # one batch read so far, not the whole log
        rest = [json.loads(chunk) for chunk in chunks]
    finally:
        r.close()
    assert len(counting.sql) == 5  # 95 rows in batches of 20
    ids = [row["id"] for row in first + rest]
    assert len(ids) == len(set(ids)) == 95
    stamps = [(row["created_at"], row["id"]) for row in first + rest]
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_export_of_five_thousand_rows(client, admin_headers, fmt):
    base = utcnow().replace(microsecond=0)
    models = ["big-pickle", "gpt-5-nano", "glm-4.7-free"]
    broken = "=1+1, \"quoted\"\nline"
    RequestLog.insert_many([
        {**BASE, "created_at": base - dt.timedelta(seconds=n // 7), "request_id": f"req{n:05d}",
         "upstream_model": models[n % 3], "input_tokens": n, "status": 429 if n % 50 == 0 else 200,
         "error": broken if n % 50 == 0 else None}
        for n in range(5000)]).execute()  # seven rows to a second, the later id first in time order

    def exported(**query) -> list[dict]:
        r = export_get(client, admin_headers, format=fmt, **query)
        assert r.status_code == 200
        return parse_csv(r.data)[1] if fmt == "csv" else parse_jsonl(r.data)

    rows = exported()
    # newest first: ``created_at`` falls as n grows; within one second the larger id comes first
    newest_first = sorted(range(5000), key=lambda n: (n // 7, -n))
    assert [row["request_id"] for row in rows] == [f"req{n:05d}" for n in newest_first]
    assert sum(int(row["input_tokens"]) for row in rows) == sum(range(5000))
    assert [str(row["status"]) for row in rows].count("429") == 100
    errors = {row["error"] for row in rows if str(row["status"]) == "429"}
    assert errors == ({"'" + broken} if fmt == "csv" else {broken})  # CSV: the formula defused

    answered = exported(upstream_model="gpt-5-nano")
    assert len(answered) == len(range(1, 5000, 3)) == 1667
    assert {row["upstream_model"] for row in answered} == {"gpt-5-nano"}
    assert sum(int(row["input_tokens"]) for row in answered) == sum(range(1, 5000, 3))


def test_the_export_and_the_new_filters_on_each_database(make_app, database_url, monkeypatch):
    """The keyset pages (timestamps compared for equality) and the key-name lookup on SQLite and PostgreSQL."""
    from tests.support.gateway import ADMIN_PASSWORD

    client = make_app(database_url=database_url).test_client()
    token = client.post("/_admin/login", json={"password": ADMIN_PASSWORD}).get_json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    prefix = auth.create_key("Ops").record.prefix
    base = utcnow()  # with microseconds: what the gateway writes
    add_rows(*({"created_at": base - dt.timedelta(seconds=n // 4), "request_id": f"r{n:02d}",
                "key_prefix": prefix if n % 2 else None, "upstream_model": "gpt-5-nano" if n % 3 else "big-pickle"}
               for n in range(30)))
    monkeypatch.setattr(export, "BATCH", 7)
    rows = parse_jsonl(export_get(client, headers).data)
    assert [row["request_id"] for row in rows] == [f"r{n:02d}" for n in sorted(range(30), key=lambda n: (n // 4, -n))]
    _header, by_key = parse_csv(export_get(client, headers, format="csv", key_name="ops",
                                           upstream_model="big-pickle").data)
    assert [row["request_id"] for row in by_key] == ["r03", "r09", "r15", "r21", "r27"]
