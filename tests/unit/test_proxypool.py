"""The proxy pool: Geonode answers (mocked with responses), static lists, choosing, dead marks, figures."""

from __future__ import annotations

import random

import pytest
import requests
import responses
from responses import matchers

from zengate.upstream import proxypool
from zengate.upstream.proxypool import (
    GeonodeError,
    Proxy,
    ProxyPool,
    fetch_geonode,
    parse_geonode,
    parse_proxy_list,
    parse_proxy_url,
)

GEONODE = "http://geonode.test/api/proxy-list"
PARAMS = {"limit": 2, "sort_by": "lastChecked", "sort_type": "desc", "protocols": "http,https", "filterUpTime": 80}


def row(ip, port="8080", protocols=("http",), uptime=99.0, latency=120.5, **extra):
    return {"_id": f"id-{ip}", "ip": ip, "port": port, "protocols": list(protocols), "upTime": uptime,
            "latency": latency, "lastChecked": 1767225600, "country": "DE", "anonymityLevel": "elite", **extra}


def page(rows, total, number=1, limit=2):
    return {"data": rows, "total": total, "page": number, "limit": limit}


@pytest.fixture
def session():
    s = requests.Session()
    s.trust_env = False
    return s


# --- parsing Geonode ----------------------------------------------------------------------------

def test_parse_geonode_ports_as_strings_and_schemes():
    result = parse_geonode(page([
        row("1.1.1.1", "3128", ["http"]),
        row("2.2.2.2", 8080, ["https"]),
        row("3.3.3.3", "1080", ["socks5"]),
    ], total=3), allowed=("http", "https", "socks5"))
    assert [(p.label, p.scheme, p.port) for p in result.proxies] == [
        ("1.1.1.1:3128", "http", 3128), ("2.2.2.2:8080", "http", 8080), ("3.3.3.3:1080", "socks5h", 1080)]
    first = result.proxies[0]
    assert first.source == "geonode" and first.uptime == 99.0 and first.latency == 120.5 and first.country == "DE"
    assert first.url == "http://1.1.1.1:3128" and first.requests_proxies() == {"http": first.url, "https": first.url}
    assert result.total == 3 and result.entries == 3 and result.skipped == 0


@pytest.mark.parametrize("bad", [
    row("1.1.1.1", "80a"), row("1.1.1.1", "0"), row("1.1.1.1", "70000"), row("1.1.1.1", True),
    row("", "80"), row("1.1.1.1/x", "80"), row("1.1.1.1", "80", ["socks4"]), row("1.1.1.1", "80", "http"),
    row("1.1.1.1", "80", uptime=50), "not a row", None,
])
def test_parse_geonode_skips_unusable_rows(bad):
    result = parse_geonode(page([bad, row("9.9.9.9")], total=2), min_uptime=80)
    assert [p.label for p in result.proxies] == ["9.9.9.9:8080"] and result.skipped == 1


@pytest.mark.parametrize("payload", [[], "x", None, {"data": "x"}, {"total": 3}, {"error": "nope"}])
def test_parse_geonode_refuses_other_shapes(payload):
    with pytest.raises(GeonodeError):
        parse_geonode(payload)


# --- fetched entries on addresses that are not public -------------------------------------------

#: What a hostile list could send the gateway to: loopback, private, link-local (a cloud's metadata
#: service), shared, reserved, documentation ranges, multicast; IPv6 forms that carry such an IPv4
#: address; host names, and the numeric spellings a resolver turns into 127.0.0.1.
NOT_PUBLIC = [
    "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "255.255.255.255", "224.0.0.1", "239.1.2.3", "240.0.0.1", "192.0.2.10", "198.51.100.7",
    "203.0.113.9", "198.18.0.1",
    "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "ff02::1", "2001:db8::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:a00:1::1", "64:ff9b::a9fe:a9fe", "::7f00:1",
    "localhost", "proxy.example.com", "metadata.google.internal", "2130706433", "0x7f000001", "127.1",
    "017700000001",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "9.9.9.9", "80.80.80.80", "2001:4860:4860::8888", "2606:4700:4700::1111",
          "::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808"]


@pytest.mark.parametrize("ip", NOT_PUBLIC)
def test_fetched_entries_not_on_a_public_address_are_dropped(ip):
    assert not proxypool.public_address(ip)
    result = parse_geonode(page([row(ip), row("9.9.9.9")], total=2))
    assert [p.label for p in result.proxies] == ["9.9.9.9:8080"]
    assert (result.dropped_not_global, result.skipped) == (1, 0)  # counted apart from malformed rows


