"""The original Zen Gateway's admin API, replayed call by call with its documented bodies.

Operators coming from it script these calls as they are documented: every value a string
(``{"key": "require_auth", "value": "true"}``), ``old_password`` for the current password, and the
setting ``proxy_enabled``. Each call's status and body are checked, then its effect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.gateway import ADMIN_PASSWORD

NEW_PASSWORD = "a-new-admin-password"
HELLO = {"model": "big-pickle", "messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Call:
    """One documented call: its body (or a function of what earlier calls answered), the status and
    body expected, and a check of its effect on the gateway."""

    what: str
    method: str
    path: str
    body: dict | Callable[[dict], dict] | None
    status: int
    answer: Callable[[Any, dict], None]
    effect: Callable[[Any, dict], None] = field(default=lambda client, ctx: None)


def _login_answer(body, ctx):
    assert body["token"].startswith("zgs_") and body["expires_at"] and body["default_password"] is False
    ctx["token"] = body["token"]


def _key_created(body, ctx):
    assert body["key"].startswith("sk-zen-") and body["name"] == "laptop" and body["active"] is True
    assert body["prefix"] == body["key"][: len(body["prefix"])]
    ctx["key"], ctx["key_id"] = body["key"], body["id"]


def _settings_listed(body, ctx):
    assert body["settings"]["require_auth"] is False
    assert body["settings"]["proxy_enabled"] is False and body["settings"]["proxy_mode"] == "off"
    alias = body["describe"]["proxy_enabled"]
    assert alias["type"] == "boolean" and alias["alias_of"] == "proxy_mode" and alias["value"] is False


def _echo(key, value):
    def check(body, ctx):
        assert body == {"key": key, "value": value, "applies": body["applies"]}  # applies: ours, added
    return check


def _keyless_call_refused(client, ctx):
    r = client.post("/v1/chat/completions", json=HELLO)
    assert r.status_code == 401
    error = r.get_json()["error"]
    assert error["code"] == "invalid_api_key" and error["type"] == "authentication_error"
    assert error["message"].startswith("this gateway requires an API key")


def _keyless_call_served(client, ctx):
    r = client.post("/v1/chat/completions", json=HELLO)
    assert r.status_code == 200 and r.get_json()["object"] == "chat.completion"


def _setting_is(name, value):
    def check(client, ctx):
        listed = client.get("/_admin/settings", headers=_auth(ctx)).get_json()["settings"]
        assert listed[name] == value, (name, listed[name])
    return check


def _proxy_mode_is(mode):
    def check(client, ctx):
        status = client.get("/_admin/proxy", headers=_auth(ctx)).get_json()
        assert status["mode"] == mode and status["enabled"] is (mode != "off")
        _setting_is("proxy_enabled", mode != "off")(client, ctx)
    return check


def _password_changed(body, ctx):
    assert body["changed"] is True and body["token"].startswith("zgs_") and body["expires_at"]
    ctx["old_token"], ctx["token"] = ctx["token"], body["token"]


def _only_the_new_password_logs_in(client, ctx):
    assert client.get("/_admin/settings", headers={"Authorization": f"Bearer {ctx['old_token']}"}).status_code == 401
    assert client.post("/_admin/login", json={"password": ADMIN_PASSWORD}).status_code == 401
    assert client.post("/_admin/login", json={"password": NEW_PASSWORD}).status_code == 200


def _session_ended(client, ctx):
    r = client.get("/_admin/settings", headers=_auth(ctx))
    assert r.status_code == 401 and r.get_json()["error"]["message"].startswith("admin login required")


def _key_listed(body, ctx):
    assert [k["id"] for k in body["keys"]] == [ctx["key_id"]] and body["keys"][0]["active"] is True
    assert "key" not in body["keys"][0]  # the key itself is shown once, at creation


def _key_revoked(client, ctx):
    keys = client.get("/_admin/api-keys", headers=_auth(ctx)).get_json()["keys"]
    assert [(k["id"], k["active"]) for k in keys] == [(ctx["key_id"], False)]


def _auth(ctx: dict) -> dict:
    return {"Authorization": f"Bearer {ctx['token']}"}


ORIGINAL_API = [
    Call("log in", "POST", "/_admin/login", {"password": ADMIN_PASSWORD}, 200, _login_answer),
    Call("list keys (none yet)", "GET", "/_admin/api-keys", None, 200, lambda body, ctx: body == {"keys": []}),
    Call("create a key", "POST", "/_admin/api-keys", {"name": "laptop"}, 201, _key_created),
    Call("list keys", "GET", "/_admin/api-keys", None, 200, _key_listed),
    Call("revoke the key", "POST", "/_admin/api-keys/delete", lambda ctx: {"id": ctx["key_id"]}, 200,
         lambda body, ctx: body == {"revoked": True}, _key_revoked),
    Call("read the settings", "GET", "/_admin/settings", None, 200, _settings_listed),
    Call("require keys", "POST", "/_admin/settings", {"key": "require_auth", "value": "true"}, 200,
         _echo("require_auth", True), _keyless_call_refused),
    Call("stop requiring keys", "POST", "/_admin/settings", {"key": "require_auth", "value": "false"}, 200,
         _echo("require_auth", False), _keyless_call_served),
    Call("a number as a string", "POST", "/_admin/settings", {"key": "max_attempts", "value": "3"}, 200,
         _echo("max_attempts", 3), _setting_is("max_attempts", 3)),
    Call("a float as a string", "POST", "/_admin/settings", {"key": "upstream_read_timeout", "value": "12.5"}, 200,
         _echo("upstream_read_timeout", 12.5), _setting_is("upstream_read_timeout", 12.5)),
    Call("turn the proxy on", "POST", "/_admin/settings", {"key": "proxy_enabled", "value": "true"}, 200,
         _echo("proxy_enabled", True), _proxy_mode_is("auto")),
    Call("turn the proxy off", "POST", "/_admin/settings", {"key": "proxy_enabled", "value": "false"}, 200,
         _echo("proxy_enabled", False), _proxy_mode_is("off")),
    Call("change the password", "POST", "/_admin/change-password",
         {"old_password": ADMIN_PASSWORD, "new_password": NEW_PASSWORD}, 200, _password_changed,
         _only_the_new_password_logs_in),
    Call("log out", "POST", "/_admin/logout", None, 200, lambda body, ctx: body == {"ok": True}, _session_ended),
]


def test_every_documented_call_works_as_documented(client):
    ctx: dict = {}
    for call in ORIGINAL_API:
        body = call.body(ctx) if callable(call.body) else call.body
        headers = _auth(ctx) if "token" in ctx else {}
        r = client.open(call.path, method=call.method, json=body, headers=headers)
        assert r.status_code == call.status, (call.what, r.status_code, r.get_json())
        answer = r.get_json()
        result = call.answer(answer, ctx)
        assert result is None or result is True, (call.what, answer)
        call.effect(client, ctx)


@pytest.mark.parametrize(("value", "mode_before", "mode_after"), [
    ("true", "off", "auto"), ("true", "on", "on"), ("true", "auto", "auto"), ("1", "off", "auto"),
    (True, "off", "auto"), ("false", "on", "off"), ("OFF", "auto", "off"), (False, "off", "off"),
])
def test_proxy_enabled_keeps_a_mode_that_is_on(client, admin_headers, value, mode_before, mode_after):
    client.post("/_admin/settings", json={"key": "proxy_mode", "value": mode_before}, headers=admin_headers)
    r = client.post("/_admin/settings", json={"key": "proxy_enabled", "value": value}, headers=admin_headers)
    assert r.status_code == 200 and r.get_json()["key"] == "proxy_enabled"
    assert r.get_json()["value"] is (mode_after != "off")
    assert client.get("/_admin/proxy", headers=admin_headers).get_json()["mode"] == mode_after


def test_proxy_enabled_through_the_proxy_api(client, admin_headers):
    r = client.post("/_admin/proxy/settings", json={"enabled": True}, headers=admin_headers)
    assert r.status_code == 200 and r.get_json()["mode"] == "auto" and r.get_json()["changed"] == {"mode": "auto"}
    r = client.post("/_admin/proxy/settings", json={"proxy_enabled": "false"}, headers=admin_headers)
    assert r.status_code == 200 and r.get_json()["mode"] == "off"
    # with the mode in the same body: enabled reads it, and must agree with it
    r = client.post("/_admin/proxy/settings", json={"enabled": "true", "mode": "on"}, headers=admin_headers)
    assert r.status_code == 200 and r.get_json()["mode"] == "on"
    r = client.post("/_admin/proxy/settings", json={"enabled": False, "mode": "auto"}, headers=admin_headers)
    assert r.status_code == 400
    assert r.get_json()["error"] == {"message": "enabled: contradicts mode (auto) in the same body",
                                     "type": "invalid_request_error", "param": "enabled", "code": None}
    r = client.post("/_admin/proxy/settings", json={"enabled": "sometimes"}, headers=admin_headers)
    assert r.status_code == 400 and r.get_json()["error"]["param"] == "enabled"
    assert client.get("/_admin/proxy", headers=admin_headers).get_json()["mode"] == "on"  # nothing stored


def test_proxy_settings_answer_strings_too(client, admin_headers):
    r = client.post("/_admin/proxy/settings", json={"min_uptime": "95", "geonode": "off"}, headers=admin_headers)
    assert r.status_code == 200 and r.get_json()["changed"] == {"min_uptime": 95, "geonode": False}


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("require_auth", "yes please", 'must be true or false (or the strings "true"/"false", "1"/"0", "on"/"off"), '
                                   'got "yes please"'),
    ("proxy_enabled", "enabled", 'must be true or false (or the strings'),
    ("max_attempts", "12abc", 'must be a whole number (or a string holding one), got "12abc"'),
    ("max_attempts", "1.5", "must be a whole number, got 1.5"),
    ("max_attempts", "50", "must be at most 20, got 50"),
    ("max_attempts", True, "must be a number, got true"),
    ("upstream_read_timeout", "nan", 'must be a number (or a string holding one), got "nan"'),
    ("upstream_read_timeout", "inf", 'must be a number (or a string holding one), got "inf"'),
    ("upstream_read_timeout", "1e400", "must be a finite number"),
])
def test_bad_strings_are_refused_naming_the_setting(client, admin_headers, key, value, needle):
    before = client.get("/_admin/settings", headers=admin_headers).get_json()["settings"]
    r = client.post("/_admin/settings", json={"key": key, "value": value}, headers=admin_headers)
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert error["param"] == key and error["message"].startswith(f"{key}: ") and needle in error["message"]
    assert error["type"] == "invalid_request_error"
    assert client.get("/_admin/settings", headers=admin_headers).get_json()["settings"] == before


def test_old_password_wrong_is_a_403_naming_it(client, admin_headers):
    r = client.post("/_admin/change-password", headers=admin_headers,
                    json={"old_password": "not-the-password", "new_password": NEW_PASSWORD})
    assert r.status_code == 403
    assert r.get_json()["error"] == {"message": "old_password: wrong password", "type": "permission_error",
                                     "param": "old_password", "code": None}
    assert client.get("/_admin/settings", headers=admin_headers).status_code == 200  # nothing changed


def test_old_and_current_password_must_agree(client, admin_headers):
    r = client.post("/_admin/change-password", headers=admin_headers,
                    json={"old_password": ADMIN_PASSWORD, "current_password": "something-else",
                          "new_password": NEW_PASSWORD})
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert error["param"] == "old_password" and "current_password and old_password differ" in error["message"]
    assert client.post("/_admin/login", json={"password": ADMIN_PASSWORD}).status_code == 200  # unchanged
    # both, the same: accepted
    r = client.post("/_admin/change-password", headers=admin_headers,
                    json={"old_password": ADMIN_PASSWORD, "current_password": ADMIN_PASSWORD,
                          "new_password": NEW_PASSWORD})
    assert r.status_code == 200 and r.get_json()["changed"] is True


@pytest.mark.parametrize(("body", "param"), [
    ({"old_password": "", "new_password": NEW_PASSWORD}, "old_password"),
    ({"old_password": 5, "new_password": NEW_PASSWORD}, "old_password"),
    ({"new_password": NEW_PASSWORD}, "current_password"),
    ({"old_password": ADMIN_PASSWORD, "new_password": "short"}, "new_password"),
])
def test_change_password_errors_name_the_field_used(client, admin_headers, body, param):
    r = client.post("/_admin/change-password", headers=admin_headers, json=body)
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert error["param"] == param and error["message"].startswith(f"{param}: ")
