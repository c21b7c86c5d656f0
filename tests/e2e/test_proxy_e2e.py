"""Proxy rotation end to end: real gunicorn (two gevent workers), real proxies on loopback.

The proxies (tests/support/http_proxy.py) run in this process and count what they carry; the
local upstream records every request it gets (a proxied one carries the proxy's ``Via`` header);
Geonode is a local stand-in. Nothing leaves the machine. Timers are shortened through settings
and every wait is on a condition.
"""

from __future__ import annotations

import datetime

import pytest
import requests

from tests.support.fake_upstream import drop_after, error, openai_text
from tests.support.gateway import GatewayProcess
from tests.support.http_proxy import LocalGeonode, LocalProxy, closed_port

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "say hi"}]
DEFAULTS = {"mode": "off", "static": "", "geonode": False, "direct_retry_seconds": 300, "max_attempts": 5,
            "connect_timeout": 5, "min_uptime": 80, "refresh_seconds": 1800, "list_private_ok": False}


@pytest.fixture(scope="module")
def geonode():
    with LocalGeonode() as g:
        yield g


@pytest.fixture(scope="module")
def proxy_gateway(tmp_path_factory, e2e_upstream, geonode):
    gw = GatewayProcess(tmp_path_factory.mktemp("gw-proxy"), e2e_upstream.url,
                        env={"ZENGATE_SETTINGS_TTL": "0", "ZENGATE_GEONODE_URL": geonode.url})
    gw.start_settled(e2e_upstream)  # no model-list fetch may go through a test's proxies
    yield gw
    gw.stop()


@pytest.fixture
def pgw(proxy_gateway, up, geonode):
    """The module's gateway with every proxy setting back to its default (geonode off)."""
    r = proxy_gateway.admin("POST", "/_admin/proxy/settings", json=DEFAULTS)
    assert r.status_code == 200, r.text
    proxy_gateway.set_setting("upstream_read_timeout", 300)
    geonode.rows, geonode.reply = [], None
    return proxy_gateway


@pytest.fixture
def make_proxy():
    started: list[LocalProxy] = []

    def make(**kwargs) -> LocalProxy:
        proxy = LocalProxy(**kwargs).start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


def chat(gw, *, stream=False, model="big-pickle") -> requests.Response:
    r = requests.post(gw.url + "/v1/chat/completions", json={"model": model, "messages": HELLO, "stream": stream},
                      timeout=60)
    r.content  # noqa: B018 - read the whole answer (streams too)
    return r


def message(gw, *, stream=False) -> requests.Response:
    r = requests.post(gw.url + "/v1/messages", headers={"anthropic-version": "2023-06-01"}, timeout=60,
                      json={"model": "claude-sonnet-5", "max_tokens": 50, "messages": HELLO, "stream": stream})
    r.content  # noqa: B018
    return r


def proxy_status(gw) -> dict:
    r = gw.admin("GET", "/_admin/proxy")
    assert r.status_code == 200, r.text
    return r.json()


def every_worker(gw, check) -> bool:
    """Whether ``check(status)`` came to hold on every worker (each status call is a new connection,
    answered by whichever worker accepts it; ``worker`` says which)."""
    seen: set[int] = set()

    def all_seen() -> bool:
        status = proxy_status(gw)
        if check(status):
            seen.add(status["worker"])
        return len(seen) >= gw.workers

    return bool(gw.wait_for(all_seen, timeout=30))


def proxied(up, everything=False) -> list[bool]:
    """For each client request (``everything``: model lists too) the upstream got: through a local proxy?"""
    return [(req.header("via") or "").startswith("1.1 local-proxy") for req in up.requests
            if everything or req.method == "POST"]