@pytest.mark.parametrize("ip", PUBLIC)
def test_fetched_entries_on_public_addresses_pass(ip):
    assert proxypool.public_address(ip)
    result = parse_geonode(page([row(ip)], total=1))
    assert [p.host for p in result.proxies] == [ip] and result.dropped_not_global == 0


BRIEF_LIST = ["127.0.0.1", "10.0.0.7", "169.254.169.254", "192.168.0.10", "::1", "fe80::1", "proxy.lan",
              "0.0.0.0"]


def test_a_list_of_private_entries_gives_nothing_but_their_count():
    result = parse_geonode(page([row(ip) for ip in BRIEF_LIST], total=8))
    assert result.proxies == [] and (result.dropped_not_global, result.skipped) == (8, 0)
    # A malformed row is skipped (not counted as dropped), whatever its address.
    result = parse_geonode(page([row("127.0.0.1", "0"), row("10.0.0.1", "70000"), row("8.8.8.8", "0")], total=3))
    assert result.proxies == [] and (result.dropped_not_global, result.skipped) == (0, 3)


def test_private_ok_takes_the_list_as_it_is():
    result = parse_geonode(page([row(ip) for ip in BRIEF_LIST], total=8), private_ok=True)
    assert [p.host for p in result.proxies] == BRIEF_LIST and result.dropped_not_global == 0


@responses.activate
def test_fetch_counts_what_it_dropped_over_pages(session):
    responses.get(GEONODE, json=page([row("127.0.0.1"), row("8.8.8.8")], total=4),
                  match=[matchers.query_param_matcher({"page": "1"}, strict_match=False)])
    responses.get(GEONODE, json=page([row("10.0.0.1"), row("fe80::1")], total=4, number=2),
                  match=[matchers.query_param_matcher({"page": "2"}, strict_match=False)])
    result = fetch_geonode(session, GEONODE, PARAMS, max_pages=5)
    assert [p.label for p in result.proxies] == ["8.8.8.8:8080"] and result.dropped_not_global == 3


@responses.activate
def test_fetch_of_only_private_entries_fails_with_the_count(session):
    responses.get(GEONODE, json=page([row(ip) for ip in BRIEF_LIST], total=8, limit=100))
    with pytest.raises(GeonodeError, match="8 not on a public address") as exc:
        fetch_geonode(session, GEONODE, {**PARAMS, "limit": 100}, max_pages=3)
    assert exc.value.dropped_not_global == 8
    assert len(fetch_geonode(session, GEONODE, {**PARAMS, "limit": 100}, max_pages=3, private_ok=True).proxies) == 8


def test_the_static_list_is_the_operators_own_and_not_filtered():
    proxies, problems = parse_proxy_list("http://127.0.0.1:3128,http://10.0.0.2:80,socks5://proxy.lan:1080,"
                                         "http://[fe80::1]:8080")
    assert problems == [] and [p.host for p in proxies] == ["127.0.0.1", "10.0.0.2", "proxy.lan", "fe80::1"]


# --- fetching Geonode (responses) ---------------------------------------------------------------

@responses.activate
def test_fetch_follows_pages_with_the_filters(session):
    for number, rows in ((1, [row("1.1.1.1"), row("2.2.2.2")]), (2, [row("3.3.3.3"), row("1.1.1.1")]),
                         (3, [row("4.4.4.4")])):
        responses.get(GEONODE, json=page(rows, total=5, number=number),
                      match=[matchers.query_param_matcher({**{k: str(v) for k, v in PARAMS.items()},
                                                           "page": str(number)})])
    result = fetch_geonode(session, GEONODE, PARAMS, max_pages=10)
    assert [p.label for p in result.proxies] == ["1.1.1.1:8080", "2.2.2.2:8080", "3.3.3.3:8080", "4.4.4.4:8080"]
    assert result.pages == 3 and result.total == 5 and len(responses.calls) == 3
    query = responses.calls[0].request.url.split("?", 1)[1]
    assert "sort_by=lastChecked" in query and "sort_type=desc" in query and "filterUpTime=80" in query
    assert "protocols=http%2Chttps" in query and "limit=2" in query and "page=1" in query


@responses.activate
def test_fetch_stops_at_the_page_cap(session):
    responses.get(GEONODE, json=page([row("1.1.1.1"), row("2.2.2.2")], total=1000))
    result = fetch_geonode(session, GEONODE, PARAMS, max_pages=2)
    assert len(responses.calls) == 2 and result.pages == 2 and len(result.proxies) == 2


@responses.activate
def test_fetch_stops_on_a_short_page(session):
    responses.get(GEONODE, json={"data": [row("1.1.1.1")]})  # no total at all
    result = fetch_geonode(session, GEONODE, PARAMS, max_pages=5)
    assert len(responses.calls) == 1 and [p.label for p in result.proxies] == ["1.1.1.1:8080"]


