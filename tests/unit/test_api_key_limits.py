"""Per-key limits through the app: set by the admin API (bad input named, nothing stored), held on
the client APIs in each API's own error shape, and each key's usage summed by day."""

from __future__ import annotations

import datetime as dt

import pytest

HELLO = {"model": "big-pickle", "messages": [{"role": "user", "content": "hi"}]}
HELLO_ANTHROPIC = {**HELLO, "max_tokens": 50}
HELLO_RESPONSES = {"model": "big-pickle", "input": "hi"}


@pytest.fixture
def keyed(client, admin_headers):
    """Keys required; ``make(**limits)`` creates a key and gives its headers and id."""
    assert client.post("/_admin/settings", json={"key": "require_auth", "value": True},
                       headers=admin_headers).status_code == 200

    def make(**limits):
        r = client.post("/_admin/api-keys", json={"name": "family", **limits}, headers=admin_headers)
        assert r.status_code == 201, r.get_json()
        body = r.get_json()
        return {"Authorization": f"Bearer {body['key']}"}, body["id"]

    return make


def _flush(gateway):
    gateway.request_log.flush(force=True)


def test_limits_are_set_at_creation_and_listed_with_usage(client, admin_headers):
    r = client.post("/_admin/api-keys", json={"name": "ana", "rpm": 10, "tokens_per_day": 200_000,
                                              "models": ["big-pickle", "gpt-5*"], "expires_at": "2027-02-01T00:00:00Z",
                                              "note": "Ana's laptop"}, headers=admin_headers)
    assert r.status_code == 201
    created = r.get_json()
    assert created["key"].startswith("sk-zen-") and "shown only once" in created["warning"]
    assert (created["rpm"], created["requests_per_day"], created["tokens_per_day"]) == (10, None, 200_000)
    assert created["models"] == ["big-pickle", "gpt-5*"] and created["note"] == "Ana's laptop"
    assert created["expires_at"] == "2027-02-01T00:00:00+00:00"
    listed = client.get("/_admin/api-keys", headers=admin_headers).get_json()["keys"]
    assert [(k["id"], k["rpm"], k["models"]) for k in listed] == [(created["id"], 10, ["big-pickle", "gpt-5*"])]
    assert listed[0]["usage"]["today"] == {"requests": 0, "errors": 0, "input_tokens": 0, "output_tokens": 0,
                                           "cost": 0.0}


def test_a_key_is_changed_field_by_field_and_null_clears_a_limit(client, admin_headers, keyed):
    _, key_id = keyed(rpm=5, requests_per_day=100, note="x")
    r = client.patch(f"/_admin/api-keys/{key_id}", json={"rpm": None, "note": "for the kids", "name": "kids"},
                     headers=admin_headers)
    assert r.status_code == 200
    body = r.get_json()
    assert (body["rpm"], body["requests_per_day"], body["note"], body["name"]) == (None, 100, "for the kids", "kids")


@pytest.mark.parametrize(("body", "param"), [
    ({"rpm": 0}, "rpm"), ({"rpm": "5"}, "rpm"), ({"models": "big-pickle"}, "models"),
    ({"expires_at": "soon"}, "expires_at"), ({"note": ["x"]}, "note"), ({"name": 5}, "name"),
    ({"rpm": 5, "tokens_per_day": -1}, "tokens_per_day"),
])
def test_bad_limits_are_named_and_nothing_is_stored(client, admin_headers, keyed, body, param):
    _, key_id = keyed(rpm=7)
    before = client.get("/_admin/api-keys", headers=admin_headers).get_json()["keys"]
    for method, path in (("PATCH", f"/_admin/api-keys/{key_id}"), ("POST", "/_admin/api-keys")):
        r = client.open(path, method=method, json=body, headers=admin_headers)
        assert r.status_code == 400, (method, r.get_json())
        error = r.get_json()["error"]
        assert error["param"] == param and error["message"].startswith(f"{param}: ")
    assert client.get("/_admin/api-keys", headers=admin_headers).get_json()["keys"] == before


