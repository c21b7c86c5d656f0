"""Where keys' limits are counted (zengate/store/counters.py): the same decisions in memory, in the
instance's file (shared by its workers, processes racing) and in Redis (shared by instances, a
real redis-server of the test's own), and the instance's own counts while Redis is away."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import time

import pytest

from tests.support.waiting import wait_until
from zengate.keylimits import KeyPolicy, Windows
from zengate.runtime.generation import Generation
from zengate.store.counters import REDIS_PREFIX, InstanceCounters, MemoryCounters, RedisCounters
from zengate.store.instance import RestBoard
from zengate.store.relay import Relay

NOON = dt.datetime(2026, 12, 6, 12, 0, 0, tzinfo=dt.UTC).timestamp()


def _relay(root, name: str, url: str) -> Relay:
    directory = root / name
    directory.mkdir()
    board = RestBoard(directory / "zengate-instance.db", Generation(directory / "rests.generation"))
    relay = Relay(url, board, Generation(directory / "settings.generation"), origin=name)
    board.relay = relay
    return relay


@pytest.fixture(params=["memory", "instance", "redis"])
def counters(request, tmp_path):
    """Two views of the same counts (two workers, or two instances), and the relay when Redis."""
    if request.param == "memory":
        one = MemoryCounters()
        yield one, one
        return
    if request.param == "instance":
        yield InstanceCounters(tmp_path / "zengate-counters.bin"), InstanceCounters(tmp_path / "zengate-counters.bin")
        return
    server = request.getfixturevalue("redis_server")
    views = []
    for name in ("a", "b"):
        relay = _relay(tmp_path, name, server.url)
        relay.start()
        views.append(RedisCounters(server.url, relay, InstanceCounters(tmp_path / name / "zengate-counters.bin")))
    assert wait_until(lambda: all(v.relay.up for v in views), 10)
    yield tuple(views)
    for view in views:
        view.relay.stop(wait=5)


def test_requests_per_minute_hold_across_views(counters):
    a, b = counters
    policy = KeyPolicy(1, "family", rpm=3)
    assert a.admit(policy, NOON) is None and b.admit(policy, NOON + 1) is None and a.admit(policy, NOON + 2) is None
    refused = b.admit(policy, NOON + 3)
    assert refused is not None and refused.limit == "rpm" and refused.retry_after == 77  # 57 s, then 20 s of fading
    assert "limit of 3 requests per minute" in refused.message
    assert a.admit(KeyPolicy(2, "other", rpm=3), NOON + 3) is None  # another key counts apart
    # refusals are not counted: at the next minute's half, 3 * 0.5 + 1 <= 3
    assert a.admit(policy, NOON + 90) is None


def test_daily_requests_and_tokens_hold_across_views(counters):
    a, b = counters
    policy = KeyPolicy(5, "team", requests_per_day=2, tokens_per_day=1000)
    assert a.admit(policy, NOON) is None
    a.spend(policy, 600, NOON)
    assert b.admit(policy, NOON + 1) is None
    b.spend(policy, 500, NOON + 1)  # the request that crosses the limit was served
    for view in (a, b):
        view.flush(NOON + 1)  # the background loop's: Redis's counters hold tokens until then
    refused = a.admit(KeyPolicy(5, "team", tokens_per_day=1000), NOON + 2)
    assert refused.limit == "tokens_per_day" and refused.retry_after == 12 * 3600 - 2 and "1100 used" in refused.message
    refused = b.admit(policy, NOON + 3)
    assert refused.limit == "requests_per_day" and "resets at 00:00 UTC, in 12 h 0 min" in refused.message
    tomorrow = NOON + 12 * 3600 + 1
    assert a.admit(policy, tomorrow) is None


def test_seeding_counts_what_the_key_used_before_its_limit(counters):
    a, b = counters
    policy = KeyPolicy(9, "k", requests_per_day=10)
    a.seed(9, 10, 0, NOON)
    assert b.admit(policy, NOON + 1).limit == "requests_per_day"
    a.seed(9, 3, 0, NOON + 2)  # a seed never lowers a count
    assert b.admit(policy, NOON + 3) is not None


def _admit_many(path: str, rounds: int, queue) -> None:
    counters = InstanceCounters(path)
    policy = KeyPolicy(1, "k", requests_per_day=100)
    queue.put(sum(counters.admit(policy) is None for _ in range(rounds)))


def test_workers_racing_never_pass_a_limit(tmp_path):
    """Four processes on the instance's file, 50 decisions each, 100 requests a day: exactly 100 go."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_admit_many, args=(tmp_path / "zengate-counters.bin", 50, queue))
               for _ in range(4)]
    for worker in workers:
        worker.start()
    admitted = sum(queue.get(timeout=60) for _ in workers)
    for worker in workers:
        worker.join(10)
    assert admitted == 100


