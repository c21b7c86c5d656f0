"""Runs the real gateway — gunicorn with gevent workers — on a free loopback port for e2e tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "e2e-admin-password"
#: A request's line in the text log: ``… zengate.request [pid] req_… POST /v1/… status=200 …``.
REQUEST_LINE = re.compile(r" zengate\.request \[(\d+)\] [^\n]* status=(\d{3}) ")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GatewayProcess:
    """``gunicorn -c gunicorn.conf.py app:app`` exactly as production starts it."""

    def __init__(self, workdir: Path, upstream_url: str, *, workers: int = 2, env: dict[str, str] | None = None,
                 database_url: str | None = None):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"gateway-{self.port}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("ZENGATE_", "OPENCODE_", "DATABASE_URL"))},
            "ZENGATE_UPSTREAM_URL": upstream_url,
            "ZENGATE_GO_UPSTREAM_URL": upstream_url + "/go",
            "ZENGATE_BIND": f"127.0.0.1:{self.port}",
            "ZENGATE_WORKERS": str(workers),
            "ZENGATE_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "ZENGATE_DATA_DIR": str(workdir / "data"),
            "DATABASE_URL": database_url or f"sqlite:///{workdir / 'data' / 'zengate.db'}",
            "ZENGATE_LOG_LEVEL": "info",
            **(env or {}),
        }
        self.env.pop("PORT", None)
        self.workers = workers
        self.process: subprocess.Popen | None = None
        self._token: str | None = None

    def start_settled(self, upstream) -> GatewayProcess:
        """Start, then wait until each worker has fetched both tiers' model lists from ``upstream``
        (a FakeUpstream).

        A fetch still pending when a test begins would land among the test's own upstream
        requests (``up.requests[-1]`` a ``GET /models``), or go through proxies a test turned on.
        """
        def model_fetches() -> int:
            return sum(r.path.endswith("/models") for r in upstream.requests)

        before = model_fetches()
        self.start()
        fetched = upstream.wait_for(lambda: model_fetches() >= before + 2 * self.workers)  # 2 tiers each
        assert fetched, "the workers did not fetch the model lists"
        return self

    def start(self, timeout: float = 30.0) -> GatewayProcess:
        self._log = open(self.log_path, "ab")  # closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:app"],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)  # polling a start-up condition, bounded by the deadline
        raise RuntimeError(f"gateway did not become healthy in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def answered(self, since: int = 0) -> dict[int, list[str]]:
        """The statuses each worker (pid) answered with, from the request lines (text format) that
        the log holds after its first ``since`` characters."""
        seen: dict[int, list[str]] = {}
        for found in REQUEST_LINE.finditer(self.log()[since:]):
            seen.setdefault(int(found[1]), []).append(found[2])
        return seen

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    # --- admin helpers -------------------------------------------------------------------

    def admin_headers(self) -> dict[str, str]:
        if self._token is None:
            r = requests.post(self.url + "/_admin/login", json={"password": ADMIN_PASSWORD}, timeout=10)
            r.raise_for_status()
            self._token = r.json()["token"]
        return {"Authorization": f"Bearer {self._token}"}

    def admin(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, self.url + path, headers=self.admin_headers(), timeout=30, **kwargs)

    def set_setting(self, key: str, value) -> None:
        r = self.admin("POST", "/_admin/settings", json={"key": key, "value": value})
        assert r.status_code == 200, r.text

    def wait_for(self, predicate, timeout: float = 10.0, interval: float = 0.05):
        """Poll ``predicate()`` until it returns something truthy (a condition, never a fixed sleep)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")