def logged(gw, n: int, since: str = "") -> list[dict]:
    """The ``n`` request-log rows of requests made after ``since``, once all are written.

    Rows are selected by the time their request started, not by id: a row of an earlier request can
    still be queued in another worker and get a higher id later.
    """
    def rows():
        query = f"&since={since}" if since else ""
        page = gw.admin("GET", f"/_stats/requests?limit=200&bodies=0{query}").json()["requests"]
        return page if len(page) >= n else None
    return gw.wait_for(rows, timeout=10)


def last_log_id(gw) -> str:
    """A moment before the next request (UTC, ISO 8601): ``logged`` counts rows from then on."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None).isoformat()


def posts(proxy: LocalProxy) -> int:
    """Client requests (not model-list fetches) an HTTP proxy forwarded."""
    return sum(1 for target in proxy.targets if target.startswith("POST "))


def proxies_logged(gw, n: int, since: str) -> list[str | None]:
    """The ``proxy`` column of the ``n`` requests made after ``since`` (the answer does not say it)."""
    return [row["proxy"] for row in logged(gw, n, since)]


def no_proxy_in(r: requests.Response) -> bool:
    """True when nothing in the answer's headers names a proxy (``x-zengate-proxy`` is gone)."""
    return "x-zengate-proxy" not in r.headers and not any("127.0.0.1" in v for v in r.headers.values())


# --- On -------------------------------------------------------------------------------------------

def test_on_mode_never_goes_direct(tmp_path, e2e_upstream, up, geonode, make_proxy):
    """ZENGATE_PROXIES with an HTTP proxy and a SOCKS5 one with credentials: everything goes through them."""
    http_proxy = make_proxy()
    socks_proxy = make_proxy(username="zen", password="s3cret-pass")
    gw = GatewayProcess(tmp_path, e2e_upstream.url, env={
        "ZENGATE_SETTINGS_TTL": "0", "ZENGATE_GEONODE_URL": geonode.url,
        "ZENGATE_PROXIES": f"{socks_proxy.socks_url}, {http_proxy.url}"}).start()
    try:
        assert gw.admin("POST", "/_admin/proxy/settings", json={"geonode": False}).status_code == 200
        modes = [gw.admin("POST", "/_admin/proxy/toggle").json()["mode"] for _ in range(2)]
        assert modes == ["auto", "on"]
        # Start again with the mode already on, so even the workers' first model-list fetch is proxied.
        gw.stop()
        up.reset()
        socks_proxy.reset()
        http_proxy.reset()
        gw.start()
        status = proxy_status(gw)
        assert status["mode"] == "on" and status["using_proxy"] is True and status["static"] == 2

        def four():
            return [chat(gw), chat(gw, stream=True), message(gw), message(gw, stream=True)]

        since = last_log_id(gw)
        answers = four() + four()
        assert [r.status_code for r in answers] == [200] * 8 and all(no_proxy_in(r) for r in answers)
        assert proxies_logged(gw, 8, since) == [socks_proxy.label] * 8  # the first that works
        assert posts(http_proxy) == 0 and socks_proxy.carried >= 8
        assert "[DONE]" in answers[1].text and "message_stop" in answers[3].text
        socks_proxy.stop()  # it goes away: the next requests move to the other proxy, never direct
        since = last_log_id(gw)
        answers = four()
        assert [r.status_code for r in answers] == [200] * 4
        assert proxies_logged(gw, 4, since) == [http_proxy.label] * 4 and posts(http_proxy) == 4
        assert len([r for r in up.requests if r.method == "POST"]) == 12
        # Every request the upstream saw (model lists included) was carried by one of the proxies.
        gw.wait_for(lambda: len(up.requests) == http_proxy.carried + socks_proxy.carried)
        assert proxied(up, everything=True).count(True) == http_proxy.carried >= 4  # Via: HTTP forwarding only
        labels = {http_proxy.label, socks_proxy.label}
        rows = logged(gw, 12)
        assert {row["proxy"] for row in rows} <= labels and all(row["status"] == 200 for row in rows)
        assert "s3cret-pass" not in gw.log() and "s3cret-pass" not in str(proxy_status(gw))
    finally:
        gw.stop()


