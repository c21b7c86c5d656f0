"""The models admin API: what the gateway serves (GET /_admin/models) and testing a model (POST /_admin/models/test)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.support.fake_upstream import error, openai_text
from zengate.store.models import RequestLog, utcnow

MODELS = "/_admin/models"
TEST = "/_admin/models/test"


@pytest.fixture
def app(make_app, upstream, tmp_path):
    """A gateway with a backend, an alias to it and one to a built-in model; the Go tier's list cannot be fetched."""
    models = tmp_path / "models.yaml"
    models.write_text(
        "backends:\n"
        f"  local: {{base_url: '{upstream.url}/local', protocol: openai}}\n"
        "models:\n"
        "  house-model: {backend: local, upstream_model: house-v2, context: 32000, max_output: 4000,"
        " fallbacks: [big-pickle]}\n"
        "aliases:\n"
        "  fast: gpt-5-nano\n"
        "  house: house-model\n"
        "  home: 'local:house-model'\n")  # an alias may name the backend
    return make_app(go_upstream_url="http://127.0.0.1:9", models_file=str(models))


def add_rows(*rows: dict) -> None:
    for row in rows:
        RequestLog.create(**{
            "created_at": utcnow(), "request_id": "req", "method": "POST", "path": "/v1/chat/completions",
            "model": "big-pickle", "upstream_model": "big-pickle", "format": "openai", "stream": False,
            "status": 200, "latency_ms": 100.0, "input_tokens": 10, "output_tokens": 5, **row})


def by_id(body: dict) -> dict[str, dict]:
    return {row["id"]: row for row in body["models"]}


def err(r) -> dict:
    return r.get_json()["error"]


# --- the table -------------------------------------------------------------------------------------

def test_every_model_with_its_tier_protocol_limits_and_liveness(client, admin_headers, setting):
    setting("fallbacks", {"big-pickle": ["gpt-5-nano", "go:glm-5"]})
    setting("model_protocols", {"gpt-5-nano": "openai"})
    setting("model_overrides", {"my-override": {"tier": "go", "context": 1000}})
    setting("model_map", {"opus": "local:house-model", "sonnet": "big-pickle", "haiku": "gpt-5-nano",
                          "default": "big-pickle"})
    r = client.get(MODELS, headers=admin_headers)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["minutes"] == 1440 and body["live_lists"] == {"zen": True, "go": False}
    rows = by_id(body)
    # the fake upstream's live list, the built-in models, the models file's and the override's
    assert {"big-pickle", "gpt-5-nano", "glm-4.7-free", "claude-sonnet-4-5", "glm-5", "kimi-k2.5", "house-model",
            "my-override"} <= set(rows)
    big = rows["big-pickle"]
    assert {k: big[k] for k in ("tier", "kind", "free", "protocol", "context", "max_output", "live", "has_key",
                                "fallbacks", "aliases", "families", "source", "requests", "errors",
                                "median_latency_ms")} == {
        "tier": "zen", "kind": "zen", "free": True, "protocol": "openai", "context": 200_000, "max_output": 32_000,
        "live": True, "has_key": True, "fallbacks": ["gpt-5-nano", "go:glm-5"], "aliases": [],
        "families": ["sonnet", "gemini", "default"], "source": "catalog", "requests": 0, "errors": 0,
        "median_latency_ms": None}
    nano = rows["gpt-5-nano"]
    assert (nano["protocol"], nano["aliases"], nano["families"], nano["live"]) == ("openai", ["fast"], ["haiku"], True)
    assert (rows["claude-sonnet-4-5"]["protocol"], rows["claude-sonnet-4-5"]["free"]) == ("anthropic", False)
    assert (rows["glm-4.7-free"]["tier"], rows["glm-4.7-free"]["live"], rows["glm-4.7-free"]["context"]) == \
        ("zen", True, None)
    glm = rows["glm-5"]  # a Go model: its list was never fetched, and there is no Go key
    assert (glm["tier"], glm["kind"], glm["live"], glm["has_key"], glm["free"]) == ("go", "go", None, False, False)
    house = rows["house-model"]
    assert {k: house[k] for k in ("tier", "kind", "protocol", "upstream_model", "context", "max_output", "live",
                                  "fallbacks", "aliases", "families")} == {
        "tier": "local", "kind": "backend", "protocol": "openai", "upstream_model": "house-v2", "context": 32000,
        "max_output": 4000, "live": None, "fallbacks": ["big-pickle"], "aliases": ["house", "home"],
        "families": ["opus"]}
    assert (rows["my-override"]["tier"], rows["my-override"]["context"]) == ("go", 1000)
    assert body["families"] == [
        {"family": "opus", "model": "local:house-model", "own": True},
        {"family": "sonnet", "model": "big-pickle", "own": True},
        {"family": "haiku", "model": "gpt-5-nano", "own": True},
        {"family": "gemini", "model": "big-pickle", "own": False},  # falls to default
        {"family": "default", "model": "big-pickle", "own": True}]
    assert body["aliases"] == {"fast": "gpt-5-nano", "house": "house-model", "home": "local:house-model"}
    assert [r["tier"] for r in body["models"]].index("go") > [r["tier"] for r in body["models"]].index("zen")


