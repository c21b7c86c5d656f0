"""Several instances on one PostgreSQL database (the PaaS shape): shared keys, settings and request
log, changes seen by every instance within 5 seconds, and migrations safe when instances start at once.

The instances keep the default settings cache (``ZENGATE_SETTINGS_TTL`` = 2 s), so the 5-second
claim is measured, not assumed.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest
import requests

from tests.support.gateway import GatewayProcess
from zengate.store.migrate import available

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

PROPAGATION_LIMIT = 5.0
BODY = {"model": "big-pickle", "messages": [{"role": "user", "content": "hi"}]}


def _start_together(*gateways: GatewayProcess) -> None:
    with ThreadPoolExecutor(len(gateways)) as pool:
        list(pool.map(lambda gw: gw.start(timeout=60), gateways))


def _chat(gw: GatewayProcess, marker: str, key: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {**BODY, "messages": [{"role": "user", "content": marker}]}
    return requests.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=30).status_code


def _within_limit(gw: GatewayProcess, condition) -> float:
    """Seconds until ``condition()`` holds (polled), failing past the 5-second limit."""
    started = time.monotonic()
    gw.wait_for(condition, timeout=PROPAGATION_LIMIT)
    return time.monotonic() - started


@pytest.fixture
def pair(tmp_path, up, pg_url):
    """Two gateway processes (two workers each) on different ports, one PostgreSQL database."""
    a = GatewayProcess(tmp_path / "a", up.url, database_url=pg_url)
    b = GatewayProcess(tmp_path / "b", up.url, database_url=pg_url)
    for gw in (a, b):
        gw.workdir.mkdir()
    assert "ZENGATE_SETTINGS_TTL" not in a.env  # the default cache of 2 s
    _start_together(a, b)  # also: both migrate an empty database at once
    yield a, b
    for gw in (a, b):
        gw.stop()


def test_keys_and_settings_changed_on_one_instance_apply_on_the_other(pair):
    a, b = pair
    assert a.port != b.port
    key = a.admin("POST", "/_admin/api-keys", json={"name": "shared"}).json()["key"]
    a.set_setting("require_auth", True)
    # B refuses a request without a key within 5 s (every worker of it: several requests in a row)
    took = _within_limit(b, lambda: all(_chat(b, "no key") == 401 for _ in range(4)))
    assert took < PROPAGATION_LIMIT
    assert _chat(b, "with the key made on A", key) == 200  # the key made on A works on B

    # revoked on B: refused on A
    key_id = b.admin("GET", "/_admin/api-keys").json()["keys"][0]["id"]
    assert b.admin("POST", "/_admin/api-keys/delete", json={"id": key_id}).status_code == 200
    _within_limit(a, lambda: all(_chat(a, "revoked", key) == 401 for _ in range(4)))

    # any setting: changed on B, seen on A's settings API and in its behaviour
    b.set_setting("log_retention_rows", 12345)
    _within_limit(a, lambda: all(a.admin("GET", "/_admin/settings").json()["settings"]["log_retention_rows"] == 12345
                                 for _ in range(4)))
    b.set_setting("require_auth", False)
    _within_limit(a, lambda: all(_chat(a, "open again") == 200 for _ in range(4)))

    # an admin session opened on A is valid on B
    assert requests.get(b.url + "/_admin/settings", headers=a.admin_headers(), timeout=10).status_code == 200


def test_each_instance_sees_the_whole_request_log(pair):
    a, b = pair
    for i in range(5):
        assert _chat(a, f"from-a-{i}") == 200
        assert _chat(b, f"from-b-{i}") == 200

    def markers(gw: GatewayProcess) -> set[str]:
        rows = gw.admin("GET", "/_stats/requests?limit=100&bodies=1").json()["requests"]
        return {row["input_messages"][0]["content"] for row in rows if row["input_messages"]}

    expected = {f"from-{side}-{i}" for side in "ab" for i in range(5)}
    for gw in (a, b):
        gw.wait_for(lambda gw=gw: markers(gw) >= expected, timeout=10)
        assert gw.admin("GET", "/_stats").json()["total_requests"] == 10


def test_migrations_are_safe_when_instances_start_at_once(tmp_path, up, pg_url):
    gateways = [GatewayProcess(tmp_path / str(i), up.url, database_url=pg_url, workers=2) for i in range(3)]
    for gw in gateways:
        gw.workdir.mkdir()
    try:
        _start_together(*gateways)
        for gw in gateways:
            assert requests.get(gw.url + "/healthz", timeout=10).json()["database"] == "ok"
            assert _chat(gw, "after a racing start") == 200
    finally:
        for gw in gateways:
            gw.stop()
    for gw in gateways:
        assert "Traceback" not in gw.log(), gw.log()
    with psycopg2.connect(pg_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM schema_migrations ORDER BY version")
        assert [v for (v,) in cur.fetchall()] == [v for v, _, _ in available()]
        cur.execute("SELECT count(*) FROM settings WHERE key IN ('opencode_session', 'admin_password_hash')")
        assert cur.fetchone()[0] == 2
    conn.close()