def test_bad_key_calls(client, admin_headers, keyed):
    _, key_id = keyed()
    cases = [
        ("PATCH", "/_admin/api-keys/999999", {"rpm": 1}, 404, "no key with id 999999"),
        ("PATCH", f"/_admin/api-keys/{key_id}", {}, 400, "nothing to change"),
        ("PATCH", f"/_admin/api-keys/{key_id}", ["rpm"], 400, "must be a JSON object"),
        ("PATCH", f"/_admin/api-keys/{2**70}", {"rpm": 1}, 404, "no key with id"),
        ("GET", "/_admin/api-keys/999999/usage", None, 404, "no key with id 999999"),
        ("GET", f"/_admin/api-keys/{key_id}/usage?days=0", None, 400, "days: must be a whole number from 1 to 366"),
        ("GET", f"/_admin/api-keys/{key_id}/usage?days=abc", None, 400, "days: must be"),
        ("GET", f"/_admin/api-keys/{key_id}/usage?days=367", None, 400, "days: must be"),
    ]
    for method, path, body, status, says in cases:
        r = client.open(path, method=method, json=body, headers=admin_headers)
        assert r.status_code == status and says in r.get_json()["error"]["message"], (path, r.get_json())
    assert client.patch(f"/_admin/api-keys/{key_id}", json={"rpm": 1}).status_code == 401  # no session


def test_requests_per_minute_answer_429_in_each_apis_shape(client, keyed):
    headers, _ = keyed(rpm=3)
    assert client.post("/v1/chat/completions", json=HELLO, headers=headers).status_code == 200
    assert client.post("/v1/messages", json=HELLO_ANTHROPIC, headers=headers).status_code == 200
    assert client.post("/v1/responses", json=HELLO_RESPONSES, headers=headers).status_code == 200

    r = client.post("/v1/chat/completions", json=HELLO, headers=headers)
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 80
    error = r.get_json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert error["message"].startswith("API key 'family' reached its limit of 3 requests per minute; retry in ")

    r = client.post("/v1/messages", json=HELLO_ANTHROPIC, headers=headers)
    assert r.status_code == 429 and r.headers["Retry-After"]
    body = r.get_json()
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert "limit of 3 requests per minute" in body["error"]["message"]

    r = client.post("/v1/responses", json=HELLO_RESPONSES, headers=headers)
    assert r.status_code == 429 and "limit of 3 requests per minute" in r.get_json()["error"]["message"]

    assert client.post("/v1/messages/count_tokens", json=HELLO_ANTHROPIC, headers=headers).status_code == 200


def test_daily_tokens_count_what_the_upstream_reported(client, keyed, upstream):
    headers, _ = keyed(tokens_per_day=20)  # the fake upstream reports 10 in, 5 out
    assert client.post("/v1/chat/completions", json=HELLO, headers=headers).status_code == 200
    assert client.post("/v1/chat/completions", json={**HELLO, "stream": True}, headers=headers).status_code == 200
    r = client.post("/v1/chat/completions", json=HELLO, headers=headers)
    assert r.status_code == 429
    assert "limit of 20 tokens per day; 30 used; it resets at 00:00 UTC" in r.get_json()["error"]["message"]


def test_a_key_may_use_only_its_models(client, keyed):
    headers, _ = keyed(models=["big-pickle", "gpt-5*"])
    assert client.post("/v1/chat/completions", json=HELLO, headers=headers).status_code == 200
    r = client.post("/v1/chat/completions", json={**HELLO, "model": "claude-sonnet-4-5"}, headers=headers)
    assert r.status_code == 403
    error = r.get_json()["error"]
    assert error["param"] == "model"
    assert error["message"] == ("API key 'family' may not use model 'claude-sonnet-4-5'; it may use: "
                                "big-pickle, gpt-5*")
    r = client.post("/v1/messages", json={**HELLO_ANTHROPIC, "model": "claude-sonnet-4-5"}, headers=headers)
    assert r.status_code == 403 and r.get_json()["error"]["type"] == "permission_error"
    listed = {m["id"] for m in client.get("/v1/models", headers=headers).get_json()["data"]}
    assert "big-pickle" in listed and all(m == "big-pickle" or m.startswith("gpt-5") for m in listed)


