"""``python -m zengate claude``: Claude Code pointed at a running gateway, its first-run screens
(and, when asked, its folder-trust question) answered in its own state file."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from .common import PLACEHOLDER_KEY, ClientCli, ready

CLAUDE_CODE_PACKAGE = "@anthropic-ai/claude-code"
#: A project entry as Claude Code itself writes one when its folder-trust question is accepted.
CLAUDE_PROJECT_DEFAULTS = {"allowedTools": [], "mcpContextUris": [], "mcpServers": {}, "enabledMcpjsonServers": [],
                           "disabledMcpjsonServers": [], "hasClaudeMdExternalIncludesApproved": False,
                           "hasClaudeMdExternalIncludesWarningShown": False}
CLAUDE_CODE = ClientCli("Claude Code", "claude", CLAUDE_CODE_PACKAGE)


def claude_environment(url: str, key: str | None, base: Mapping[str, str]) -> dict[str, str]:
    """The environment that points Claude Code at the gateway at ``url``, with ``key`` as its token."""
    env = dict(base)
    env["ANTHROPIC_BASE_URL"] = url
    token = key or base.get("ZENGATE_API_KEY") or base.get("ANTHROPIC_AUTH_TOKEN")
    env["ANTHROPIC_AUTH_TOKEN"] = token or PLACEHOLDER_KEY
    env.pop("ANTHROPIC_API_KEY", None)  # it would win over the token and go to the wrong place
    env.setdefault("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    env.setdefault("DISABLE_TELEMETRY", "1")
    env.setdefault("DISABLE_AUTOUPDATER", "1")
    return env


def claude_state_file(environ: Mapping[str, str], home: Path) -> Path:
    """Claude Code's own state file: ``$CLAUDE_CONFIG_DIR/.claude.json``, else ``~/.claude.json``."""
    return Path(environ.get("CLAUDE_CONFIG_DIR") or home) / ".claude.json"


def update_claude_state(path: Path, change: Callable[[dict], bool]) -> bool:
    """Apply ``change`` to Claude Code's state file, keeping everything else; False when it cannot be read.

    ``change`` returns whether it changed anything; the file is replaced atomically, with its mode kept.
    """
    import json

    try:
        state = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        return False  # never clobber a file we cannot read
    if not isinstance(state, dict):
        return False
    if not change(state):
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.zengate-{os.getpid()}")
    temporary.write_text(json.dumps(state, indent=2))
    if path.exists():
        os.chmod(temporary, path.stat().st_mode & 0o7777)
    os.replace(temporary, path)
    return True


def mark_onboarding_done(state: dict) -> bool:
    """Set ``hasCompletedOnboarding``, so Claude Code skips its first-run screens and login."""
    if state.get("hasCompletedOnboarding") is True:
        return False
    state["hasCompletedOnboarding"] = True
    return True


def trust_folder(folder: str) -> Callable[[dict], bool]:
    """A change marking ``folder`` (and no other) as trusted: Claude Code then skips its folder-trust question."""
    def change(state: dict) -> bool:
        projects = state.get("projects")
        if projects is None:
            projects = state["projects"] = {}
        if not isinstance(projects, dict):
            return False
        entry = projects.get(folder)
        if isinstance(entry, dict) and entry.get("hasTrustDialogAccepted") is True:
            return False
        projects[folder] = {**(entry if isinstance(entry, dict) else CLAUDE_PROJECT_DEFAULTS),
                            "hasTrustDialogAccepted": True}
        return True
    return change


def cmd_claude(args: argparse.Namespace) -> int:
    """Run Claude Code against a running gateway: ``python -m zengate claude -p "hi"``.

    Says on stderr which gateway it uses and why, checks that it answers, installs Claude Code
    when asked to, skips Claude Code's onboarding, and with ``--trust-this-folder`` its folder-trust
    question for the current folder; then replaces this process with ``claude``.
    """
    found = ready(CLAUDE_CODE, args.url)
    if isinstance(found, int):
        return found
    url, binary = found
    env = claude_environment(url, args.key, os.environ)
    state = claude_state_file(env, Path.home())
    if not update_claude_state(state, mark_onboarding_done):
        print(f"zengate: could not read {state}: Claude Code may show its first-run screens", file=sys.stderr)
    if args.trust_this_folder:
        folder = os.getcwd()
        if update_claude_state(state, trust_folder(folder)):
            print(f"zengate: marked {folder} as trusted in {state}", file=sys.stderr)
        else:
            print(f"zengate: could not read {state}: Claude Code will ask whether to trust {folder}",
                  file=sys.stderr)
    os.execvpe(binary, [binary, *args.extra], env)
    return 0  # not reached

