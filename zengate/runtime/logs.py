"""Log formatting: the text or JSON format (``ZENGATE_LOG_FORMAT``) and secret redaction.

Every line the gateway writes goes through :class:`TextFormatter` (the finished line) or
:class:`JsonFormatter` (each text value) and :func:`redact`: ``sk-zen-…`` keys keep only the prefix the
dashboard shows, bearer tokens, ``key=``/``password=``-style values and credentials in URLs are
masked, and the process's own secrets (upstream keys, the first admin password, the metrics
token; see :func:`register_secret`) are replaced wherever they appear. Redaction is a safety net:
the code never logs a secret on purpose.

The per-request line (``zengate.request``, written by :meth:`RequestRecord.finish`) carries its
values as ``extra={"fields": {...}}``; the JSON format puts them at the top level of the object.

One record is one line: a client can put a line break, NUL or a terminal escape sequence in a model
name, a path or a header, and the line carries it. The text format writes control characters of the
message (C0, DEL, C1, and U+2028/U+2029, which some viewers take as line breaks) as ``\\xNN`` /
``\\uNNNN`` escapes (:func:`escape_controls`); the JSON format's encoder escapes them itself.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import time

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"
MASK = "[redacted]"

# sk-zen-<shown prefix: 6 chars><the rest>: only what the dashboard shows of a key stays.
_ZEN_KEY = re.compile(r"(sk-zen-[A-Za-z0-9_-]{6})[A-Za-z0-9_-]+")
# Generic bearer tokens and key=value / "key": "value" pairs whose name says secret. These two run
# on the lower-cased text (a case-sensitive search is ten times faster than an IGNORECASE one) and
# mask the same span of the original.
_BEARER = re.compile(r"\b(bearer\s+)([a-z0-9._~+/=-]{8,})")
_NAMED = re.compile(
    r"""(?x)
    ( (?:api[_-]?key|x-api-key|access[_-]?token|auth[_-]?token|token|secret|password|passwd|authorization)
      ["']?\s*[:=]\s*["']? )
    (?!\[redacted\]|sk-zen-|bearer\s)([^\s"',;&}]{4,})
    """
)
# user:password@ in URLs (proxy URLs, database URLs).
_URL_CREDENTIALS = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")

# Characters that must not reach a text log line as they are: C0 controls (line breaks, NUL, ESC),
# DEL, C1 controls (NEL among them) and the Unicode line and paragraph separators.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROLS_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {chr(c): f"\\x{c:02x}" for c in (*range(0x20), *range(0x7f, 0xa0))} | {
    "\u2028": "\\u2028", "\u2029": "\\u2029"}

_secrets: tuple[str, ...] = ()
_secrets_lock = threading.Lock()
MIN_SECRET_CHARS = 6
NOT_SECRET = {"public", "admin"}  # Zen's anonymous key; the default password is no secret either


def register_secret(value: str | None) -> None:
    """A value that must never appear in a log line (an upstream key, a password, a token)."""
    global _secrets
    if not value or len(value) < MIN_SECRET_CHARS or value in NOT_SECRET:
        return
    with _secrets_lock:
        if value not in _secrets:
            _secrets = tuple(sorted((*_secrets, value), key=len, reverse=True))


def register_secrets(config) -> None:
    """The process's own secrets from its configuration: upstream keys, the first admin password, the
    metrics token."""
    for secret in (*config.api_keys, *config.go_api_keys, config.admin_password, config.metrics_token):
        register_secret(secret)


def registered_secrets() -> tuple[str, ...]:
    """The values given to :func:`register_secret`, longest first."""
    return _secrets


def _mask(pattern: re.Pattern, text: str) -> str:
    """Mask group 2 of every match of ``pattern`` in the lower-cased ``text``."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a character whose lower case is longer: search the original
        lowered = text
        pattern = re.compile(pattern.pattern, pattern.flags | re.IGNORECASE)
    parts, last = [], 0
    for match in pattern.finditer(lowered):
        start, end = match.span(2)
        parts += (text[last:start], MASK)
        last = end
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)


def redact(text: str) -> str:
    """``text`` with every known or recognisable secret masked."""
    if not text:
        return text
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    if "sk-zen-" in text:
        text = _ZEN_KEY.sub(r"\1…", text)
    lowered = text.lower()
    if "bearer" in lowered:
        text = _mask(_BEARER, text)
    if ("key" in lowered or "token" in lowered or "secret" in lowered or "passw" in lowered
            or "authorization" in lowered):
        text = _mask(_NAMED, text)
    if "@" in text and "://" in text:
        text = _URL_CREDENTIALS.sub(r"\1***@", text)
    return text


def _escape(match: re.Match) -> str:
    return _ESCAPES[match.group()]


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape (CR LF → ``\\x0d\\x0a``): one line."""
    # isprintable() (C, and false for every character escaped here) is the quick test; rare
    # printable-false characters that are not controls (a no-break space) go through sub unchanged.
    return text if text.isprintable() else _CONTROLS.sub(_escape, text)


def _indented_block(text: str) -> str:
    """A traceback (or stack) for a text line: its own lines kept, each indented, other controls escaped.

    A traceback is several lines by nature, and an exception's message may carry a client's text
    (a line break, then something that looks like a record of its own). Indented, no line of it
    can pass for a record (a record starts with its time); escaped, none can rewrite the terminal.
    """
    if _CONTROLS_BUT_NEWLINE.search(text):
        text = _CONTROLS_BUT_NEWLINE.sub(_escape, text)
    return "    " + text.rstrip("\n").replace("\n", "\n    ")


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [pid] message``, redacted, the message on one line (controls escaped).

    The whole message is escaped, not only its arguments: an argument that is an object (an
    exception, say) can carry a client's text as well, and the code's own format strings have no
    control characters, so escaping them changes nothing. An exception's traceback follows on
    indented lines (:func:`_indented_block`).
    """

    def __init__(self, fmt: str = TEXT_FORMAT, datefmt: str | None = None):
        super().__init__(fmt, datefmt)
        self._second: tuple[int, str] = (-1, "")  # the last second formatted, and its text

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """logging's own time text, its date and time part formatted once a second (half a line's cost)."""
        if datefmt:
            return super().formatTime(record, datefmt)
        second, text = self._second
        if int(record.created) != second:
            second = int(record.created)
            text = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = (second, text)  # one assignment: a reader sees a matching pair
        return self.default_msec_format % (text, record.msecs)

    def format(self, record: logging.LogRecord) -> str:
        """``logging.Formatter.format``, with the message escaped and the traceback indented."""
        record.message = escape_controls(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        s = self.formatMessage(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)  # logging's own cache, as it is
        if record.exc_text:
            s = s + "\n" + _indented_block(record.exc_text)
        if record.stack_info:
            s = s + "\n" + _indented_block(self.formatStack(record.stack_info))
        return redact(s)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, pid, message, the record's ``fields``, exc.

    Each text value is redacted before it is encoded (the field names are the gateway's own).
    """

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
        return json.dumps(out, default=str)  # ASCII only: every control character escaped (DEL, C1 too)


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
    # Neither format shows where a line was logged from, nor a thread's name: skip finding them out
    # for every record (the logging HOWTO's "Optimization"; the caller walk is most of it).
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False


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
