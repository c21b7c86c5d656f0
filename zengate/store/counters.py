"""Where keys' requests and tokens are counted for their limits, so that every worker and every
instance counts the same requests.

Three places, one behaviour (each decides with :func:`zengate.keylimits.refusal` on the counts it
read, and counts a request only when it lets it go, in one atomic step):

* :class:`MemoryCounters` — one process (no gunicorn), and the fallback of the others;
* :class:`InstanceCounters` — the instance's SQLite file (``zengate.store.instance``), shared by
  its workers, one ``BEGIN IMMEDIATE`` transaction per decision;
* :class:`RedisCounters` — Redis (``REDIS_URL``), shared by every instance, one Lua script per
  decision. While Redis is down (the relay says so, or a call fails) the instance counts in its
  own file: no request fails or waits because Redis is unreachable; what was counted meanwhile
  stays in this instance's view.

Only keys with a rate or daily limit are counted (:attr:`KeyPolicy.counted`); the usage shown
on the dashboard is summed from the request log instead (``key_usage``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import redis

from ..keylimits import MINUTE, Counts, KeyPolicy, Refusal, Windows, refusal
from ..runtime.generation import runtime_dir
from .instance import FILE_NAME, InstanceFile

log = logging.getLogger(__name__)

REDIS_PREFIX = "zengate:count:"
REDIS_TIMEOUT = 0.5  # seconds; past this a decision is taken on the instance's own counts


class Counters(Protocol):
    def admit(self, policy: KeyPolicy, now: float | None = None) -> Refusal | None: ...

    def spend(self, policy: KeyPolicy, tokens: int, now: float | None = None) -> None: ...

    def seed(self, key_id: int, requests: int, tokens: int, now: float | None = None) -> None: ...

    def flush(self, now: float | None = None) -> None: ...  # send what is held (the background loop)


def names(key_id: int, windows: Windows) -> tuple[str, str, str, str]:
    """The counters a decision reads: this minute's, the previous minute's, the day's requests and tokens."""
    return (f"m:{key_id}:{windows.minute}", f"m:{key_id}:{windows.minute - 1}",
            f"r:{key_id}:{windows.day}", f"t:{key_id}:{windows.day}")


def _ends(now: float, windows: Windows) -> tuple[float, float]:
    """When a minute counter and a day counter made now may be forgotten (wall-clock seconds)."""
    return (windows.minute + 2) * MINUTE, now + windows.to_day_end + MINUTE


def _counts(values: dict[str, int], keys: tuple[str, str, str, str]) -> Counts:
    return Counts(*(int(values.get(name) or 0) for name in keys))


