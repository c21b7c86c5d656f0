"""Brute-force protection for ``POST /_admin/login``: per client address and overall.

- **Per address.** After ``PER_IP_FAILURES`` wrong passwords from one address, that address is
  locked out for ``BASE_LOCKOUT`` seconds; every further failure after a lockout doubles it, up to
  ``MAX_LOCKOUT`` (15 minutes). A successful login clears the address's record; a record with no
  failure for ``FORGET_AFTER`` seconds is forgotten.
- **Overall.** More than ``GLOBAL_FAILURES`` wrong passwords from anywhere within ``GLOBAL_WINDOW``
  seconds closes the login to everyone (429) until the window has room again: many addresses
  cannot share out the guessing.

While locked, the password is not even checked (no scrypt work for the attacker to spend). Under
gunicorn the counts are shared by every worker of the instance (a SQLite file in its runtime
directory, ``zengate.store.instance``): two workers allow no more than one; with ``REDIS_URL``
every instance counts the same failures (``zengate.store.redis_login``). A restart of a lone
instance forgets them. The address is the TCP peer (``request.remote_addr``);
``X-Forwarded-For`` is not trusted, so behind a reverse proxy every client shares the proxy's
address and the per-address limit acts as a second overall limit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ...store.instance import LoginRecord, LoginView, MemoryLoginState, SharedLoginState
from ...store.redis_login import RedisLoginState

PER_IP_FAILURES = 5
BASE_LOCKOUT = 30.0
MAX_LOCKOUT = 15 * 60.0
FORGET_AFTER = 60 * 60.0
GLOBAL_FAILURES = 50
GLOBAL_WINDOW = 60.0
MAX_TRACKED = 10_000  # addresses remembered at most (the oldest are dropped first)


class LoginState(Protocol):
    """Where the failures are counted (``zengate.store.instance``)."""

    def view(self, address: str, now: float, window: float,
             forget_after: float) -> AbstractContextManager[LoginView]: ...


class LoginLimiter:
    """The policy above, over a state: this process's memory by default, or the instance's shared
    file (:class:`~zengate.store.instance.SharedLoginState`, whose clock is the wall clock) so that
    every worker counts the same failures. ``clock`` is injectable for tests (seconds)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, per_ip_failures: int = PER_IP_FAILURES,
                 base_lockout: float = BASE_LOCKOUT, max_lockout: float = MAX_LOCKOUT,
                 global_failures: int = GLOBAL_FAILURES, global_window: float = GLOBAL_WINDOW,
                 state: LoginState | None = None):
        self.clock = clock
        self.per_ip_failures = per_ip_failures
        self.base_lockout = base_lockout
        self.max_lockout = max_lockout
        self.global_failures = global_failures
        self.global_window = global_window
        self.state = state or MemoryLoginState(MAX_TRACKED)

    @classmethod
    def for_instance(cls, relay: Any = None) -> LoginLimiter:
        """Shared by the instance's workers under gunicorn (in memory in a single process), and by
        every instance through Redis when there is a ``relay``."""
        local = SharedLoginState.for_instance(MAX_TRACKED)
        return cls(time.time, state=RedisLoginState(relay, local) if relay is not None else local)

    def _view(self, address: str, now: float) -> AbstractContextManager[LoginView]:
        return self.state.view(address, now, self.global_window, FORGET_AFTER)

    def retry_after(self, address: str) -> tuple[int, str] | None:
        """``(seconds, reason)`` when a login from ``address`` must be refused now, else None."""
        now = self.clock()
        with self._view(address, now) as view:
            if len(view.recent) >= self.global_failures:
                wait = view.recent[0] + self.global_window - now
                return max(1, math.ceil(wait)), "too many failed admin logins overall"
            record = view.record
            if record is not None and record.locked_until > now:
                return max(1, math.ceil(record.locked_until - now)), "too many failed admin logins from this address"
        return None

    def failed(self, address: str) -> None:
        now = self.clock()
        with self._view(address, now) as view:
            view.added.append(now)
            record = view.record or LoginRecord()
            record.failures += 1
            record.last_failure = now
            over = record.failures - self.per_ip_failures
            if over >= 0:
                record.locked_until = now + min(self.base_lockout * 2 ** min(over, 30), self.max_lockout)
            view.record, view.changed = record, True

    def succeeded(self, address: str) -> None:
        with self._view(address, self.clock()) as view:
            view.record, view.changed = None, True
