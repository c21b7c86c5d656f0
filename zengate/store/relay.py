"""Between instances: Redis (``REDIS_URL``) relays what each instance's workers share.

Inside an instance the workers share rests (cooldowns after a 429 or a 401, dead proxies) and
settings changes through the instance's runtime directory (:mod:`zengate.store.instance`,
:mod:`zengate.runtime.generation`); that stays the request path's only source. The relay carries
those events to the other instances: a rest posted here is stored in Redis (a key that expires
with the rest) and published; every worker of every other instance, subscribed, writes it into
its own instance's board, and a settings change makes them reload their settings.

No request waits for Redis, and none fails because it is unreachable: while it is down each
instance works on its own view (logged once, shown on ``/healthz``); when it is back the relay
catches up both ways (the rests in force here are stored there, those stored there are taken
here, and the settings are reloaded).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from typing import Any

import redis

from ..runtime.generation import Generation, runtime_dir
from .instance import RestBoard

log = logging.getLogger(__name__)

CHANNEL = "zengate:shared"
REST_PREFIX = "zengate:rest:"
RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)  # between reconnection tries, then the last one again
READ_SECONDS = 1.0  # how long the subscriber waits for a message before it looks at its stop flag


def instance_origin() -> str:
    """A name for this instance, the same in all its workers (its runtime directory is per master start)."""
    directory = runtime_dir()
    return f"{socket.gethostname()}:{directory}" if directory else f"{socket.gethostname()}:{uuid.uuid4().hex}"


def _glob_escape(text: str) -> str:
    """``text`` matched literally by a Redis glob pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class Relay:
    """One worker's link to Redis: publishes what the instance learns, subscribes to the others'."""

    def __init__(self, url: str, board: RestBoard, settings_generation: Generation, *, origin: str | None = None,
                 client: Any = None, conversations_generation: Generation | None = None) -> None:
        self.board = board
        self.settings_generation = settings_generation
        self.conversations_generation = conversations_generation  # in-chat choices (store/conversations.py)
        self.origin = origin or instance_origin()
        self.redis = client or redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.up = False
        self.down_since: float | None = time.time()
        self.last_error = "not connected yet"
        self._said_down = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what this instance learns -----------------------------------------------------------

    def rest_posted(self, name: str, until: float) -> None:
        """A rest this instance posted (``until``: wall-clock seconds). Local only while Redis is down."""
        if not self.up:
            return  # caught up when the relay reconnects
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(REST_PREFIX + name, repr(until), pxat=max(1, int(until * 1000)))
            pipe.publish(CHANNEL, json.dumps({"origin": self.origin, "rest": [name, until]}))
            pipe.execute()
        except redis.RedisError as exc:
            self._went_down(exc)

    def rests_cleared(self, prefix: str) -> None:
        """Rests this instance ended (an operator's proxy refresh): the others end theirs too."""
        if not self.up:
            return
        try:
            names = list(self.redis.scan_iter(match=_glob_escape(REST_PREFIX + prefix) + "*", count=500))
            pipe = self.redis.pipeline(transaction=False)
            if names:
                pipe.delete(*names)
            pipe.publish(CHANNEL, json.dumps({"origin": self.origin, "clear": prefix}))
            pipe.execute()
        except redis.RedisError as exc:
            self._went_down(exc)

    def settings_changed(self) -> None:
        """A setting was stored here: the other instances reload theirs."""
        self._announce("settings")

    def conversations_changed(self) -> None:
        """A conversation's in-chat choice was stored here: the other instances read choices afresh."""
        self._announce("conversations")

    def _announce(self, what: str) -> None:
        if not self.up:
            return  # they reload when the relay reconnects
        try:
            self.redis.publish(CHANNEL, json.dumps({"origin": self.origin, what: True}))
        except redis.RedisError as exc:
            self._went_down(exc)

    # --- what the others learnt ---------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="zengate-relay", daemon=True)
            self._thread.start()

    def stop(self, wait: float = 0.0) -> None:
        """Stop listening, within ``READ_SECONDS``: a worker that exits need not wait (nothing is
        left to write); ``wait`` waits that long at most."""
        self._stop.set()
        if wait and self._thread is not None:
            self._thread.join(wait)

    def _run(self) -> None:
        tries = 0
        while not self._stop.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(CHANNEL)
                self._catch_up()
                self._came_up()
                tries = 0
                while not self._stop.is_set():
                    if not self.up:  # a call elsewhere failed while this link held: catch up again
                        self._catch_up()
                        self._came_up()
                    message = pubsub.get_message(timeout=READ_SECONDS)
                    if message is not None:
                        self.receive(message["data"])
            except redis.RedisError as exc:
                self._went_down(exc)
            finally:
                try:
                    pubsub.close()
                except redis.RedisError:
                    pass
            self._stop.wait(RETRY_SECONDS[min(tries, len(RETRY_SECONDS) - 1)])
            tries += 1

    def receive(self, data: bytes | str) -> None:
        """One message from the channel: another instance's rest, rests it ended, or its settings change."""
        try:
            message = json.loads(data)
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("origin") == self.origin:
            return
        rest = message.get("rest")
        if isinstance(rest, list) and len(rest) == 2 and isinstance(rest[0], str) \
                and isinstance(rest[1], (int, float)):
            self.board.post_until(rest[0], float(rest[1]), relay=False)
        clear = message.get("clear")
        if isinstance(clear, str) and clear:
            self.board.clear(clear, relay=False)
        if message.get("settings") is True:
            self.settings_generation.bump()
        if message.get("conversations") is True and self.conversations_generation is not None:
            self.conversations_generation.bump()

    def _catch_up(self) -> None:
        """After a (re)connection: ours there (published too, for the instances already connected),
        theirs here, and the settings reloaded."""
        now = time.time()
        pipe = self.redis.pipeline(transaction=False)
        for name, left in self.board.current().items():
            pipe.set(REST_PREFIX + name, repr(now + left), pxat=max(1, int((now + left) * 1000)))
            pipe.publish(CHANNEL, json.dumps({"origin": self.origin, "rest": [name, now + left]}))
        pipe.execute()
        names = list(self.redis.scan_iter(match=REST_PREFIX + "*", count=500))
        if names:
            for name, until in zip(names, self.redis.mget(names), strict=True):
                if until is not None:
                    key = name.decode() if isinstance(name, bytes) else name
                    self.board.post_until(key[len(REST_PREFIX):], float(until), relay=False)
        self.settings_generation.bump()
        if self.conversations_generation is not None:
            self.conversations_generation.bump()

    # --- state ---------------------------------------------------------------------------------

    def _came_up(self) -> None:
        if self._said_down:
            log.info("shared state: Redis reachable again; caught up with the other instances")
        self.up, self.down_since, self.last_error, self._said_down = True, None, "", False

    def failed(self, exc: Exception) -> None:
        """Another user of Redis (the key counters) saw it fail: this instance goes on alone until
        the subscriber reconnects."""
        self._went_down(exc)

    def _went_down(self, exc: Exception) -> None:
        if self.up or self.down_since is None:
            self.down_since = time.time()
        self.up = False
        self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
        if not self._said_down:
            self._said_down = True
            log.warning("shared state: Redis unreachable (%s); this instance goes on with its own view of rests "
                        "and settings, and catches up when it is back", self.last_error)

    def status(self) -> dict[str, Any]:
        """For ``/healthz``: whether the other instances are reachable."""
        if self.up:
            return {"redis": "ok"}
        return {"redis": "unavailable", "since": self.down_since, "error": self.last_error}
