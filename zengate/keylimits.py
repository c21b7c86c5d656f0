"""Per-key limits: what an sk-zen key may do, and whether its next request may go.

A key may carry requests per minute, requests per day, tokens per day (input plus output), an
allow-list of models (names, or patterns with ``*``), an expiry and a note. This module is pure
(no Flask, no I/O): the policy read from a key's row, the validation of what the admin API is
sent, and the decision on counts that :mod:`zengate.store.counters` keeps where every worker and
instance sees them.

Requests per minute use a sliding window, estimated from two fixed one-minute windows (the
current one, and the previous one weighted by how much of it is still inside the last 60 s); a
request goes when the estimate with it stays within the limit. A burst across a minute's edge
cannot pass the limit twice, and two counters per key suffice.
Days are UTC days. Tokens are counted when a request ends, so the request that crosses the daily
limit is served; the next one is refused.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

MINUTE = 60.0
DAY = 86_400.0

#: The limit columns, each with its unit for messages and its largest value.
LIMITS = {
    "rpm": ("requests per minute", 1_000_000),
    "requests_per_day": ("requests per day", 1_000_000_000),
    "tokens_per_day": ("tokens per day", 10**15),
}
MAX_MODELS = 100
MAX_NOTE_CHARS = 2000


@dataclass(frozen=True)
class KeyPolicy:
    """A key's identity and limits, as authentication found them (None: no such limit)."""

    id: int
    label: str  # the key's name, or its prefix when it has none: what messages call it
    rpm: int | None = None
    requests_per_day: int | None = None
    tokens_per_day: int | None = None
    models: tuple[str, ...] = ()  # empty: every model
    expires_at: float | None = None  # wall-clock seconds

    @property
    def counted(self) -> bool:
        """Whether the key's requests are counted (it has a rate or a daily limit)."""
        return bool(self.rpm or self.requests_per_day or self.tokens_per_day)

    @classmethod
    def of(cls, record: Any) -> KeyPolicy:
        """The policy of an ``api_keys`` row (:class:`zengate.store.models.ApiKey`)."""
        expires = record.expires_at
        return cls(
            id=record.id,
            label=record.name or f"{record.prefix}…",
            rpm=record.rpm or None,
            requests_per_day=record.requests_per_day or None,
            tokens_per_day=record.tokens_per_day or None,
            models=tuple(decode_models(record.models)),
            expires_at=expires.replace(tzinfo=dt.UTC).timestamp() if expires is not None else None,
        )

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def allows(self, model: str) -> bool:
        """Whether the key may ask for ``model`` (exactly a listed name, or matching a pattern)."""
        return not self.models or any(model == allowed or ("*" in allowed and fnmatchcase(model, allowed))
                                      for allowed in self.models)


def decode_models(stored: str | None) -> list[str]:
    """The allow-list as stored (a JSON list, or NULL for none)."""
    if not stored:
        return []
    try:
        value = json.loads(stored)
    except ValueError:
        return []
    return [m for m in value if isinstance(m, str)] if isinstance(value, list) else []


