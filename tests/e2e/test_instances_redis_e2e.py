"""Two gateway instances (two workers each) on one PostgreSQL database and one Redis
(``REDIS_URL``): a 429 seen by one rests the key on the other, a setting changed on one applies on
the other though its settings cache is an hour long, and Redis stopped mid-run and started again
fails no request and leaves both instances with the same rests.

What an instance has taken from the other is read in its runtime directory (the rests file that
its workers share), found by its master's pid.
"""

from __future__ import annotations

import glob
import sqlite3
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.fake_upstream import error
from tests.support.gateway import GatewayProcess

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def chat(gw: GatewayProcess, marker: str) -> requests.Response:
    body = {"model": "big-pickle", "messages": [{"role": "user", "content": marker}]}
    return requests.post(gw.url + "/v1/chat/completions", json=body, headers={"Connection": "close"}, timeout=30)


def rests(gw: GatewayProcess) -> list[str]:
    """The rests in force in ``gw``'s instance file (none before a worker made it)."""
    found = glob.glob(f"{tempfile.gettempdir()}/zengate-metrics-{gw.process.pid}-*/shared/zengate-instance.db")
    if not found:
        return []
    try:
        with sqlite3.connect(found[0]) as db:
            return [name for (name,) in db.execute("SELECT name FROM rests WHERE until > strftime('%s','now')")]
    except sqlite3.OperationalError:  # made, its table not yet
        return []


def sent_keys(up) -> list[str]:
    """The keys of the chat requests the upstream received (not the model-list fetches)."""
    return [q.header("authorization") for q in up.requests if q.path.endswith("/chat/completions")]


@pytest.fixture
def pair(tmp_path, up, pg_url, redis_server):
    env = {"REDIS_URL": redis_server.url, "ZENGATE_SETTINGS_TTL": "3600",
           "OPENCODE_API_KEY_1": "zen-key-1", "OPENCODE_API_KEY_2": "zen-key-2"}
    a = GatewayProcess(tmp_path / "a", up.url, database_url=pg_url, env=env)
    b = GatewayProcess(tmp_path / "b", up.url, database_url=pg_url, env=env)
    for gw in (a, b):
        gw.workdir.mkdir()
        gw.start(timeout=60)
    for gw in (a, b):
        assert gw.wait_for(lambda gw=gw: requests.get(gw.url + "/healthz", timeout=5).json()["shared_state"]
                           == {"redis": "ok"}, timeout=15)
    yield a, b
    for gw in (a, b):
        gw.stop()


def test_a_429_on_one_instance_rests_the_key_on_the_other(pair, up):
    a, b = pair
    up.reset()
    up.script("big-pickle", error(429, "slow down", headers={"retry-after": "120"}))
    assert chat(a, "the conversation").status_code == 200
    limited, other = sent_keys(up)
    assert limited != other
    assert b.wait_for(lambda: any('"pair"' in name for name in rests(b)), timeout=10)
    answers = [chat(b, "the conversation") for _ in range(20)]
    assert [r.status_code for r in answers] == [200] * 20
    assert sent_keys(up)[2:] == [other] * 20


def test_a_setting_changed_on_one_instance_applies_on_the_other(pair):
    a, b = pair
    assert chat(b, "before").status_code == 200  # B's workers have their settings, cached for an hour
    a.set_setting("require_auth", True)
    assert b.wait_for(lambda: all(chat(b, "after").status_code == 401 for _ in range(6)), timeout=10)
    refused = chat(b, "and the answer says why")
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error", refused.text


def test_an_in_chat_model_choice_made_on_one_instance_holds_on_the_other(pair, up):
    """Each worker caches conversations' choices for ZENGATE_SETTINGS_TTL (an hour here): only the
    relay can tell the other instance's workers that this conversation chose a model."""
    a, b = pair
    headers = {"x-session-id": "e2e-relay-choice", "Connection": "close"}

    def ask(gw: GatewayProcess, content: str) -> requests.Response:
        body = {"model": "big-pickle", "messages": [{"role": "user", "content": content}]}
        return requests.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)

    def models_sent() -> list[str]:
        return [q.model for q in up.requests if q.path.endswith("/chat/completions")]

    a.set_setting("chat_commands", True)
    assert b.wait_for(lambda: "[zengate]" in ask(b, "!/status").text, timeout=10)  # B has the setting
    up.reset()
    assert [ask(b, "hello").status_code for _ in range(6)] == [200] * 6  # B's workers cache: no choice
    assert models_sent() == ["big-pickle"] * 6
    chosen = ask(a, "!/model(glm-4.7-free)")
    assert "this conversation now uses glm-4.7-free" in chosen.json()["choices"][0]["message"]["content"]
    assert b.wait_for(lambda: ask(b, "and now?").status_code == 200 and models_sent()[-1] == "glm-4.7-free",
                      timeout=10)
    assert [ask(b, f"turn {n}").status_code for n in range(6)] == [200] * 6  # on both of B's workers
    assert models_sent()[-6:] == ["glm-4.7-free"] * 6