@responses.activate
@pytest.mark.parametrize(("reply", "needle"), [
    ({"body": "<html>oops</html>", "status": 200}, "not JSON"),
    ({"body": "{not json", "status": 200}, "not JSON"),
    ({"json": {"message": "busy"}, "status": 503}, "HTTP 503"),
    ({"json": page([], total=0)}, "no proxy"),
    ({"json": page([row("1.1.1.1", "x")], total=1)}, "no usable proxy"),
    ({"json": {"unexpected": True}}, "no \"data\" list"),
    ({"body": requests.ConnectionError("down")}, "could not reach Geonode"),
])
def test_fetch_failures_raise(session, reply, needle):
    responses.get(GEONODE, **reply)
    with pytest.raises(GeonodeError, match=needle):
        fetch_geonode(session, GEONODE, PARAMS, max_pages=3)


@responses.activate
def test_a_later_page_failing_keeps_the_pages_before(session):
    responses.get(GEONODE, json=page([row("1.1.1.1"), row("2.2.2.2")], total=10),
                  match=[matchers.query_param_matcher({"page": "1"}, strict_match=False)])
    responses.get(GEONODE, body="garbage", match=[matchers.query_param_matcher({"page": "2"}, strict_match=False)])
    result = fetch_geonode(session, GEONODE, PARAMS, max_pages=3)
    assert len(result.proxies) == 2 and result.partial_error.startswith("page 2")


# --- static lists -------------------------------------------------------------------------------

def test_static_urls():
    proxies, problems = parse_proxy_list(
        "http://10.0.0.1:3128, socks5://user:p%40ss@10.0.0.2:1080 10.0.0.3:8000,https://[::1]:8443,"
        "http://10.0.0.1:3128")
    assert problems == []
    assert [(p.scheme, p.label) for p in proxies] == [
        ("http", "10.0.0.1:3128"), ("socks5", "10.0.0.2:1080"), ("http", "10.0.0.3:8000"), ("https", "[::1]:8443")]
    socks = proxies[1]
    assert (socks.username, socks.password) == ("user", "p@ss")
    assert socks.url == "socks5://user:p%40ss@10.0.0.2:1080"
    assert socks.display == "socks5://***@10.0.0.2:1080" and "p@ss" not in str(socks.to_dict())


@pytest.mark.parametrize(("text", "needle"), [
    ("ftp://h:21", "scheme"), ("http://h", "port"), ("http://:80", "host"), ("http://h:99999", "not a proxy URL"),
    ("http://h:80/path", "no path"),
])
def test_static_url_problems(text, needle):
    with pytest.raises(ValueError, match=needle):
        parse_proxy_url(text)


def test_static_problems_never_repeat_credentials():
    _, problems = parse_proxy_list("http://alice:s3cret@host, gopher://bob:hunter2@h:1")
    assert len(problems) == 2
    assert all("s3cret" not in p and "hunter2" not in p and "alice" not in p for p in problems)


def test_setting_checks():
    assert proxypool.check_mode("auto") is None and proxypool.check_mode("Auto")
    assert proxypool.check_proxy_list("http://h:1,socks5://h:2") is None
    assert "port" in proxypool.check_proxy_list("http://h")
    assert proxypool.check_protocols("http,socks5") is None and proxypool.check_protocols("ftp")
    assert proxypool.check_protocols("")
    assert proxypool.check_countries("US,de") is None and proxypool.check_countries("USA")
    assert proxypool.check_anonymity("elite,anonymous") is None and proxypool.check_anonymity("secret")
    assert proxypool.check_speed("") is None and proxypool.check_speed("warp")


# --- the pool -----------------------------------------------------------------------------------

def geonode_proxy(ip, **kw):
    return Proxy("http", ip, 8080, source="geonode", protocols=("http", "https"), uptime=kw.pop("uptime", 90.0),
                 latency=kw.pop("latency", 100.0), **kw)


def test_choose_gives_different_alive_proxies_up_to_n():
    pool = ProxyPool(rng=random.Random(1))
    pool.replace_fetched([geonode_proxy(f"10.0.0.{i}") for i in range(10)])
    chosen = pool.choose(5)
    assert len(chosen) == 5 and len({p.key for p in chosen}) == 5
    assert pool.choose(0) == [] and len(pool.choose(50)) == 10


