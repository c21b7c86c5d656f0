"""A burst of concurrent requests loses no log row; the default password works on loopback; PostgreSQL too.

(Refusals of unsafe starts: tests/e2e/test_listeners_e2e.py.)
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.gateway import GatewayProcess

pytestmark = pytest.mark.e2e


def _burst(url: str, n: int, threads: int = 100) -> list[int]:
    body = {"model": "big-pickle", "messages": [{"role": "user", "content": "hi"}]}
    local = {}

    def one(i: int) -> int:
        session = local.setdefault(i % threads, requests.Session())
        payload = {**body, "stream": i % 2 == 0}
        r = session.post(url + "/v1/chat/completions", json=payload, timeout=60)
        r.content  # noqa: B018 - read the whole answer
        return r.status_code

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(n)))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_burst_of_1000_requests_loses_no_row(tmp_path, up, backend, request):
    database_url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    gw = GatewayProcess(tmp_path, up.url, database_url=database_url).start()
    try:
        statuses = _burst(gw.url, 1000)
        assert statuses == [200] * 1000
        stats = gw.wait_for(lambda: (s := gw.admin("GET", "/_stats").json())["total_requests"] >= 1000 and s,
                            timeout=30)
        assert stats["total_requests"] == 1000 and stats["errors"] == 0
        assert stats["input_tokens"] == 10 * 1000
        page = gw.admin("GET", "/_stats/requests?limit=500").json()
        assert page["total"] == 1000
        assert len({r["request_id"] for r in page["requests"]}) == 500
    finally:
        assert gw.stop() == 0
    assert "could not be written" not in gw.log()


def test_rows_queued_at_shutdown_are_written(tmp_path, up):
    gw = GatewayProcess(tmp_path, up.url, workers=1).start()
    try:
        assert _burst(gw.url, 200, threads=50) == [200] * 200
    finally:
        assert gw.stop() == 0  # SIGTERM right after the burst: the worker flushes on exit
    again = GatewayProcess(tmp_path, up.url, workers=1).start()
    try:
        assert again.admin("GET", "/_stats").json()["total_requests"] == 200
    finally:
        again.stop()


def test_default_password_is_fine_on_loopback(tmp_path, up):
    gw = GatewayProcess(tmp_path, up.url, env={"ZENGATE_ADMIN_PASSWORD": ""}).start()
    try:
        r = requests.post(gw.url + "/_admin/login", json={"password": "admin"}, timeout=10)
        assert r.status_code == 200 and r.json()["default_password"] is True
        token = r.json()["token"]
        r = requests.post(gw.url + "/_admin/change-password", timeout=10, headers={"Authorization": f"Bearer {token}"},
                          json={"current_password": "admin", "new_password": "a-much-better-one"})
        assert r.status_code == 200
        old = requests.get(gw.url + "/_admin/settings", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert old.status_code == 401  # sessions end when the password changes
        r = requests.post(gw.url + "/_admin/login", json={"password": "a-much-better-one"}, timeout=10)
        assert r.status_code == 200 and r.json()["default_password"] is False
        assert "a-much-better-one" not in gw.log() and "a-much-better-one" not in json.dumps(
            requests.get(gw.url + "/_admin/settings", timeout=10,
                         headers={"Authorization": f"Bearer {r.json()['token']}"}).json())
    finally:
        gw.stop()
