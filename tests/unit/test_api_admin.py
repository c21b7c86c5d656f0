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
    assert r.get_json() == {"key": "opencode_project", "value": "myproj"}
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
