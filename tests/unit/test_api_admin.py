"""The admin API: login, keys, settings validation, password change."""

from __future__ import annotations

import pytest

from tests.support.gateway import ADMIN_PASSWORD


def test_login_wrong_and_right(client):
    r = client.post("/_admin/login", json={"password": "nope"})
    assert r.status_code == 401 and r.get_json()["error"]["message"] == "wrong password"
    r = client.post("/_admin/login", json={})
    assert r.status_code == 400 and r.get_json()["error"]["message"].startswith("password:")
    r = client.post("/_admin/login", data="not json", content_type="application/json")
    assert r.status_code == 400
    r = client.post("/_admin/login", json={"password": ADMIN_PASSWORD})
    assert r.status_code == 200 and r.get_json()["token"].startswith("zgs_") and r.get_json()["expires_at"]


def test_logout_ends_the_session(client, admin_headers):
    assert client.get("/_admin/settings", headers=admin_headers).status_code == 200
    assert client.post("/_admin/logout", headers=admin_headers).status_code == 200
    assert client.get("/_admin/settings", headers=admin_headers).status_code == 401


def test_settings_listing_hides_private_values(client, admin_headers):
    body = client.get("/_admin/settings", headers=admin_headers).get_json()
    assert body["settings"]["require_auth"] is False
    assert body["settings"]["opencode_project"] == "global"
    assert body["settings"]["opencode_session"].startswith("ses_")
    assert "admin_password_hash" not in body["settings"] and "admin_password_hash" not in body["describe"]


@pytest.mark.parametrize(("payload", "param", "needle"), [
    ({"key": "nope", "value": 1}, "key", "unknown setting"),
    ({"key": "require_auth", "value": "yes"}, "require_auth", "true or false"),
    ({"key": "max_body_bytes", "value": -5}, "max_body_bytes", "at least"),
    ({"key": "max_body_bytes", "value": 1.5}, "max_body_bytes", "whole number"),
    ({"key": "upstream_read_timeout", "value": "fast"}, "upstream_read_timeout", "number"),
    ({"key": "opencode_project", "value": "a\nb"}, "opencode_project", "one line"),
    ({"key": "opencode_session", "value": "ses_bad"}, "opencode_session", "ses_"),
    ({"key": "model_map", "value": {"gpt": "x"}}, "model_map", "unknown family"),
    ({"key": "model_protocols", "value": {"m": "grpc"}}, "model_protocols", "protocol"),
    ({"key": "admin_password_hash", "value": "x"}, "key", "unknown setting"),
    ({"value": 1}, "key", "required"),
    ({"key": "require_auth"}, "value", "required"),
])
def test_bad_settings_are_refused_naming_them(client, admin_headers, payload, param, needle):
    r = client.post("/_admin/settings", json=payload, headers=admin_headers)
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert error["param"] == param and needle in error["message"]


def test_setting_roundtrip_and_effect(client, admin_headers, upstream):
    r = client.post("/_admin/settings", json={"key": "opencode_project", "value": "myproj"}, headers=admin_headers)
    assert {k: v for k, v in r.get_json().items() if k != "applies"} == {"key": "opencode_project", "value": "myproj"}
    client.post("/v1/chat/completions", json={"model": "big-pickle", "messages": [{"role": "user", "content": "x"}]})
    assert upstream.requests[-1].headers["x-opencode-project"] == "myproj"
    client.post("/_admin/settings", json={"key": "user_agent", "value": "opencode/9.9"}, headers=admin_headers)
    client.post("/v1/chat/completions", json={"model": "big-pickle", "messages": [{"role": "user", "content": "x"}]})
    assert upstream.requests[-1].headers["user-agent"] == "opencode/9.9"


def test_keys_api(client, admin_headers):
    r = client.post("/_admin/api-keys", json={"name": "ci"}, headers=admin_headers)
    assert r.status_code == 201
    created = r.get_json()
    assert created["key"].startswith("sk-zen-") and created["active"] is True
    keys = client.get("/_admin/api-keys", headers=admin_headers).get_json()["keys"]
    assert [k["prefix"] for k in keys] == [created["prefix"]] and "key" not in keys[0]
    bad = client.post("/_admin/api-keys/delete", json={"id": "one"}, headers=admin_headers)
    assert bad.status_code == 400 and bad.get_json()["error"]["param"] == "id"
    assert client.post("/_admin/api-keys/delete", json={}, headers=admin_headers).status_code == 400
    assert client.post("/_admin/api-keys/delete", json={"id": 999}, headers=admin_headers).status_code == 404
    assert client.post("/_admin/api-keys", json={"name": 5}, headers=admin_headers).status_code == 400
    r = client.post("/_admin/api-keys/delete", json={"id": created["id"]}, headers=admin_headers)
    assert r.get_json() == {"revoked": True}
    assert client.get("/_admin/api-keys", headers=admin_headers).get_json()["keys"][0]["active"] is False


def test_change_password(client, admin_headers):
    r = client.post("/_admin/change-password", headers=admin_headers,
                    json={"current_password": "wrong", "new_password": "long-enough-1"})
    assert r.status_code == 403
    r = client.post("/_admin/change-password", headers=admin_headers,
                    json={"current_password": ADMIN_PASSWORD, "new_password": "short"})
    assert r.status_code == 400 and r.get_json()["error"]["param"] == "new_password"
    r = client.post("/_admin/change-password", headers=admin_headers,
                    json={"current_password": ADMIN_PASSWORD, "new_password": "long-enough-1"})
    assert r.status_code == 200
    assert client.get("/_admin/settings", headers=admin_headers).status_code == 401  # old sessions revoked
    new = {"Authorization": f"Bearer {r.get_json()['token']}"}
    assert client.get("/_admin/settings", headers=new).status_code == 200
    assert client.post("/_admin/login", json={"password": "long-enough-1"}).status_code == 200


