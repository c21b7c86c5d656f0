"""Where keys' requests and tokens are counted for their limits, so that every worker and every
instance counts the same requests.

Three places, one behaviour (each decides with :func:`zengate.keylimits.refusal` on the counts it
read, and counts a request only when it lets it go, in one atomic step):

* :class:`MemoryCounters` — one process (no gunicorn), and the fallback of the others;
* :class:`InstanceCounters` — a table the instance's workers map from its runtime directory, one
  slot per key, read and counted under a ``lockf`` lock per decision;
* :class:`RedisCounters` — Redis (``REDIS_URL``), shared by every instance, one Lua script per
  decision. While Redis is down (the relay says so, or a call fails) the instance counts in its
  own file: no request fails or waits because Redis is unreachable; what was counted meanwhile
  stays in this instance's view.

Only keys with a rate or daily limit are counted (:attr:`KeyPolicy.counted`); the usage shown
on the dashboard is summed from the request log instead (``key_usage``).
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import struct
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import redis

from ..keylimits import MINUTE, Counts, KeyPolicy, Refusal, Windows, refusal
from ..runtime.generation import runtime_dir

log = logging.getLogger(__name__)

COUNTERS_FILE = "zengate-counters.bin"

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


SLOTS = 4096  # keys with limits one instance counts in its shared table (past it: each worker alone)
_SLOT = struct.Struct("<8q")  # key id, minute, its count, the previous minute's, day, requests, tokens, spare


class InstanceCounters:
    """The counts in a table every worker of the instance maps (``zengate-counters.bin`` in its
    runtime directory): one slot per key, read and written under an exclusive ``lockf`` lock, so
    a decision reads and counts in one step whichever worker takes it (a few microseconds, no
    query). A key without a slot (the table full, the file failing) is counted by this worker alone."""

    def __init__(self, path: Path, slots: int = SLOTS) -> None:
        self.path = path
        self.slots = slots
        self._fallback = MemoryCounters()
        self._lock = threading.Lock()  # lockf excludes other processes; this, this process's threads
        self._map: mmap.mmap | None = None
        self._fd = -1
        self._pid = 0
        self._failing = False

    @classmethod
    def for_instance(cls) -> InstanceCounters | MemoryCounters:
        directory = runtime_dir()
        return cls(directory / COUNTERS_FILE) if directory is not None else MemoryCounters()

    def _table(self) -> mmap.mmap:
        if self._map is None or self._pid != os.getpid():  # never a descriptor across a fork: lockf is per process
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            size = self.slots * _SLOT.size
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)  # only ever grown; zeros are empty slots
            self._map, self._fd, self._pid = mmap.mmap(fd, size), fd, os.getpid()
        return self._map

    def _update(self, key_id: int, now: float, change) -> Any:
        """Run ``change(values, windows)`` on the key's slot (its values rolled to now) under the
        lock; what it returns is returned, the values it leaves are stored. None for no slot."""
        windows = Windows.at(now)
        day = int(now // 86_400)
        with self._lock:
            table = self._table()
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
            try:
                offset = self._slot(table, key_id)
                if offset is None:
                    return _NO_SLOT
                _, minute, count, previous, stored_day, requests, tokens, _ = _SLOT.unpack_from(table, offset)
                if minute != windows.minute:  # a new minute: this one's count becomes the previous one's
                    previous = count if minute == windows.minute - 1 else 0
                    count, minute = 0, windows.minute
                if stored_day != day:
                    requests = tokens = 0
                values = [count, previous, requests, tokens]
                result = change(values, windows)
                _SLOT.pack_into(table, offset, key_id, minute, values[0], values[1], day, values[2], values[3], 0)
                return result
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def _slot(self, table: mmap.mmap, key_id: int) -> int | None:
        """The key's slot (taken when it has none yet), by open addressing; None when the table is full."""
        start = key_id % self.slots
        for probe in range(self.slots):
            offset = ((start + probe) % self.slots) * _SLOT.size
            held = _SLOT.unpack_from(table, offset)[0]
            if held in (key_id, 0):  # its own slot, or a free one (all zeros: a fresh count)
                return offset
        return None

    def admit(self, policy: KeyPolicy, now: float | None = None) -> Refusal | None:
        now = time.time() if now is None else now

        def decide(values: list[int], windows: Windows) -> Refusal | None:
            refused = refusal(policy, Counts(*values), windows)
            if refused is None:
                values[0] += 1
                values[2] += 1
            return refused

        return self._run(policy.id, now, decide, lambda: self._fallback.admit(policy, now))

    def spend(self, policy: KeyPolicy, tokens: int, now: float | None = None) -> None:
        now = time.time() if now is None else now

        def add(values: list[int], _windows: Windows) -> None:
            values[3] += tokens

        self._run(policy.id, now, add, lambda: self._fallback.spend(policy, tokens, now))

    def seed(self, key_id: int, requests: int, tokens: int, now: float | None = None) -> None:
        now = time.time() if now is None else now

        def raise_to(values: list[int], _windows: Windows) -> None:
            values[2], values[3] = max(values[2], requests), max(values[3], tokens)

        self._run(key_id, now, raise_to, lambda: self._fallback.seed(key_id, requests, tokens, now))

    def flush(self, now: float | None = None) -> None:
        """Nothing is held back here."""

    def _run(self, key_id: int, now: float, change, fallback) -> Any:
        try:
            result = self._update(key_id, now, change)
        except (OSError, ValueError) as exc:
            self._failed(exc)
            return fallback()
        if result is _NO_SLOT:
            self._failed(OverflowError(f"more than {self.slots} keys with limits"))
            return fallback()
        self._failing = False
        return result

    def _failed(self, exc: Exception) -> None:
        if not self._failing:
            self._failing = True
            log.warning("the key limits' counts shared by this instance's workers are unreachable (%s); "
                        "this worker counts its own meanwhile", exc)


_NO_SLOT = object()


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
        self._spent: dict[str, tuple[int, int, float]] = {}  # day-tokens counter → (key id, tokens not sent, end)

    def admit(self, policy: KeyPolicy, now: float | None = None) -> Refusal | None:
        now = time.time() if now is None else now
        if not self.relay.up:
            return self.local.admit(policy, now)
        windows = Windows.at(now)
        keys = names(policy.id, windows)
        minute_end, day_end = _ends(now, windows)
        spent = self._spent.pop(keys[3], (policy.id, 0, day_end))[1]
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
        held = self._spent.get(name, (policy.id, 0, 0.0))[1]
        self._spent[name] = (policy.id, held + tokens, _ends(now, windows)[1])

    def flush(self, now: float | None = None) -> None:
        """Send the tokens held (the background loop calls this; they go to the instance while Redis is down)."""
        if not self._spent:
            return
        now = time.time() if now is None else now
        spent, self._spent = self._spent, {}
        if self.relay.up:
            try:
                pipe = self.redis.pipeline(transaction=False)
                for name, (_, tokens, until) in spent.items():
                    pipe.incrby(REDIS_PREFIX + name, tokens)
                    pipe.pexpire(REDIS_PREFIX + name, _ms(until - now))
                pipe.execute()
                return
            except redis.RedisError as exc:
                self.relay.failed(exc)
        for key_id, tokens, _ in spent.values():  # this instance counts them
            self.local.spend(KeyPolicy(key_id, ""), tokens, now)

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