def test_dead_proxies_are_skipped_until_the_next_refresh():
    pool = ProxyPool(rng=random.Random(2))
    proxies = [geonode_proxy(f"10.0.0.{i}") for i in range(3)]
    pool.replace_fetched(proxies)
    pool.mark_failure(proxies[0], "connect timeout", now=100.0)
    assert proxies[0].dead_since == 100.0 and proxies[0].last_error == "connect timeout"
    assert proxies[0] not in pool.choose(5)
    assert pool.counts() == {"total": 3, "alive": 2, "dead": 1, "static": 0, "geonode": 3,
                             "successes": 0, "failures": 1}
    pool.replace_fetched([geonode_proxy(f"10.0.0.{i}") for i in range(3)])  # the next refresh
    assert pool.counts()["alive"] == 3
    again = next(p for p in pool.proxies() if p.host == "10.0.0.0")
    assert again.failures == 1 and again.alive  # figures kept, dead mark gone


def test_worked_proxies_come_first_and_rotate():
    pool = ProxyPool(rng=random.Random(3))
    proxies = [geonode_proxy(f"10.0.0.{i}", uptime=100 - i) for i in range(6)]
    pool.replace_fetched(proxies)
    good_a, good_b = proxies[4], proxies[5]  # the least promising on paper
    pool.mark_success(good_a, now=10)
    pool.mark_success(good_b, now=11)
    firsts = set()
    for _ in range(4):
        chosen = pool.choose(3)
        assert {chosen[0].host, chosen[1].host} == {good_a.host, good_b.host}
        firsts.add(chosen[0].host)
    assert firsts == {good_a.host, good_b.host}  # load spread over the proxies that worked


def test_failed_then_revived_proxies_come_after_untried_ones():
    pool = ProxyPool(rng=random.Random(4))
    proxies = [geonode_proxy(f"10.0.0.{i}") for i in range(3)]
    pool.replace_fetched(proxies)
    pool.mark_failure(proxies[0], "HTTP 429 rate limited", now=5)
    pool.revive_all()
    assert pool.choose(3)[-1] is proxies[0]


def test_static_proxies_before_geonode_and_kept_over_refreshes():
    pool = ProxyPool(rng=random.Random(5))
    static, _ = parse_proxy_list("http://127.0.0.1:9000")
    pool.set_static(static)
    pool.replace_fetched([geonode_proxy("10.0.0.1"), Proxy("http", "127.0.0.1", 9000, source="geonode")])
    assert pool.counts() == {"total": 2, "alive": 2, "dead": 0, "static": 1, "geonode": 1,
                             "successes": 0, "failures": 0}
    assert pool.choose(2)[0].source == "static"
    pool.mark_failure(pool.choose(1)[0], "connection refused", now=1)
    pool.set_static(parse_proxy_list("http://127.0.0.1:9000")[0])  # same list again: state kept
    assert pool.counts()["dead"] == 1
    assert [p.label for p in pool.set_static([])] == ["127.0.0.1:9000"]


def test_geonode_ranking_prefers_uptime_https_and_low_latency():
    pool = ProxyPool(rng=random.Random(6))
    slow = geonode_proxy("10.0.0.1", uptime=81, latency=4000)
    http_only = Proxy("http", "10.0.0.2", 80, source="geonode", protocols=("http",), uptime=90, latency=100)
    best = geonode_proxy("10.0.0.3", uptime=100, latency=50)
    pool.replace_fetched([slow, http_only, best])
    assert pool.choose(3)[0] is best and pool.choose(3)[-1] is slow


def test_snapshot_and_describe_attempts():
    pool = ProxyPool()
    a, b = geonode_proxy("10.0.0.1"), geonode_proxy("10.0.0.2")
    pool.replace_fetched([a, b])
    pool.mark_success(b, now=3)
    snap = pool.snapshot(5)
    assert snap[0]["proxy"] == "10.0.0.2:8080" and snap[0]["successes"] == 1 and snap[0]["alive"] is True
    attempts = [proxypool.Attempt("direct", "HTTP 429 rate limited"),
                proxypool.Attempt("10.0.0.1:8080", "connect timeout"), proxypool.Attempt("10.0.0.2:8080", "HTTP 502")]
    text = proxypool.describe_attempts(attempts)
    assert text == ("direct: HTTP 429 rate limited; tried 2 proxies: 10.0.0.1:8080 (connect timeout), "
                    "10.0.0.2:8080 (HTTP 502)")
    assert proxypool.describe_attempts(attempts, addresses=False) == (
        "direct: HTTP 429 rate limited; tried 2 proxies: connect timeout, HTTP 502")


@pytest.mark.parametrize("entry", ["http://user:pa ss@h:1", "user:secret", "socks5://me:hunter2", "me:hunter2/x"])
def test_refused_entries_never_repeat_credentials(entry):
    problem = proxypool.check_proxy_list(entry)
    assert problem and "***" in problem
    for secret in ("pa", "secret", "hunter2", "user:", "me:"):
        assert secret not in problem.replace("proxy", "").replace("scheme", "")
