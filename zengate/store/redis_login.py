"""The admin login's failures counted in Redis, so that every instance counts the same failures.

The instance's own count (:class:`~zengate.store.instance.SharedLoginState`) serves while Redis
is down: no login fails or waits because Redis is unreachable. A decision holds a short Redis
lock, so that instances take turns as an instance's workers do on its file; logins are rare, and
a lock not had within ``LOCK_WAIT`` seconds lets the decision go on unlocked rather than wait.
Entries expire by themselves (an address's record ``forget_after`` its last failure, the recent
failures with the window).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from .instance import LoginRecord, LoginView, MemoryLoginState, SharedLoginState

RECENT = "zengate:login:recent"  # sorted set: one member per failure, scored by its time
ADDRESS = "zengate:login:address:"  # hash per address: failures, locked_until, last_failure
LOCK = "zengate:login:lock"
LOCK_SECONDS = 2.0
LOCK_WAIT = 0.5

_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class RedisLoginState:
    """Login failures in Redis (``relay.redis``), or in ``local`` while the relay says it is down."""

    def __init__(self, relay: Any, local: SharedLoginState | MemoryLoginState) -> None:
        self.relay = relay
        self.local = local
        self._release = relay.redis.register_script(_RELEASE)

    @contextmanager
    def view(self, address: str, now: float, window: float, forget_after: float) -> Iterator[LoginView]:
        if not self.relay.up:
            with self.local.view(address, now, window, forget_after) as view:
                yield view
            return
        client, token = self.relay.redis, uuid.uuid4().hex
        try:
            locked = self._lock(client, token)
            pipe = client.pipeline(transaction=False)
            pipe.zremrangebyscore(RECENT, "-inf", now - window)
            pipe.zrange(RECENT, 0, -1, withscores=True)
            pipe.hgetall(ADDRESS + address)
            _, recent, stored = pipe.execute()
        except redis.RedisError as exc:
            self.relay.failed(exc)
            with self.local.view(address, now, window, forget_after) as view:
                yield view
            return
        view = LoginView([score for _, score in recent], _record(stored))
        try:
            yield view
            self._write(client, address, view, window, forget_after)
        except redis.RedisError as exc:
            self.relay.failed(exc)
        finally:
            if locked:
                try:
                    self._release(keys=[LOCK], args=[token])
                except redis.RedisError:
                    pass  # it expires

    @staticmethod
    def _lock(client: Any, token: str) -> bool:
        deadline = time.monotonic() + LOCK_WAIT
        while not client.set(LOCK, token, nx=True, px=int(LOCK_SECONDS * 1000)):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)  # another instance is deciding a login: a few milliseconds
        return True

    @staticmethod
    def _write(client: Any, address: str, view: LoginView, window: float, forget_after: float) -> None:
        pipe = client.pipeline(transaction=True)
        if view.added:
            pipe.zadd(RECENT, {f"{at!r}:{uuid.uuid4().hex[:8]}": at for at in view.added})
            pipe.pexpire(RECENT, int(window * 1000) + 1000)
        if view.changed and view.record is None:
            pipe.delete(ADDRESS + address)
        elif view.changed:
            record = view.record
            pipe.hset(ADDRESS + address, mapping={"failures": record.failures,
                                                  "locked_until": repr(record.locked_until),
                                                  "last_failure": repr(record.last_failure)})
            pipe.pexpire(ADDRESS + address, int(forget_after * 1000))
        pipe.execute()


def _record(stored: dict) -> LoginRecord | None:
    if not stored:
        return None
    values = {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in stored.items()}
    return LoginRecord(int(values.get("failures", 0)), values.get("locked_until", 0.0), values.get("last_failure", 0.0))
