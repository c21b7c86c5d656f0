"""Which way an upstream request leaves — direct or through a proxy — and the retry over proxies.

One :class:`Egress` per worker, built by the gateway and reached by ``relay.send`` through
``UpstreamClient.egress``. It holds the worker's :class:`~.proxypool.ProxyPool`; everything the
workers must agree on lives in the settings table, read through the worker's settings cache:

* ``proxy_mode`` — ``off`` (direct only), ``auto`` (direct until a 429, then proxies) or ``on``;
  the Geonode filters, the static list, attempts and timers;
* the Auto state, as private settings rows: ``proxy_rate_limited_since`` and
  ``proxy_next_direct_retry`` (epoch seconds, 0 = not rate limited). One worker meeting a 429
  writes them and every worker goes through proxies from its next request (other instances
  within ``ZENGATE_SETTINGS_TTL``);
* ``proxy_refresh_requested`` — an on-demand refresh asked through any worker reaches them all.

The direct-retry timer: once ``proxy_next_direct_retry`` has passed, the next request (one at a
time per worker) goes direct first. It pushes the timer on before trying, so workers do not all
probe at once; a 2xx clears the Auto state (every worker back to direct), a 429 keeps it and the
same request continues through proxies — the client never sees the probe.

The retry loop (:meth:`Egress.send`) runs before anything reaches the client: up to
``proxy_max_attempts`` different proxies on connection errors, timeouts, proxy errors and 429
(also a proxy's own 407/502/503/504, and junk a proxy returns instead of the upstream's answer).
A stream is handed to the pump once its headers arrived and never changes proxy afterwards.
Each proxy try has its own timeouts (``proxy_connect_timeout``, ``upstream_read_timeout``); under
an attempt's first-byte deadline they end by it too, and no proxy is tried once it has passed.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import requests
import urllib3

from .client import FirstByteDeadline, FirstByteTimeout, UpstreamClient, UpstreamError, seconds_text, transport_error
from .proxypool import Attempt, GeonodeError, Proxy, ProxyPool, describe_attempts, fetch_geonode, parse_proxy_list

if TYPE_CHECKING:
    from ..store.instance import Board

log = logging.getLogger(__name__)

#: Settings that change which proxies the pool holds: storing one makes every worker refresh its pool.
POOL_SETTINGS = frozenset({"proxy_geonode", "proxy_min_uptime", "proxy_protocols", "proxy_last_checked_minutes",
                           "proxy_speed", "proxy_anonymity", "proxy_countries", "proxy_page_limit",
                           "proxy_max_pages", "proxy_list_private_ok"})

MODES = ("off", "auto", "on")
NEXT_MODE = {"off": "auto", "auto": "on", "on": "off"}
#: Statuses that say "this route did not work", whoever sent them: the upstream's rate limit, or
#: the proxy's own answer (auth required, bad gateway, unavailable, timeout).
RETRY_STATUSES = frozenset({407, 429, 502, 503, 504})
GEONODE_TIMEOUT = 10.0
#: How long a request waits for a refresh already under way when the pool is empty.
REFRESH_WAIT = 15.0
#: After a failed refresh, try again this soon (or at the normal interval, if shorter).
FAILED_REFRESH_RETRY = 60.0
TICK_INTERVAL = 1.0


def failure_reason(err: UpstreamError) -> str:
    """A short, credential-free reason for one failed attempt: ``connect timeout``, ``HTTP 429``…"""
    if err.kind == "http":
        return f"HTTP {err.status}" + (" rate limited" if err.status == 429 else "")
    if err.kind == "protocol" and err.__cause__ is None:
        return err.message
    seen: list[BaseException] = []
    stack: list[Any] = [err.__cause__]
    while stack and len(seen) < 30:
        exc = stack.pop()
        if not isinstance(exc, BaseException) or any(exc is s for s in seen):
            continue
        seen.append(exc)
        stack.extend([exc.__cause__, exc.__context__, getattr(exc, "reason", None),
                      getattr(exc, "original_error", None), *exc.args])
    if any(isinstance(exc, ConnectionRefusedError) for exc in seen):
        return "connection refused"
    for exc in seen:
        if isinstance(exc, urllib3.exceptions.NewConnectionError):
            continue  # a subclass of ConnectTimeoutError, for any failure to connect
        if isinstance(exc, (urllib3.exceptions.ConnectTimeoutError, requests.exceptions.ConnectTimeout)):
            return "connect timeout"
    for exc in seen:
        if isinstance(exc, (urllib3.exceptions.ReadTimeoutError, requests.exceptions.ReadTimeout)):
            return "read timeout"
    for exc in seen:
        if isinstance(exc, ConnectionResetError):
            return "connection reset"
        if isinstance(exc, (TimeoutError, socket.timeout)):
            return "timeout"
        text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
        if text.startswith("Tunnel connection failed: "):
            return "proxy refused CONNECT: " + text.removeprefix("Tunnel connection failed: ")[:40]
        if type(exc).__name__ in ("GeneralProxyError", "ProxyConnectionError", "SOCKS5Error", "SOCKS5AuthError"):
            return "SOCKS error"
    for exc in seen:
        if isinstance(exc, requests.exceptions.SSLError):
            return "TLS error"
        if isinstance(exc, requests.exceptions.ProxyError):
            return "proxy error"
        if isinstance(exc, (urllib3.exceptions.ProtocolError, requests.exceptions.ChunkedEncodingError)):
            return "connection closed"
    if err.kind == "timeout":
        return "timeout"
    return "connection failed"


def retriable(err: UpstreamError) -> bool:
    return err.kind != "http" or err.status in RETRY_STATUSES


class _NotTheAnswer(Exception):
    """A proxy answered 2xx with something that is not the upstream's answer (a portal page…)."""


