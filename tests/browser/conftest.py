"""Browser tests: Playwright drives Debian's chromium against a real gunicorn gateway.

Only the system browser is used (``/usr/bin/chromium``, installed by ``.ci/install --dev`` with
apt); Playwright's own browser downloads are never used. Where chromium or the playwright package
is missing the tests skip with the reason.

Screenshots of every page go to a temporary directory, so a run leaves the checkout untouched.
To refresh the README's pictures in ``docs/screenshots/``, ask for it::

    ZENGATE_UPDATE_SCREENSHOTS=1 .venv/bin/python -m pytest -p no:cacheprovider tests/browser
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import ADMIN_PASSWORD, GatewayProcess

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"  # written only with ZENGATE_UPDATE_SCREENSHOTS=1
UPDATE_SCREENSHOTS = "ZENGATE_UPDATE_SCREENSHOTS"
CHROMIUM = os.environ.get("ZENGATE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}

@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no chromium at {CHROMIUM} (bash .ci/install --dev installs Debian's package)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (bash .ci/install --dev)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# --- a Geonode stand-in, so the proxy pool has something to show -----------------------------------

class LocalGeonodeList:
    """Serves three proxies (on closed loopback ports) in Geonode's list shape."""

    ROWS: ClassVar[list[dict]] = [
        {"_id": f"p{n}", "ip": "127.0.0.1", "port": str(port), "protocols": ["http"], "upTime": uptime,
         "latency": latency, "lastChecked": 0, "country": country}
        for n, (port, uptime, latency, country) in enumerate(
            [(9, 99.0, 120.0, "DE"), (13, 97.5, 240.0, "NL"), (17, 91.0, 410.0, "FR")])
    ]

    def __init__(self):
        rows = self.ROWS

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = json.dumps({"data": rows, "total": len(rows), "page": 1, "limit": 100}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/proxy-list"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# --- the gateway -------------------------------------------------------------------------------------

def seed_history(db_path: Path, minutes: int = 60, seed: int = 7) -> int:
    """An hour of earlier traffic written straight into the request log, so the charts have a shape."""
    rng = random.Random(seed)
    models = [("big-pickle", 1.0, 900), ("gpt-5-nano", 0.6, 450), ("kimi-k2.5-free", 0.35, 1600),
              ("glm-4.7-free", 0.2, 1200)]
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = []
    for minute in range(minutes, 1, -1):
        busy = 2 + int(4 * (1 + (minute % 17) / 17) * rng.random())
        for _ in range(busy):
            model, weight, base = rng.choice(models)
            if rng.random() > weight:
                continue
            status = rng.choices([200, 429, 502], weights=[96, 3, 1])[0]
            latency = round(base * rng.lognormvariate(0, 0.35), 1)
            when = now - timedelta(minutes=minute, seconds=rng.randint(0, 59))
            rows.append((when.isoformat(sep=" "), f"msg_seed{len(rows):05d}", "POST", "/v1/chat/completions",
                         model, model, "openai", rng.random() < 0.6, status, latency, round(latency * 0.3, 1),
                         rng.randint(200, 4000) if status == 200 else 0,
                         rng.randint(20, 900) if status == 200 else 0,
                         "sk-zen-seeded" if rng.random() < 0.5 else None,
                         None if status == 200 else f"upstream answered {status}"))
    rows.sort()  # in time order, as the gateway writes them
    with sqlite3.connect(db_path, timeout=10) as conn:
        conn.executemany(
            "INSERT INTO request_log (created_at, request_id, method, path, model, upstream_model, format, stream,"
            " status, latency_ms, ttfb_ms, input_tokens, output_tokens, key_prefix, error)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    up = FakeUpstream().start()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def geonode() -> Iterator[LocalGeonodeList]:
    stub = LocalGeonodeList()
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, upstream, geonode) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("dashboard")
    gw = GatewayProcess(workdir, upstream.url, env={"ZENGATE_SETTINGS_TTL": "0", "ZENGATE_GEONODE_URL": geonode.url})
    gw.start()
    gw.set_setting("proxy_list_private_ok", True)  # the stand-in Geonode lists loopback proxies
    seed_history(workdir / "data" / "zengate.db")
    yield gw
    gw.stop()


@pytest.fixture
def gw(gateway, upstream):
    upstream.reset()
    gateway.set_setting("require_auth", False)
    return gateway


# --- pages -------------------------------------------------------------------------------------------

class Console:
    """Every console error and uncaught exception of a page; a test fails on any it did not expect."""

    def __init__(self, page):
        self.messages: list[str] = []
        self.expected: list[str] = []
        page.on("console", lambda msg: self.messages.append(f"console.{msg.type}: {msg.text}")
                if msg.type in ("error", "warning") else None)
        page.on("pageerror", lambda exc: self.messages.append(f"uncaught: {exc}"))

    def expect(self, fragment: str) -> None:
        """Allow console messages containing ``fragment`` (e.g. the browser's note of a 401 answer)."""
        self.expected.append(fragment)

    def unexpected(self) -> list[str]:
        return [m for m in self.messages if not any(f in m for f in self.expected)]


@pytest.fixture
def open_page(browser, gw):
    """``open_page(viewport=…, color_scheme=…)`` → (page, console); the console is checked at the end."""
    opened = []

    def open_(*, viewport=DESKTOP, color_scheme="light", scale=1):
        context = browser.new_context(viewport=viewport, color_scheme=color_scheme, device_scale_factor=scale,
                                      locale="en-US", timezone_id="UTC", reduced_motion="reduce")
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=gw.url)
        page = context.new_page()
        page.set_default_timeout(15_000)
        console = Console(page)
        opened.append((context, console))
        return page, console

    yield open_
    problems = []
    for context, console in opened:
        problems += console.unexpected()
        context.close()
    assert not problems, "the browser console reported:\n" + "\n".join(problems)


@pytest.fixture
def page(open_page):
    page, _console = open_page()
    return page


def login(page, gw, password: str = ADMIN_PASSWORD) -> None:
    from playwright.sync_api import expect

    page.goto(gw.url + "/_admin/ui")
    page.get_by_label("Admin password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#app")).to_be_visible()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    """Where screenshots go: ``docs/screenshots/`` (the README's) when ``ZENGATE_UPDATE_SCREENSHOTS=1``,
    else a temporary directory, so an ordinary run does not rewrite tracked pictures."""
    if os.environ.get(UPDATE_SCREENSHOTS) == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def screenshot(screenshot_dir: Path):
    """``screenshot(page, name, full_page=False)`` saves ``<screenshot_dir>/<name>.png`` and returns its path."""

    def take(page, name: str, *, full_page: bool = False) -> Path:
        page.mouse.move(2, 2)  # no hover highlight in the picture
        page.evaluate("window.scrollTo(0, 0)")
        path = screenshot_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page, animations="disabled", caret="hide")
        return path

    return take
