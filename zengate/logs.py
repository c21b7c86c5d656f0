"""Log formatting: the text or JSON format (``ZENGATE_LOG_FORMAT``) and secret redaction.

Every line the gateway writes goes through :class:`TextFormatter` or :class:`JsonFormatter`, and
both pass the finished text through :func:`redact`: ``sk-zen-…`` keys keep only the prefix the
dashboard shows, bearer tokens, ``key=``/``password=``-style values and credentials in URLs are
masked, and the process's own secrets (upstream keys, the first admin password, the metrics
token; see :func:`register_secret`) are replaced wherever they appear. Redaction is a safety net:
the code never logs a secret on purpose.

The per-request line (``zengate.request``, written by :meth:`RequestRecord.finish`) carries its
values as ``extra={"fields": {...}}``; the JSON format puts them at the top level of the object.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"
MASK = "[redacted]"

# sk-zen-<shown prefix: 6 chars><the rest>: only what the dashboard shows of a key stays.
_ZEN_KEY = re.compile(r"(sk-zen-[A-Za-z0-9_-]{6})[A-Za-z0-9_-]+")
# Generic bearer tokens and key=value / "key": "value" pairs whose name says secret.
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_NAMED = re.compile(
    r"""(?ix)
    ( (?:api[_-]?key|x-api-key|access[_-]?token|auth[_-]?token|token|secret|password|passwd|authorization)
      ["']?\s*[:=]\s*["']? )
    (?!\[redacted\]|sk-zen-|bearer\s)([^\s"',;&}]{4,})
    """
)
# user:password@ in URLs (proxy URLs, database URLs).
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")

_secrets: set[str] = set()
_secrets_pattern: re.Pattern | None = None
_secrets_lock = threading.Lock()
MIN_SECRET_CHARS = 6
NOT_SECRET = {"public", "admin"}  # Zen's anonymous key; the default password is no secret either


def register_secret(value: str | None) -> None:
    """A value that must never appear in a log line (an upstream key, a password, a token)."""
    global _secrets_pattern
    if not value or len(value) < MIN_SECRET_CHARS or value in NOT_SECRET:
        return
    with _secrets_lock:
        if value in _secrets:
            return
        _secrets.add(value)
        ordered = sorted(_secrets, key=len, reverse=True)
        _secrets_pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    """``text`` with every known or recognisable secret masked."""
    if not text:
        return text
    pattern = _secrets_pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if "sk-zen-" in text:
        text = _ZEN_KEY.sub(r"\1…", text)
    text = _BEARER.sub(r"\1" + MASK, text)
    text = _NAMED.sub(r"\1" + MASK, text)
    if "@" in text:
        text = _URL_CREDENTIALS.sub(r"\1***@", text)
    return text


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [pid] message``, redacted."""

    def __init__(self, fmt: str = TEXT_FORMAT, datefmt: str | None = None):
        super().__init__(fmt, datefmt)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, pid, message, the record's ``fields``, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")
                    .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": redact(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for name, value in fields.items():
                if name not in out:
                    out[name] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            out["exc"] = redact(record.exc_text)
        if record.stack_info:
            out["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(out, ensure_ascii=False, default=str)


def formatter(fmt: str = "text") -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configure(level: str = "info", fmt: str = "text") -> None:
    """Log to stderr in ``fmt`` at ``level``, unless logging is already set up.

    Under gunicorn with the JSON format, :func:`gunicorn_json_logger` has already put a
    :class:`JsonFormatter` on the root logger; under pytest the capture handlers are left alone.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(formatter(fmt))
        root.addHandler(handler)
        root.setLevel(getattr(logging, level.upper(), logging.INFO))
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def gunicorn_json_logger():
    """gunicorn's ``logger_class`` for the JSON format: its own lines and the root logger as JSON.

    (``logconfig_dict`` would do it too, but turns gunicorn's access log on: one more line and its
    formatting cost per request, when the gateway already writes one.)
    """
    from gunicorn.glogging import Logger

    class JsonGunicornLogger(Logger):
        def setup(self, cfg):
            super().setup(cfg)
            json_format = JsonFormatter()
            for logger in (self.error_log, self.access_log):
                for handler in logger.handlers:
                    handler.setFormatter(json_format)
            root = logging.getLogger()
            if not root.handlers:  # inherited by the workers: create_app leaves it as it is
                handler = logging.StreamHandler()
                handler.setFormatter(json_format)
                root.addHandler(handler)
                root.setLevel(getattr(logging, cfg.loglevel.upper(), logging.INFO))

    return JsonGunicornLogger
