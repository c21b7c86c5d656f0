"""gunicorn settings for zengate: gevent workers, bind from $PORT or $ZENGATE_BIND.

The master applies migrations once (a child process, ``python -m zengate preflight``), then, from
the addresses it really listens on, refuses to serve beyond loopback while the admin password is
still the default; each worker judges access to /v1 by its own sockets and starts its background loop.

Metrics: every worker writes its Prometheus values to files in ``PROMETHEUS_MULTIPROC_DIR``,
set here — before any worker imports prometheus_client — to a fresh directory per master start;
``child_exit`` drops a dead worker's live gauges and ``on_exit`` removes the directory.

Shutdown (SIGTERM): the listeners close at once, and so do connections idle between requests
(zengate/runtime/draining.py); open streams may run on for
``ZENGATE_GRACEFUL_TIMEOUT`` seconds, then each worker flushes its request-log queue
(``worker_exit``); the master waits ``FLUSH_SECONDS`` longer than the streams' grace, so that
flush is never cut short by its SIGKILL.
"""

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

from zengate.config import Config

_config = Config.from_env()

METRICS_DIR_PREFIX = "zengate-metrics-"
_OWNER = "ZENGATE_METRICS_DIR_OWNER"  # the pid of the master that manages PROMETHEUS_MULTIPROC_DIR
_created_metrics_dir = None


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process
    return True


def _sweep_stale_metrics_dirs(base):
    """Remove the metrics directories of masters that died without cleaning up."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        if not name.startswith(METRICS_DIR_PREFIX):
            continue
        pid = name[len(METRICS_DIR_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


def _prepare_metrics_dir():
    """Set PROMETHEUS_MULTIPROC_DIR for this master's workers (fresh, or wiped, at each start)."""
    global _created_metrics_dir
    me = str(os.getpid())
    current = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    owner = os.environ.get(_OWNER)
    ours = bool(current) and os.path.basename(current.rstrip("/")).startswith(METRICS_DIR_PREFIX)
    if current and owner == me:
        if ours:
            _created_metrics_dir = current
        return  # a configuration reload (SIGHUP) of this master: the workers' files stay
    if current and not ours:
        # the operator's own directory: start from nothing, unless another master manages it (USR2)
        os.makedirs(current, exist_ok=True)
        if not owner:
            for name in os.listdir(current):
                if name.endswith(".db"):
                    os.remove(os.path.join(current, name))
            shutil.rmtree(os.path.join(current, "shared"), ignore_errors=True)  # the workers' shared state
        os.environ[_OWNER] = me
        return
    base = tempfile.gettempdir()
    _sweep_stale_metrics_dirs(base)
    _created_metrics_dir = tempfile.mkdtemp(prefix=f"{METRICS_DIR_PREFIX}{me}-", dir=base)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _created_metrics_dir
    os.environ[_OWNER] = me


_prepare_metrics_dir()

bind = [_config.bind]
workers = _config.workers
# gevent, with a deadline on request heads and gunicorn's own refusals answered in JSON (zengate/runtime/worker.py)
worker_class = "zengate.runtime.worker.ZengateWorker"
worker_connections = int(os.environ.get("ZENGATE_WORKER_CONNECTIONS", "4096"))
# Async workers notify the master from their own loop, so a long stream is never cut by this;
# it only restarts a worker whose loop is stuck.
timeout = 120
# The master's limit; each worker lets its open streams run for _config.graceful_timeout of it
# (post_worker_init) and keeps the rest to write its queued request-log rows.
FLUSH_SECONDS = 15
STREAM_GRACE = max(0, math.ceil(_config.graceful_timeout))
graceful_timeout = STREAM_GRACE + FLUSH_SECONDS
# Idle keep-alive connections hold a worker's shutdown until they time out: keep them short.
keepalive = 5
# Hard limits on a request head, above the documented one (ZENGATE_MAX_HEADER_BYTES, enforced by the
# app so the 431 comes in the client's error shape): a request line up to gunicorn's maximum, any one
# header up to the whole documented limit, up to 128 headers (a head of at most ~4 MiB is buffered).
limit_request_line = 8190
limit_request_fields = 128
limit_request_field_size = max(8190, _config.max_header_bytes)
loglevel = _config.log_level
accesslog = None
errorlog = "-"
if _config.log_format == "json":
    from zengate.runtime.logs import gunicorn_json_logger

    logger_class = gunicorn_json_logger()
proc_name = "zengate"
# gunicorn's control socket has one path per user: several instances would share it.
control_socket_disable = True
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


_prepared = {}  # the preflight child's report: {"admin_password": {"default", "stored_earlier", …}, "require_auth"}


def _preflight():
    """Migrations and first-start state, in a child process: importing peewee (or anything that makes
    a threading.local) in the master before the workers' gevent patching would share connection state
    between greenlets. Its last stdout line reports the admin password's state and require_auth."""
    result = subprocess.run([sys.executable, "-m", "zengate", "preflight"], check=False, stdout=subprocess.PIPE,
                            text=True)
    if result.returncode != 0:
        sys.exit(result.returncode)
    _prepared.clear()
    _prepared.update(json.loads(result.stdout.strip().splitlines()[-1]))


def _check_listeners(server):
    """Judge the addresses gunicorn really opened (however the bind was given): refuse the default
    admin password beyond loopback, and say who may use /v1 (zengate/runtime/exposure.py)."""
    from zengate.runtime import exposure

    addresses = [exposure.socket_address(lnr) for lnr in server.LISTENERS] or [
        exposure.configured_address(a) for a in server.cfg.address]  # reuse_port: the workers open them
    access = exposure.Access.of(addresses, _config.allow_public_without_keys)
    password = _prepared["admin_password"]
    problem = exposure.password_refusal(access, default_password=password["default"],
                                        stored_earlier=password["stored_earlier"])
    if problem:
        server.halt(problem, exit_status=3)
    message = exposure.start_message(access, require_auth=_prepared["require_auth"])
    if message:
        getattr(server.log, message[0])("zengate: %s", message[1])


def on_starting(server):
    _preflight()


def when_ready(server):
    _check_listeners(server)


def on_reload(server):
    # SIGHUP: the configuration (and maybe the bind) was read again; so is the password's state.
    _preflight()
    _check_listeners(server)


def post_worker_init(worker):
    from zengate.runtime.exposure import socket_address

    worker.cfg.set("graceful_timeout", STREAM_GRACE)  # this worker's grace for open streams
    gateway = worker.wsgi.extensions["zengate"]
    gateway.listen_on(socket_address(sock) for sock in worker.sockets)  # /v1 needs keys beyond loopback
    gateway.start_background()
    worker.log.info("Worker ready (pid: %s)", worker.pid)


def child_exit(server, worker):
    # The master: a worker is gone (exited or killed): its live gauges (open streams, queue) go too.
    from prometheus_client import multiprocess

    try:
        multiprocess.mark_process_dead(worker.pid)
    except OSError:
        server.log.warning("could not drop the metrics of worker %s", worker.pid)


def on_exit(server):
    if _created_metrics_dir and os.environ.get(_OWNER) == str(os.getpid()):
        shutil.rmtree(_created_metrics_dir, ignore_errors=True)


def worker_exit(server, worker):
    app = getattr(worker, "wsgi", None)
    gateway = app.extensions.get("zengate") if app is not None else None
    if gateway is not None:
        gateway.stop_background()
