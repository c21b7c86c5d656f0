"""Work run beside the caller: a greenlet under gevent, a daemon thread otherwise; and ways for
long work to leave the worker's event loop free.

The relay starts such a helper for many streams (the heartbeat's reader, the drain that gives a
finished stream's connection back to the pool). Under gevent's patched ``threading``, a
``Thread`` is a greenlet wrapped in the thread machinery (its locks and events, and a switch to
it and back before ``start`` returns): about 75 µs a start here, against about 12 µs for the
greenlet alone. Outside gevent (the unit tests, a plain WSGI server) a daemon thread does it.

A gevent worker serves every request from one OS thread: a greenlet that computes or waits in C
for 10 ms holds every other request for 10 ms. ``let_others_run`` splits long Python work into
turns; ``take_turn_if_due`` does so only once the loop has gone ``TURN_SLICE`` without polling (a
greenlet whose sockets are always ready never waits, so never lets the others run); ``off_loop``
runs a blocking C call that releases the GIL (an SQLite checkpoint and its fsyncs) in a native
thread of gevent's pool while the loop goes on; ``when_idle`` keeps work no client waits for (a
request's log line, metrics and log row) for a moment when the worker has nothing else to do:
while it waits for an upstream, rather than before it reads the next request on a kept-alive
connection.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

NEXT_TURN = 1e-6  # seconds: any positive sleep resumes at the loop's next turn, after its sockets were polled
IDLE_WAIT = 0.02  # seconds work waits at most for an idle moment (a busy worker may have none)
TURN_SLICE = 0.002  # seconds the worker may go on without its loop polling the sockets: see take_turn_if_due

log = logging.getLogger(__name__)


def _under_gevent() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a runtime dependency
        return False
    return monkey.is_module_patched("threading")


def start_helper(target: Callable[[], None], name: str) -> None:
    """Run ``target`` beside the caller; it must handle its own errors (nothing waits for it)."""
    if _under_gevent():
        import gevent

        gevent.spawn(target)
    else:
        threading.Thread(target=target, name=name, daemon=True).start()


def let_others_run() -> None:
    """Under gevent, go on at the event loop's next turn, after every greenlet whose socket became ready.

    Not ``gevent.sleep(0)``: that may resume the caller before the loop polls its sockets again,
    for up to gevent's switch interval (5 ms), and the requests waiting on them wait as long. Any
    positive sleep waits for the next turn. Threads are preempted anyway: a no-op outside gevent.
    """
    if _under_gevent():
        import gevent

        gevent.sleep(NEXT_TURN)


def take_turn_if_due() -> None:
    """Under gevent, :func:`let_others_run` once the event loop has not polled its sockets for ``TURN_SLICE``.

    gevent switches greenlets only when one waits. Under load a kept-alive connection's next
    request, and even its upstream's answer, are often there before they are read: the greenlet
    serving it then never waits, and serves request after request (seen: 80 ms of CPU) while the
    other connections of the worker wait for the loop's next turn. Called between pieces of
    work, this bounds that. The loop counts its polls (``loop.iteration``); the first call that
    sees a count notes the time, and a later call seeing the same count ``TURN_SLICE`` after
    yields. (``loop.now()`` will not do: every ``gevent.Timeout`` started refreshes it.) When the
    loop has polled since the last call (a request that waited for its upstream, a worker at low
    load) it costs a counter and a clock read, and nothing is yielded.
    """
    if not _under_gevent():
        return
    import gevent

    iteration = gevent.get_hub().loop.iteration
    now = time.monotonic()
    if iteration != _last_poll[0]:
        _last_poll[:] = [iteration, now]
    elif now - _last_poll[1] >= TURN_SLICE:
        let_others_run()


_last_poll: list = [-1, 0.0]  # the loop's poll count as last seen by take_turn_if_due, and when first seen


def off_loop(func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` in a native thread under gevent (the caller's greenlet waits, the others run); here otherwise.

    Only for work that spends its time in C with the GIL released, and touches nothing the
    worker's greenlets share.
    """
    if _under_gevent():
        import gevent

        return gevent.get_hub().threadpool.apply(func, args)
    return func(*args)


class _IdleWork:
    """Callables run by one greenlet when the event loop is idle, or after ``IDLE_WAIT`` at the latest."""

    def __init__(self) -> None:
        import gevent
        from gevent.event import Event

        self.pending: collections.deque[Callable[[], object]] = collections.deque()
        self._wake = Event()
        self._greenlet = gevent.spawn(self._serve)

    def add(self, work: Callable[[], object]) -> None:
        self.pending.append(work)
        if len(self.pending) == 1:
            self._wake.set()

    def _serve(self) -> None:
        import gevent

        while True:
            self._wake.wait()
            self._wake.clear()
            with gevent.Timeout(IDLE_WAIT, False):
                gevent.idle()  # no socket, timer or other greenlet ready to run
            self.run_pending()

    def run_pending(self) -> None:
        """Run what is pending, in one go: under load it is what the requests served since the last
        run left (they went first), and giving it turns let it fall behind them."""
        pending = self.pending
        while pending:
            work = pending.popleft()
            try:
                work()
            except Exception:
                log.exception("work done in an idle moment failed")


_idle_work: _IdleWork | None = None


def when_idle(work: Callable[[], object]) -> None:
    """Run ``work`` once the worker's event loop is idle (within ``IDLE_WAIT``); at once outside gevent.

    For bookkeeping only: it runs in another greenlet, after the caller has moved on, and its
    errors are logged.
    """
    global _idle_work
    if not _under_gevent():
        work()
        return
    if _idle_work is None:
        _idle_work = _IdleWork()
    _idle_work.add(work)


def run_idle_work() -> None:
    """Run now what waits for an idle moment (a worker about to exit)."""
    if _idle_work is not None:
        _idle_work.run_pending()


def _forget_idle_work() -> None:
    global _idle_work
    _idle_work = None  # a forked child has its own event loop and greenlets


os.register_at_fork(after_in_child=_forget_idle_work)
