"""Process configuration read from the environment.

The variable names are a contract with operators and outside checks: never rename them.
Runtime-tunable behaviour (require_auth, identity headers, limits…) lives in the settings
table instead (see :mod:`zengate.settings`), so it can change without a restart.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .runtime.exposure import is_loopback

DEFAULT_UPSTREAM_URL = "https://opencode.ai/zen/v1"
DEFAULT_GO_UPSTREAM_URL = "https://opencode.ai/zen/go/v1"
DEFAULT_GEONODE_URL = "https://proxylist.geonode.com/api/proxy-list"
DEFAULT_BIND = "127.0.0.1:8462"
ANONYMOUS_KEY = "public"
DEFAULT_ADMIN_PASSWORD = "admin"

#: (name, default, description) — rendered into docs/configuration.md (python -m zengate.reference).
ENVIRONMENT: list[tuple[str, str, str]] = [
    ("ZENGATE_UPSTREAM_URL", DEFAULT_UPSTREAM_URL, "OpenCode Zen base URL (free and paid Zen models)."),
    ("ZENGATE_GO_UPSTREAM_URL", DEFAULT_GO_UPSTREAM_URL, "OpenCode Zen Go tier base URL."),
    ("OPENCODE_API_KEY", ANONYMOUS_KEY, "Key sent upstream; `public` is Zen's anonymous key. Clients' own keys "
     "never go upstream."),
    ("OPENCODE_GO_API_KEY", "(unset)", "Key for the Go tier (paid Go models; without it they answer 403 naming "
     "this variable)."),
    ("DATABASE_URL", "sqlite:///$ZENGATE_DATA_DIR/zengate.db", "SQLite file, or `postgresql://user:pass@host/db` "
     "(`postgres://` too) for several instances sharing one state."),
    ("ZENGATE_DATA_DIR", "./data", "Where the default SQLite database lives (and request-log rows spill while "
     "the database refuses them)."),
    ("ZENGATE_ADMIN_PASSWORD", "(unset → `admin`, loopback only)", "The first admin password, at least 8 "
     "characters (shorter refuses the start). It also replaces a stored default password; once another one is "
     "stored it is ignored (kept as a salted scrypt hash; change it with the admin API or "
     "`python -m zengate admin set-password`)."),
    ("ZENGATE_GEONODE_URL", DEFAULT_GEONODE_URL, "Geonode proxy-list API (proxy rotation)."),
    ("ZENGATE_PROXIES", "(unset)", "Your own proxies, comma-separated `http://`, `https://`, `socks4://`, "
     "`socks4a://`, `socks5://` or `socks5h://` URLs, `user:pass@` allowed (proxy rotation, with the "
     "`proxy_static` setting)."),
    ("PORT", "(unset)", "PaaS convention: when set, bind `0.0.0.0:$PORT` (over `ZENGATE_BIND`)."),
    ("ZENGATE_BIND", DEFAULT_BIND, "Address (`host:port`) to listen on when `PORT` is unset."),
    ("ZENGATE_ALLOW_PUBLIC_WITHOUT_KEYS", "(unset)", "Set to `1` to serve `/v1` without `sk-zen` keys while "
     "listening beyond loopback: anyone who reaches the gateway then spends your upstream keys (a warning is "
     "logged at start and shown on the dashboard). On loopback keys are optional anyway (`require_auth`)."),
    ("ZENGATE_WORKERS", "2", "gunicorn worker processes (gevent)."),
    ("ZENGATE_LOG_LEVEL", "info", "`debug`, `info`, `warning` or `error`; `info` writes one line per request."),
    ("OPENCODE_API_KEY_1..N", "(unset)", "More Zen keys, rotated per conversation (a 429 rests that model on "
     "that key for its `retry-after`, a 401 rests the key)."),
    ("OPENCODE_GO_API_KEY_1..N", "(unset)", "More Go-tier keys, rotated the same way."),
    ("ZENGATE_MODELS_FILE", "(unset)", "YAML or JSON file: extra backends, model knowledge, fallbacks, "
     "aliases, auto-routing lists (checked at start)."),
    ("REDIS_URL", "(unset)", "`redis://host:6379/0`: several instances share their upstream rests (a 429 "
     "or a 401 seen by one), dead proxies and settings changes through it; each instance's own workers "
     "share them without it. While it is unreachable every instance goes on alone and catches up later."),
    ("ZENGATE_SETTINGS_TTL", "2", "Seconds a worker caches the settings table at most (a change applies to "
     "the next request on every worker of the instance; other instances sharing the database see it "
     "within this)."),
    ("ZENGATE_LOG_FORMAT", "text", "`text` (one line per event) or `json` (one JSON object per line, "
     "gunicorn's own lines included)."),
    ("ZENGATE_GRACEFUL_TIMEOUT", "30", "Seconds open streams may run on after SIGTERM before they are cut; "
     "the workers then get 15 s more to write the request log."),
    ("ZENGATE_METRICS_TOKEN", "(unset)", "A bearer token `GET /metrics` accepts, besides one set with "
     "`POST /_admin/metrics-token`."),
    ("ZENGATE_LOG_QUEUE_MAX", "5000", "Request-log rows a worker keeps in memory while the database refuses "
     "writes; the rest spill to `$ZENGATE_DATA_DIR/request-log-spill/` until it is back."),
    ("ZENGATE_CLIENT_TIMEOUT", "30", "Seconds a client has to send a request's body (its head: gunicorn's keep-alive, "
     "5 s, or this if shorter); a slower one gets a 408 and is disconnected. Answers are never cut by it."),
    ("ZENGATE_MAX_HEADER_BYTES", "32768", "Largest request head (request line and headers) in bytes; larger → 431."),
    ("ZENGATE_CAPTURE_DIR", "$ZENGATE_DATA_DIR/capture", "Where wire capture (the `wire_capture` setting) writes "
     "its JSON-lines files, one per worker at a time."),
    ("PROMETHEUS_MULTIPROC_DIR", "(a fresh temporary directory)", "Where the workers share metric values; emptied at "
     "start."),
]


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


TRUE_WORDS = ("1", "true", "yes", "on")


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in TRUE_WORDS


@dataclass(frozen=True)
class Config:
    """Everything the process learns from its environment, read once at start."""

    upstream_url: str = DEFAULT_UPSTREAM_URL
    go_upstream_url: str = DEFAULT_GO_UPSTREAM_URL
    api_key: str = ANONYMOUS_KEY
    go_api_key: str | None = None
    data_dir: Path = Path("data")
    database_url: str = ""
    admin_password: str | None = None
    geonode_url: str = DEFAULT_GEONODE_URL
    proxies: str = ""  # ZENGATE_PROXIES: comma-separated proxy URLs, used with the proxy_static setting
    bind: str = DEFAULT_BIND
    workers: int = 2
    log_level: str = "info"
    settings_ttl: float = 2.0
    extra_api_keys: tuple[str, ...] = ()
    extra_go_api_keys: tuple[str, ...] = ()
    models_file: str | None = None
    log_format: str = "text"  # text | json
    graceful_timeout: float = 30.0
    metrics_token: str | None = None
    log_queue_max: int = 5000  # ZENGATE_LOG_QUEUE_MAX: request-log rows in memory before they spill to disk
    client_timeout: float = 30.0  # ZENGATE_CLIENT_TIMEOUT: seconds to send a request body (and at most the head)
    max_header_bytes: int = 32768  # ZENGATE_MAX_HEADER_BYTES: request line and headers together
    allow_public_without_keys: bool = False  # ZENGATE_ALLOW_PUBLIC_WITHOUT_KEYS: /v1 open beyond loopback
    redis_url: str | None = None  # REDIS_URL: instances share rests and settings changes through it
    capture_dir: Path | None = None  # ZENGATE_CAPTURE_DIR: wire capture's files (default: data_dir/capture)

    @property
    def wire_capture_dir(self) -> Path:
        """Where wire capture writes (``ZENGATE_CAPTURE_DIR``, else ``capture/`` in the data directory)."""
        return self.capture_dir if self.capture_dir is not None else self.data_dir / "capture"

    @property
    def spill_dir(self) -> Path:
        """Where request-log rows wait on disk while the database refuses them.

        One folder per database (a digest of its address without credentials), so instances that
        share a data directory but not a database never import each other's rows.
        """
        return self.data_dir / "request-log-spill" / database_tag(self.database_url)

    @classmethod
    def from_env(cls) -> Config:
        data_dir = Path(_env("ZENGATE_DATA_DIR", "data"))
        port = _env("PORT")
        return cls(
            upstream_url=_env("ZENGATE_UPSTREAM_URL", DEFAULT_UPSTREAM_URL).rstrip("/"),
            go_upstream_url=_env("ZENGATE_GO_UPSTREAM_URL", DEFAULT_GO_UPSTREAM_URL).rstrip("/"),
            api_key=_env("OPENCODE_API_KEY", ANONYMOUS_KEY),
            go_api_key=_env("OPENCODE_GO_API_KEY"),
            data_dir=data_dir,
            database_url=_env("DATABASE_URL") or f"sqlite:///{data_dir / 'zengate.db'}",
            admin_password=_env("ZENGATE_ADMIN_PASSWORD"),
            geonode_url=_env("ZENGATE_GEONODE_URL", DEFAULT_GEONODE_URL),
            proxies=_env("ZENGATE_PROXIES", ""),
            bind=f"0.0.0.0:{port}" if port else _env("ZENGATE_BIND", DEFAULT_BIND),
            workers=int(_env("ZENGATE_WORKERS", "2")),
            log_level=_env("ZENGATE_LOG_LEVEL", "info").lower(),
            settings_ttl=float(_env("ZENGATE_SETTINGS_TTL", "2")),
            extra_api_keys=numbered_keys("OPENCODE_API_KEY", os.environ),
            extra_go_api_keys=numbered_keys("OPENCODE_GO_API_KEY", os.environ),
            models_file=_env("ZENGATE_MODELS_FILE"),
            log_format="json" if _env("ZENGATE_LOG_FORMAT", "text").strip().lower() == "json" else "text",
            graceful_timeout=float(_env("ZENGATE_GRACEFUL_TIMEOUT", "30")),
            metrics_token=_env("ZENGATE_METRICS_TOKEN"),
            log_queue_max=max(1, int(_env("ZENGATE_LOG_QUEUE_MAX", "5000"))),
            client_timeout=max(0.1, float(_env("ZENGATE_CLIENT_TIMEOUT", "30"))),
            redis_url=_env("REDIS_URL"),
            capture_dir=Path(capture) if (capture := _env("ZENGATE_CAPTURE_DIR")) else None,
            max_header_bytes=max(1024, int(_env("ZENGATE_MAX_HEADER_BYTES", "32768"))),
            allow_public_without_keys=_flag(_env("ZENGATE_ALLOW_PUBLIC_WITHOUT_KEYS", "")),
        )

    @property
    def api_keys(self) -> tuple[str, ...]:
        """Every Zen key: ``OPENCODE_API_KEY`` (unless only numbered ones are set) then ``_1..N``."""
        first = () if self.extra_api_keys and self.api_key == ANONYMOUS_KEY else (self.api_key,)
        return tuple(dict.fromkeys((*first, *self.extra_api_keys)))

    @property
    def go_api_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k for k in (self.go_api_key, *self.extra_go_api_keys) if k))

    @property
    def bind_is_loopback(self) -> bool:
        return is_loopback_bind(self.bind)


def database_tag(url: str) -> str:
    """A short digest naming a database: scheme, host, port and database (or the SQLite file), no secrets."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url[len("sqlite://"):]
        where = str(Path(path).resolve()) if path and path != ":memory:" else path
    else:
        where = f"{parts.hostname}:{parts.port or ''}{parts.path}"
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    return hashlib.sha256(f"{scheme}://{where}".encode()).hexdigest()[:12]


def numbered_keys(name: str, environ, limit: int = 64) -> tuple[str, ...]:
    """``NAME_1`` … ``NAME_N`` from the environment (gaps allowed), in order."""
    keys = (environ.get(f"{name}_{i}", "").strip() for i in range(1, limit + 1))
    return tuple(k for k in keys if k)


def is_loopback_bind(bind: str) -> bool:
    """True when a gunicorn bind address only listens on loopback (or a unix socket)."""
    return is_loopback(bind)