def test_traffic_is_counted_by_the_model_that_answered_over_the_window(client, admin_headers):
    old = utcnow() - dt.timedelta(days=2)
    add_rows({"latency_ms": 100.0}, {"latency_ms": 300.0}, {"latency_ms": 200.0},
             {"latency_ms": 900.0, "status": 502, "error": "upstream fell over"},
             {"model": "house", "upstream_model": "house-v2", "latency_ms": 70.0},  # a backend's own name
             {"model": "house", "upstream_model": "house-v2", "latency_ms": 50.0},
             {"model": "fast", "upstream_model": None, "status": 403, "latency_ms": 5.0},  # an alias, no upstream
             {"model": "claude-opus-4-1", "upstream_model": "big-pickle", "latency_ms": 400.0},  # mapped, answered
             {"model": "mystery", "upstream_model": None, "status": 400, "latency_ms": 2.0},
             {"latency_ms": 5000.0, "created_at": old})
    rows = by_id(client.get(MODELS, headers=admin_headers).get_json())
    big = rows["big-pickle"]
    assert (big["requests"], big["errors"], big["median_latency_ms"]) == (5, 1, 300.0)
    house = rows["house-model"]
    assert (house["requests"], house["errors"], house["median_latency_ms"]) == (2, 0, 50.0)
    nano = rows["gpt-5-nano"]
    assert (nano["requests"], nano["errors"], nano["median_latency_ms"]) == (1, 1, 5.0)
    mystery = rows["mystery"]  # a name only the log knows gets a row of its own, marked as such
    assert (mystery["source"], mystery["tier"], mystery["requests"], mystery["errors"]) == ("log", None, 1, 1)
    assert "claude-opus-4-1" not in rows and "house" not in rows and "fast" not in rows
    wider = by_id(client.get(MODELS + "?minutes=4320", headers=admin_headers).get_json())
    assert (wider["big-pickle"]["requests"], wider["big-pickle"]["median_latency_ms"]) == (6, 300.0)
    narrow = client.get(MODELS + "?minutes=60", headers=admin_headers).get_json()
    assert narrow["minutes"] == 60 and by_id(narrow)["big-pickle"]["requests"] == 5


@pytest.mark.parametrize(("query", "needle"), [
    ("minutes=0", "between 1 and"), ("minutes=abc", "must be an integer"), ("minutes=99999999", "between 1 and"),
    ("minutes=1.5", "must be an integer"),
])
def test_a_bad_window_is_a_400_naming_it(client, admin_headers, query, needle):
    r = client.get(f"{MODELS}?{query}", headers=admin_headers)
    assert r.status_code == 400
    assert err(r)["param"] == "minutes" and err(r)["message"].startswith("minutes: ") and needle in err(r)["message"]


def test_both_endpoints_need_an_admin_session(client, upstream):
    for r in (client.get(MODELS), client.post(TEST, json={"model": "big-pickle"})):
        assert r.status_code == 401 and "admin login required" in err(r)["message"]
    assert upstream.received("/chat/completions") == []  # nothing was sent


# --- testing a model ----------------------------------------------------------------------------