# --- the decision --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Windows:
    """The counting windows at one moment: the counters' names are built from these."""

    minute: int  # minutes since the epoch
    into_minute: float  # seconds into that minute
    day: str  # the UTC day, YYYY-MM-DD
    to_day_end: float  # seconds until the next UTC midnight

    @classmethod
    def at(cls, now: float) -> Windows:
        minute = int(now // MINUTE)
        return cls(minute, now - minute * MINUTE,
                   dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%d"), DAY - now % DAY)

    @property
    def previous_weight(self) -> float:
        """How much of the previous minute's count is still inside the last 60 seconds."""
        return 1.0 - self.into_minute / MINUTE


@dataclass(frozen=True)
class Counts:
    """A key's counters at one moment (before the request being decided)."""

    minute: int = 0  # requests in the current minute
    previous_minute: int = 0
    day_requests: int = 0
    day_tokens: int = 0


@dataclass(frozen=True)
class Refusal:
    """A limit the request would pass: which, when to retry (whole seconds), and what to tell the client."""

    limit: str  # rpm | requests_per_day | tokens_per_day
    retry_after: int
    message: str

    @property
    def quota_id(self) -> str:
        """The limit as a quota id in Google's style (its window, ``PerMinute`` or ``PerDay``, last)."""
        return QUOTA_IDS[self.limit]


#: The limits as quota ids: Gemini CLI retries a ``PerMinute`` quota and stops at once on a ``PerDay`` one.
QUOTA_IDS = {"rpm": "KeyRequestsPerMinute", "requests_per_day": "KeyRequestsPerDay",
             "tokens_per_day": "KeyTokensPerDay"}


def refusal(policy: KeyPolicy, counts: Counts, windows: Windows) -> Refusal | None:
    """The limit this request would pass, or None when it may go (and is then to be counted)."""
    if policy.rpm:
        estimate = counts.previous_minute * windows.previous_weight + counts.minute
        if estimate + 1 > policy.rpm:  # this request would take the last minute past the limit
            wait = _rpm_wait(policy.rpm, counts, windows)
            return Refusal("rpm", wait, _message(policy, "rpm", f"retry in {wait} s"))
    resets = f"it resets at 00:00 UTC, in {_duration(windows.to_day_end)}"
    if policy.requests_per_day and counts.day_requests >= policy.requests_per_day:
        return Refusal("requests_per_day", math.ceil(windows.to_day_end),
                       _message(policy, "requests_per_day", resets))
    if policy.tokens_per_day and counts.day_tokens >= policy.tokens_per_day:
        return Refusal("tokens_per_day", math.ceil(windows.to_day_end),
                       _message(policy, "tokens_per_day", f"{counts.day_tokens} used; {resets}"))
    return None


def _rpm_wait(limit: int, counts: Counts, windows: Windows) -> int:
    """Seconds until one more request fits the sliding estimate, if no other comes meanwhile."""
    if counts.minute + 1 <= limit:  # within this minute, as the previous one's weight fades:
        # previous * (1 - (into + w) / 60) + minute + 1 <= limit
        wait = MINUTE * (1 - (limit - 1 - counts.minute) / counts.previous_minute) - windows.into_minute
    else:  # in the next minute, where this one's count fades: minute * (1 - t / 60) + 1 <= limit
        wait = MINUTE - windows.into_minute + MINUTE * (1 - (limit - 1) / counts.minute)
    return max(1, math.ceil(round(wait, 6)))


def _message(policy: KeyPolicy, limit: str, tail: str) -> str:
    value, unit = getattr(policy, limit), LIMITS[limit][0]
    if value == 1:
        unit = unit.replace("s per ", " per ", 1)
    return f"API key '{policy.label}' reached its limit of {value} {unit}; {tail}"


def _duration(seconds: float) -> str:
    minutes = math.ceil(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


# --- what the admin API may set --------------------------------------------------------------------

class LimitError(ValueError):
    """A field the admin API was sent that cannot be stored; ``param`` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


def parse_fields(body: dict) -> dict[str, Any]:
    """The ``api_keys`` column values for the limit fields present in ``body`` (null clears one).

    Raises :class:`LimitError` naming the first field that is not valid.
    """
    out: dict[str, Any] = {}
    for name, (unit, largest) in LIMITS.items():
        if name in body:
            value = body[name]
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not 1 <= value <= largest):
                raise LimitError(name, f"must be a whole number of {unit} from 1 to {largest}, or null for none")
            out[name] = value
    if "models" in body:
        out["models"] = _models_field(body["models"])
    if "expires_at" in body:
        out["expires_at"] = _expiry_field(body["expires_at"])
    if "note" in body:
        note = body["note"]
        if note is None:
            note = ""
        if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS or "\x00" in note:
            raise LimitError("note", f"must be a string of at most {MAX_NOTE_CHARS} characters, without NUL")
        out["note"] = note
    return out


def _models_field(value: Any) -> str | None:
    if value is None or value == []:
        return None
    if not isinstance(value, list) or len(value) > MAX_MODELS:
        raise LimitError("models", f"must be a list of at most {MAX_MODELS} model names (or patterns with *), "
                         "or null for every model")
    names = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or len(item) > 200 or "\x00" in item:
            raise LimitError("models", "each entry must be a model name (or a pattern with *) of 1 to 200 "
                             "characters, without NUL")
        if item.strip() not in names:
            names.append(item.strip())
    return json.dumps(names)


def _expiry_field(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise LimitError("expires_at", "must be an ISO 8601 date and time (such as 2027-01-31T23:59:00Z), "
                         "or null for never")
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise LimitError("expires_at", f"{value!r} is not an ISO 8601 date and time (such as "
                         "2027-01-31T23:59:00Z)") from None
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)  # stored as naive UTC, like every time here
    if not dt.datetime(2000, 1, 1) <= when <= dt.datetime(9999, 1, 1):
        raise LimitError("expires_at", "must be between the years 2000 and 9999")
    return when
