"""CORS stays closed and every answer carries the security headers."""

from __future__ import annotations

import pytest

ORIGIN = "https://evil.example"
PREFLIGHT = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type, x-zengate-csrf"}


def _no_cors(r):
    assert not [name for name in r.headers.keys() if name.lower().startswith("access-control-")], dict(r.headers)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/models", "/_admin/login",
                                  "/_admin/settings", "/_stats", "/metrics", "/healthz", "/_admin/ui"])
def test_preflight_is_never_granted(client, path):
    r = client.options(path, headers=PREFLIGHT)
    _no_cors(r)
    assert r.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/v1/models", "/healthz", "/", "/_admin/session", "/_admin/settings", "/_stats",
                                  "/metrics", "/_admin/ui", "/nowhere"])
def test_get_with_an_origin_gets_no_cors_headers(client, admin_headers, path):
    for headers in ({"Origin": ORIGIN}, {"Origin": ORIGIN, **admin_headers}):
        r = client.get(path, headers=headers)
        _no_cors(r)
        assert r.headers["X-Content-Type-Options"] == "nosniff", path


def test_client_api_answers_and_errors_carry_nosniff(client, upstream):
    body = {"model": "big-pickle", "messages": [{"role": "user", "content": "hi"}]}
    r = client.post("/v1/chat/completions", json=body, headers={"Origin": ORIGIN})
    assert r.status_code == 200 and r.headers["X-Content-Type-Options"] == "nosniff"
    _no_cors(r)
    r = client.post("/v1/messages", data="{", content_type="application/json")
    assert r.status_code == 400 and r.headers["X-Content-Type-Options"] == "nosniff"


def test_admin_and_stats_json_is_never_cached(client, admin_headers):
    for path in ("/_admin/settings", "/_admin/api-keys", "/_stats", "/_stats/requests", "/_admin/proxy",
                 "/_admin/session", "/metrics"):
        r = client.get(path, headers=admin_headers)
        assert r.status_code == 200, path
        assert r.headers["Cache-Control"] == "no-store", path
        assert r.headers["X-Content-Type-Options"] == "nosniff", path
        assert r.headers["X-Frame-Options"] == "DENY", path
        assert r.headers["Referrer-Policy"] == "no-referrer", path
    for r in (client.post("/_admin/login", json={"password": "admin-test-password-x"}), client.get("/_stats")):
        assert r.status_code == 401 and r.headers["Cache-Control"] == "no-store"
    r = client.post("/_admin/api-keys", headers=admin_headers, json={"name": "x"})
    assert r.status_code == 201 and r.headers["Cache-Control"] == "no-store"  # the key is shown once: never cached


def test_dashboard_page_has_the_full_set(client):
    r = client.get("/_admin/ui")
    assert r.status_code == 200
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "no-store"


def test_nosniff_is_added_once_and_never_over_a_views_own(app):
    @app.get("/_test/own-nosniff")
    def _own():
        return "x", 200, {"x-content-type-options": "nosniff", "Content-Type": "text/plain"}

    r = app.test_client().get("/_test/own-nosniff")
    assert r.headers.getlist("X-Content-Type-Options") == ["nosniff"]
    r = app.test_client().get("/healthz")
    assert r.headers.getlist("X-Content-Type-Options") == ["nosniff"]


def test_a_cross_site_refusal_is_closed_too(client, admin_headers):
    r = client.post("/_admin/settings", json={"key": "require_auth", "value": True},
                    headers={**admin_headers, "Origin": ORIGIN})
    assert r.status_code == 403 and r.get_json()["error"]["param"] == "Origin"
    _no_cors(r)
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Cache-Control"] == "no-store"
