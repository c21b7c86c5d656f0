"""Where the gateway listens decides who may use /v1 and whether the default password may serve."""

from __future__ import annotations

import socket

import pytest

from zengate import auth
from zengate.config import Config
from zengate.runtime import exposure
from zengate.runtime.exposure import Access
from zengate.settings import Settings
from zengate.store.models import AdminSession

CHAT = {"model": "big-pickle", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(("address", "loopback"), [
    ("127.0.0.1:8462", True), ("127.9.9.9:1", True), ("localhost:80", True), ("[::1]:80", True),
    ("[::ffff:127.0.0.1]:80", True), ("unix:/run/zengate.sock", True),
    ("0.0.0.0:80", False), ("[::]:80", False), ("10.0.0.5:80", False), ("192.168.1.2:80", False),
    ("[fe80::1%eth0]:80", False), ("203.0.113.7:443", False), ("example.com:80", False),
])
def test_loopback_addresses(address, loopback):
    assert exposure.is_loopback(address) is loopback


def test_socket_addresses_are_read_from_the_sockets_themselves(tmp_path):
    with socket.socket() as v4, socket.socket(socket.AF_INET6) as v6, socket.socket(socket.AF_UNIX) as unix:
        v4.bind(("127.0.0.1", 0))
        v6.bind(("::", 0))
        unix.bind(str(tmp_path / "s"))
        assert exposure.socket_address(v4) == f"127.0.0.1:{v4.getsockname()[1]}"
        assert exposure.socket_address(v6) == f"[::]:{v6.getsockname()[1]}"
        assert exposure.socket_address(unix) == f"unix:{tmp_path / 's'}"
        assert [exposure.is_loopback(exposure.socket_address(s)) for s in (v4, v6, unix)] == [True, False, True]
    assert exposure.configured_address(("0.0.0.0", 80)) == "0.0.0.0:80"
    assert exposure.configured_address(("::1", 80)) == "[::1]:80"
    assert exposure.configured_address("/run/z.sock") == "unix:/run/z.sock"


def test_access_rules():
    loopback = Access.of(["127.0.0.1:1", "unix:/s"])
    assert (loopback.public, loopback.keys_required, loopback.open_to_the_network) == (False, False, False)
    mixed = Access.of(["127.0.0.1:1", "0.0.0.0:2"])
    assert (mixed.public, mixed.keys_required, mixed.open_to_the_network) == (True, True, False)
    opened = Access.of(["0.0.0.0:2"], allow_public_without_keys=True)
    assert (opened.public, opened.keys_required, opened.open_to_the_network) == (True, False, True)
    assert Access.of(["127.0.0.1:1"], allow_public_without_keys=True).open_to_the_network is False


def test_password_refusal_names_the_public_address_and_the_remedy():
    public = Access.of(["127.0.0.1:1", "0.0.0.0:8482"])
    assert exposure.password_refusal(public, default_password=False, stored_earlier=True) is None
    assert exposure.password_refusal(Access.of(["127.0.0.1:1"]), default_password=True, stored_earlier=True) is None
    first = exposure.password_refusal(public, default_password=True, stored_earlier=False)
    assert first.startswith("refusing to listen on 0.0.0.0:8482: the admin password is still the default")
    assert "Set ZENGATE_ADMIN_PASSWORD" in first and "127.0.0.1:1" not in first
    later = exposure.password_refusal(public, default_password=True, stored_earlier=True)
    assert later.index("python -m zengate admin set-password") < later.index("ZENGATE_ADMIN_PASSWORD")


def test_start_messages():
    assert exposure.start_message(Access.of(["127.0.0.1:1"])) is None
    level, text = exposure.start_message(Access.of(["0.0.0.0:2"]))
    assert level == "info" and "need an sk-zen key" in text and "ZENGATE_ALLOW_PUBLIC_WITHOUT_KEYS=1" in text
    level, text = exposure.start_message(Access.of(["0.0.0.0:2"], allow_public_without_keys=True))
    assert level == "warning" and "WITHOUT requiring API keys" in text and "0.0.0.0:2" in text
    level, text = exposure.start_message(Access.of(["0.0.0.0:2"], allow_public_without_keys=True), require_auth=True)
    assert level == "info" and "require_auth setting is on" in text


def test_allow_variable_is_read_as_a_flag(monkeypatch):
    for value, expected in (("1", True), ("true", True), ("ON", True), ("0", False), ("", False), ("no", False)):
        monkeypatch.setenv("ZENGATE_ALLOW_PUBLIC_WITHOUT_KEYS", value)
        assert Config.from_env().allow_public_without_keys is expected


# --- /v1 behind each kind of listener ----------------------------------------------------------------

def _chat(client, **headers):
    return client.post("/v1/chat/completions", json=CHAT, headers=headers)


def test_loopback_serves_without_a_key(make_app):
    app = make_app()
    gw = app.extensions["zengate"]
    gw.listen_on(["127.0.0.1:8462"])
    r = _chat(app.test_client())
    assert r.status_code == 200 and r.get_json()["choices"][0]["message"]["content"]


def test_beyond_loopback_a_key_is_required(make_app):
    app = make_app()
    gw = app.extensions["zengate"]
    gw.listen_on(["0.0.0.0:8462"])
    client = app.test_client()
    r = _chat(client)
    assert r.status_code == 401
    assert r.get_json()["error"]["message"].startswith("this gateway requires an API key")
    r = client.post("/v1/messages", json={**CHAT, "max_tokens": 10})
    assert r.status_code == 401 and r.get_json()["type"] == "error"  # in the Anthropic shape
    key = auth.create_key("t").key
    r = _chat(client, Authorization=f"Bearer {key}")
    assert r.status_code == 200 and r.get_json()["choices"][0]["message"]["content"]
    r = _chat(client, Authorization="Bearer sk-zen-not-a-real-key")
    assert r.status_code == 401 and "invalid or revoked" in r.get_json()["error"]["message"]


def test_configured_bind_counts_until_the_worker_reports_its_sockets(make_app):
    app = make_app(bind="0.0.0.0:80")
    assert _chat(app.test_client()).status_code == 401


def test_operator_may_open_it_on_purpose_and_require_auth_still_wins(make_app, admin_headers_for):
    app = make_app(allow_public_without_keys=True)
    gw = app.extensions["zengate"]
    gw.listen_on(["0.0.0.0:8462"])
    client = app.test_client()
    assert _chat(client).status_code == 200
    headers = admin_headers_for(client)
    access = client.get("/_admin/session", headers=headers).get_json()["access"]
    assert access == {"listening": ["0.0.0.0:8462"], "beyond_loopback": True, "keys_required_by_bind": False,
                      "open_without_keys": True, "keys_required": False}
    r = client.post("/_admin/settings", headers=headers, json={"key": "require_auth", "value": True})
    assert r.status_code == 200 and r.get_json()["value"] is True
    assert _chat(client).status_code == 401
    access = client.get("/_admin/session", headers=headers).get_json()["access"]
    assert access["open_without_keys"] is False and access["keys_required"] is True


@pytest.fixture
def admin_headers_for():
    from tests.support.gateway import ADMIN_PASSWORD

    def login(client):
        r = client.post("/_admin/login", json={"password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.get_json()
        return {"Authorization": f"Bearer {r.get_json()['token']}"}

    return login


# --- the first admin password ------------------------------------------------------------------------

def test_first_password_from_the_variable_and_its_minimum_length(db_path):
    settings = Settings(cache_seconds=0)
    with pytest.raises(auth.PasswordRefused, match="at least 8 characters"):
        auth.ensure_admin_password(settings, "short")
    assert settings.get("admin_password_hash") == ""  # nothing stored by a refused start
    state = auth.ensure_admin_password(settings, "long-enough-1")
    assert state == auth.AdminPassword(default=False, stored_earlier=False, variable_ignored=False)
    assert auth.check_password(settings.get("admin_password_hash"), "long-enough-1")


def test_the_variable_replaces_a_stored_default_and_is_ignored_after_a_real_one(db_path):
    settings = Settings(cache_seconds=0)
    assert auth.ensure_admin_password(settings, None) == auth.AdminPassword(True, False, False)
    assert auth.ensure_admin_password(settings, None) == auth.AdminPassword(True, True, False)
    token, _ = auth.open_session(1)
    assert auth.ensure_admin_password(settings, "set-after-a-refusal") == auth.AdminPassword(False, True, False)
    assert auth.check_password(settings.get("admin_password_hash"), "set-after-a-refusal")
    assert not auth.session_valid(token) and AdminSession.select().count() == 0  # opened with 'admin'
    assert auth.ensure_admin_password(settings, "another-one-now") == auth.AdminPassword(False, True, True)
    assert auth.check_password(settings.get("admin_password_hash"), "set-after-a-refusal")
    assert auth.ensure_admin_password(settings, "x") == auth.AdminPassword(False, True, True)  # ignored: no refusal
