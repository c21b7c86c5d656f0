"""One gateway, several workers, behaving as one: a setting changed through one worker applies to
the very next request on every worker, however long their settings caches are; a 429 seen by one
worker rests that model with that key for all of them; the admin login's limit counts the
failures of every worker."""

from __future__ import annotations

import pytest
import requests

from tests.support.fake_upstream import error
from tests.support.gateway import ADMIN_PASSWORD, GatewayProcess

pytestmark = pytest.mark.e2e

ROUTE = "/v1/chat/completions"


def chat(gw: GatewayProcess, marker: str) -> requests.Response:
    body = {"model": "big-pickle", "messages": [{"role": "user", "content": marker}]}
    return requests.post(gw.url + ROUTE, json=body, headers={"Connection": "close"}, timeout=30)


def test_a_setting_changed_through_one_worker_applies_to_the_next_request_on_all(tmp_path, up):
    """``ZENGATE_SETTINGS_TTL`` of an hour: only the shared generation can carry the change."""
    gw = GatewayProcess(tmp_path, up.url, workers=2, env={"ZENGATE_SETTINGS_TTL": "3600"}).start_settled(up)
    try:
        start = len(gw.log())
        # both workers serve without a key, their settings loaded (and cached for an hour)
        assert gw.wait_for(lambda: chat(gw, "warm").status_code == 200 and len(gw.answered(start)) == 2,
                           timeout=30, interval=0)
        mark = len(gw.log())
        saved = gw.admin("POST", "/_admin/settings", json={"key": "require_auth", "value": True})
        assert saved.json()["applies"] == ("at the next request on every worker of this instance; other instances "
                                           "sharing its database: within 3600 s (ZENGATE_SETTINGS_TTL)"), saved.text
        answers = [chat(gw, f"after {i}") for i in range(40)]
        assert [r.status_code for r in answers] == [401] * 40
        assert all(r.json()["error"]["type"] == "authentication_error" for r in answers), answers[0].text
        # both workers answered after the change, and refused (a warm-up's line may come late)
        refused = {pid: statuses.count("401") for pid, statuses in gw.answered(mark).items()}
        assert len(refused) == 2 and all(refused.values()) and sum(refused.values()) == 40, refused
    finally:
        gw.stop()


def test_a_429_seen_by_one_worker_rests_the_key_for_both(tmp_path, up):
    """Two keys; one conversation's first key answers 429 once. Every later request of that
    conversation, whichever worker takes it, goes straight to the other key."""
    gw = GatewayProcess(tmp_path, up.url, workers=2, env={
        "OPENCODE_API_KEY_1": "zen-key-1", "OPENCODE_API_KEY_2": "zen-key-2"}).start_settled(up)
    try:
        up.reset()
        up.script("big-pickle", error(429, "slow down", headers={"retry-after": "120"}))
        assert chat(gw, "the conversation").status_code == 200
        limited, other = (q.header("authorization") for q in up.requests)
        assert {limited, other} == {"Bearer zen-key-1", "Bearer zen-key-2"}
        mark = len(gw.log())
        answers = [chat(gw, "the conversation") for _ in range(30)]
        assert [r.status_code for r in answers] == [200] * 30
        assert all(r.json()["choices"][0]["message"]["content"] for r in answers)
        assert [q.header("authorization") for q in up.requests[2:]] == [other] * 30
        served = {pid: statuses.count("200") for pid, statuses in gw.answered(mark).items()}
        assert len(served) == 2 and all(served.values()), served  # both workers took some of them
    finally:
        gw.stop()


def test_the_login_limit_holds_across_workers(tmp_path, up):
    """Five wrong passwords, however the two workers share them out, lock the address for both:
    every later attempt, the right password included, is refused with a 429."""
    gw = GatewayProcess(tmp_path, up.url, workers=2).start()

    def login(password: str) -> requests.Response:
        return requests.post(gw.url + "/_admin/login", json={"password": password},
                             headers={"Connection": "close"}, timeout=30)  # a new connection: any worker
    try:
        statuses = [login("wrong password").status_code for _ in range(16)]
        assert statuses == [401] * 5 + [429] * 11, statuses
        locked = login(ADMIN_PASSWORD)
        assert locked.status_code == 429 and locked.headers["Retry-After"] == "30"
        assert "too many failed admin logins" in locked.json()["error"]["message"]
    finally:
        gw.stop()


def test_a_keys_rate_limit_holds_across_workers(tmp_path, up):
    """A key with 5 requests a minute; 30 requests on fresh connections, both workers serving:
    exactly 5 go, the others get a 429 naming the limit (each worker counting alone lets up to 10)."""
    gw = GatewayProcess(tmp_path, up.url, workers=2).start_settled(up)
    try:
        gw.set_setting("require_auth", True)
        created = gw.admin("POST", "/_admin/api-keys", json={"name": "kids", "rpm": 5}).json()
        headers = {"Authorization": f"Bearer {created['key']}", "Connection": "close"}
        body = {"model": "big-pickle", "messages": [{"role": "user", "content": "hi"}]}
        mark = len(gw.log())
        answers = [requests.post(gw.url + ROUTE, json=body, headers=headers, timeout=30) for _ in range(30)]
        assert [r.status_code for r in answers].count(200) == 5, [r.status_code for r in answers]
        refused = [r for r in answers if r.status_code != 200]
        assert all(r.status_code == 429 and int(r.headers["Retry-After"]) >= 1 for r in refused)
        assert all(r.json()["error"]["message"].startswith("API key 'kids' reached its limit of 5 requests per minute")
                   for r in refused), refused[0].text
        answered = gw.answered(mark)
        assert len(answered) == 2 and all(answered.values()), answered  # both workers took requests
    finally:
        gw.stop()


def test_a_key_revoked_through_one_worker_is_refused_by_all_at_once(tmp_path, up):
    """Workers keep accepted keys in memory (an hour's settings TTL here): a revocation moves the
    shared generation, so the very next request on either worker asks the database again."""
    gw = GatewayProcess(tmp_path, up.url, workers=2, env={"ZENGATE_SETTINGS_TTL": "3600"}).start_settled(up)
    try:
        gw.set_setting("require_auth", True)
        created = gw.admin("POST", "/_admin/api-keys", json={"name": "phone"}).json()
        headers = {"Authorization": f"Bearer {created['key']}", "Connection": "close"}
        body = {"model": "big-pickle", "messages": [{"role": "user", "content": "hi"}]}
        start = len(gw.log())
        assert gw.wait_for(lambda: requests.post(gw.url + ROUTE, json=body, headers=headers, timeout=30).status_code
                           == 200 and len(gw.answered(start)) == 2, timeout=30, interval=0)  # both hold the key
        assert gw.admin("POST", "/_admin/api-keys/delete", json={"id": created["id"]}).status_code == 200
        answers = [requests.post(gw.url + ROUTE, json=body, headers=headers, timeout=30) for _ in range(20)]
        assert [r.status_code for r in answers] == [401] * 20
        assert answers[0].json()["error"]["message"].startswith("invalid or revoked API key")
    finally:
        gw.stop()
