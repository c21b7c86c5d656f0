"""Work run beside the caller: a greenlet under gevent, a daemon thread otherwise; and ways for
long work to leave the worker's event loop free.

The relay starts such a helper for many streams (the heartbeat's reader, the drain that gives a
finished stream's connection back to the pool). Under gevent's patched ``threading``, a
``Thread`` is a greenlet wrapped in the thread machinery (its locks and events, and a switch to
it and back before ``start`` returns): about 75 µs a start here, against about 12 µs for the
greenlet alone. Outside gevent (the unit tests, a plain WSGI server) a daemon thread does it.

A gevent worker serves every request from one OS thread: a greenlet that computes or waits in C
for 10 ms holds every other request for 10 ms. ``let_others_run`` splits long Python work into
turns; ``off_loop`` runs a blocking C call that releases the GIL (an SQLite checkpoint and its
fsyncs) in a native thread of gevent's pool while the loop goes on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

NEXT_TURN = 1e-6  # seconds: any positive sleep resumes at the loop's next turn, after its sockets were polled


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


def off_loop(func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` in a native thread under gevent (the caller's greenlet waits, the others run); here otherwise.

    Only for work that spends its time in C with the GIL released, and touches nothing the
    worker's greenlets share.
    """
    if _under_gevent():
        import gevent

        return gevent.get_hub().threadpool.apply(func, args)
    return func(*args)
