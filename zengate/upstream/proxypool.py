"""The proxy pool: proxy lists parsed, proxies chosen, failures and successes remembered.

Everything here is pure (no sockets, no settings, no clock of its own) except
:func:`fetch_geonode`, which takes the ``requests.Session`` it should use. One pool lives in each
worker (:mod:`zengate.upstream.egress` owns it); what workers share goes through the settings table.

A proxy is named by its ``label`` — ``host:port`` — everywhere a person or a log sees it. The URL
with credentials (``user:pass@``) is only ever handed to ``requests``.

A fetched list is outside data: an entry is used only when its address is a public IP literal
(:func:`public_address`), so a hostile list cannot point the gateway at loopback, the private
network or link-local services (a cloud's metadata address). ``private_ok`` (the
``proxy_list_private_ok`` setting) lifts that for a list the operator serves on their own network.
The static list is the operator's own and is taken as it is.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

if TYPE_CHECKING:
    from ..store.instance import Board

#: How long the other workers skip a proxy one of them saw fail, unless told (the refresh interval).
DEAD_SECONDS = 1800.0

log = logging.getLogger(__name__)

#: Proxy URL schemes requests can use (socks* need PySocks: ``requests[socks]``).
SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")
#: What Geonode's ``protocols`` filter accepts.
GEONODE_PROTOCOLS = ("http", "https", "socks4", "socks5")
GEONODE_MAX_LIMIT = 500
#: IPv6 ranges that carry an IPv4 address in their last 32 bits: judged by that address.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated; never a proxy's address


class GeonodeError(Exception):
    """Geonode gave no usable answer; the previous pool stays.

    ``dropped_not_global``: entries of the answer left out because their address is not public.
    """

    def __init__(self, message: str, *, dropped_not_global: int = 0):
        super().__init__(message)
        self.dropped_not_global = dropped_not_global


@dataclass(eq=False)
class Proxy:
    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    source: str = "static"  # static | geonode
    protocols: tuple[str, ...] = ()  # as Geonode lists them
    uptime: float | None = None
    latency: float | None = None
    country: str | None = None
    # what this worker has seen of it
    successes: int = 0
    failures: int = 0
    last_ok: float | None = None
    last_failure: float | None = None
    last_error: str | None = None
    dead_since: float | None = None

    @property
    def label(self) -> str:
        """``host:port`` — what logs, messages, the request log and the response header show."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.scheme, self.host.lower(), self.port)

    @property
    def url(self) -> str:
        """The URL requests needs, credentials included: never log it."""
        auth = ""
        if self.username is not None:
            auth = quote(self.username, safe="")
            if self.password is not None:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        return f"{self.scheme}://{auth}{self.label}"

    @property
    def display(self) -> str:
        """The URL without credentials (``***@`` marks that there are some)."""
        return f"{self.scheme}://{'***@' if self.username is not None else ''}{self.label}"

    @property
    def alive(self) -> bool:
        return self.dead_since is None

    @property
    def tunnels(self) -> bool:
        """True when the proxy is known to carry HTTPS (CONNECT, or SOCKS)."""
        return self.source == "static" or "https" in self.protocols or self.scheme.startswith("socks")

    def requests_proxies(self) -> dict[str, str]:
        return {"http": self.url, "https": self.url}

    def worked_last(self) -> bool:
        return self.last_ok is not None and (self.last_failure is None or self.last_ok >= self.last_failure)

    def to_dict(self) -> dict[str, Any]:
        return {
            "proxy": self.label,
            "url": self.display,
            "source": self.source,
            "alive": self.alive,
            "dead_since": self.dead_since,
            "successes": self.successes,
            "failures": self.failures,
            "last_ok": self.last_ok,
            "last_error": self.last_error,
            "uptime": self.uptime,
            "latency": self.latency,
            "country": self.country,
        }


# --- parsing -----------------------------------------------------------------------------------

