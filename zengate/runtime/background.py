"""The per-worker background loop: request-log batches, SQLite checkpoints, the model-list and
proxy-pool refreshes, request-log retention (one pass at a time across workers, see
:mod:`zengate.store.retention`) and the worker's metric gauges.

Started from gunicorn's ``post_worker_init`` hook, where gevent has patched ``threading``: the
thread below is then a greenlet of the worker. Outside gunicorn (tests, the Flask dev server) it
is a plain daemon thread.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.2


class Background:
    def __init__(self, gateway):
        self.gateway = gateway
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refreshing = False
        from ..store.retention import Retention
        from ..store.wal import Checkpointer
        from . import metrics

        self._gauges = metrics.GaugeUpdater(gateway)
        self._retention = Retention(gateway.settings, on_deleted=_count_deleted)
        self._checkpointer = Checkpointer()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="zengate-background", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        gw = self.gateway
        while not self._stop.is_set():
            gw.request_log.wait(FLUSH_INTERVAL)
            try:
                gw.request_log.flush()
                gw.request_log.recover()  # spilled rows, once the database takes writes again
                self._checkpointer.tick(gw.request_log.written)  # SQLite's WAL, in a native thread
                self._metered()
                gw.egress.tick()  # proxy pool refresh when due (no Geonode traffic in proxy_mode off)
                gw.counters.flush()  # tokens the keys' limits hold back (Redis), sent
                if not self._refreshing and gw.catalog.due(gw.settings.get("models_refresh_seconds")):
                    self._refreshing = True
                    threading.Thread(target=self._refresh_models, daemon=True).start()
            except Exception:
                log.exception("background loop error")
            try:
                self._retention.tick()  # bounded; at most once a minute across workers and instances
            except Exception:
                log.exception("request log retention failed")

    def _metered(self) -> None:
        try:
            self._gauges.tick()
        except Exception:
            log.exception("metrics update failed")

    def _refresh_models(self) -> None:
        try:
            self.gateway.refresh_models()
        finally:
            self._refreshing = False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop and write every queued row (retrying until ``timeout``, then spilling to disk)."""
        self._stop.set()
        self.gateway.request_log.wake()
        if self._thread is not None:
            self._thread.join(timeout)
        flush_all(self.gateway, timeout)


def _count_deleted(result) -> None:
    from . import metrics

    metrics.rows_deleted("age", result.by_age)
    metrics.rows_deleted("rows", result.by_rows)


def flush_all(gateway, timeout: float = 10.0) -> None:
    """Write the queued rows (or spill them to disk when the database refuses) and close the connection."""
    from .helpers import run_idle_work

    run_idle_work()  # records finished but not yet logged
    gateway.request_log.close(timeout)
    _close_connection()


def _close_connection() -> None:
    from ..store.db import database

    if database.obj is not None and not database.is_closed():
        database.close()
