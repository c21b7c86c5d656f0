"""Brute-force protection for ``POST /_admin/login``: per client address and overall.

- **Per address.** After ``PER_IP_FAILURES`` wrong passwords from one address, that address is
  locked out for ``BASE_LOCKOUT`` seconds; every further failure after a lockout doubles it, up to
  ``MAX_LOCKOUT`` (15 minutes). A successful login clears the address's record; a record with no
  failure for ``FORGET_AFTER`` seconds is forgotten.
- **Overall.** More than ``GLOBAL_FAILURES`` wrong passwords from anywhere within ``GLOBAL_WINDOW``
  seconds closes the login to everyone (429) until the window has room again: many addresses
  cannot share out the guessing.

While locked, the password is not even checked (no scrypt work for the attacker to spend). The
state is kept in memory, per worker process: with N workers an address gets up to N times the
allowance, and a restart forgets it. The address is the TCP peer (``request.remote_addr``);
``X-Forwarded-For`` is not trusted, so behind a reverse proxy every client shares the proxy's
address and the per-address limit acts as a second overall limit.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

PER_IP_FAILURES = 5
BASE_LOCKOUT = 30.0
MAX_LOCKOUT = 15 * 60.0
FORGET_AFTER = 60 * 60.0
GLOBAL_FAILURES = 50
GLOBAL_WINDOW = 60.0
MAX_TRACKED = 10_000  # addresses remembered at most (the oldest are dropped first)


@dataclass
class _Entry:
    failures: int = 0
    locked_until: float = 0.0
    last_failure: float = 0.0


class LoginLimiter:
    """In-memory failure counters; ``clock`` is injectable for tests (seconds, monotonic)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, per_ip_failures: int = PER_IP_FAILURES,
                 base_lockout: float = BASE_LOCKOUT, max_lockout: float = MAX_LOCKOUT,
                 global_failures: int = GLOBAL_FAILURES, global_window: float = GLOBAL_WINDOW):
        self.clock = clock
        self.per_ip_failures = per_ip_failures
        self.base_lockout = base_lockout
        self.max_lockout = max_lockout
        self.global_failures = global_failures
        self.global_window = global_window
        self._entries: dict[str, _Entry] = {}
        self._recent: deque[float] = deque()  # times of failures within the global window
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> tuple[int, str] | None:
        """``(seconds, reason)`` when a login from ``address`` must be refused now, else None."""
        now = self.clock()
        with self._lock:
            self._trim(now)
            if len(self._recent) >= self.global_failures:
                wait = self._recent[0] + self.global_window - now
                return max(1, math.ceil(wait)), "too many failed admin logins overall"
            entry = self._entries.get(address)
            if entry is not None and entry.locked_until > now:
                return max(1, math.ceil(entry.locked_until - now)), "too many failed admin logins from this address"
        return None

    def failed(self, address: str) -> None:
        now = self.clock()
        with self._lock:
            self._trim(now)
            self._recent.append(now)
            entry = self._entries.pop(address, None) or _Entry()
            self._entries[address] = entry  # most recently failed last: the oldest are dropped first
            entry.failures += 1
            entry.last_failure = now
            over = entry.failures - self.per_ip_failures
            if over >= 0:
                entry.locked_until = now + min(self.base_lockout * 2 ** min(over, 30), self.max_lockout)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._entries.pop(address, None)

    def _trim(self, now: float) -> None:
        while self._recent and self._recent[0] <= now - self.global_window:
            self._recent.popleft()
        # Entries are kept in order of their last failure, so the stale ones are at the front
        # (a lockout never outlasts FORGET_AFTER: MAX_LOCKOUT is shorter).
        while self._entries:
            address, entry = next(iter(self._entries.items()))
            if entry.last_failure > now - FORGET_AFTER and len(self._entries) <= MAX_TRACKED:
                break
            del self._entries[address]
