"""Redis relays rests and settings changes between instances (zengate/store/relay.py), against a
real redis-server of the test's own; stopped and started again, nothing fails and both sides
catch up."""

from __future__ import annotations

import json
import logging

import pytest

from tests.support.waiting import wait_until as poll
from zengate.runtime.generation import Generation
from zengate.store.instance import RestBoard
from zengate.store.relay import Relay


class Instance:
    """One instance as the relay sees it: its board (file and generation) and its settings generation."""

    def __init__(self, root, name: str, url: str):
        root = root / name
        root.mkdir()
        self.board = RestBoard(root / "zengate-instance.db", Generation(root / "zengate-rests.generation"))
        self.reader = self.board.reader()
        self.settings = Generation(root / "zengate-settings.generation")
        self.conversations = Generation(root / "zengate-conversations.generation")
        self.relay = Relay(url, self.board, self.settings, origin=name, conversations_generation=self.conversations)
        self.board.relay = self.relay

    def rests(self) -> dict[str, float]:
        return self.reader.current()


def wait_until(condition, timeout: float = 10.0):
    value = poll(condition, timeout)
    assert value, "condition not met in time"
    return value


@pytest.fixture
def pair(tmp_path, redis_server):
    a, b = Instance(tmp_path, "a", redis_server.url), Instance(tmp_path, "b", redis_server.url)
    for instance in (a, b):
        instance.relay.start()
    wait_until(lambda: a.relay.up and b.relay.up)
    yield a, b
    for instance in (a, b):
        instance.relay.stop(wait=5)


NAME = json.dumps(["pair", "zen", "big-pickle", 0])


def test_a_rest_posted_on_one_instance_reaches_the_other(pair):
    a, b = pair
    before = b.board.generation.read()
    a.board.post(NAME, 120)
    # the rest is in the other instance's file, and its workers see a change to catch up on
    left = wait_until(lambda: b.board.generation.read() != before and b.rests().get(NAME))
    assert 110 < left <= 120


def test_a_settings_change_makes_the_other_instance_reload(pair):
    a, b = pair
    before_a, before_b = a.settings.read(), b.settings.read()
    a.relay.settings_changed()
    wait_until(lambda: b.settings.read() != before_b)
    assert a.settings.read() == before_a  # not sent back to where it came from


def test_an_in_chat_choice_made_on_one_instance_empties_the_others_cached_choices(pair):
    a, b = pair
    before_a, before_b, settings_b = a.conversations.read(), b.conversations.read(), b.settings.read()
    a.relay.conversations_changed()
    wait_until(lambda: b.conversations.read() != before_b)
    assert a.conversations.read() == before_a  # not sent back to where it came from
    assert b.settings.read() == settings_b  # the settings stay as they are


def test_an_instance_starting_later_takes_the_rests_in_force(tmp_path, redis_server, pair):
    a, _ = pair
    a.board.post(NAME, 120)
    wait_until(lambda: pair[1].rests().get(NAME))
    late = Instance(tmp_path, "late", redis_server.url)
    late.relay.start()
    try:
        assert 110 < wait_until(lambda: late.rests().get(NAME)) <= 120
    finally:
        late.relay.stop(wait=5)


def test_redis_away_and_back(pair, redis_server, caplog):
    """Down: posts stay local and nothing raises; logged once; /healthz says so. Back: what each
    side posted meanwhile reaches the other."""
    a, b = pair
    caplog.set_level(logging.WARNING, "zengate.store.relay")
    redis_server.stop()
    a.board.post(NAME, 120)  # the publish fails: the relay notes it's down
    wait_until(lambda: not a.relay.up and not b.relay.up)
    assert a.rests().get(NAME)  # this instance still rests it
    a.board.post(json.dumps(["key", "zen", 1]), 300)
    b.board.post(json.dumps(["proxy", "http", "203.0.113.9", 8080]), 600)
    assert a.relay.status()["redis"] == "unavailable" and a.relay.status()["since"]
    assert sum("Redis unreachable" in r.message for r in caplog.records if r.name.endswith("relay")) == 2  # once each
    redis_server.start()
    wait_until(lambda: a.relay.up and b.relay.up)
    wait_until(lambda: NAME in b.rests() and json.dumps(["key", "zen", 1]) in b.rests())
    wait_until(lambda: json.dumps(["proxy", "http", "203.0.113.9", 8080]) in a.rests())
    assert a.relay.status() == {"redis": "ok"}


def test_messages_that_are_not_ours_are_ignored(tmp_path):
    instance = Instance(tmp_path, "x", "redis://127.0.0.1:1/0")
    before, before_c = instance.settings.read(), instance.conversations.read()
    for data in (b"not json", b"[]", json.dumps({"origin": "y", "rest": ["n", "soon"]}),
                 json.dumps({"origin": "x", "settings": True}), json.dumps({"origin": "x", "conversations": True})):
        instance.relay.receive(data)
    assert instance.rests() == {} and instance.settings.read() == before and instance.conversations.read() == before_c


def test_rests_ended_on_one_instance_end_on_the_other(pair):
    """An operator's proxy refresh on one instance gives every proxy another chance everywhere."""
    a, b = pair
    dead = json.dumps(["proxy", "http", "203.0.113.9", 8080, "timeout"])
    a.board.post(dead, 600)
    a.board.post(NAME, 600)
    wait_until(lambda: dead in b.rests() and NAME in b.rests())
    a.board.clear('["proxy"')
    wait_until(lambda: dead not in b.rests())
    assert NAME in b.rests() and NAME in a.rests() and dead not in a.rests()
    names = {n.decode() for n in a.relay.redis.scan_iter(match="zengate:rest:*")}
    assert names == {"zengate:rest:" + NAME}  # a later instance does not take the ended rests either