def _port(value: Any) -> int | None:
    """Geonode sends ports as strings; anything that is not 1..65535 is refused."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            return None
        value = int(value)
    if isinstance(value, int) and 0 < value < 65536:
        return value
    return None


def _host_ok(host: Any) -> bool:
    return isinstance(host, str) and 0 < len(host) <= 255 and not any(c in host for c in " \t\r\n/@?#")


def public_address(host: str) -> bool:
    """True when ``host`` is an IP literal that is globally routable (``ipaddress``'s ``is_global``).

    Not a host name (it can resolve anywhere, and again differently later), not multicast, no IPv6
    zone; an IPv6 address carrying an IPv4 one (mapped, 6to4, NAT64) is judged by the IPv4 one.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None or address in _IPV4_COMPATIBLE:
            return False
        if address in _NAT64:
            address = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
        else:
            address = address.ipv4_mapped or address.sixtofour or address
    return address.is_global and not address.is_multicast


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def geonode_scheme(protocols: Sequence[str], allowed: Iterable[str]) -> str | None:
    """How to speak to a Geonode proxy: plain HTTP for http/https ones (HTTPS goes by CONNECT)."""
    usable = [p for p in protocols if p in set(allowed)]
    if "http" in usable or "https" in usable:
        return "http"
    if "socks5" in usable:
        return "socks5h"
    if "socks4" in usable:
        return "socks4a"
    return None


@dataclass
class GeonodePage:
    proxies: list[Proxy]
    entries: int  # rows in ``data``, usable or not
    total: int | None
    skipped: int = 0
    dropped_not_global: int = 0  # usable rows whose address is not public


def parse_geonode(payload: Any, *, allowed: Iterable[str] = ("http", "https"),
                  min_uptime: float = 0, private_ok: bool = False) -> GeonodePage:
    """One Geonode answer: ``{"data": [{"ip", "port", "protocols", "upTime", "latency", …}], "total", …}``.

    Raises :class:`GeonodeError` when the answer is not that shape; rows that are not usable (bad
    ip or port, no allowed protocol, uptime below ``min_uptime``) are skipped and counted. Usable
    rows whose address is not a public IP are dropped and counted apart, unless ``private_ok``.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise GeonodeError("Geonode's answer has no \"data\" list")
    allowed = tuple(allowed)
    proxies: list[Proxy] = []
    skipped = dropped = 0
    for row in payload["data"]:
        if not isinstance(row, dict):
            skipped += 1
            continue
        port = _port(row.get("port"))
        host = row.get("ip")
        protocols = row.get("protocols")
        protocols = tuple(p.lower() for p in protocols if isinstance(p, str)) if isinstance(protocols, list) else ()
        scheme = geonode_scheme(protocols, allowed)
        uptime = _number(row.get("upTime"))
        if port is None or not _host_ok(host) or scheme is None or (uptime is not None and uptime < min_uptime):
            skipped += 1
            continue
        host = host.strip()
        if not private_ok and not public_address(host):
            dropped += 1
            continue
        country = row.get("country")
        proxies.append(Proxy(scheme, host, port, source="geonode", protocols=protocols, uptime=uptime,
                             latency=_number(row.get("latency")),
                             country=country if isinstance(country, str) else None))
    total = payload.get("total")
    total = total if isinstance(total, int) and not isinstance(total, bool) else None
    return GeonodePage(proxies, len(payload["data"]), total, skipped, dropped)


@dataclass
class FetchResult:
    proxies: list[Proxy]
    pages: int
    total: int | None
    skipped: int = 0
    partial_error: str | None = None  # a page after the first failed: what came before is kept
    dropped_not_global: int = 0  # usable entries left out: their address is not public


def fetch_geonode(session, url: str, params: dict[str, Any], *, max_pages: int, timeout: float = 10.0,
                  min_uptime: float = 0, private_ok: bool = False) -> FetchResult:
    """Follow Geonode's pages (``page`` = 1, 2, …) up to ``max_pages``; raises GeonodeError for nothing usable.

    ``params`` are the query's filters (``limit``, ``protocols``, ``filterUpTime``…); ``page`` is added.
    Entries whose address is not public are left out unless ``private_ok`` (see :func:`parse_geonode`).
    """
    import requests  # here, so that the pure parts above import nothing heavy

    limit = int(params.get("limit") or 100)
    allowed = [p for p in str(params.get("protocols") or "http,https").split(",") if p]
    found: dict[tuple[str, str, int], Proxy] = {}
    total: int | None = None
    skipped = dropped = 0
    pages = 0
    partial_error = None
    for page in range(1, max(1, max_pages) + 1):
        try:
            try:
                response = session.get(url, params={**params, "page": page}, timeout=timeout,
                                       headers={"Accept": "application/json"})
            except requests.RequestException as exc:
                raise GeonodeError(f"could not reach Geonode ({type(exc).__name__})") from None
            if response.status_code != 200:
                raise GeonodeError(f"Geonode answered HTTP {response.status_code}")
            try:
                payload = response.json()
            except ValueError:
                raise GeonodeError("Geonode's answer is not JSON") from None
            result = parse_geonode(payload, allowed=allowed, min_uptime=min_uptime, private_ok=private_ok)
        except GeonodeError as exc:
            if page == 1:
                raise
            partial_error = f"page {page}: {exc}"
            break
        pages = page
        total = result.total if result.total is not None else total
        skipped += result.skipped
        dropped += result.dropped_not_global
        for proxy in result.proxies:
            found.setdefault(proxy.key, proxy)
        if result.entries < limit or (total is not None and page * limit >= total):
            break
    if not found:
        left_out = [f"{skipped} rows skipped"] if skipped else []
        left_out += [f"{dropped} not on a public address"] if dropped else []
        raise GeonodeError(f"Geonode listed no usable proxy for these filters ({', '.join(left_out)})"
                           if left_out else "Geonode listed no proxy for these filters", dropped_not_global=dropped)
    return FetchResult(list(found.values()), pages, total, skipped, partial_error, dropped)


def _shown(raw: str) -> str:
    """What an error about an entry may repeat: never a user or a password.

    The part before an ``@`` goes; so does an authority that is not ``host:port`` (``user:pa`` is
    what is left of ``user:pa ss@host:1`` once the list was split at the space).
    """
    if "@" in raw:
        return raw.rsplit("@", 1)[-1]
    scheme, sep, rest = raw.partition("://")
    authority = (rest if sep else scheme).split("/", 1)[0]
    _host, colon, port = authority.rpartition(":")
    if colon and not port.isdigit() and not authority.endswith("]"):
        return f"{scheme}://***" if sep else "***"
    return raw


def parse_proxy_url(text: str) -> Proxy:
    """One user-supplied proxy: ``http://host:port``, ``socks5://user:pass@host:port`` or ``host:port``.

    Raises ValueError with a message that never repeats the credentials.
    """
    raw = text.strip()
    if not raw:
        raise ValueError("empty proxy entry")
    shown = _shown(raw)  # what an error may repeat
    if "://" not in raw:
        raw = "http://" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise ValueError(f"{shown}: not a proxy URL (scheme://host:port)") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"{shown}: scheme must be one of {', '.join(SCHEMES)}")
    if not parts.hostname or not _host_ok(parts.hostname):
        raise ValueError(f"{shown}: no host")
    if port is None:
        raise ValueError(f"{shown}: needs a port (host:port)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{shown}: a proxy URL has no path or query")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return Proxy(scheme, parts.hostname, port, username, password, source="static")


def split_proxy_list(text: str) -> list[str]:
    """A comma- (or whitespace-) separated list of proxy URLs."""
    return [item for chunk in (text or "").split(",") for item in chunk.split() if item]


def parse_proxy_list(text: str) -> tuple[list[Proxy], list[str]]:
    """Parse a static list: the proxies, and one message per entry that was refused."""
    proxies: list[Proxy] = []
    problems: list[str] = []
    seen: set[tuple[str, str, int]] = set()
    for item in split_proxy_list(text):
        try:
            proxy = parse_proxy_url(item)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if proxy.key not in seen:
            seen.add(proxy.key)
            proxies.append(proxy)
    return proxies, problems


# --- showing a list with credentials (admin answers) ------------------------------------------

MASK = "***"  # stands for a password (or a lone user name) in what admin answers show


def _proxy_shown(proxy: Proxy) -> str:
    """``scheme://user:***@host:port``: a password masked, a lone user name (a token) too."""
    if proxy.username is None:
        return f"{proxy.scheme}://{proxy.label}"
    if proxy.password is None:
        return f"{proxy.scheme}://{MASK}@{proxy.label}"
    return f"{proxy.scheme}://{quote(proxy.username, safe='')}:{MASK}@{proxy.label}"


def mask_proxy_list(value: Any) -> Any:
    """Each entry of a proxy list with its secret masked; an entry that does not parse is masked whole."""
    if not isinstance(value, str) or not value:
        return value
    shown = []
    for item in split_proxy_list(value):
        try:
            shown.append(_proxy_shown(parse_proxy_url(item)))
        except ValueError:
            shown.append(MASK)
    return ",".join(shown)


def _secret_slot(proxy: Proxy) -> tuple | None:
    """Where a masked entry's secret sits: (scheme, host, port, user name or None), None if unmasked."""
    if proxy.password == MASK and proxy.username is not None:
        return (proxy.scheme, proxy.host.lower(), proxy.port, proxy.username)
    if proxy.username == MASK and proxy.password is None:
        return (proxy.scheme, proxy.host.lower(), proxy.port, None)
    return None


def restore_proxy_list(posted: Any, stored: Any) -> Any:
    """A posted proxy list with each masked entry replaced by the stored entry it stands for.

    A masked entry matches a stored one with the same scheme, host, port and user name (a masked
    lone user name: one with a user name and no password); a new entry with a real password
    replaces whatever was stored. Raises ValueError naming the entry when nothing matches.
    """
    if not isinstance(posted, str) or MASK not in posted:
        return posted
    secrets: dict[tuple, str] = {}
    for item in split_proxy_list(stored if isinstance(stored, str) else ""):
        try:
            proxy = parse_proxy_url(item)
        except ValueError:
            continue
        if proxy.username is not None:
            user = proxy.username if proxy.password is not None else None
            secrets.setdefault((proxy.scheme, proxy.host.lower(), proxy.port, user), item)
    restored = []
    for item in split_proxy_list(posted):
        try:
            slot = _secret_slot(parse_proxy_url(item))
        except ValueError:
            slot = None  # the setting's own check names what is wrong with it
        if slot is None:
            restored.append(item)
        elif slot in secrets:
            restored.append(secrets[slot])
        else:
            what = "password" if slot[3] is not None else "user name"
            raise ValueError(f"{item}: {MASK} stands for the stored {what} of that proxy, but no stored "
                             f"proxy has this scheme, user, host and port; type the {what}")
    return ",".join(restored)


# --- the pool ----------------------------------------------------------------------------------

@dataclass
class RefreshInfo:
    at: float | None = None
    ok: bool | None = None
    error: str | None = None
    fetched: int = 0
    pages: int = 0
    dropped_not_global: int = 0  # fetched entries left out at the last refresh: not a public address
    dropped_not_global_total: int = 0  # the same, over every refresh of this worker


class ProxyPool:
    """The proxies one worker may use: the static list first, then what Geonode listed.

    ``choose`` orders the alive ones: those whose last use worked (rotated, so load spreads over
    them), then untried ones (static ones in their listed order, then Geonode's by uptime, HTTPS
    support and latency, with some chance mixed in), then the rest. A failure marks a proxy dead until ``revive_all``
    (the next refresh). Per-proxy figures survive a refresh for proxies still listed.
    """

    def __init__(self, rng: random.Random | None = None, board: Board | None = None):
        self.board = board  # where the instance's workers share their dead marks
        self._lock = threading.Lock()
        self._static: list[Proxy] = []
        self._fetched: list[Proxy] = []
        self._turn = 0
        self._rng = rng or random.Random()
        self.refresh_info = RefreshInfo()

    # --- contents ----------------------------------------------------------------------------

    def proxies(self) -> list[Proxy]:
        with self._lock:
            return self._all()

    def _all(self) -> list[Proxy]:
        static_keys = {p.key for p in self._static}
        return self._static + [p for p in self._fetched if p.key not in static_keys]

    @staticmethod
    def _carry_over(new: list[Proxy], old: list[Proxy]) -> list[Proxy]:
        before = {p.key: p for p in old}
        for proxy in new:
            previous = before.get(proxy.key)
            if previous is not None:
                proxy.successes, proxy.failures = previous.successes, previous.failures
                proxy.last_ok, proxy.last_failure = previous.last_ok, previous.last_failure
                proxy.last_error = previous.last_error
        return new

    def set_static(self, proxies: list[Proxy]) -> list[Proxy]:
        """Replace the static list (figures kept for proxies already there); returns those dropped."""
        with self._lock:
            old = self._static
            kept = {p.key: p for p in old}
            new = []
            for proxy in proxies:
                previous = kept.get(proxy.key)
                if previous is not None and previous.url == proxy.url:
                    new.append(previous)  # same proxy: keep its state, dead mark included
                else:
                    new.append(self._carry_over([proxy], old)[0])
            self._static = new
            return [p for p in old if p.key not in {q.key for q in new}]

    def replace_fetched(self, proxies: list[Proxy]) -> list[Proxy]:
        """A fresh Geonode list: every proxy alive again, figures kept; returns the proxies dropped."""
        with self._lock:
            old = self._fetched
            self._fetched = self._carry_over(list(proxies), old)
            still = {p.key for p in self._fetched}
            return [p for p in old if p.key not in still]

    def revive_all(self) -> None:
        """Every proxy alive again (a refresh), but for those another worker's mark still rests."""
        with self._lock:
            for proxy in self._all():
                proxy.dead_since = None
        if self.board is not None:
            self._take_marks(self.board.current())

    def forget_shared_marks(self) -> None:
        """An operator asked for a refresh: the marks other workers posted end too (this instance's)."""
        if self.board is not None:
            self.board.clear('["proxy"')

    def _take_marks(self, posted: dict[str, float] | None) -> None:
        """Mark dead the proxies the board says failed on a worker of the instance."""
        if not posted:
            return
        marked: dict[tuple, str] = {}
        for name in posted:
            slot = json.loads(name)  # ["proxy", scheme, host, port, reason]
            if slot[0] == "proxy" and len(slot) == 5:
                marked[tuple(slot[1:4])] = slot[4]
        now = time.time()
        with self._lock:
            for proxy in self._all():
                if proxy.alive and proxy.key in marked:
                    proxy.dead_since = now
                    proxy.last_error = marked[proxy.key]  # what another worker saw

    # --- choosing ----------------------------------------------------------------------------

    def choose(self, n: int, exclude: Iterable[tuple[str, str, int]] = ()) -> list[Proxy]:
        """Up to ``n`` different alive proxies, best first."""
        if self.board is not None:
            self._take_marks(self.board.changed())
        excluded = set(exclude)
        with self._lock:
            alive = [p for p in self._all() if p.alive and p.key not in excluded]
            worked = [p for p in alive if p.worked_last()]
            if worked:
                worked.sort(key=lambda p: (-(p.successes / (p.successes + p.failures)), -(p.last_ok or 0)))
                start = self._turn % len(worked)
                self._turn += 1
                worked = worked[start:] + worked[:start]
            untried = [p for p in alive if p.successes == 0 and p.failures == 0]
            # static ones in the order they were listed, then Geonode's by promise
            untried.sort(key=lambda p: (p.source == "static", self._promise(p)), reverse=True)
            rest = [p for p in alive if not p.worked_last() and (p.successes or p.failures)]
            rest.sort(key=lambda p: (p.successes - p.failures, p.last_ok or 0), reverse=True)
            return (worked + untried + rest)[: max(0, n)]

    def _promise(self, proxy: Proxy) -> float:
        if proxy.source == "static":
            return -float(next((i for i, p in enumerate(self._static) if p is proxy), 0))
        uptime = proxy.uptime if proxy.uptime is not None else 50.0
        latency = proxy.latency if proxy.latency is not None else 1000.0
        return uptime + (20 if proxy.tunnels else 0) - min(latency, 5000) / 100 + self._rng.uniform(0, 15)

    # --- outcomes ----------------------------------------------------------------------------

    def mark_success(self, proxy: Proxy, now: float) -> None:
        with self._lock:
            proxy.successes += 1
            proxy.last_ok = now
            proxy.dead_since = None

    def mark_failure(self, proxy: Proxy, reason: str, now: float, *, shared_for: float = DEAD_SECONDS) -> None:
        """The proxy failed: dead (skipped) until the next refresh; the instance's other workers
        skip it for ``shared_for`` seconds (the refresh interval)."""
        with self._lock:
            proxy.failures += 1
            proxy.last_failure = now
            proxy.last_error = reason
            newly = proxy.dead_since is None
            if newly:
                proxy.dead_since = now
        if newly and self.board is not None:
            self.board.post(json.dumps(["proxy", *proxy.key, reason]), shared_for)

    # --- figures -----------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        with self._lock:
            everything = self._all()
            alive = sum(1 for p in everything if p.alive)
            return {
                "total": len(everything),
                "alive": alive,
                "dead": len(everything) - alive,
                "static": len(self._static),
                "geonode": len(everything) - len(self._static),
                "successes": sum(p.successes for p in everything),
                "failures": sum(p.failures for p in everything),
            }

    def snapshot(self, limit: int = 20) -> list[dict[str, Any]]:
        """The proxies most worth showing: the ones that worked, then the ones in use, then the rest."""
        with self._lock:
            everything = self._all()
        everything.sort(key=lambda p: (p.alive, p.successes, -p.failures, p.last_ok or 0), reverse=True)
        return [p.to_dict() for p in everything[: max(0, limit)]]


@dataclass
class Attempt:
    """One try of one route, for the error message when every try failed."""

    route: str  # "direct" or a proxy label
    reason: str
    extra: dict[str, Any] = field(default_factory=dict)


def describe_attempts(attempts: Sequence[Attempt], *, addresses: bool = True) -> str:
    """``tried 2 proxies: 1.2.3.4:80 (connect timeout), 5.6.7.8:3128 (HTTP 429 rate limited)``.

    Without ``addresses`` (what a client may read: an operator's proxies are not its business) only
    the reasons: ``tried 2 proxies: connect timeout, HTTP 429 rate limited``.
    """
    direct = [a for a in attempts if a.route == "direct"]
    via = [a for a in attempts if a.route != "direct"]
    parts = []
    if direct:
        parts.append(f"direct: {direct[-1].reason}")
    if via:
        noun = "proxy" if len(via) == 1 else "proxies"
        tries = (f"{a.route} ({a.reason})" if addresses else a.reason for a in via)
        parts.append(f"tried {len(via)} {noun}: " + ", ".join(tries))
    return "; ".join(parts)


# --- setting checks (used by zengate.settings; each returns a problem or None) -------------------

MODES = ("off", "auto", "on")
ANONYMITY_LEVELS = ("elite", "anonymous", "transparent")
SPEEDS = ("fast", "medium", "slow")


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def check_mode(value: str) -> str | None:
    return None if value in MODES else 'must be "off", "auto" or "on"'


def check_proxy_list(value: str) -> str | None:
    proxies, problems = parse_proxy_list(value)
    if problems:
        return "; ".join(problems)
    if any(p.scheme.startswith("socks") for p in proxies):
        try:
            import socks  # noqa: F401 - PySocks, what requests needs for socks:// proxies
        except ImportError:
            return "SOCKS proxies need PySocks (pip install 'requests[socks]')"
    return None


def check_protocols(value: str) -> str | None:
    items = _csv(value)
    if not items or any(p not in GEONODE_PROTOCOLS for p in items):
        return f"a comma-separated list of {', '.join(GEONODE_PROTOCOLS)}"
    return None


def check_countries(value: str) -> str | None:
    if any(len(c) != 2 or not c.isalpha() for c in _csv(value)):
        return "empty, or comma-separated two-letter country codes (US,DE)"
    return None


def check_anonymity(value: str) -> str | None:
    if any(a not in ANONYMITY_LEVELS for a in _csv(value)):
        return f"empty, or a comma-separated list of {', '.join(ANONYMITY_LEVELS)}"
    return None


def check_speed(value: str) -> str | None:
    return None if value in ("", *SPEEDS) else f"empty, or one of {', '.join(SPEEDS)}"