class Egress:
    """The worker's way out: mode, shared Auto state, the proxy pool and its refresh."""

    def __init__(self, settings, session: requests.Session, *, geonode_url: str, static_env: str = "",
                 clock: Callable[[], float] = time.time, pool: ProxyPool | None = None,
                 board: Board | None = None):
        self.settings = settings
        self.session = session
        self.geonode_url = geonode_url
        self.static_env = static_env or ""
        self.clock = clock
        self.pool = pool or ProxyPool(board=board)  # a board: dead marks shared by the instance's workers
        self._static_source: tuple[str, str] | None = None
        self._state_lock = threading.Lock()
        self._probing = False
        self._refresh_lock = threading.Lock()
        self._refreshing = False
        self._refresh_done = threading.Event()
        self._refresh_done.set()
        self._last_refresh_started: float | None = None
        self._requests_seen_until = clock()  # refresh requests older than this worker are done
        self._last_tick = 0.0
        problems = parse_proxy_list(self.static_env)[1]
        for problem in problems:
            log.error("ZENGATE_PROXIES: %s (entry ignored)", problem)

    # --- mode and shared Auto state ----------------------------------------------------------

    def mode(self) -> str:
        mode = self.settings.get("proxy_mode")
        return mode if mode in MODES else "off"

    def auto_state(self) -> tuple[float, float]:
        return (self.settings.get("proxy_rate_limited_since") or 0.0,
                self.settings.get("proxy_next_direct_retry") or 0.0)

    def _save(self, **values: float) -> None:
        for name, value in values.items():
            try:
                self.settings.set(name, value, internal=True)
            except Exception:
                log.exception("could not store %s", name)

    def set_mode(self, mode: str) -> None:
        self.settings.set("proxy_mode", mode)
        self.clear_auto_state()

    def clear_auto_state(self) -> None:
        since, next_retry = self.auto_state()
        if since or next_retry:
            self._save(proxy_rate_limited_since=0.0, proxy_next_direct_retry=0.0)

    def _direct_turn(self) -> bool | None:
        """Auto mode: ``False`` go direct (not rate limited), ``True`` go direct as the timer's
        retry, ``None`` go through proxies."""
        since, next_retry = self.auto_state()
        if not since:
            return False
        now = self.clock()
        if now < next_retry:
            return None
        with self._state_lock:
            if self._probing:
                return None
            self._probing = True
        self._save(proxy_next_direct_retry=now + self.settings.get("proxy_direct_retry_seconds"))
        log.info("proxy: direct retry timer fired; trying direct again")
        return True

    def _note_direct_rate_limited(self) -> None:
        now = self.clock()
        since, _ = self.auto_state()
        retry = now + self.settings.get("proxy_direct_retry_seconds")
        if since:
            self._save(proxy_next_direct_retry=retry)
        else:
            log.warning("proxy: the upstream answered 429 directly; going through proxies (direct retry in %gs)",
                        retry - now)
            self._save(proxy_rate_limited_since=now, proxy_next_direct_retry=retry)

    def _note_direct_works(self) -> None:
        log.info("proxy: direct works again; back to direct")
        self._save(proxy_rate_limited_since=0.0, proxy_next_direct_retry=0.0)

    # --- the static list ---------------------------------------------------------------------

    def sync_static(self) -> None:
        """Apply ``ZENGATE_PROXIES`` + the ``proxy_static`` setting when either changed."""
        source = (self.static_env, self.settings.get("proxy_static") or "")
        if source == self._static_source:
            return
        proxies, problems = parse_proxy_list(",".join(s for s in source if s))
        for problem in problems:
            log.warning("proxy list: %s (entry ignored)", problem)
        for dropped in self.pool.set_static(proxies):
            self._forget(dropped)
        self._static_source = source

    # --- refresh -----------------------------------------------------------------------------

    def geonode_params(self) -> dict[str, Any]:
        s = self.settings
        params: dict[str, Any] = {
            "limit": s.get("proxy_page_limit"),
            "sort_by": "lastChecked",
            "sort_type": "desc",
            "protocols": s.get("proxy_protocols"),
            "filterUpTime": s.get("proxy_min_uptime"),
        }
        if s.get("proxy_last_checked_minutes"):
            params["filterLastChecked"] = s.get("proxy_last_checked_minutes")
        if s.get("proxy_speed"):
            params["speed"] = s.get("proxy_speed")
        if s.get("proxy_anonymity"):
            params["anonymityLevel"] = s.get("proxy_anonymity")
        if s.get("proxy_countries"):
            params["country"] = s.get("proxy_countries")
        return params

    def refresh(self) -> dict[str, Any]:
        """Fetch Geonode's list (when ``proxy_geonode``) and revive every proxy; the previous pool
        stays when Geonode fails. Returns what happened."""
        with self._refresh_lock:
            self._refreshing = True
            self._refresh_done.clear()
            started = self.clock()
            self._last_refresh_started = started
            info = self.pool.refresh_info
            try:
                self._static_source = None
                self.sync_static()
                result: dict[str, Any] = {"ok": True, "fetched": 0, "pages": 0, "error": None,
                                          "dropped_not_global": 0}
                if self.settings.get("proxy_geonode"):
                    try:
                        fetched = fetch_geonode(self.session, self.geonode_url, self.geonode_params(),
                                                max_pages=self.settings.get("proxy_max_pages"),
                                                timeout=GEONODE_TIMEOUT,
                                                min_uptime=self.settings.get("proxy_min_uptime"),
                                                private_ok=self.settings.get("proxy_list_private_ok"))
                    except GeonodeError as exc:
                        kept = self.pool.counts()["geonode"]
                        log.warning("proxy refresh: %s; keeping the previous pool (%d Geonode proxies)", exc, kept)
                        result = {"ok": False, "fetched": 0, "pages": 0, "error": str(exc),
                                  "dropped_not_global": exc.dropped_not_global}
                    except Exception as exc:
                        log.exception("proxy refresh failed")
                        result = {"ok": False, "fetched": 0, "pages": 0,
                                  "error": f"refresh failed ({type(exc).__name__})", "dropped_not_global": 0}
                    else:
                        for dropped in self.pool.replace_fetched(fetched.proxies):
                            self._forget(dropped)
                        result = {"ok": True, "fetched": len(fetched.proxies), "pages": fetched.pages,
                                  "error": fetched.partial_error, "dropped_not_global": fetched.dropped_not_global}
                        log.info("proxy refresh: %d proxies from Geonode (%d pages%s)", len(fetched.proxies),
                                 fetched.pages, f"; {fetched.partial_error}" if fetched.partial_error else "")
                    if result["dropped_not_global"]:
                        log.warning("proxy refresh: left out %d listed proxies not on a public IP address "
                                    "(loopback, private, link-local, reserved, or a host name); "
                                    "proxy_list_private_ok accepts them", result["dropped_not_global"])
                self.pool.revive_all()
                info.at, info.ok, info.error = started, result["ok"], result["error"]
                info.fetched, info.pages = result["fetched"], result["pages"]
                info.dropped_not_global = result["dropped_not_global"]
                info.dropped_not_global_total += result["dropped_not_global"]
                result.update(self.pool.counts())
                return result
            finally:
                self._refreshing = False
                self._refresh_done.set()

    def start_refresh(self) -> bool:
        """Refresh in the background (a greenlet under gunicorn); False when one is under way."""
        if self._refreshing:
            return False
        self._refreshing = True
        self._refresh_done.clear()

        def run() -> None:
            try:
                self.refresh()
            except Exception:
                log.exception("proxy refresh failed")
            finally:
                self._refreshing = False
                self._refresh_done.set()

        threading.Thread(target=run, name="zengate-proxy-refresh", daemon=True).start()
        return True

    def settings_stored(self, stored: set[str]) -> None:
        """What storing proxy settings sets going, whichever admin call stored them: the mode set
        again starts the Auto state afresh; a filter set again makes every worker refresh its pool."""
        if "proxy_mode" in stored:
            self.clear_auto_state()
        if stored & POOL_SETTINGS and self.mode() != "off":
            self.request_refresh()  # every worker refreshes its pool within a second

    def request_refresh(self) -> None:
        """Ask every worker to refresh (through the settings table); this worker's turn is the caller's."""
        now = self.clock()
        self._requests_seen_until = max(self._requests_seen_until, now)
        self.pool.forget_shared_marks()  # asked for: every proxy gets another chance, on every worker
        self._save(proxy_refresh_requested=now)

    def refresh_due(self) -> bool:
        requested = self.settings.get("proxy_refresh_requested") or 0.0
        if requested > max(self._requests_seen_until, self._last_refresh_started or 0.0):
            return True
        if self.mode() == "off":
            return False  # no Geonode traffic at all unless asked
        if self._last_refresh_started is None:
            return True
        interval = float(self.settings.get("proxy_refresh_seconds"))
        if self.pool.refresh_info.ok is False:
            interval = min(interval, FAILED_REFRESH_RETRY)
        return self.clock() - self._last_refresh_started >= interval

    def tick(self) -> None:
        """Called by the worker's background loop: starts a refresh when one is due."""
        now = time.monotonic()
        if now - self._last_tick < TICK_INTERVAL or self._refreshing:
            return
        self._last_tick = now
        if self.refresh_due():
            self.start_refresh()

    # --- sending -----------------------------------------------------------------------------

    def _candidates(self) -> list[Proxy]:
        self.sync_static()
        n = self.settings.get("proxy_max_attempts")
        chosen = self.pool.choose(n)
        if chosen:
            return chosen
        if self.refresh_due():
            self.start_refresh()  # nothing to choose from and a refresh is due: wait a little for it
        if self._refreshing:
            self._refresh_done.wait(REFRESH_WAIT)
            chosen = self.pool.choose(n)
        return chosen

    def _forget(self, proxy: Proxy) -> None:
        """Drop the connection pool requests keeps for a proxy that is gone or dead."""
        for adapter in list(self.session.adapters.values()):
            managers = getattr(adapter, "proxy_manager", None)
            manager = managers.pop(proxy.url, None) if isinstance(managers, dict) else None
            if manager is not None:
                manager.clear()

    def send(self, client: UpstreamClient, url: str, payload: bytes, *, key: str, protocol: str, stream: bool,
             extra_headers: dict[str, str] | None = None, record=None,
             deadline: FirstByteDeadline | None = None) -> requests.Response:
        """``client.send`` by the route the mode says: a 2xx response or UpstreamError.

        Under a ``deadline`` (the attempt's first-byte deadline) the whole proxy loop ends by it.
        """
        within = {"deadline": deadline} if deadline is not None else {}

        def attempt(**kwargs) -> requests.Response:
            return client.send(url, payload, key=key, protocol=protocol, stream=stream,
                               extra_headers=extra_headers, **within, **kwargs)

        if record is not None:
            record.proxy = None  # a fallback route after a proxied attempt starts afresh
        mode = self.mode()
        if mode == "off":
            return attempt()

        attempts: list[Attempt] = []
        last_429: UpstreamError | None = None
        if mode == "auto":
            turn = self._direct_turn()
            if turn is not None:
                try:
                    response = attempt()
                except UpstreamError as err:
                    if err.status != 429:
                        raise
                    self._note_direct_rate_limited()
                    last_429 = err
                    attempts.append(Attempt("direct", failure_reason(err)))
                else:
                    if turn:
                        self._note_direct_works()
                    return response
                finally:
                    if turn:
                        self._probing = False

        proxies = self._candidates()
        if not proxies and mode == "auto" and last_429 is None:
            return attempt()  # rate limited, but direct is the only way left

        def checked(**kwargs) -> requests.Response:
            response = attempt(**kwargs)
            try:
                self._check_answer(response, stream)
            except UpstreamError as err:
                failed = err if deadline is None else deadline.failure(err)
                if failed is err:
                    raise
                raise failed from err
            return response

        return self._via_proxies(checked, proxies, record=record, attempts=attempts, last_429=last_429,
                                 deadline=deadline)

    def get_json(self, client: UpstreamClient, url: str, timeout: float) -> Any:
        """A keyless GET (the model list): through proxies in proxy_mode on, else direct."""
        if self.mode() != "on":
            return client.get_json(url, timeout, direct=True)
        return self._via_proxies(lambda proxies, timeout: client.get_json(url, timeout, proxies=proxies),
                                 self._candidates(), read_timeout=timeout)

    def _via_proxies(self, attempt: Callable[..., Any], proxies: list[Proxy], *, record=None,
                     attempts: list[Attempt] | None = None, last_429: UpstreamError | None = None,
                     read_timeout: float | None = None, deadline: FirstByteDeadline | None = None) -> Any:
        """``attempt(proxies=…, timeout=…)`` through ``proxies`` in turn (``proxy_max_attempts`` of them).

        Under a ``deadline`` each try's timeouts end by it, and once it has passed no proxy is tried:
        a :class:`FirstByteTimeout` that says which were. A proxy that carried no first byte by the
        deadline is not marked failed: the upstream may have been the slow one.
        """
        attempts = attempts if attempts is not None else []
        if not proxies:
            counts = self.pool.counts()
            why = (f"no proxy is available ({counts['alive']} alive of {counts['total']}; dead ones wait for "
                   f"the next refresh)")
            if last_429 is not None:
                raise UpstreamError(429, f"{last_429.message} (rate limited directly, and {why})", "http",
                                    last_429.error_type, dict(last_429.headers))
            raise UpstreamError(502, f"proxy_mode is on but {why}; add proxies (proxy_static or "
                                "ZENGATE_PROXIES) or enable proxy_geonode", "connection")

        connect = self.settings.get("proxy_connect_timeout")
        read = read_timeout if read_timeout is not None else self.settings.get("upstream_read_timeout")
        timeout: tuple[float, float] | urllib3.Timeout = (connect, read)
        for proxy in proxies:
            if deadline is not None:
                if deadline.passed():
                    break
                timeout = deadline.timeout(connect, read)
            if record is not None:
                record.proxy = proxy.label
            try:
                result = attempt(proxies=proxy.requests_proxies(), timeout=timeout)
            except FirstByteTimeout:
                attempts.append(Attempt(proxy.label, "no first byte in time"))
                break
            except UpstreamError as err:
                if not retriable(err):
                    self.pool.mark_success(proxy, self.clock())  # it carried the upstream's own answer
                    raise
                reason = failure_reason(err)
                if err.status == 429:
                    last_429 = err
            except _NotTheAnswer as exc:
                reason = str(exc)
            else:
                self.pool.mark_success(proxy, self.clock())
                return result
            attempts.append(Attempt(proxy.label, reason))
            self.pool.mark_failure(proxy, reason, self.clock(),
                                   shared_for=float(self.settings.get("proxy_refresh_seconds")))
            self._forget(proxy)
            log.info("proxy %s failed (%s)", proxy.label, reason)

        what, where = describe_attempts(attempts, addresses=False), describe_attempts(attempts)
        if deadline is not None and deadline.passed():
            within = f"the upstream did not start answering within {seconds_text(deadline.seconds)} s"
            if not attempts:
                raise deadline.expired()
            raise FirstByteTimeout(deadline.seconds, f"{within} through proxies — {what}",
                                   detail=f"{within} through proxies — {where}")
        if last_429 is not None:
            raise UpstreamError(429, f"{last_429.message} (rate limited on every route — {what})", "http",
                                last_429.error_type, dict(last_429.headers),
                                detail=f"{last_429.message} (rate limited on every route — {where})")
        raise UpstreamError(502, f"could not reach the upstream through proxies — {what}", "connection",
                            detail=f"could not reach the upstream through proxies — {where}")

    def _check_answer(self, response: requests.Response, stream: bool) -> None:
        """Before the first byte goes to the client: is this the upstream's answer, not a proxy's page?"""
        ctype = response.headers.get("Content-Type", "").lower()
        if stream:
            if ctype.startswith("text/html"):
                response.close()
                raise _NotTheAnswer("answered with an HTML page")
            return
        try:
            content = response.content  # read now: a failure here can still go to another proxy
        except Exception as exc:
            response.close()
            raise transport_error(exc) from exc
        if ctype.startswith("text/html") or content.lstrip()[:1] not in (b"{", b"["):
            response.close()
            raise _NotTheAnswer("answered with something that is not JSON")

    # --- status ------------------------------------------------------------------------------

    def status(self, *, proxies: int = 20) -> dict[str, Any]:
        mode = self.mode()
        since, next_retry = self.auto_state()
        rate_limited = mode == "auto" and bool(since)
        now = self.clock()
        info = self.pool.refresh_info
        interval = float(self.settings.get("proxy_refresh_seconds"))
        next_refresh = None
        if mode != "off" and self._last_refresh_started is not None:
            next_refresh = self._last_refresh_started + (
                min(interval, FAILED_REFRESH_RETRY) if info.ok is False else interval)
        return {
            "mode": mode,
            "enabled": mode != "off",
            "using_proxy": mode == "on" or rate_limited,
            "rate_limited_direct": rate_limited,
            "rate_limited_since": iso(since) if rate_limited else None,
            "next_direct_retry": iso(next_retry) if rate_limited else None,
            "direct_retry_due": rate_limited and now >= next_retry,
            **self.pool.counts(),
            "last_refresh": iso(info.at),
            "last_refresh_ok": info.ok,
            "last_refresh_error": info.error,
            "last_refresh_fetched": info.fetched,
            "dropped_not_global": info.dropped_not_global,
            "dropped_not_global_total": info.dropped_not_global_total,
            "next_refresh": iso(next_refresh),
            "refreshing": self._refreshing,
            "geonode_enabled": self.settings.get("proxy_geonode"),
            "proxies": self.pool.snapshot(proxies),
        }


def iso(epoch: float | None) -> str | None:
    if not epoch:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"
