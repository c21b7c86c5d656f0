"""The admin login's failures counted in Redis (zengate/store/redis_login.py): two instances, each
with its own instance file, count the same failures; with Redis away each counts its own, and no
login fails for it."""

from __future__ import annotations

import pytest

from tests.support.clock import Clock
from tests.support.waiting import wait_until
from zengate.runtime.generation import Generation
from zengate.store.instance import FILE_NAME, RestBoard, SharedLoginState
from zengate.store.redis_login import RedisLoginState
from zengate.store.relay import Relay
from zengate.web.admin.loginlimit import MAX_TRACKED, PER_IP_FAILURES, LoginLimiter


@pytest.fixture
def instances(tmp_path, redis_server):
    """Two instances' limiters on one Redis, on one hand-moved clock."""
    clock, limiters, relays = Clock(), [], []
    for name in ("a", "b"):
        root = tmp_path / name
        root.mkdir()
        board = RestBoard(root / FILE_NAME, Generation(root / "rests.generation"))
        relay = Relay(redis_server.url, board, Generation(root / "settings.generation"), origin=name)
        relay.start()
        relays.append(relay)
        limiters.append(LoginLimiter(clock, state=RedisLoginState(relay, SharedLoginState(root / FILE_NAME,
                                                                                         MAX_TRACKED))))
    assert wait_until(lambda: all(r.up for r in relays), 10)
    yield clock, limiters, relays
    for relay in relays:
        relay.stop(wait=5)


def test_failures_on_two_instances_add_up(instances):
    clock, (a, b), _ = instances
    for n in range(PER_IP_FAILURES):
        assert (a if n % 2 else b).retry_after("198.51.100.7") is None
        (a if n % 2 else b).failed("198.51.100.7")
    for instance in (a, b):
        assert instance.retry_after("198.51.100.7") == (30, "too many failed admin logins from this address")
    clock.now += 30
    a.failed("198.51.100.7")  # one more after the lockout: twice as long, on both
    assert b.retry_after("198.51.100.7")[0] == 60
    b.succeeded("198.51.100.7")
    assert a.retry_after("198.51.100.7") is None


def test_the_overall_limit_counts_every_instance(tmp_path, redis_server):
    clock = Clock()
    limiters = []
    for name in ("a", "b"):
        root = tmp_path / name
        root.mkdir()
        board = RestBoard(root / FILE_NAME, Generation(root / "rests.generation"))
        relay = Relay(redis_server.url, board, Generation(root / "settings.generation"), origin=name)
        relay.up = True  # taken as connected: the decisions here need no subscriber
        limiters.append(LoginLimiter(clock, global_failures=4,
                                     state=RedisLoginState(relay, SharedLoginState(root / FILE_NAME, MAX_TRACKED))))
    for n in range(4):
        limiters[n % 2].failed(f"203.0.113.{n}")
    assert limiters[1].retry_after("203.0.113.99") == (60, "too many failed admin logins overall")
    clock.now += 60
    assert limiters[0].retry_after("203.0.113.99") is None


def test_with_redis_away_each_instance_counts_its_own(instances, redis_server):
    _, (a, _), relays = instances
    redis_server.stop()
    a.failed("198.51.100.8")  # the failed call: counted by the instance, nothing raised
    assert not relays[0].up
    for _ in range(PER_IP_FAILURES):
        a.failed("198.51.100.8")
    assert a.retry_after("198.51.100.8") is not None  # this instance's own count holds
