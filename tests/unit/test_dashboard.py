"""The dashboard's server side: the page and its headers, the cookie session, CSRF, ``GET /``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.gateway import ADMIN_PASSWORD

STATIC = Path(__file__).resolve().parents[2] / "zengate" / "web" / "dashboard" / "static"
CSRF = {"X-Zengate-CSRF": "1"}


def cookie_login(client, **extra):
    return client.post("/_admin/login", json={"password": ADMIN_PASSWORD, "cookie": True}, **extra)


def set_cookie_header(response) -> str:
    return next(v for k, v in response.headers.items() if k == "Set-Cookie" and v.startswith("zengate_admin="))


# --- the page ------------------------------------------------------------------------------------

def test_page_has_strict_security_headers(client):
    r = client.get("/_admin/ui")
    assert r.status_code == 200 and r.mimetype == "text/html"
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
    assert "default-src 'none'" in csp and "style-src 'self'" in csp
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "no-store"
    assert client.get("/_admin/ui/").status_code == 200


def test_page_has_no_inline_script_or_style(client):
    html = client.get("/_admin/ui").get_data(as_text=True)
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all(re.search(r'\bsrc="/_admin/ui/static/[\w.]+\.js', s) for s in scripts)
    assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=", html)
    labelled = set(re.findall(r'<label[^>]*\bfor="([^"]+)"', html))
    for control in re.findall(r"<(?:input|select|textarea)\b[^>]*>", html):
        if 'type="radio"' in control or "hidden" in control:
            continue
        ident = re.search(r'\bid="([^"]+)"', control)
        assert ident and ident.group(1) in labelled, f"unlabelled control: {control}"


def test_static_files_and_their_imports(client):
    for name in ("app.js", "app.css", "icon.svg"):
        r = client.get(f"/_admin/ui/static/{name}")
        assert r.status_code == 200 and r.headers["X-Content-Type-Options"] == "nosniff", name
    assert client.get("/_admin/ui/static/app.js").mimetype in ("text/javascript", "application/javascript")
    modules = sorted(STATIC.glob("*.js"))
    assert len(modules) >= 8, STATIC  # the checks below must have files to check
    for module in modules:
        text = module.read_text()
        for imported in re.findall(r'from "\./([\w.]+)"', text):
            assert (STATIC / imported).exists(), f"{module.name} imports a missing {imported}"
        assert not re.search(r"\.(inner|outer)HTML\b|insertAdjacentHTML|document\.write", text), module.name
        assert not re.search(r"\b(local|session)Storage\s*[.\[]|document\.cookie", text), module.name


def test_proxy_panel_flag_follows_the_proxy_api(app, client):
    html = client.get("/_admin/ui").get_data(as_text=True)
    has_proxy_api = any(rule.rule == "/_admin/proxy" for rule in app.url_map.iter_rules())
    assert f'data-proxy-api="{"true" if has_proxy_api else "false"}"' in html


def test_root_redirects_browsers_only(client):
    r = client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert r.status_code == 302 and r.headers["Location"].endswith("/_admin/ui")
    assert "Accept" in r.headers["Vary"]
    r = client.get("/")
    assert r.status_code == 200 and r.get_json()["name"] == "zengate"
    r = client.get("/", headers={"Accept": "application/json"})
    assert r.status_code == 200 and r.get_json()["name"] == "zengate"
    r = client.head("/", headers={"Accept": "text/html"})
    assert r.status_code == 200 and r.mimetype == "application/json"


def test_models_for_suggestions_need_an_admin(client, admin_headers):
    assert client.get("/_admin/ui/models").status_code == 401
    models = client.get("/_admin/ui/models", headers=admin_headers).get_json()["models"]
    assert "big-pickle" in [m["id"] for m in models] and all(m["name"] for m in models)


# --- the cookie session ----------------------------------------------------------------------------

def test_cookie_login_sets_an_httponly_strict_cookie(client):
    assert client.get("/_admin/session").get_json() == {"authenticated": False}
    r = cookie_login(client)
    assert r.status_code == 200
    body = r.get_json()
    assert "token" not in body and body["cookie"] is True and body["expires_at"]
    header = set_cookie_header(r)
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/" in header and "Expires=" in header
    assert "Secure" not in header  # plain http on loopback
    token = client.get_cookie("zengate_admin").value
    assert token.startswith("zgs_") and token not in r.get_data(as_text=True)
    session = client.get("/_admin/session").get_json()
    assert session["authenticated"] is True and session["default_password"] is False
    assert client.get("/_admin/settings").status_code == 200
    assert client.get("/_stats").status_code == 200


def test_cookie_is_secure_over_https(client):
    r = cookie_login(client, base_url="https://gateway.example")
    assert "Secure" in set_cookie_header(r)


def test_cookie_login_input_and_wrong_password(client):
    r = client.post("/_admin/login", json={"password": "nope", "cookie": True})
    assert r.status_code == 401 and "Set-Cookie" not in r.headers
    r = client.post("/_admin/login", json={"password": ADMIN_PASSWORD, "cookie": "yes"})
    assert r.status_code == 400 and r.get_json()["error"]["param"] == "cookie"
    r = client.post("/_admin/login", json={"password": ADMIN_PASSWORD})  # bearer login unchanged
    assert r.get_json()["token"].startswith("zgs_") and "Set-Cookie" not in r.headers


def test_cookie_sessions_need_the_csrf_header_to_change_anything(client):
    cookie_login(client)
    refused = client.post("/_admin/api-keys", json={"name": "x"})
    assert refused.status_code == 403 and refused.get_json()["error"]["param"] == "X-Zengate-CSRF"
    assert client.post("/_admin/settings", json={"key": "require_auth", "value": True}).status_code == 403
    assert client.post("/_stats/clear").status_code == 403
    assert client.post("/_admin/logout").status_code == 403
    assert client.get("/_admin/settings").get_json()["settings"]["require_auth"] is False
    assert client.post("/_admin/api-keys", json={"name": "x"}, headers=CSRF).status_code == 201
    assert client.post("/_stats/clear", headers=CSRF).status_code == 200
    assert client.get("/_admin/api-keys").status_code == 200  # reading needs no header


def test_bearer_sessions_are_unchanged(app, admin_headers):
    fresh = app.test_client()  # no cookie at all
    assert fresh.post("/_admin/api-keys", json={"name": "x"}, headers=admin_headers).status_code == 201
    assert fresh.post("/_stats/clear", headers=admin_headers).status_code == 200


def test_logout_ends_the_cookie_session(client):
    cookie_login(client)
    r = client.post("/_admin/logout", headers=CSRF)
    assert r.status_code == 200
    assert "zengate_admin=;" in set_cookie_header(r) or "Max-Age=0" in set_cookie_header(r)
    assert client.get_cookie("zengate_admin") is None
    assert client.get("/_admin/session").get_json() == {"authenticated": False}


def test_stale_cookie_is_refused(app):
    first = app.test_client()
    cookie_login(first)
    stolen = first.get_cookie("zengate_admin").value
    first.post("/_admin/logout", headers=CSRF)
    other = app.test_client()
    other.set_cookie("zengate_admin", stolen)
    assert other.get("/_admin/settings").status_code == 401


@pytest.mark.parametrize("new_password", ["a-longer-password"])
def test_password_change_renews_the_cookie(client, new_password):
    cookie_login(client)
    old = client.get_cookie("zengate_admin").value
    r = client.post("/_admin/change-password", headers=CSRF,
                    json={"current_password": ADMIN_PASSWORD, "new_password": new_password})
    assert r.status_code == 200 and "token" not in r.get_json()
    new = client.get_cookie("zengate_admin").value
    assert new != old and "HttpOnly" in set_cookie_header(r)
    assert client.get("/_admin/settings").status_code == 200
    client.set_cookie("zengate_admin", old)
    assert client.get("/_admin/settings").status_code == 401