def test_an_expired_key_is_refused_with_its_expiry(client, admin_headers, keyed):
    headers, key_id = keyed()
    assert client.post("/v1/chat/completions", json=HELLO, headers=headers).status_code == 200
    client.patch(f"/_admin/api-keys/{key_id}", json={"expires_at": "2026-01-01T08:00:00Z"}, headers=admin_headers)
    r = client.post("/v1/chat/completions", json=HELLO, headers=headers)
    assert r.status_code == 401
    assert r.get_json()["error"]["message"].startswith("API key 'family' expired at 2026-01-01 08:00 UTC")
    client.patch(f"/_admin/api-keys/{key_id}", json={"expires_at": None}, headers=admin_headers)
    assert client.post("/v1/chat/completions", json=HELLO, headers=headers).status_code == 200


def test_usage_is_summed_by_key_and_day(client, admin_headers, keyed, gateway):
    headers, key_id = keyed(rpm=2)
    other, other_id = keyed()
    for _ in range(3):  # two served, one refused (an error)
        client.post("/v1/chat/completions", json=HELLO, headers=headers)
    client.post("/v1/chat/completions", json=HELLO, headers=other)
    _flush(gateway)
    body = client.get(f"/_admin/api-keys/{key_id}/usage?days=7", headers=admin_headers).get_json()
    today = {"requests": 3, "errors": 1, "input_tokens": 20, "output_tokens": 10, "cost": 0.0}
    assert body["today"] == today and body["month"] == today and body["key"]["id"] == key_id
    assert [d["day"] for d in body["days"]] == [
        (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=6 - i)).isoformat() for i in range(7)]
    assert body["days"][-1] == {"day": body["days"][-1]["day"], **today} and body["days"][0]["requests"] == 0
    listed = {k["id"]: k["usage"]["today"]["requests"] for k in
              client.get("/_admin/api-keys", headers=admin_headers).get_json()["keys"]}
    assert listed == {key_id: 3, other_id: 1}
    client.post("/v1/chat/completions", json=HELLO, headers=other)
    _flush(gateway)
    assert client.get(f"/_admin/api-keys/{other_id}/usage", headers=admin_headers).get_json()["today"]["requests"] == 2


def test_a_daily_limit_set_later_counts_what_the_key_used_today(client, admin_headers, keyed, gateway):
    headers, key_id = keyed()
    for _ in range(3):
        assert client.post("/v1/chat/completions", json=HELLO, headers=headers).status_code == 200
    _flush(gateway)
    client.patch(f"/_admin/api-keys/{key_id}", json={"requests_per_day": 3}, headers=admin_headers)
    r = client.post("/v1/chat/completions", json=HELLO, headers=headers)
    assert r.status_code == 429 and "limit of 3 requests per day" in r.get_json()["error"]["message"]


def test_usage_by_key_in_stats_and_metrics(client, admin_headers, keyed, monkeypatch):
    from tests.unit.test_metrics import scrape, value
    from zengate.runtime import metrics

    monkeypatch.setattr(metrics, "_key_labels", {})
    headers, _ = keyed(rpm=1)
    prefix = headers["Authorization"][len("Bearer "):][:13]
    before = scrape(client, admin_headers)
    assert client.post("/v1/chat/completions", json=HELLO, headers=headers).status_code == 200
    assert client.post("/v1/chat/completions", json=HELLO, headers=headers).status_code == 429
    forged = {"Authorization": "Bearer sk-zen-forged" + "x" * 30}
    assert client.post("/v1/chat/completions", json=HELLO, headers=forged).status_code == 401
    after = scrape(client, admin_headers)
    for status in ("200", "429"):
        assert value(after, "zengate_key_requests_total", key=prefix, status=status) - value(
            before, "zengate_key_requests_total", key=prefix, status=status) == 1
    assert value(after, "zengate_key_tokens_total", key=prefix, direction="input") - value(
        before, "zengate_key_tokens_total", key=prefix, direction="input") == 10
    assert not any("forged" in str(labels) for labels in after)  # a key the gateway refused gets no series

    stats = client.get("/_stats", headers=admin_headers).get_json()["keys"]
    mine = next(k for k in stats if k["key"] == prefix)
    assert mine == {"key": prefix, "name": "family", "requests": 2, "errors": 1, "input_tokens": 10,
                    "output_tokens": 5, "cost": 0.0, "avg_latency_ms": mine["avg_latency_ms"]}
    page = client.get(f"/_stats/requests?key={prefix}&bodies=0", headers=admin_headers).get_json()
    assert page["total"] == 2 and {r["status"] for r in page["requests"]} == {200, 429}
    series = client.get("/_stats/timeseries?minutes=5", headers=admin_headers).get_json()["keys"]
    assert next(k for k in series if k["key"] == prefix)["requests"] == 2


