"""sk-zen client keys and admin sessions.

Client keys carry 32 random bytes; being random they are stored as a plain SHA-256 (a slow hash
buys nothing against a 256-bit secret and would cost every request). The admin password, chosen by
a person, is stored with a salted slow hash (scrypt, via werkzeug).

Each worker remembers the keys the database accepted (their hashes and policies, never the keys:
:class:`KeyCache`). For ``fresh_seconds`` (``ZENGATE_SETTINGS_TTL``), and while the instance's
settings generation has not moved, such a key is taken from memory: a key changed or revoked
through the admin API moves that generation (and, with Redis, every instance's), so it counts at
the next request everywhere; one revoked another way (the command line) within ``fresh_seconds``.
Past that the database is asked again. While it is down or locked, the keys it accepted within
``KEY_CACHE_SECONDS`` keep working; any other key then gets a 503, never a guess. A key the
database refuses is forgotten at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from werkzeug.security import check_password_hash, generate_password_hash

from .config import DEFAULT_ADMIN_PASSWORD
from .keylimits import KeyPolicy, decode_models
from .store.db import UNAVAILABLE, discard_connection
from .store.models import AdminSession, ApiKey, utcnow

KEY_PREFIX = "sk-zen-"
SHOWN_PREFIX_CHARS = len(KEY_PREFIX) + 6
KEY_CACHE_SECONDS = 900.0  # how long a key the database accepted stays usable while it is unreachable
KEY_CACHE_SIZE = 10_000


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    key: str  # shown once, never stored
    record: ApiKey


def create_key(name: str = "", **limits) -> NewKey:
    """A new key; ``limits`` are column values from :func:`zengate.keylimits.parse_fields`."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey.create(name=name, prefix=key[:SHOWN_PREFIX_CHARS], key_hash=_sha256(key), **limits)
    return NewKey(key=key, record=record)


def find_active_key(key: str | None) -> ApiKey | None:
    """The active key record for a presented key, or None."""
    if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    return ApiKey.get_or_none((ApiKey.key_hash == _sha256(key)) & (ApiKey.active == True))  # noqa: E712


class KeyStoreUnavailable(Exception):
    """The database could not be asked about a key this worker has not seen accepted lately."""


class KeyCache:
    """SHA-256 hashes of keys the database accepted lately (never the keys), with their policies; per worker."""

    def __init__(self, seconds: float = KEY_CACHE_SECONDS, size: int = KEY_CACHE_SIZE, *,
                 fresh_seconds: float = 0.0):
        self.seconds = seconds
        self.size = size
        self.fresh_seconds = fresh_seconds
        self._seen: OrderedDict[str, tuple[KeyPolicy, float, int]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, key_hash: str, policy: KeyPolicy, generation: int = -1) -> None:
        with self._lock:
            self._seen[key_hash] = (policy, time.monotonic(), generation)
            self._seen.move_to_end(key_hash)
            while len(self._seen) > self.size:
                self._seen.popitem(last=False)

    def fresh(self, key_hash: str, generation: int) -> KeyPolicy | None:
        """The key's policy when the database accepted it at ``generation`` within ``fresh_seconds``."""
        entry = self._seen.get(key_hash)  # a dict read is atomic; no lock on the request path
        if entry is None or entry[2] != generation or time.monotonic() - entry[1] > self.fresh_seconds:
            return None
        return entry[0]

    def forget(self, key_hash: str) -> None:
        with self._lock:
            self._seen.pop(key_hash, None)

    def recall(self, key_hash: str) -> KeyPolicy | None:
        """The key's policy when the database accepted it within ``seconds``."""
        with self._lock:
            entry = self._seen.get(key_hash)
        if entry is None or time.monotonic() - entry[1] > self.seconds:
            return None
        return entry[0]


def verify_key(key: str | None, cache: KeyCache, generation: int = -1) -> KeyPolicy | None:
    """The policy of the active key presented, or None; raises KeyStoreUnavailable when that cannot be told.

    ``generation`` is the instance's settings generation, read now: a key accepted at it within
    ``cache.fresh_seconds`` is not asked about again. Otherwise the database is asked; only when
    it cannot answer does a key it accepted within ``cache.seconds`` pass on this worker's memory.
    """
    if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    key_hash = _sha256(key)
    if cache.fresh_seconds > 0 and generation >= 0:
        policy = cache.fresh(key_hash, generation)
        if policy is not None:
            return policy
    try:
        record = ApiKey.get_or_none((ApiKey.key_hash == key_hash) & (ApiKey.active == True))  # noqa: E712
    except UNAVAILABLE as exc:
        discard_connection()
        policy = cache.recall(key_hash)
        if policy is None:
            raise KeyStoreUnavailable(type(exc).__name__) from exc
        return policy
    if record is None:
        cache.forget(key_hash)
        return None
    policy = KeyPolicy.of(record)
    cache.remember(key_hash, policy, generation)  # the generation read before the query
    return policy


