"""What every client launcher shares: where the gateway is and whether it answers, and the
client's own binary (found, or installed with npm when the person at the terminal says so)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

HEALTH_TIMEOUT = 2.0  # seconds GET /healthz may take before the gateway counts as unreachable
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]", "*")
PLACEHOLDER_KEY = "sk-zen-local"  # sent when no key is given: without require_auth the gateway does not check it
ROOT = Path(__file__).resolve().parents[2]


class LaunchError(Exception):
    """``python -m zengate claude`` (or ``codex``, ``gemini``) cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class GatewayAddress:
    """Where the client (Claude Code, Codex, Gemini CLI) is sent, and where that address came from (said on stderr)."""

    url: str
    source: str


def gateway_address(option: str | None, environ: Mapping[str, str]) -> GatewayAddress:
    """The gateway's URL: ``--url``, else ``ZENGATE_URL``, else where the gateway is configured to listen.

    The last is read as the gateway reads it (``PORT`` before ``ZENGATE_BIND``, then the default);
    a wildcard host (``0.0.0.0``, ``[::]``) is reached on loopback.
    """
    if option and option.strip():
        return GatewayAddress(normalise_gateway_url(option, "--url"), "--url")
    if environ.get("ZENGATE_URL", "").strip():
        return GatewayAddress(normalise_gateway_url(environ["ZENGATE_URL"], "ZENGATE_URL"), "ZENGATE_URL")
    port = environ.get("PORT", "").strip()
    if port:
        return GatewayAddress(f"http://127.0.0.1:{port}", "PORT, where the gateway listens")
    bind = environ.get("ZENGATE_BIND", "").strip()
    if bind:
        return GatewayAddress(url_for_bind(bind), "ZENGATE_BIND, where the gateway listens")
    from ..config import DEFAULT_BIND

    return GatewayAddress(f"http://{DEFAULT_BIND}",
                          "the default address: none of --url, ZENGATE_URL, PORT, ZENGATE_BIND is set")


def normalise_gateway_url(url: str, source: str) -> str:
    """An http(s) base URL without a trailing ``/`` or ``/v1`` (each client's own path is added to it)."""
    from urllib.parse import urlsplit

    url = url.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LaunchError(f"{source}: {url!r} is not an http:// or https:// URL (e.g. http://127.0.0.1:8462)")
    return url


def url_for_bind(bind: str) -> str:
    """The URL that reaches a gunicorn bind address from this machine."""
    if bind.startswith("unix:"):
        raise LaunchError(f"ZENGATE_BIND is a unix socket ({bind}); the client needs an http URL: "
                          "pass --url or set ZENGATE_URL")
    host, colon, port = bind.rpartition(":")
    if not colon or "]" in port:  # "host" alone, or a bare "[::1]": gunicorn's default port
        host, port = bind, "8000"
    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"  # listening everywhere: talk to it on loopback
    return f"http://{host}:{port}"


def check_gateway(url: str, timeout: float = HEALTH_TIMEOUT) -> str | None:
    """None when a zengate gateway answers ``GET <url>/healthz``; else one line saying what happened.

    A 503 from ``/healthz`` is the gateway with its database down: it still serves ``/v1``.
    """
    import json
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    local = host in ("localhost", "::1") or host.startswith("127.")
    opener = urllib.request.build_opener(*([urllib.request.ProxyHandler({})] if local else []))
    try:
        with opener.open(f"{url}/healthz", timeout=timeout) as response:
            status, body = response.status, response.read(65536)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(65536)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            return f"no gateway answers at {shown_url(url)} (no answer within {timeout:g} s)"
        text = getattr(reason, "strerror", None) or str(reason)
        return f"no gateway answers at {shown_url(url)} ({text.lower()})"
    try:
        health = json.loads(body)
    except ValueError:
        health = None
    if not (isinstance(health, dict) and "status" in health and "version" in health):
        return f"{shown_url(url)}/healthz answered HTTP {status}, but not as a zengate gateway does"
    if status not in (200, 503):
        return f"the gateway at {shown_url(url)} answered /healthz with HTTP {status}"
    return None