def test_stats_pagination_validation(client, admin_headers):
    assert client.get("/_stats/requests?limit=0", headers=admin_headers).status_code == 400
    assert client.get("/_stats/requests?limit=abc", headers=admin_headers).status_code == 400
    assert client.get("/_stats/requests?offset=-1", headers=admin_headers).status_code == 400
    body = client.get("/_stats/requests?limit=5&offset=0", headers=admin_headers).get_json()
    assert (body["total"], body["limit"], body["offset"], body["requests"]) == (0, 5, 0, [])


# --- settings that hold credentials ----------------------------------------------------------------

PROXY_SECRET = "pr0xy-s3cret"
PROXIES = f"http://alice:{PROXY_SECRET}@10.0.0.1:8080, socks5h://bob:{PROXY_SECRET}2@10.0.0.2:1080"
MASKED = "http://alice:***@10.0.0.1:8080,socks5h://bob:***@10.0.0.2:1080"


def _every_admin_answer(app, client, headers) -> str:
    """The text of every readable admin, stats and metrics answer."""
    texts = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/_admin", "/_stats", "/metrics")) and "GET" in rule.methods and "<" not in rule.rule:
            texts.append(client.get(rule.rule, headers=headers).get_data(as_text=True))
    return "\n".join(texts)


def _static_proxies(gateway) -> list[tuple[str, str | None, str | None]]:
    gateway.egress.sync_static()
    return [(p.label, p.username, p.password) for p in gateway.egress.pool.proxies() if p.source == "static"]


@pytest.mark.parametrize("path", ["/_admin/settings", "/_admin/proxy/settings"])
def test_proxy_credentials_are_shown_masked_and_kept_on_a_round_trip(app, client, admin_headers, gateway, path):
    def post(value):
        body = {"key": "proxy_static", "value": value} if path == "/_admin/settings" else {"static": value}
        return client.post(path, json=body, headers=admin_headers)

    r = post(PROXIES)
    assert r.status_code == 200
    echoed = r.get_json()["value"] if path == "/_admin/settings" else r.get_json()["changed"]["static"]
    assert echoed == MASKED
    listed = client.get("/_admin/settings", headers=admin_headers).get_json()
    assert listed["settings"]["proxy_static"] == MASKED and listed["describe"]["proxy_static"]["value"] == MASKED
    assert listed["describe"]["proxy_static"]["masked"] == "***"
    assert client.get("/_admin/proxy", headers=admin_headers).get_json()["settings"]["static"] == MASKED
    assert PROXY_SECRET not in _every_admin_answer(app, client, admin_headers)
    assert _static_proxies(gateway) == [("10.0.0.1:8080", "alice", PROXY_SECRET),
                                        ("10.0.0.2:1080", "bob", PROXY_SECRET + "2")]

    # the dashboard posts the masked value back, with one entry added: the stored passwords stay
    r = post(MASKED + ",http://10.0.0.3:3128")
    assert r.status_code == 200
    assert _static_proxies(gateway) == [("10.0.0.1:8080", "alice", PROXY_SECRET),
                                        ("10.0.0.2:1080", "bob", PROXY_SECRET + "2"), ("10.0.0.3:3128", None, None)]
    # a real password replaces the stored one; a masked entry for a proxy not stored is refused
    r = post("http://alice:n3w-pass@10.0.0.1:8080,socks5h://bob:***@10.0.0.2:1080")
    assert r.status_code == 200
    assert _static_proxies(gateway) == [("10.0.0.1:8080", "alice", "n3w-pass"),
                                        ("10.0.0.2:1080", "bob", PROXY_SECRET + "2")]
    r = post("http://carol:***@10.0.0.1:8080")
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert "http://carol:***@10.0.0.1:8080: *** stands for the stored password" in error["message"]
    assert error["param"] in ("proxy_static", "static")
    assert _static_proxies(gateway)[0] == ("10.0.0.1:8080", "alice", "n3w-pass")  # nothing stored
    assert "n3w-pass" not in _every_admin_answer(app, client, admin_headers)


def test_a_proxy_list_stored_as_raw_text_is_shown_masked(client, admin_headers, gateway):
    """The "" shown while the database held a list with credentials: a row written without JSON
    quotes (by hand, or by another tool) was dropped as unreadable, and the egress had no list either."""
    from zengate.store.models import Setting

    Setting.insert(key="proxy_static", value=f"http://alice:{PROXY_SECRET}@10.0.0.1:8080").execute()
    listed = client.get("/_admin/settings", headers=admin_headers).get_json()["settings"]
    assert listed["proxy_static"] == "http://alice:***@10.0.0.1:8080"
    assert _static_proxies(gateway) == [("10.0.0.1:8080", "alice", PROXY_SECRET)]


def test_two_names_for_the_proxy_list_in_one_body_never_repeat_a_password(client, admin_headers):
    r = client.post("/_admin/proxy/settings", headers=admin_headers,
                    json={"static": f"http://alice:{PROXY_SECRET}@10.0.0.1:8080", "proxy_static": "http://10.0.0.2:80"})
    assert r.status_code == 400
    assert r.get_json()["error"]["message"] == (
        "proxy_static: contradicts static (http://alice:***@10.0.0.1:8080) in the same body")