class MemoryCounters:
    """The counts in this process's memory."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def admit(self, policy: KeyPolicy, now: float | None = None) -> Refusal | None:
        now = time.time() if now is None else now
        windows = Windows.at(now)
        keys = names(policy.id, windows)
        minute_end, day_end = _ends(now, windows)
        with self._lock:
            self._forget(now)
            refused = refusal(policy, _counts({k: v[0] for k, v in self._values.items() if k in keys}, keys), windows)
            if refused is None:
                self._add(keys[0], 1, minute_end)
                self._add(keys[2], 1, day_end)
        return refused

    def spend(self, policy: KeyPolicy, tokens: int, now: float | None = None) -> None:
        now = time.time() if now is None else now
        windows = Windows.at(now)
        with self._lock:
            self._add(names(policy.id, windows)[3], tokens, _ends(now, windows)[1])

    def seed(self, key_id: int, requests: int, tokens: int, now: float | None = None) -> None:
        now = time.time() if now is None else now
        windows = Windows.at(now)
        keys, day_end = names(key_id, windows), _ends(now, windows)[1]
        with self._lock:
            for name, value in ((keys[2], requests), (keys[3], tokens)):
                if value > self._values.get(name, (0, 0.0))[0]:
                    self._values[name] = (value, day_end)

    def flush(self, now: float | None = None) -> None:
        """Nothing is held back here."""

    def _add(self, name: str, amount: int, until: float) -> None:
        self._values[name] = (self._values.get(name, (0, 0.0))[0] + amount, until)

    def _forget(self, now: float) -> None:
        if len(self._values) > 64:
            for name in [n for n, (_, until) in self._values.items() if until <= now]:
                del self._values[name]


_ADD = ("INSERT INTO key_counts (name, count, until) VALUES (?, ?, ?) ON CONFLICT (name) "
        "DO UPDATE SET count = count + excluded.count, until = excluded.until")
_RAISE = ("INSERT INTO key_counts (name, count, until) VALUES (?, ?, ?) ON CONFLICT (name) "
          "DO UPDATE SET count = max(count, excluded.count), until = excluded.until")


class InstanceCounters:
    """The counts in the instance's file, one transaction per decision; a failing file falls back
    to this worker's memory (said once)."""

    def __init__(self, path: Path) -> None:
        self._file = InstanceFile(path)
        self._fallback = MemoryCounters()
        self._failing = False

    @classmethod
    def for_instance(cls) -> InstanceCounters | MemoryCounters:
        directory = runtime_dir()
        return cls(directory / FILE_NAME) if directory is not None else MemoryCounters()

    def admit(self, policy: KeyPolicy, now: float | None = None) -> Refusal | None:
        now = time.time() if now is None else now
        windows = Windows.at(now)
        keys = names(policy.id, windows)
        minute_end, day_end = _ends(now, windows)
        db = None
        try:
            db = self._file.connection()
            db.execute("BEGIN IMMEDIATE")  # workers take turns: each decision sees every request before it
            db.execute("DELETE FROM key_counts WHERE until <= ?", (now,))
            rows = db.execute("SELECT name, count FROM key_counts WHERE name IN (?, ?, ?, ?)", keys).fetchall()
            refused = refusal(policy, _counts(dict(rows), keys), windows)
            if refused is None:
                db.executemany(_ADD, ((keys[0], 1, minute_end), (keys[2], 1, day_end)))
            db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            self._failed(db, exc)
            return self._fallback.admit(policy, now)
        self._failing = False
        return refused

    def spend(self, policy: KeyPolicy, tokens: int, now: float | None = None) -> None:
        now = time.time() if now is None else now
        windows = Windows.at(now)
        self._write(_ADD, [(names(policy.id, windows)[3], tokens, _ends(now, windows)[1])],
                    lambda: self._fallback.spend(policy, tokens, now))

    def seed(self, key_id: int, requests: int, tokens: int, now: float | None = None) -> None:
        now = time.time() if now is None else now
        windows = Windows.at(now)
        keys, day_end = names(key_id, windows), _ends(now, windows)[1]
        self._write(_RAISE, [(keys[2], requests, day_end), (keys[3], tokens, day_end)],
                    lambda: self._fallback.seed(key_id, requests, tokens, now))

    def flush(self, now: float | None = None) -> None:
        """Nothing is held back here."""

    def _write(self, statement: str, rows: list[tuple], fallback) -> None:
        try:
            self._file.connection().executemany(statement, rows)  # autocommit: one statement, atomic
        except (sqlite3.Error, OSError) as exc:
            self._failed(None, exc)
            fallback()

    def _failed(self, db: sqlite3.Connection | None, exc: Exception) -> None:
        if db is not None and db.in_transaction:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        if not self._failing:
            self._failing = True
            log.warning("the key limits' counts shared by this instance's workers are unreachable (%s); "
                        "this worker counts its own meanwhile", exc)


# KEYS: this minute, previous minute, the day's requests, the day's tokens.
# ARGV: rpm, previous minute's weight, requests per day, tokens per day (0: none), the minute and
# day counters' lifetimes in milliseconds, then tokens spent since this worker last said (added
# first). Returns {admitted, the four counts before}.
_ADMIT_SCRIPT = """
local spent = tonumber(ARGV[7])
if spent > 0 then
  redis.call('INCRBY', KEYS[4], spent)
  redis.call('PEXPIRE', KEYS[4], ARGV[6])
end
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
local p = tonumber(redis.call('GET', KEYS[2]) or '0')
local r = tonumber(redis.call('GET', KEYS[3]) or '0')
local t = tonumber(redis.call('GET', KEYS[4]) or '0')
local rpm, w, rpd, tpd = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if (rpm > 0 and p * w + c + 1 > rpm) or (rpd > 0 and r >= rpd) or (tpd > 0 and t >= tpd) then
  return {0, c, p, r, t}
end
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('INCR', KEYS[3])
redis.call('PEXPIRE', KEYS[3], ARGV[6])
return {1, c, p, r, t}
"""
# KEYS: the day's requests, the day's tokens; ARGV: their least values, the day counters' lifetime (ms).
_SEED_SCRIPT = """
for i = 1, 2 do
  if tonumber(redis.call('GET', KEYS[i]) or '0') < tonumber(ARGV[i]) then
    redis.call('SET', KEYS[i], ARGV[i], 'PX', ARGV[3])
  end
end
return 1
"""


