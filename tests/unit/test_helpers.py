"""start_helper (zengate/runtime/helpers.py): a greenlet under gevent, a daemon thread otherwise."""

from __future__ import annotations

import threading

import gevent

from zengate.runtime import helpers


def test_outside_gevent_a_daemon_thread_runs_it():
    ran = threading.Event()
    seen = {}

    def target():
        seen["thread"] = threading.current_thread()
        ran.set()

    helpers.start_helper(target, "zengate-test-helper")
    assert ran.wait(5)
    assert seen["thread"] is not threading.main_thread()
    assert seen["thread"].name == "zengate-test-helper" and seen["thread"].daemon


def test_under_gevent_a_greenlet_runs_it(monkeypatch):
    monkeypatch.setattr(helpers, "_under_gevent", lambda: True)
    started = []
    monkeypatch.setattr(threading.Thread, "start", lambda self: started.append(self))  # must not be used
    seen = []
    helpers.start_helper(lambda: seen.append(gevent.getcurrent()), "zengate-test-helper")
    assert seen == []  # it runs when the caller next yields to the hub, not inside the call
    gevent.sleep(0)
    assert len(seen) == 1 and isinstance(seen[0], gevent.Greenlet) and started == []


def test_this_test_process_is_not_patched():
    """The relay's unit tests exercise the thread path: the suite does not patch threading."""
    assert helpers._under_gevent() is False
