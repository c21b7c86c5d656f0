"""gunicorn settings for zengate: gevent workers, bind from $PORT or $ZENGATE_BIND.

The master applies migrations once and refuses to listen beyond loopback while the admin
password is still the default; each worker then starts its own background loop.
"""

import os
import subprocess
import sys

from zengate.config import Config

_config = Config.from_env()

bind = [_config.bind]
workers = _config.workers
worker_class = "gevent"
worker_connections = int(os.environ.get("ZENGATE_WORKER_CONNECTIONS", "4096"))
# Async workers notify the master from their own loop, so a long stream is never cut by this;
# it only restarts a worker whose loop is stuck.
timeout = 120
graceful_timeout = 30
# Idle keep-alive connections hold a worker's shutdown until they time out: keep them short.
keepalive = 5
loglevel = _config.log_level
accesslog = None
errorlog = "-"
proc_name = "zengate"
# gunicorn's control socket has one path per user: several instances would share it.
control_socket_disable = True
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def on_starting(server):
    # Migrations and the bind check run in a child process: importing peewee (or anything that
    # makes a threading.local) in the master before the workers' gevent patching would share
    # connection state between greenlets.
    result = subprocess.run([sys.executable, "-m", "zengate", "preflight"], check=False)
    if result.returncode != 0:
        sys.exit(result.returncode)


def post_worker_init(worker):
    gateway = worker.wsgi.extensions["zengate"]
    gateway.start_background()


def worker_exit(server, worker):
    app = getattr(worker, "wsgi", None)
    gateway = app.extensions.get("zengate") if app is not None else None
    if gateway is not None:
        gateway.stop_background()
