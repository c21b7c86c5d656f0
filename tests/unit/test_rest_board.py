"""Rests shared by the workers of an instance (zengate/store/instance.py): a 429 noted by one
worker's cooldowns rests that model with that key for the others, before their next decision.

Two ``Cooldowns`` on one board file stand for two workers.
"""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from zengate.exchange.routing import Cooldowns, Route, key_fingerprint
from zengate.runtime.generation import Generation
from zengate.store.instance import RestBoard


def board(tmp_path) -> RestBoard:
    return RestBoard(tmp_path / "zengate-rests.db", Generation(tmp_path / "zengate-rests.generation"))


def route(model: str = "big-pickle", key_index: int = 0) -> Route:
    return Route(client_model=model, upstream_model=model, base_url="http://up/v1", protocol="openai",
                 key=f"key-{key_index}", key_index=key_index, model_id=model)


@pytest.fixture
def workers(tmp_path):
    return Cooldowns(board=board(tmp_path)), Cooldowns(board=board(tmp_path))


def test_a_429_seen_by_one_worker_rests_the_pair_for_the_other(workers):
    one, other = workers
    now = time.monotonic()
    assert not other.cooling("zen", "big-pickle", "key-0", now)
    assert one.note(route(), 429, "120") == 120
    assert other.cooling("zen", "big-pickle", "key-0", time.monotonic())
    assert not other.cooling("zen", "big-pickle", "key-1", now)  # the other key
    assert not other.cooling("zen", "gpt-5-nano", "key-0", now)  # another model with that key
    assert 118 < other.soonest() <= 120


def test_a_401_rests_the_key_for_every_model_on_every_worker(workers):
    one, other = workers
    one.note(route(key_index=1), 401, None)
    now = time.monotonic()
    assert other.cooling("zen", "big-pickle", "key-1", now) and other.cooling("zen", "anything", "key-1", now)
    assert not other.cooling("zen", "big-pickle", "key-0", now)


def test_the_longer_rest_stays(workers):
    one, other = workers
    one.note(route(), 429, "300")
    other.note(route(), 429, "5")
    assert Cooldowns(board=workers[0].board).soonest() > 290  # a worker that starts now sees the longer


def test_rests_end(tmp_path):
    shared = board(tmp_path)
    shared.post(json.dumps(["pair", "zen", "m", key_fingerprint("key-0")]), 0.05)
    seen = Cooldowns(board=board(tmp_path))
    assert seen.cooling("zen", "m", "key-0", time.monotonic())
    deadline = time.monotonic() + 5
    while seen.cooling("zen", "m", "key-0", time.monotonic()) and time.monotonic() < deadline:
        time.sleep(0.01)  # waiting for time to pass is what this test is about
    assert not seen.cooling("zen", "m", "key-0", time.monotonic())
    shared.post('["key", "zen", 3]', 60)  # a later post clears the ended ones from the file
    with sqlite3.connect(tmp_path / "zengate-rests.db") as db:
        assert [name for (name,) in db.execute("SELECT name FROM rests")] == ['["key", "zen", 3]']


def test_without_a_change_the_board_is_not_read(workers, monkeypatch):
    _one, other = workers
    other.cooling("zen", "m", "key-0", 0)
    reads = []
    monkeypatch.setattr(RestBoard, "_db", lambda self: reads.append(1))
    for _ in range(100):
        other.cooling("zen", "m", "key-0", 0)
    assert reads == []


def test_an_unreachable_board_leaves_each_worker_its_own_rests(tmp_path, caplog):
    (tmp_path / "zengate-rests.db").mkdir()  # not a database file: every use fails
    one = Cooldowns(board=board(tmp_path))
    assert one.note(route(), 429, "60") == 60
    assert one.cooling("zen", "big-pickle", "key-0", time.monotonic())  # this worker still rests it
    assert sum("unreachable" in r.message for r in caplog.records) == 1


def test_the_file_is_private(tmp_path):
    board(tmp_path).post('["key", "zen", 0]', 1)
    assert ((tmp_path / "zengate-rests.db").stat().st_mode & 0o777) == 0o600


def test_in_one_process_the_board_is_memory(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    memory = RestBoard.for_instance()
    assert memory.path is None
    workers = Cooldowns(board=memory), Cooldowns(board=memory)
    workers[0].note(route(), 429, "30")
    assert workers[1].cooling("zen", "big-pickle", "key-0", time.monotonic())


def test_the_instance_files_stay_out_of_the_metrics(tmp_path, monkeypatch):
    """prometheus_client reads every ``*.db`` file in its directory as metrics: a SQLite file there
    made every scrape of /metrics fail."""
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    shared = RestBoard.for_instance()
    shared.post('["key", "zen", 0]', 60)
    assert shared.path.parent == tmp_path / "shared"
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    assert generate_latest(registry) == b""  # no worker wrote metrics here: nothing, and no error


def test_rests_name_keys_by_fingerprint_whatever_their_order(workers):
    """Two workers (or instances) with the same keys in another order rest the same key; the
    name holds no key."""
    one, other = workers
    one.note(route(key_index=1), 429, "60")  # "key-1" is this worker's second key
    swapped = Route(client_model="big-pickle", upstream_model="big-pickle", base_url="http://up/v1",
                    protocol="openai", key="key-1", key_index=0, model_id="big-pickle")
    now = time.monotonic()
    assert other.cooling("zen", "big-pickle", swapped.key, now) and not other.cooling("zen", "big-pickle", "key-0", now)
    names = list(one.board.current())
    assert names == [json.dumps(["pair", "zen", "big-pickle", key_fingerprint("key-1")])]
    assert "key-1" not in names[0]
