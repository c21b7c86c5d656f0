"""Dead proxies shared by an instance's workers (ProxyPool with a RestBoard): a proxy one worker
saw fail is skipped by the others at their next choice, for the refresh interval, refreshes
included. Two pools on one board file stand for two workers."""

from __future__ import annotations

import time

from zengate.runtime.generation import Generation
from zengate.store.instance import RestBoard
from zengate.upstream.proxypool import ProxyPool, parse_proxy_url

LIST = ["http://203.0.113.1:8080", "http://203.0.113.2:8080", "http://203.0.113.3:8080"]


def worker(tmp_path) -> ProxyPool:
    board = RestBoard(tmp_path / "zengate-instance.db", Generation(tmp_path / "zengate-rests.generation"))
    pool = ProxyPool(board=board)
    pool.replace_fetched([parse_proxy_url(u) for u in LIST])
    return pool


def labels(proxies) -> list[str]:
    return sorted(p.label for p in proxies)


def test_a_proxy_failed_on_one_worker_is_skipped_by_the_other(tmp_path):
    one, other = worker(tmp_path), worker(tmp_path)
    assert len(other.choose(3)) == 3
    failed = one.choose(1)[0]
    one.mark_failure(failed, "connect timeout", now=time.time(), shared_for=60)
    chosen = other.choose(3)
    assert failed.label not in labels(chosen) and len(chosen) == 2
    assert other.counts()["dead"] == 1
    (dead,) = [p for p in other.proxies() if not p.alive]
    assert dead.label == failed.label and dead.last_error == "connect timeout"  # the reason travels too


def test_a_refresh_does_not_revive_what_another_worker_saw_fail_lately(tmp_path):
    one, other = worker(tmp_path), worker(tmp_path)
    failed = one.choose(1)[0]
    one.mark_failure(failed, "connect timeout", now=time.time(), shared_for=60)
    other.replace_fetched([parse_proxy_url(u) for u in LIST])
    other.revive_all()
    assert failed.label not in labels(other.choose(3))
    one.revive_all()  # nor on the worker that saw it
    assert failed.label not in labels(one.choose(3))


def test_once_the_mark_ends_a_refresh_revives_it(tmp_path):
    one, other = worker(tmp_path), worker(tmp_path)
    failed = one.choose(1)[0]
    one.mark_failure(failed, "connect timeout", now=time.time(), shared_for=0.05)
    assert failed.label not in labels(other.choose(3))
    deadline = time.monotonic() + 5
    while other.board.current() and time.monotonic() < deadline:
        time.sleep(0.01)  # waiting for the mark's time to pass is what this test is about
    other.revive_all()
    assert failed.label in labels(other.choose(3))


def test_without_a_board_marks_stay_in_the_worker():
    pool = ProxyPool()
    pool.replace_fetched([parse_proxy_url(u) for u in LIST])
    pool.mark_failure(pool.choose(1)[0], "refused", now=1.0)
    pool.revive_all()
    assert len(pool.choose(3)) == 3


def test_a_refresh_asked_for_gives_every_proxy_another_chance_on_every_worker(tmp_path):
    one, other = worker(tmp_path), worker(tmp_path)
    failed = one.choose(1)[0]
    one.mark_failure(failed, "connect timeout", now=time.time(), shared_for=600)
    assert failed.label not in labels(other.choose(3))
    one.forget_shared_marks()  # the admin's refresh (Egress.request_refresh)
    for pool in (one, other):
        pool.revive_all()
        assert len(pool.choose(3)) == 3
