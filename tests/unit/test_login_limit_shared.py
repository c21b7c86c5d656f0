"""The admin login's failure counts shared by an instance's workers (zengate/store/instance.py):
two limiters on one file stand for two workers, and allow no more than one would."""

from __future__ import annotations

import sqlite3

import pytest

from tests.support.clock import Clock
from zengate.store.instance import FILE_NAME, SharedLoginState
from zengate.web.admin.loginlimit import MAX_TRACKED, PER_IP_FAILURES, LoginLimiter


@pytest.fixture
def clock():
    return Clock()


def limiter(tmp_path, clock, **kw) -> LoginLimiter:
    return LoginLimiter(clock, state=SharedLoginState(tmp_path / FILE_NAME, MAX_TRACKED), **kw)


def test_failures_through_two_workers_add_up(tmp_path, clock):
    one, other = limiter(tmp_path, clock), limiter(tmp_path, clock)
    for n in range(PER_IP_FAILURES):
        assert (one if n % 2 else other).retry_after("10.0.0.1") is None
        (one if n % 2 else other).failed("10.0.0.1")
    for worker in (one, other):
        assert worker.retry_after("10.0.0.1") == (30, "too many failed admin logins from this address")
    assert one.retry_after("10.0.0.2") is None  # another address
    clock.now += 30
    assert other.retry_after("10.0.0.1") is None
    one.failed("10.0.0.1")  # one more after the lockout: twice as long, for both
    assert other.retry_after("10.0.0.1")[0] == 60


def test_a_success_through_one_worker_clears_the_address_for_both(tmp_path, clock):
    one, other = limiter(tmp_path, clock), limiter(tmp_path, clock)
    for _ in range(PER_IP_FAILURES - 1):
        one.failed("10.0.0.1")
    other.succeeded("10.0.0.1")
    one.failed("10.0.0.1")
    assert other.retry_after("10.0.0.1") is None


def test_the_overall_limit_is_counted_across_workers(tmp_path, clock):
    one, other = limiter(tmp_path, clock, global_failures=4), limiter(tmp_path, clock, global_failures=4)
    for n in range(4):
        (one if n % 2 else other).failed(f"10.0.1.{n}")
    assert other.retry_after("10.0.2.1") == (60, "too many failed admin logins overall")
    clock.now += 60
    assert one.retry_after("10.0.2.1") is None


def test_old_records_are_forgotten_and_the_count_is_bounded(tmp_path, clock):
    few = LoginLimiter(clock, state=SharedLoginState(tmp_path / FILE_NAME, max_tracked=3))
    for n in range(5):
        clock.now += 1
        few.failed(f"10.0.0.{n}")
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        kept = [a for (a,) in db.execute("SELECT address FROM login_failures ORDER BY last_failure")]
    assert kept == ["10.0.0.2", "10.0.0.3", "10.0.0.4"]  # the most recent ones
    clock.now += 3600
    few.retry_after("10.0.0.9")
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        assert db.execute("SELECT count(*) FROM login_failures").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM login_recent").fetchone() == (0,)


def test_an_unreachable_file_falls_back_to_the_workers_memory(tmp_path, clock, caplog):
    (tmp_path / FILE_NAME).mkdir()  # not a database: every use fails
    alone = limiter(tmp_path, clock)
    for _ in range(PER_IP_FAILURES):
        alone.failed("10.0.0.1")
    assert alone.retry_after("10.0.0.1") == (30, "too many failed admin logins from this address")
    assert sum("unreachable" in r.message for r in caplog.records) == 1


def test_a_decision_that_fails_midway_changes_nothing(tmp_path, clock):
    one = limiter(tmp_path, clock)
    with pytest.raises(RuntimeError), one.state.view("10.0.0.1", clock(), 60, 3600) as view:
        view.added.append(clock())
        raise RuntimeError("the decision failed")
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        assert db.execute("SELECT count(*) FROM login_recent").fetchone() == (0,)
    assert one.retry_after("10.0.0.1") is None  # and the file is usable again