def test_instances_count_alone_while_redis_is_away_and_share_again_after(tmp_path, redis_server, caplog):
    relay = _relay(tmp_path, "a", redis_server.url)
    relay.start()
    local = InstanceCounters(tmp_path / "a" / "zengate-counters.bin")
    shared = RedisCounters(redis_server.url, relay, local)
    assert wait_until(lambda: relay.up, 10)
    policy = KeyPolicy(1, "k", requests_per_day=3)
    now = time.time()
    assert shared.admit(policy, now) is None
    redis_server.stop()
    started = time.monotonic()
    assert shared.admit(policy, now) is None  # the failed call: counted by the instance instead, at once
    assert time.monotonic() - started < 2 and not relay.up
    assert "Redis unreachable" in caplog.text
    assert shared.admit(policy, now) is None and shared.admit(policy, now) is None  # the instance's own view
    assert shared.admit(policy, now).limit == "requests_per_day"
    redis_server.start()
    assert wait_until(lambda: relay.up, 15)
    assert shared.admit(policy, now) is None  # Redis counted one request today: its view again
    relay.stop(wait=5)


def test_tokens_go_to_redis_with_the_keys_next_decision_or_the_flush(tmp_path, redis_server):
    relay = _relay(tmp_path, "a", redis_server.url)
    relay.up = True  # taken as connected: no subscriber needed here
    shared = RedisCounters(redis_server.url, relay, InstanceCounters(tmp_path / "a" / "zengate-counters.bin"))
    policy = KeyPolicy(4, "k", tokens_per_day=100)
    assert shared.admit(policy, NOON) is None
    shared.spend(policy, 70, NOON)
    shared.spend(policy, 40, NOON)
    day_tokens = REDIS_PREFIX + f"t:4:{Windows.at(NOON).day}"
    assert shared.redis.get(day_tokens) is None  # held, no round trip of its own
    refused = shared.admit(policy, NOON + 1)  # sent with this decision, and counted in it
    assert refused.limit == "tokens_per_day" and "110 used" in refused.message
    shared.spend(KeyPolicy(5, "other"), 9, NOON)
    shared.flush(NOON + 2)
    assert int(shared.redis.get(REDIS_PREFIX + f"t:5:{Windows.at(NOON).day}")) == 9
    shared.spend(KeyPolicy(5, "other"), 3, NOON)
    redis_server.stop()
    shared.flush(NOON + 3)  # Redis away: the instance counts them
    assert not relay.up
    assert shared.local.admit(KeyPolicy(5, "other", tokens_per_day=3), NOON + 4).limit == "tokens_per_day"


def test_keys_that_share_a_slot_count_apart_and_a_full_table_falls_back(tmp_path, caplog):
    table = InstanceCounters(tmp_path / "zengate-counters.bin", slots=2)
    other = InstanceCounters(tmp_path / "zengate-counters.bin", slots=2)  # another worker
    one, three = KeyPolicy(1, "one", requests_per_day=1), KeyPolicy(3, "three", requests_per_day=2)  # 1 % 2 == 3 % 2
    assert table.admit(one, NOON) is None and other.admit(three, NOON) is None
    assert other.admit(one, NOON).limit == "requests_per_day"  # key 1's count, not key 3's
    assert table.admit(three, NOON) is None and table.admit(three, NOON) is not None
    five = KeyPolicy(5, "five", requests_per_day=1)  # no slot left: this worker counts it alone
    assert table.admit(five, NOON) is None and table.admit(five, NOON) is not None
    assert other.admit(five, NOON) is None
    assert "more than 2 keys with limits" in caplog.text


def test_a_new_day_and_a_new_minute_start_from_zero(tmp_path):
    table = InstanceCounters(tmp_path / "zengate-counters.bin")
    policy = KeyPolicy(2, "k", rpm=2, requests_per_day=3)
    assert table.admit(policy, NOON) is None and table.admit(policy, NOON + 1) is None
    assert table.admit(policy, NOON + 2).limit == "rpm"
    assert table.admit(policy, NOON + 150) is None  # two minutes on: nothing left in the window
    assert table.admit(policy, NOON + 300).limit == "requests_per_day"
    assert table.admit(policy, NOON + 12 * 3600) is None  # midnight passed
