"""``python -m zengate gemini``: Gemini CLI pointed at a running gateway.

Gemini CLI reaches a gateway with ``GOOGLE_GEMINI_BASE_URL`` and a key in ``GEMINI_API_KEY``, and
only with ``security.auth.selectedType: "gemini-api-key"`` in its settings: headless, it refuses
the auth type that the base URL alone selects, and with a Google sign-in selected it would send
the conversation to Google instead. The launcher sets that one key in the user's settings file
when no sign-in is chosen there; it replaces another sign-in only when asked (``--switch-auth``).
Its system settings cannot be used instead: Gemini CLI reads them only from root-owned folders.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from .common import PLACEHOLDER_KEY, ClientCli, LaunchError, ready

GEMINI_PACKAGE = "@google/gemini-cli"
GEMINI = ClientCli("Gemini CLI", "gemini", GEMINI_PACKAGE)
AUTH_TYPE = "gemini-api-key"  # the sign-in that sends GEMINI_API_KEY to GOOGLE_GEMINI_BASE_URL


def gemini_settings_file(environ: Mapping[str, str], home: Path) -> Path:
    """Gemini CLI's user settings: ``$GEMINI_CLI_HOME/.gemini/settings.json``, else ``~/.gemini/settings.json``."""
    return Path(environ.get("GEMINI_CLI_HOME") or home) / ".gemini" / "settings.json"


def select_api_key_auth(path: Path, switch: bool) -> str | None:
    """Make ``security.auth.selectedType`` ``gemini-api-key`` in the settings file at ``path``.

    Returns what was done, for stderr (None when it already was). Raises LaunchError when another
    sign-in is selected and ``switch`` is false, or when the file cannot be read as plain JSON
    (Gemini CLI allows comments; it is then left for the user to change).
    """
    try:
        settings = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError) as exc:
        raise LaunchError(f"cannot read {path} as plain JSON ({exc}); add \"security\": {{\"auth\": "
                          f"{{\"selectedType\": \"{AUTH_TYPE}\"}}}} to it yourself, then run this again") from exc
    if not isinstance(settings, dict):
        raise LaunchError(f"{path} does not hold a JSON object")
    security = settings.setdefault("security", {})
    auth = security.setdefault("auth", {}) if isinstance(security, dict) else None
    if not isinstance(auth, dict):
        raise LaunchError(f"{path}: \"security.auth\" is not an object; Gemini CLI cannot read it either")
    chosen = auth.get("selectedType")
    if chosen == AUTH_TYPE:
        return None
    if chosen and not switch:
        raise LaunchError(f"Gemini CLI signs in with {chosen!r} ({path}), which would send your conversation to "
                          f"Google, not to the gateway. Run again with --switch-auth to select {AUTH_TYPE!r} "
                          "(switch back with /auth in Gemini CLI)")
    auth["selectedType"] = AUTH_TYPE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.zengate-{os.getpid()}")
    temporary.write_text(json.dumps(settings, indent=2) + "\n")
    if path.exists():
        os.chmod(temporary, path.stat().st_mode & 0o7777)
    os.replace(temporary, path)
    return f"switched Gemini CLI from {chosen!r} to {AUTH_TYPE!r} in {path}" if chosen else \
        f"selected {AUTH_TYPE!r} sign-in for Gemini CLI in {path}"


def gemini_environment(url: str, key: str | None, base: Mapping[str, str], trust: bool = False) -> dict[str, str]:
    """The environment that points Gemini CLI at the gateway at ``url``, with ``key`` (else
    ``ZENGATE_API_KEY``, else a placeholder) as its key; ``trust`` trusts the working folder for this run."""
    env = {**base, "GOOGLE_GEMINI_BASE_URL": url}
    env["GEMINI_API_KEY"] = key or base.get("ZENGATE_API_KEY") or PLACEHOLDER_KEY
    if trust:
        env["GEMINI_CLI_TRUST_WORKSPACE"] = "true"
    return env


def cmd_gemini(args: argparse.Namespace) -> int:
    """Run Gemini CLI against a running gateway: ``python -m zengate gemini -p "hi"``.

    Says on stderr which gateway it uses and why, checks that it answers, installs Gemini CLI when
    asked to, selects its API-key sign-in (see the module), and with ``--trust-this-folder`` trusts
    the current folder for this run only; then replaces this process with ``gemini``.
    """
    found = ready(GEMINI, args.url)
    if isinstance(found, int):
        return found
    url, binary = found
    try:
        done = select_api_key_auth(gemini_settings_file(os.environ, Path.home()), args.switch_auth)
    except (LaunchError, OSError) as exc:
        print(f"zengate: {exc}", file=sys.stderr)
        return 2
    if done:
        print(f"zengate: {done}", file=sys.stderr)
    os.execvpe(binary, [binary, *args.extra], gemini_environment(url, args.key, os.environ, args.trust_this_folder))
    return 0  # not reached
