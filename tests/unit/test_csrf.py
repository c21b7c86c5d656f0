"""CSRF defence in depth: a state-changing admin call that a browser marks as coming from another
site (``Sec-Fetch-Site``, or ``Origin`` when that is missing) is refused, whatever credentials it
carries; same-origin pages, non-browser clients and read-only calls are not affected."""

from __future__ import annotations

import re

import pytest

from tests.support.gateway import ADMIN_PASSWORD

EVIL = "https://evil.example"
CSRF = {"X-Zengate-CSRF": "1"}
ADMIN_PREFIXES = ("/_admin", "/_stats", "/metrics")


@pytest.fixture
def cookie_client(client):
    """A client holding the dashboard's session cookie."""
    r = client.post("/_admin/login", json={"password": ADMIN_PASSWORD, "cookie": True})
    assert r.status_code == 200 and r.get_json()["cookie"] is True
    return client


def _keys(client, headers) -> list[str]:
    return [k["name"] for k in client.get("/_admin/api-keys", headers=headers).get_json()["keys"]]


def test_a_foreign_origin_is_refused_even_with_the_csrf_header(cookie_client):
    r = cookie_client.post("/_admin/api-keys", json={"name": "evil"}, headers={**CSRF, "Origin": EVIL})
    assert r.status_code == 403
    assert r.get_json()["error"] == {
        "message": "Origin: https://evil.example is not this gateway's origin (http://localhost): state-changing "
                   "admin calls from another site's page are refused",
        "type": "permission_error", "param": "Origin", "code": None}
    assert _keys(cookie_client, {}) == []  # nothing was created


@pytest.mark.parametrize("site", ["cross-site", "same-site", "Cross-Site"])
def test_sec_fetch_site_from_another_site_is_refused(cookie_client, site):
    r = cookie_client.post("/_admin/api-keys", json={"name": "evil"}, headers={**CSRF, "Sec-Fetch-Site": site})
    assert r.status_code == 403
    error = r.get_json()["error"]
    assert error["param"] == "Sec-Fetch-Site" and error["type"] == "permission_error"
    assert error["message"].startswith(f"Sec-Fetch-Site: {site.lower()}: state-changing admin calls are accepted "
                                       "only from this gateway's own pages")
    assert _keys(cookie_client, {}) == []


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
    {"Sec-Fetch-Site": "same-origin"},
    {"Origin": "http://localhost"},
    {"Origin": "http://LOCALHOST:80"},  # the default port spelt out, the host in capitals
    # a reverse proxy that rewrites Host makes a same-origin page's Origin look foreign: the browser's
    # own Sec-Fetch-Site (which no page script can set) decides
    {"Sec-Fetch-Site": "same-origin", "Origin": "https://gateway.example"},
    {},  # not a browser
])
def test_same_origin_pages_and_other_clients_are_served(cookie_client, headers):
    r = cookie_client.post("/_admin/api-keys", json={"name": "mine"}, headers={**CSRF, **headers})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["name"] == "mine" and _keys(cookie_client, {}) == ["mine"]


@pytest.mark.parametrize("origin", ["null", "http://localhost:8080", "https://localhost", "http://localhost.evil.example",
                                    "file://", "not a url", "http://[::1"])
def test_origins_other_than_our_own_are_refused(cookie_client, origin):
    r = cookie_client.post("/_admin/settings", json={"key": "require_auth", "value": True},
                           headers={**CSRF, "Origin": origin})
    assert r.status_code == 403 and r.get_json()["error"]["param"] == "Origin"
    assert r.get_json()["error"]["message"].startswith(f"Origin: {origin} is not this gateway's origin")
    assert cookie_client.get("/_admin/settings").get_json()["settings"]["require_auth"] is False


def test_reading_with_a_foreign_origin_is_allowed(cookie_client, admin_headers):
    for headers in ({"Origin": EVIL}, {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}):
        r = cookie_client.get("/_admin/settings", headers=headers)
        assert r.status_code == 200 and r.get_json()["settings"]["require_auth"] is False
        assert "Access-Control-Allow-Origin" not in r.headers  # readable by that site's page: no
        assert cookie_client.get("/_stats", headers={**headers, **admin_headers}).status_code == 200


def test_bearer_tokens_are_held_to_the_same_rule(client, admin_headers):
    r = client.post("/_admin/api-keys", json={"name": "script"}, headers=admin_headers)
    assert r.status_code == 201  # a script: no Origin, no Sec-Fetch-Site
    r = client.post("/_admin/api-keys", json={"name": "evil"}, headers={**admin_headers, "Origin": EVIL})
    assert r.status_code == 403 and r.get_json()["error"]["param"] == "Origin"
    assert _keys(client, admin_headers) == ["script"]


def test_login_from_another_site_is_refused_and_sets_no_cookie(client):
    for headers in ({"Origin": EVIL}, {"Sec-Fetch-Site": "cross-site"}):
        r = client.post("/_admin/login", json={"password": ADMIN_PASSWORD, "cookie": True}, headers=headers)
        assert r.status_code == 403 and "Set-Cookie" not in r.headers
        assert r.get_json()["error"]["param"] in ("Origin", "Sec-Fetch-Site")
    # not counted as failed logins, and our own page still logs in
    r = client.post("/_admin/login", json={"password": ADMIN_PASSWORD, "cookie": True},
                    headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 200 and "zengate_admin=" in r.headers["Set-Cookie"]


def test_every_state_changing_admin_route_refuses_another_site(app, admin_headers):
    """Walks the url_map: a state-changing route added later is covered, or this fails."""
    client = app.test_client()
    checked = []
    changing = [(rule, method) for rule in app.url_map.iter_rules() if rule.rule.startswith(ADMIN_PREFIXES)
                for method in sorted(rule.methods - {"GET", "HEAD", "OPTIONS"})]
    for rule, method in changing:
        url = re.sub(r"<[^>]+>", "1", rule.rule)  # every variable filled in
        for foreign in ({"Origin": EVIL}, {"Sec-Fetch-Site": "cross-site"}):
            r = client.open(url, method=method, json={}, headers={**admin_headers, **CSRF, **foreign})
            assert r.status_code == 403, (method, url, r.status_code, r.get_data(as_text=True)[:200])
            assert r.get_json()["error"]["param"] == next(iter(foreign)), (method, url)
        checked.append((method, url))
    for expected in [("POST", "/_admin/login"), ("POST", "/_admin/logout"), ("POST", "/_admin/settings"),
                     ("POST", "/_admin/change-password"), ("POST", "/_admin/proxy/toggle"),
                     ("POST", "/_admin/proxy/settings"), ("POST", "/_stats/clear"),
                     ("POST", "/_admin/metrics-token"), ("DELETE", "/_admin/metrics-token")]:
        assert expected in checked, expected
    assert client.get("/_admin/settings", headers=admin_headers).status_code == 200  # the session still works


def test_an_https_gateway_compares_the_scheme_too(make_app):
    client = make_app().test_client()
    r = client.post("/_admin/login", json={"password": ADMIN_PASSWORD}, base_url="https://gw.example",
                    headers={"Origin": "https://gw.example"})
    assert r.status_code == 200
    token = {"Authorization": f"Bearer {r.get_json()['token']}"}
    r = client.post("/_admin/logout", base_url="https://gw.example", headers={**token, "Origin": "http://gw.example"})
    assert r.status_code == 403 and "(https://gw.example)" in r.get_json()["error"]["message"]
