"""Every admin, stats and metrics route refuses a request without credentials.

The routes are read from ``app.url_map``, so a route added later without an auth check fails here.
"""

from __future__ import annotations

import re

import pytest

GUARDED_PREFIXES = ("/_admin", "/_stats", "/metrics")
#: Meant to be reachable without a session: logging in, asking whether a session is live, and the
#: dashboard's page and static files (the page shows the login form; its data comes from guarded APIs).
PUBLIC_ENDPOINTS = {"admin.login", "admin.session", "dashboard.page", "dashboard.static"}


def _url(rule) -> str:
    """The rule's path with every variable filled in (``1`` suits int and string converters alike)."""
    return re.sub(r"<[^>]+>", "1", rule.rule)


def guarded_routes(app):
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(GUARDED_PREFIXES) or rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        for method in sorted(rule.methods - {"OPTIONS"}):
            yield rule, method


def test_the_walk_finds_the_routes(app):
    found = {(_url(rule), method) for rule, method in guarded_routes(app)}
    for expected in [("/_admin/api-keys", "GET"), ("/_admin/api-keys", "POST"), ("/_admin/settings", "POST"),
                     ("/_stats", "GET"), ("/_stats/requests/1", "GET"), ("/metrics", "GET"),
                     ("/_admin/proxy/toggle", "POST"), ("/_admin/logout", "POST"), ("/_admin/ui/models", "GET"),
                     ("/_admin/metrics-token", "DELETE")]:
        assert expected in found, expected
    assert not any(url.startswith("/_admin/login") for url, _ in found)


@pytest.mark.parametrize("credentials", ["none", "bad-bearer", "bad-cookie"])
def test_every_guarded_route_refuses_without_auth(app, credentials):
    client = app.test_client()
    headers = {}
    if credentials == "bad-bearer":
        headers["Authorization"] = "Bearer zgs_not-a-real-session"
    elif credentials == "bad-cookie":
        client.set_cookie("zengate_admin", "zgs_not-a-real-session")
        headers["X-Zengate-CSRF"] = "1"
    checked = []
    for rule, method in guarded_routes(app):
        url = _url(rule)
        r = client.open(url, method=method, headers=headers, json={} if method not in ("GET", "HEAD") else None)
        assert r.status_code in (401, 403), (method, url, r.status_code, r.get_data(as_text=True)[:200])
        if method != "HEAD":
            assert "error" in r.get_json(), (method, url)
        checked.append((method, url))
    assert len(checked) >= 20, checked


def test_options_reveals_nothing(app):
    client = app.test_client()
    for rule, _ in guarded_routes(app):
        url = _url(rule)
        r = client.open(url, method="OPTIONS")
        assert r.status_code in (200, 401, 403), (url, r.status_code)
        assert "Access-Control-Allow-Origin" not in r.headers
        if r.status_code == 200:
            assert r.get_data() == b"", url  # only the Allow header of Flask's automatic answer
