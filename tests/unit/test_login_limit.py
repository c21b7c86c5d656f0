"""Brute-force protection on POST /_admin/login, and the admin session's other guarantees."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.support.clock import Clock
from tests.support.gateway import ADMIN_PASSWORD
from zengate.web.admin.admin import LIMITER_KEY
from zengate.web.admin.loginlimit import LoginLimiter


@pytest.fixture
def clock(app):
    clock = Clock()
    app.extensions[LIMITER_KEY] = LoginLimiter(clock)
    return clock


def login(client, password, ip="10.0.0.1"):
    return client.post("/_admin/login", json={"password": password}, environ_base={"REMOTE_ADDR": ip})


def test_five_failures_lock_the_address_out_with_growing_backoff(client, clock):
    for _ in range(5):
        assert login(client, "wrong").status_code == 401
    r = login(client, ADMIN_PASSWORD)  # even the right password is refused while locked
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "30"
    error = r.get_json()["error"]
    assert error["type"] and "try again in 30 seconds" in error["message"] and error["code"]
    assert login(client, ADMIN_PASSWORD, ip="10.0.0.2").status_code == 200  # another address is unaffected

    clock.now += 30
    assert login(client, "wrong").status_code == 401  # the sixth failure doubles the lockout
    assert login(client, "wrong").headers["Retry-After"] == "60"
    clock.now += 60
    assert login(client, "wrong").status_code == 401
    assert login(client, "wrong").headers["Retry-After"] == "120"
    for _ in range(10):
        clock.now += 15 * 60
        assert login(client, "wrong").status_code == 401
    r = login(client, "wrong")
    assert r.status_code == 429 and r.headers["Retry-After"] == str(15 * 60)  # capped at 15 minutes


def test_success_resets_the_address(client, clock):
    for _ in range(4):
        assert login(client, "wrong").status_code == 401
    assert login(client, ADMIN_PASSWORD).status_code == 200
    for _ in range(4):
        assert login(client, "wrong").status_code == 401
    assert login(client, ADMIN_PASSWORD).status_code == 200  # 4 + 4 failures, never 5 in a row


def test_bad_requests_do_not_count(client, clock):
    for _ in range(10):
        assert client.post("/_admin/login", json={}, environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code == 400
    assert login(client, ADMIN_PASSWORD).status_code == 200


def test_failures_from_many_addresses_close_the_login_for_everyone(client, clock):
    for i in range(50):
        assert login(client, "wrong", ip=f"10.1.{i // 4}.{i % 4}").status_code == 401  # 4 per address
    r = login(client, ADMIN_PASSWORD, ip="192.168.1.1")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) == 60
    assert "overall" in r.get_json()["error"]["message"]
    clock.now += 61
    assert login(client, ADMIN_PASSWORD, ip="192.168.1.1").status_code == 200


def test_the_limiter_forgets_old_failures():
    clock = Clock()
    limiter = LoginLimiter(clock)
    for _ in range(4):
        limiter.failed("a")
    clock.now += 2 * 60 * 60
    limiter.failed("b")  # trims what is stale
    for _ in range(4):
        limiter.failed("a")
    assert limiter.retry_after("a") is None  # the four old failures were forgotten


def test_passwords_are_scrypt_hashes_and_tokens_are_looked_up_by_hash(gateway, admin_headers):
    from zengate import auth
    from zengate.store.models import AdminSession

    stored = gateway.settings.get("admin_password_hash")
    assert stored.startswith("scrypt:") and ADMIN_PASSWORD not in stored
    token = admin_headers["Authorization"].split()[1]
    assert AdminSession.select().where(AdminSession.token_hash == token).count() == 0
    assert AdminSession.select().where(AdminSession.token_hash == auth._sha256(token)).count() == 1


def test_admin_sessions_expire(client, admin_headers):
    from zengate.store.models import AdminSession, utcnow

    assert client.get("/_admin/settings", headers=admin_headers).status_code == 200
    AdminSession.update(expires_at=utcnow() - dt.timedelta(seconds=1)).execute()
    assert client.get("/_admin/settings", headers=admin_headers).status_code == 401


def test_password_change_revokes_every_session(client, admin_headers):
    other = {"Authorization": f"Bearer {login(client, ADMIN_PASSWORD).get_json()['token']}"}
    r = client.post("/_admin/change-password", headers=admin_headers,
                    json={"current_password": ADMIN_PASSWORD, "new_password": "long-enough-2"})
    assert r.status_code == 200
    assert client.get("/_admin/settings", headers=other).status_code == 401
    assert client.get("/_admin/settings", headers=admin_headers).status_code == 401