def test_the_proxy_used_is_in_the_request_log_and_never_in_the_answer(pgw, up, make_proxy):
    """A client never learns the operator's proxy (JSON, stream, error); the request log names it."""
    proxy = make_proxy()
    since = last_log_id(pgw)
    pgw.admin("POST", "/_admin/proxy/settings", json={"mode": "on", "static": proxy.url})
    r = chat(pgw)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] and no_proxy_in(r)
    (row,) = logged(pgw, 1, since)
    assert row["proxy"] == proxy.label and row["status"] == 200
    assert proxied(up) == [True] and posts(proxy) == 1

    since = last_log_id(pgw)
    answers = [chat(pgw, stream=True), message(pgw, stream=True)]
    up.script("big-pickle", error(400, "the upstream refuses this body"))
    answers.append(chat(pgw))
    assert [r.status_code for r in answers] == [200, 200, 400] and all(no_proxy_in(r) for r in answers)
    assert "[DONE]" in answers[0].text and "refuses this body" in answers[2].json()["error"]["message"]
    assert proxies_logged(pgw, 3, since) == [proxy.label] * 3 and posts(proxy) == 4


# --- Auto -----------------------------------------------------------------------------------------

def test_auto_switches_after_a_429_and_returns_to_direct_when_the_timer_fires(pgw, up, make_proxy):
    proxy = make_proxy()
    pgw.admin("POST", "/_admin/proxy/settings",
              json={"mode": "auto", "static": proxy.url, "direct_retry_seconds": 4})
    since = last_log_id(pgw)
    assert chat(pgw).status_code == 200 and proxied(up) == [False]  # direct while direct works
    assert chat(pgw).status_code == 200 and proxied(up) == [False, False] and posts(proxy) == 0
    assert proxies_logged(pgw, 2, since) == [None, None]

    up.reset()
    up.script("big-pickle", error(429, "Rate limit exceeded", headers={"retry-after": "30"}))
    since = last_log_id(pgw)
    first = chat(pgw)
    assert first.status_code == 200 and first.json()["choices"][0]["message"]["content"]  # the client never saw it
    assert proxied(up) == [False, True] and posts(proxy) == 1
    assert proxies_logged(pgw, 1, since) == [proxy.label]
    status = proxy_status(pgw)
    assert status["rate_limited_direct"] and status["using_proxy"] and status["next_direct_retry"]

    # Every worker now goes through the proxy at once (the state is shared): no more direct 429s.
    since = last_log_id(pgw)
    more = [chat(pgw), chat(pgw, stream=True), message(pgw)]
    assert all(r.status_code == 200 and no_proxy_in(r) for r in more)
    assert proxied(up) == [False, True, True, True, True] and posts(proxy) == 4
    assert proxies_logged(pgw, 3, since) == [proxy.label] * 3

    pgw.wait_for(lambda: proxy_status(pgw)["direct_retry_due"], timeout=15)
    since = last_log_id(pgw)
    back = chat(pgw)
    assert back.status_code == 200 and proxied(up)[-1] is False and posts(proxy) == 4
    status = proxy_status(pgw)
    assert not status["rate_limited_direct"] and not status["using_proxy"] and status["mode"] == "auto"
    assert chat(pgw).status_code == 200 and proxied(up)[-1] is False and posts(proxy) == 4
    assert proxies_logged(pgw, 2, since) == [None, None]