def test_a_model_answers_through_the_gateways_routing_and_is_logged(client, admin_headers, upstream):
    upstream.script("big-pickle", openai_text("OK from the pickle"))
    r = client.post(TEST, json={"model": "big-pickle"}, headers=admin_headers)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert {k: body[k] for k in ("model", "answered_by", "backend", "status", "text", "error")} == {
        "model": "big-pickle", "answered_by": "big-pickle", "backend": "zen", "status": 200,
        "text": "OK from the pickle", "error": None}
    assert body["latency_ms"] > 0 and [a["status"] for a in body["attempts"]] == [200]
    (sent,) = upstream.received("/chat/completions", model="big-pickle")
    assert sent.body["messages"] == [{"role": "user", "content": "Reply with OK"}]
    rows = client.get("/_stats/requests?limit=5", headers=admin_headers).get_json()["requests"]
    assert [(r["path"], r["model"], r["upstream_model"], r["status"], r["output_content"]) for r in rows] == [
        ("/_admin/models/test", "big-pickle", "big-pickle", 200, "OK from the pickle")]
    assert by_id(client.get(MODELS, headers=admin_headers).get_json())["big-pickle"]["requests"] == 1


def test_an_alias_reaches_its_backend_by_the_backends_own_name(client, admin_headers, upstream):
    body = client.post(TEST, json={"model": "house"}, headers=admin_headers).get_json()
    assert (body["status"], body["answered_by"], body["backend"], body["text"]) == \
        (200, "house-v2", "local", "Hello from upstream")
    (sent,) = upstream.received("/local/chat/completions")
    assert sent.body["model"] == "house-v2"


def test_a_failing_model_falls_back_as_for_a_client(client, admin_headers, upstream, setting):
    setting("fallbacks", {"big-pickle": ["glm-4.7-free"]})
    upstream.script("big-pickle", error(500, "upstream fell over", type="api_error"))
    upstream.script("glm-4.7-free", openai_text("OK from the fallback"))
    body = client.post(TEST, json={"model": "big-pickle"}, headers=admin_headers).get_json()
    assert (body["status"], body["answered_by"], body["text"]) == (200, "glm-4.7-free", "OK from the fallback")
    assert [(a["model"], a["status"]) for a in body["attempts"]] == [("big-pickle", 500), ("glm-4.7-free", 200)]


def test_an_upstream_error_is_shown_with_its_status_and_message(client, admin_headers, upstream):
    upstream.script("no-such-model", error(404, "model no-such-model not found", type="not_found_error"))
    r = client.post(TEST, json={"model": "no-such-model"}, headers=admin_headers)
    assert r.status_code == 200  # the admin call worked; the test's outcome is in the body
    body = r.get_json()
    assert (body["status"], body["answered_by"], body["text"]) == (404, None, "")
    assert "model no-such-model not found" in body["error"]
    rows = client.get("/_stats/requests?limit=5", headers=admin_headers).get_json()["requests"]
    assert [(r["path"], r["status"]) for r in rows] == [("/_admin/models/test", 404)]


def test_a_model_routing_refuses_says_why(client, admin_headers, upstream):
    body = client.post(TEST, json={"model": "glm-5"}, headers=admin_headers).get_json()
    assert body["status"] == 403 and "OPENCODE_GO_API_KEY" in body["error"] and body["attempts"] == []
    assert upstream.received("/chat/completions") == []


@pytest.mark.parametrize(("payload", "needle"), [
    ({}, "model: must be a non-empty string"),
    ({"model": 5}, "model: must be a non-empty string"),
    ({"model": None}, "model: must be a non-empty string"),
    ({"model": "   "}, "model: must be a non-empty string"),
    ({"model": "x" * 201}, "model: must be at most 200 characters"),
    ({"model": "big\npickle"}, "model: must not contain control characters"),
])
def test_a_bad_model_is_a_400_naming_it(client, admin_headers, upstream, payload, needle):
    r = client.post(TEST, json=payload, headers=admin_headers)
    assert r.status_code == 400 and err(r)["message"] == needle and err(r)["param"] == "model"
    assert upstream.received("/chat/completions") == []


def test_a_body_that_is_not_an_object_is_a_400(client, admin_headers):
    for data in ("not json", "[1, 2]", '"big-pickle"'):
        r = client.post(TEST, data=data, content_type="application/json", headers=admin_headers)
        assert r.status_code == 400 and err(r)["message"] == "request body must be a JSON object"