def test_key_labels_are_bounded(monkeypatch):
    from zengate.runtime import metrics

    monkeypatch.setattr(metrics, "MAX_KEY_LABELS", 2)
    monkeypatch.setattr(metrics, "_key_labels", {})
    assert [metrics.key_label(f"sk-zen-{i:06d}") for i in range(4)] == ["sk-zen-000000", "sk-zen-000001",
                                                                       "other", "other"]


def test_an_accepted_key_is_not_asked_about_again_until_a_change(make_app):
    """With a settings TTL, a key the database accepted is taken from memory; a revocation or a
    change of limits through the admin API counts at the very next request all the same."""
    from tests.support.gateway import ADMIN_PASSWORD
    from zengate.store.models import ApiKey

    client = make_app(settings_ttl=3600).test_client()
    token = client.post("/_admin/login", json={"password": ADMIN_PASSWORD}).get_json()["token"]
    admin = {"Authorization": f"Bearer {token}"}
    client.post("/_admin/settings", json={"key": "require_auth", "value": True}, headers=admin)
    created = client.post("/_admin/api-keys", json={"name": "cached"}, headers=admin).get_json()
    headers = {"Authorization": f"Bearer {created['key']}"}
    assert client.post("/v1/chat/completions", json=HELLO, headers=headers).status_code == 200
    ApiKey.update(active=False).where(ApiKey.id == created["id"]).execute()  # behind the gateway's back
    assert client.post("/v1/chat/completions", json=HELLO, headers=headers).status_code == 200  # from memory
    client.patch(f"/_admin/api-keys/{created['id']}", json={"rpm": 1}, headers=admin)  # a change: asked again
    assert client.post("/v1/chat/completions", json=HELLO, headers=headers).status_code == 401
    ApiKey.update(active=True).where(ApiKey.id == created["id"]).execute()
    client.post("/_admin/api-keys/delete", json={"id": created["id"]}, headers=admin)
    r = client.post("/v1/chat/completions", json=HELLO, headers=headers)
    assert r.status_code == 401 and r.get_json()["error"]["message"].startswith("invalid or revoked API key")


def test_the_cost_zen_reports_after_a_stream_reaches_the_log_and_the_keys_usage(client, admin_headers, keyed,
                                                                                gateway):
    """The fake upstream ends its OpenAI streams with Zen's ``{"cost": "0.0012"}`` after [DONE]."""
    from tests.support.waiting import wait_until

    headers, key_id = keyed()
    r = client.post("/v1/chat/completions", json={**HELLO, "stream": True}, headers=headers)
    assert r.status_code == 200 and b"cost" not in r.get_data()

    def usage_cost():
        _flush(gateway)
        return client.get(f"/_admin/api-keys/{key_id}/usage?days=1", headers=admin_headers).get_json()["today"]["cost"]

    assert wait_until(lambda: usage_cost() > 0, 10)
    assert usage_cost() == pytest.approx(0.0012)
    [row] = client.get("/_stats/requests?bodies=0", headers=admin_headers).get_json()["requests"]
    assert row["cost"] == pytest.approx(0.0012)
    keys = client.get("/_stats", headers=admin_headers).get_json()["keys"]
    assert next(k for k in keys if k["name"] == "family")["cost"] == pytest.approx(0.0012)