def shown_url(url: str) -> str:
    """``url`` fit for a message: a password in it (``user:pass@``) masked."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


@dataclass(frozen=True)
class ClientCli:
    """A command-line client zengate starts: its name for messages, its binary and its npm package."""

    product: str  # "Claude Code"
    binary: str  # "claude"
    package: str  # "@anthropic-ai/claude-code"

    @property
    def install_command(self) -> str:
        return f"npm install -g {self.package}"


def find_cli(client: ClientCli) -> str | None:
    """The client's binary on PATH, else the copy ``bash .ci/install --dev`` puts in ``.ci/node``."""
    import shutil

    local = ROOT / ".ci" / "node" / "node_modules" / ".bin" / client.binary
    return shutil.which(client.binary) or (str(local) if local.exists() else None)


def install_cli(client: ClientCli) -> tuple[str | None, int]:
    """Say the command that installs the client and, on a terminal, offer to run it.

    Returns the installed binary, or None and the exit code to end with.
    """
    import shutil
    import subprocess

    print(f"zengate: {client.product} is not installed. Install it with: {client.install_command}", file=sys.stderr)
    if not (sys.stdin and sys.stdin.isatty()):
        return None, 127
    print("Install it now with npm? [y/N] ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        return None, 127
    npm = shutil.which("npm")
    if npm is None:
        print("zengate: npm is not installed: install Node.js (it brings npm), then run the command above",
              file=sys.stderr)
        return None, 127
    done = subprocess.run([npm, "install", "-g", client.package], check=False)
    if done.returncode != 0:
        print(f"zengate: `{client.install_command}` failed (exit {done.returncode})", file=sys.stderr)
        return None, done.returncode
    binary = find_cli(client)
    if binary is None:
        print(f"zengate: {client.product} was installed, but `{client.binary}` is not on PATH: add npm's global "
              "bin folder (`npm prefix -g`/bin) to PATH", file=sys.stderr)
        return None, 127
    return binary, 0


def find_gateway(client: ClientCli, url_option: str | None) -> tuple[GatewayAddress | None, int]:
    """:func:`gateway_address` for ``client``, said on stderr; None and exit code 2 when it cannot be used."""
    try:
        address = gateway_address(url_option, os.environ)
    except LaunchError as exc:
        print(f"zengate: {exc}", file=sys.stderr)
        return None, 2
    print(f"zengate: {client.product} will use the gateway at {shown_url(address.url)} (from {address.source})",
          file=sys.stderr)
    return address, 0


def reach_gateway(client: ClientCli, url_option: str | None) -> tuple[GatewayAddress | None, int]:
    """Find the gateway, say on stderr which one the client will use and why, and check that it answers.

    Returns the address, or None and the exit code to end with (the reason is already said).
    """
    address, code = find_gateway(client, url_option)
    if address is None:
        return None, code
    problem = check_gateway(address.url)
    if problem:
        print(f"zengate: {problem}.\n"
              "Start the gateway (`.venv/bin/python -m zengate serve` in its folder), or point at the one you run "
              "with --url URL or ZENGATE_URL=URL.", file=sys.stderr)
        return None, 1
    return address, 0


def client_binary(client: ClientCli) -> tuple[str | None, int]:
    """The client's binary, installed first when the person at the terminal says so; else None and an exit code."""
    binary = find_cli(client)
    if binary is not None:
        return binary, 0
    return install_cli(client)


def ready(client: ClientCli, url_option: str | None) -> tuple[str, str] | int:
    """The gateway's URL (found, said and answering) and the client's binary (installed when the
    person at the terminal says so); else the exit code to end with, the reason already said."""
    address, code = reach_gateway(client, url_option)
    if address is None:
        return code
    binary, code = client_binary(client)
    if binary is None:
        return code
    return address.url, binary