class RedisCounters:
    """The counts in Redis, shared by every instance; the instance's own counts while it is down.

    ``relay`` (:class:`zengate.store.relay.Relay`) tells whether Redis is up (it reconnects) and
    is told when a call here fails. Tokens spent are held in memory and sent with the key's next
    decision, or by :meth:`flush` (the background loop, every second): one round trip a request.
    """

    def __init__(self, url: str, relay: Any, local: InstanceCounters | MemoryCounters, *, client: Any = None) -> None:
        self.relay = relay
        self.local = local
        self.redis = client or redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT,
                                                    socket_connect_timeout=REDIS_TIMEOUT)
        self._admit = self.redis.register_script(_ADMIT_SCRIPT)
        self._seed = self.redis.register_script(_SEED_SCRIPT)
        self._spent: dict[str, tuple[int, float]] = {}  # day-tokens counter name → (tokens not yet sent, its end)

    def admit(self, policy: KeyPolicy, now: float | None = None) -> Refusal | None:
        now = time.time() if now is None else now
        if not self.relay.up:
            return self.local.admit(policy, now)
        windows = Windows.at(now)
        keys = names(policy.id, windows)
        minute_end, day_end = _ends(now, windows)
        spent = self._spent.pop(keys[3], (0, day_end))[0]
        try:
            admitted, *counts = self._admit(
                keys=[REDIS_PREFIX + k for k in keys],
                args=[policy.rpm or 0, repr(windows.previous_weight), policy.requests_per_day or 0,
                      policy.tokens_per_day or 0, _ms(minute_end - now), _ms(day_end - now), spent])
        except redis.RedisError as exc:
            self.relay.failed(exc)
            if spent:
                self.local.spend(policy, spent, now)
            return self.local.admit(policy, now)
        if admitted:
            return None
        return refusal(policy, Counts(*(int(c) for c in counts)), windows)

    def spend(self, policy: KeyPolicy, tokens: int, now: float | None = None) -> None:
        """Count ``tokens`` for the key today: sent with its next decision or the next :meth:`flush`."""
        now = time.time() if now is None else now
        if not self.relay.up:
            self.local.spend(policy, tokens, now)
            return
        windows = Windows.at(now)
        name = names(policy.id, windows)[3]
        held, _ = self._spent.get(name, (0, 0.0))
        self._spent[name] = (held + tokens, _ends(now, windows)[1])

    def flush(self, now: float | None = None) -> None:
        """Send the tokens held (the background loop calls this; they go to the instance while Redis is down)."""
        if not self._spent:
            return
        now = time.time() if now is None else now
        spent, self._spent = self._spent, {}
        if self.relay.up:
            try:
                pipe = self.redis.pipeline(transaction=False)
                for name, (tokens, until) in spent.items():
                    pipe.incrby(REDIS_PREFIX + name, tokens)
                    pipe.pexpire(REDIS_PREFIX + name, _ms(until - now))
                pipe.execute()
                return
            except redis.RedisError as exc:
                self.relay.failed(exc)
        for name, (tokens, _) in spent.items():  # "t:<key id>:<day>": this instance counts them
            self.local.spend(KeyPolicy(int(name.split(":")[1]), ""), tokens, now)

    def seed(self, key_id: int, requests: int, tokens: int, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.local.seed(key_id, requests, tokens, now)
        if not self.relay.up:
            return
        windows = Windows.at(now)
        keys = names(key_id, windows)
        try:
            self._seed(keys=[REDIS_PREFIX + keys[2], REDIS_PREFIX + keys[3]],
                       args=[requests, tokens, _ms(_ends(now, windows)[1] - now)])
        except redis.RedisError as exc:
            self.relay.failed(exc)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def for_gateway(relay: Any, url: str | None) -> InstanceCounters | MemoryCounters | RedisCounters:
    """The counters a gateway uses: Redis's when it has a relay, else its instance's."""
    local = InstanceCounters.for_instance()
    return RedisCounters(url, relay, local) if relay is not None and url else local