def test_auto_when_every_route_is_rate_limited_the_client_gets_the_429(pgw, up, make_proxy):
    proxy = make_proxy()
    pgw.admin("POST", "/_admin/proxy/settings", json={"mode": "auto", "static": proxy.url})
    up.script("big-pickle", *[error(429, "Rate limit exceeded", headers={"retry-after": "9"})] * 2)
    since = last_log_id(pgw)
    r = chat(pgw)
    assert r.status_code == 429 and r.headers["retry-after"] == "9"
    assert r.json()["error"]["message"] == ("Rate limit exceeded (rate limited on every route — direct: HTTP 429 "
                                            "rate limited; tried 1 proxy: HTTP 429 rate limited)")
    assert proxied(up) == [False, True]
    (row,) = logged(pgw, 1, since)  # which proxy: the request log's attempts
    assert f"tried 1 proxy: {proxy.label} (HTTP 429 rate limited)" in row["attempts"][-1]["error"]


# --- failures -------------------------------------------------------------------------------------

def test_dead_proxies_are_skipped(pgw, up, make_proxy):
    refusing, failing, good = make_proxy(behaviour="refuse"), make_proxy(behaviour=502), make_proxy()
    pgw.admin("POST", "/_admin/proxy/settings",
              json={"mode": "on", "static": f"{refusing.url},{failing.url},{good.url}"})
    since = last_log_id(pgw)
    answers = [chat(pgw) for _ in range(8)]
    assert all(r.status_code == 200 and no_proxy_in(r) for r in answers)
    assert posts(good) == 8 and proxied(up) == [True] * 8
    assert proxies_logged(pgw, 8, since) == [good.label] * 8
    # Each worker tried the bad ones once, marked them dead, and skipped them afterwards.
    assert 1 <= refusing.connections <= 2 and 1 <= failing.connections <= 2
    status = pgw.wait_for(lambda: (s := proxy_status(pgw))["dead"] == 2 and s)  # a worker that served some
    assert status["alive"] == 1
    dead = {p["proxy"]: p for p in status["proxies"] if not p["alive"]}
    assert set(dead) == {refusing.label, failing.label} and dead[failing.label]["last_error"] == "HTTP 502"
    # A refresh brings them back for another chance.
    body = pgw.admin("POST", "/_admin/proxy/refresh").json()
    assert body["alive"] == 3 and body["refresh"]["ok"]


def test_five_failures_give_a_clear_error(pgw, up, make_proxy):
    pgw.set_setting("upstream_read_timeout", 1)
    bad = [make_proxy(behaviour="refuse"), make_proxy(behaviour=502), make_proxy(behaviour="hang", hang_seconds=30),
           make_proxy(behaviour=407, username="user", password="hunter2")]
    dead_port = closed_port()
    good = make_proxy()
    urls = [p.url for p in bad] + [f"http://user:hunter2@127.0.0.1:{dead_port}", good.url]
    since = last_log_id(pgw)
    pgw.admin("POST", "/_admin/proxy/settings", json={"mode": "on", "static": ",".join(urls)})
    r = chat(pgw)
    assert r.status_code == 502
    text = r.json()["error"]["message"]
    assert text.startswith("could not reach the upstream through proxies — tried 5 proxies: ")
    assert "HTTP 502" in text and "read timeout" in text and "HTTP 407" in text and "connection refused" in text
    assert "127.0.0.1" not in text and "hunter2" not in text  # which proxies: the request log's attempts only
    assert "x-zengate-proxy" not in r.headers  # the last one tried is in the request log only
    assert posts(good) == 0 and proxied(up) == []
    (row,) = logged(pgw, 1, since)
    assert row["status"] == 502 and "tried 5 proxies" in row["error"] and row["proxy"] == f"127.0.0.1:{dead_port}"
    tried = row["attempts"][-1]["error"]
    assert f"{bad[1].label} (HTTP 502)" in tried and f"{bad[2].label} (read timeout)" in tried
    assert f"{bad[3].label} (HTTP 407)" in tried and f"127.0.0.1:{dead_port} (connection refused)" in tried
    assert bad[0].label in tried and good.label not in tried and "hunter2" not in tried
    assert "hunter2" not in pgw.log()

    # Anthropic clients get the failure in their own shape (with `good` gone too, every route fails).
    good.stop()
    r = message(pgw)
    assert r.status_code == 502 and r.json()["type"] == "error"
    assert "through proxies" in r.json()["error"]["message"] or "no proxy is available" in r.json()["error"]["message"]


