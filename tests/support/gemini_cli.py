"""The real Gemini CLI, run headless against the gateway, for end-to-end tests.

Gemini CLI is the pinned npm package in ``.ci/node`` (:func:`gemini_binary`; ``bash .ci/install
--dev`` puts it there). :func:`run_gemini` runs ``gemini -p PROMPT --output-format json`` once,
isolated: a fresh HOME whose ``.gemini/settings.json`` selects the API-key sign-in (the only one
that sends ``GEMINI_API_KEY`` to ``GOOGLE_GEMINI_BASE_URL`` headless) and turns off what would
reach the network (usage statistics, update checks); a fresh TMPDIR and working folder, trusted
for the run; an environment built from scratch; a hard timeout::

    gemini = gemini_binary()                    # raises CliUnavailable: skip with its reason
    run = run_gemini(gemini, "say hi", base_url=gw.url, key="sk-zen-test", folder=tmp_path)
    assert run.ok, run.describe()
    assert run.response == "Hello from upstream"

What Gemini CLI 0.61 does, learnt by running it: the main loop always posts to
``/v1beta/models/{model}:streamGenerateContent?alt=sse``; without ``-m`` it first asks a router
(``gemini-3.5-flash-lite:generateContent`` with a ``responseJsonSchema``) how hard the prompt is.
A 429 with a ``PerDay`` quota stops it at once; other 429s are retried after its own backoff.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.npm_cli import isolated_environment, pinned_cli

GEMINI_VERSION = "0.61.0"  # keep in step with .ci/install and the gm_* recordings
RUN_TIMEOUT = 120  # seconds one ``gemini -p`` may take
SETTINGS = {
    "security": {"auth": {"selectedType": "gemini-api-key"}},
    "privacy": {"usageStatisticsEnabled": False},  # else usage events go to Google
    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False, "maxAttempts": 3},
}


def gemini_binary(install: bool = True) -> str:
    """The pinned Gemini CLI binary in ``.ci/node``, installed there with npm when missing."""
    return pinned_cli("@google/gemini-cli", GEMINI_VERSION, "gemini", install)


@dataclass
class GeminiRun:
    """What one ``gemini -p`` did: exit code, output, the parsed ``--output-format json`` result."""

    command: list[str]
    exit_code: int
    stdout: str
    stderr: str
    result: dict[str, Any] | None
    workdir: Path
    home: Path

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and isinstance(self.result, dict) and "error" not in self.result

    @property
    def response(self) -> str | None:
        return (self.result or {}).get("response")

    def roles(self) -> dict[str, str]:
        """Which model served each of the CLI's roles (``main``, ``utility_router``…), from its stats."""
        models = ((self.result or {}).get("stats") or {}).get("models") or {}
        return {role: model for model, stats in models.items() for role in (stats.get("roles") or {})}

    def tool_calls(self) -> dict[str, dict]:
        return (((self.result or {}).get("stats") or {}).get("tools") or {}).get("byName") or {}

    def describe(self) -> str:
        return (f"$ {' '.join(self.command)}\nexit {self.exit_code}\n--- stdout\n{self.stdout[-4000:]}\n"
                f"--- stderr\n{self.stderr[-4000:]}")


def run_gemini(binary: str, prompt: str, *, base_url: str, key: str, folder: Path, args: tuple[str, ...] = (),
               env: Mapping[str, str] | None = None, settings: Mapping[str, Any] | None = None,
               timeout: float = RUN_TIMEOUT) -> GeminiRun:
    """``gemini -p PROMPT --output-format json ARGS`` against ``base_url``, in folders under ``folder``."""
    home, tmp, work = folder / "home", folder / "tmp", folder / "work"
    for d in (home / ".gemini", tmp, work):
        d.mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings or SETTINGS))
    full_env = {
        **isolated_environment(home, tmp),
        "GOOGLE_GEMINI_BASE_URL": base_url,
        "GEMINI_API_KEY": key,
        "GEMINI_CLI_TRUST_WORKSPACE": "true",  # else a headless run in an untrusted folder exits 55
        "NO_COLOR": "1",
        **(env or {}),
    }
    command = [binary, "-p", prompt, "--output-format", "json", *args]
    done = subprocess.run(command, cwd=work, env=full_env, capture_output=True, text=True, timeout=timeout)
    return GeminiRun(command, done.returncode, done.stdout, done.stderr, _result(done.stdout), work, home)


def _result(stdout: str) -> dict[str, Any] | None:
    """The JSON object ``--output-format json`` prints (after any lines the CLI writes before it)."""
    start = stdout.find("{")
    try:
        value = json.loads(stdout[start:]) if start >= 0 else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