def revoke_key(key_id: int | None = None, prefix: str | None = None) -> int:
    query = ApiKey.update(active=False)
    if key_id is not None:
        query = query.where(ApiKey.id == key_id)
    elif prefix:
        query = query.where(ApiKey.prefix == prefix)
    else:
        return 0
    return query.execute()


def key_prefix(key: str | None) -> str | None:
    """What may be shown or logged of a presented key."""
    if not key:
        return None
    return key[:SHOWN_PREFIX_CHARS] if key.startswith(KEY_PREFIX) else key[:4] + "…"


def presented_key(headers, query_key: str | None = None) -> str | None:
    """The key a client presents: ``Authorization: Bearer``, ``x-api-key``, Gemini's
    ``x-goog-api-key``, or (Gemini paths only, which pass it) the ``?key=`` query argument."""
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("x-api-key") or headers.get("x-goog-api-key") or query_key or None


def key_to_dict(record: ApiKey) -> dict:
    return {
        "id": record.id,
        "name": record.name,
        "prefix": record.prefix,
        "created_at": iso(record.created_at),
        "last_used_at": iso(record.last_used_at),
        "active": record.active,
        "rpm": record.rpm,
        "requests_per_day": record.requests_per_day,
        "tokens_per_day": record.tokens_per_day,
        "models": decode_models(record.models),
        "expires_at": iso(record.expires_at),
        "note": record.note or "",
    }


def iso(value: dt.datetime | None) -> str | None:
    return value.replace(tzinfo=dt.UTC).isoformat() if value else None


# --- admin password and sessions ---------------------------------------------------------

def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def check_password(stored_hash: str, password: str) -> bool:
    return bool(stored_hash) and check_password_hash(stored_hash, password)


MIN_PASSWORD_LENGTH = 8


class PasswordRefused(ValueError):
    """``ZENGATE_ADMIN_PASSWORD`` would be used but breaks the password rules."""


@dataclass(frozen=True)
class AdminPassword:
    """What a start found of the admin password (see :func:`ensure_admin_password`)."""

    default: bool  # the stored password is still the default 'admin'
    stored_earlier: bool  # a hash was stored before this start
    variable_ignored: bool  # ZENGATE_ADMIN_PASSWORD is set but a password of the operator's own is stored


def ensure_admin_password(settings, configured: str | None) -> AdminPassword:
    """Store the first admin password: ``ZENGATE_ADMIN_PASSWORD``'s hash, else the default's.

    The variable also replaces a stored *default* password (one an earlier start stored without the
    variable), so setting it after a refused start works; a password set any other way is kept and
    the variable is then ignored. The variable obeys the same minimum length as a changed password.
    """
    settings.refresh(force=True)
    stored = settings.get("admin_password_hash")
    if stored and not check_password(stored, DEFAULT_ADMIN_PASSWORD):
        return AdminPassword(default=False, stored_earlier=True, variable_ignored=bool(configured))
    if configured is not None and len(configured) < MIN_PASSWORD_LENGTH:
        raise PasswordRefused(f"ZENGATE_ADMIN_PASSWORD must have at least {MIN_PASSWORD_LENGTH} characters "
                              f"(it has {len(configured)})")
    if configured:
        if stored:
            settings.set("admin_password_hash", hash_password(configured), internal=True)
            close_all_sessions()  # they were opened with the default password
        else:
            settings.ensure("admin_password_hash", lambda: hash_password(configured))
        return AdminPassword(default=False, stored_earlier=bool(stored), variable_ignored=False)
    if not stored:
        settings.ensure("admin_password_hash", lambda: hash_password(DEFAULT_ADMIN_PASSWORD))
    return AdminPassword(default=True, stored_earlier=bool(stored), variable_ignored=False)


def open_session(hours: float) -> tuple[str, dt.datetime]:
    token = "zgs_" + secrets.token_urlsafe(32)
    expires = utcnow() + dt.timedelta(hours=hours)
    AdminSession.create(token_hash=_sha256(token), expires_at=expires)
    return token, expires


def session_valid(token: str | None) -> bool:
    if not token or len(token) > 200:
        return False
    row = AdminSession.get_or_none(AdminSession.token_hash == _sha256(token))
    return row is not None and row.expires_at > utcnow()


def close_session(token: str) -> None:
    AdminSession.delete().where(AdminSession.token_hash == _sha256(token)).execute()


def close_all_sessions() -> None:
    AdminSession.delete().execute()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