def test_a_stream_never_changes_proxy_half_way(pgw, up, make_proxy):
    first, second = make_proxy(), make_proxy()
    pgw.admin("POST", "/_admin/proxy/settings", json={"mode": "on", "static": f"{first.url},{second.url}"})
    up.script("big-pickle", drop_after(2, openai_text("one two three four five six", chunks=6)))
    r = chat(pgw, stream=True)
    assert r.status_code == 200 and "one" in r.text and "[DONE]" not in r.text  # cut, and told so
    assert proxied(up) == [True] and posts(first) + posts(second) == 1


# --- Geonode and the admin API --------------------------------------------------------------------

def test_geonode_pool_refresh_and_admin_api(pgw, up, geonode, make_proxy):
    good = [make_proxy(), make_proxy()]
    geonode.rows = ([LocalGeonode.row(p) for p in good] + [LocalGeonode.row(closed_port(), uptime=81)]
                    + [LocalGeonode.row(make_proxy(), protocols=("socks4",))])
    geonode.queries.clear()
    assert proxy_status(pgw)["last_refresh"] is None or geonode.queries == []  # Off: Geonode left alone

    r = pgw.admin("POST", "/_admin/proxy/settings", json={"geonode": True, "min_uptime": 90, "mode": "ON"})
    assert r.status_code == 200 and r.json()["changed"]["mode"] == "on"
    # The stand-in's proxies are on 127.0.0.1: a fetched list may not point there, unless allowed.
    body = pgw.admin("POST", "/_admin/proxy/refresh").json()
    assert body["refresh"] == {**body["refresh"], "ok": False, "fetched": 0, "dropped_not_global": 2}
    assert body["geonode"] == 0 and body["dropped_not_global"] == 2
    assert pgw.admin("POST", "/_admin/proxy/settings", json={"list_private_ok": True}).status_code == 200
    body = pgw.admin("POST", "/_admin/proxy/refresh").json()
    assert body["refresh"] == {**body["refresh"], "ok": True, "fetched": 2, "dropped_not_global": 0}
    assert body["geonode"] == 2 and body["alive"] == 2 and body["last_refresh"]
    query = geonode.queries[-1]
    assert query == {"limit": "100", "sort_by": "lastChecked", "sort_type": "desc", "protocols": "http,https",
                     "filterUpTime": "90", "page": "1"}

    since = last_log_id(pgw)
    answers = [chat(pgw) for _ in range(6)]
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    assert set(proxies_logged(pgw, 6, since)) <= {p.label for p in good}
    assert sum(p.carried for p in good) == 6 and all(proxied(up))

    # A failing Geonode keeps the pool: every worker's, once each has fetched it (the other workers
    # refresh in their background loop, within a second of being asked).
    assert every_worker(pgw, lambda status: status["geonode"] == 2)
    geonode.reply = 503
    body = pgw.admin("POST", "/_admin/proxy/refresh").json()
    assert body["refresh"]["ok"] is False and body["refresh"]["error"] == "Geonode answered HTTP 503"
    assert body["geonode"] == 2
    r = chat(pgw)
    assert r.status_code == 200, (r.text, pgw.log()[-3000:])  # once seen: 502

    r = pgw.admin("POST", "/_admin/proxy/settings", json={"min_uptime": 101, "speed": "warp", "mode": "sometimes"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "min_uptime,speed,mode"
    assert proxy_status(pgw)["settings"]["min_uptime"] == 90
    assert pgw.admin("POST", "/_admin/proxy/toggle").json()["mode"] == "off"
    assert requests.get(pgw.url + "/_admin/proxy", timeout=10).status_code == 401