def test_redis_stopped_and_started_fails_no_request_and_the_rests_converge(pair, up, redis_server):
    a, b = pair
    redis_server.stop()
    for gw in (a, b):
        assert gw.wait_for(lambda gw=gw: requests.get(gw.url + "/healthz", timeout=5).json()["shared_state"]
                           ["redis"] == "unavailable", timeout=15)
    up.reset()
    up.script("big-pickle", error(429, "slow down", headers={"retry-after": "300"}))
    with ThreadPoolExecutor(8) as pool:  # both instances serve on, Redis or not
        statuses = list(pool.map(lambda i: chat((a, b)[i % 2], f"during {i}").status_code, range(40)))
    assert statuses == [200] * 40
    assert any('"pair"' in name for name in rests(a) + rests(b))  # one of them met the 429
    redis_server.start()
    for gw in (a, b):
        assert gw.wait_for(lambda gw=gw: requests.get(gw.url + "/healthz", timeout=5).json()["shared_state"]
                           == {"redis": "ok"}, timeout=15)
    assert a.wait_for(lambda: sorted(rests(a)) == sorted(rests(b)) and rests(a), timeout=10)
    assert "Redis unreachable" in a.log() and "Redis reachable again" in a.log()


def test_a_keys_limits_hold_across_instances_and_its_usage_is_shared(pair):
    """A key with 4 requests a minute used on both instances in turn: the 5th request, whichever
    instance takes it, gets a 429 in its API's shape; the usage both logged is the key's."""
    a, b = pair
    a.set_setting("require_auth", True)
    created = b.admin("POST", "/_admin/api-keys", json={"name": "team", "rpm": 4}).json()
    headers = {"Authorization": f"Bearer {created['key']}", "Connection": "close"}
    body = {"model": "big-pickle", "messages": [{"role": "user", "content": "hi"}]}
    statuses = [requests.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=30).status_code
                for gw in (a, b, a, b)]
    assert statuses == [200] * 4
    for gw in (a, b):
        r = requests.post(gw.url + "/v1/messages", json={**body, "max_tokens": 20}, headers=headers, timeout=30)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert r.json()["type"] == "error" and r.json()["error"]["type"] == "rate_limit_error"
        assert "API key 'team' reached its limit of 4 requests per minute" in r.json()["error"]["message"]

    def today():
        return a.admin("GET", f"/_admin/api-keys/{created['id']}/usage?days=1").json()["today"]

    assert a.wait_for(lambda: today()["requests"] == 6, timeout=15), today()
    assert today() == {"requests": 6, "errors": 2, "input_tokens": 40, "output_tokens": 20, "cost": 0.0}


def test_the_admin_login_limit_counts_the_failures_of_both_instances(pair):
    a, b = pair
    wrong = {"password": "not-the-password"}
    answers = [requests.post(gw.url + "/_admin/login", json=wrong, timeout=30) for gw in (a, b, a, b, a)]
    assert [r.status_code for r in answers] == [401] * 5
    for gw in (a, b):
        r = requests.post(gw.url + "/_admin/login", json=wrong, timeout=30)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert "too many failed admin logins from this address" in r.json()["error"]["message"]


def test_with_redis_away_each_instance_holds_a_keys_limits_on_its_own(pair, redis_server):
    """Redis stopped: no request with a limited key fails for it; each instance counts the key on
    its own (its workers together), and refuses past the limit."""
    a, b = pair
    a.set_setting("require_auth", True)
    created = a.admin("POST", "/_admin/api-keys", json={"name": "offline", "requests_per_day": 3}).json()
    headers = {"Authorization": f"Bearer {created['key']}", "Connection": "close"}
    body = {"model": "big-pickle", "messages": [{"role": "user", "content": "hi"}]}
    redis_server.stop()
    for gw in (a, b):
        assert gw.wait_for(lambda gw=gw: requests.get(gw.url + "/healthz", timeout=5).json()["shared_state"]
                           ["redis"] == "unavailable", timeout=15)
    for gw in (a, b):
        statuses = [requests.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=30).status_code
                    for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429], (gw.url, statuses)
