"""sk-zen client keys and admin sessions.

Client keys carry 32 random bytes; being random they are stored as a plain SHA-256 (a slow hash
buys nothing against a 256-bit secret and would cost every request). The admin password, chosen by
a person, is stored with a salted slow hash (scrypt, via werkzeug).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from werkzeug.security import check_password_hash, generate_password_hash

from .config import DEFAULT_ADMIN_PASSWORD
from .store.models import AdminSession, ApiKey, utcnow

KEY_PREFIX = "sk-zen-"
SHOWN_PREFIX_CHARS = len(KEY_PREFIX) + 6


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    key: str  # shown once, never stored
    record: ApiKey


def create_key(name: str = "") -> NewKey:
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey.create(name=name, prefix=key[:SHOWN_PREFIX_CHARS], key_hash=_sha256(key))
    return NewKey(key=key, record=record)


def find_active_key(key: str | None) -> ApiKey | None:
    """The active key record for a presented key, or None."""
    if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    return ApiKey.get_or_none((ApiKey.key_hash == _sha256(key)) & (ApiKey.active == True))  # noqa: E712


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


def presented_key(headers) -> str | None:
    """The key a client presents: ``Authorization: Bearer`` or ``x-api-key``."""
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("x-api-key") or None


def key_to_dict(record: ApiKey) -> dict:
    return {
        "id": record.id,
        "name": record.name,
        "prefix": record.prefix,
        "created_at": iso(record.created_at),
        "last_used_at": iso(record.last_used_at),
        "active": record.active,
    }


def iso(value: dt.datetime | None) -> str | None:
    return value.replace(tzinfo=dt.UTC).isoformat() if value else None


# --- admin password and sessions ---------------------------------------------------------

def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def check_password(stored_hash: str, password: str) -> bool:
    return bool(stored_hash) and check_password_hash(stored_hash, password)


def initial_password_hash(configured: str | None) -> str:
    return hash_password(configured or DEFAULT_ADMIN_PASSWORD)


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
