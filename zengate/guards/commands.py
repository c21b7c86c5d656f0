"""Dangerous shell commands: which tools run a shell, the command a call would run, and the rules
that refuse it.

A rule is data (``{id: {"pattern", "why"}}``, the pattern a Python regular expression searched in
the command); :data:`DEFAULT_RULES` are the ones the ``command_rules`` setting starts with. The
command is judged as the model wrote it, before any shell sees it, so the rules match the common
spellings (flags in any order, ``sudo`` in front, ``~`` or ``$HOME``), not every way a shell could
be made to do the same thing: they catch a model's mistakes, they are not a sandbox.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Tool names that run a shell command, as agents call them (compared without case).
SHELL_TOOLS = frozenset({"bash", "shell", "exec_command", "run_shell_command", "local_shell", "execute_command",
                         "run_command", "terminal", "run_terminal_cmd", "container.exec", "shell_command"})
#: The input fields that hold the command, in the order they are looked for.
COMMAND_FIELDS = ("command", "cmd", "commandLine", "script")

#: ``rm`` with a recursive flag (``-rf``, ``-r -f``, ``-f -r``, ``--recursive``), up to its first path.
_RM = (r"\brm\s+(?:-[a-zA-Z]*[rR][a-zA-Z]*\s+(?:-[a-zA-Z]+\s+)*"
       r"|-[a-zA-Z]+\s+(?:-[a-zA-Z]+\s+)*-[a-zA-Z]*[rR][a-zA-Z]*\s+"
       r"|--recursive\s+(?:-\S+\s+)*)(?:--\s+)?")
_END = r"(?=\s*(?:$|[;&|)#]|\s+-))"  # the path ends: the line, a separator, a comment or another flag
_PROTECTED = r"(?:main|master|trunk|production|prod|release(?:/\S*)?|develop)(?=\s|$|[;&|])"

DEFAULT_RULES: dict[str, dict[str, str]] = {
    "rm-root": {
        "why": "recursive delete of the filesystem root",
        "pattern": _RM + r"[\"']?/\*?[\"']?" + _END},
    "rm-home": {
        "why": "recursive delete of the home folder",
        "pattern": _RM + r"[\"']?(?:~|\$HOME|\$\{HOME\})/?\*?[\"']?" + _END},
    "rm-worktree": {
        "why": "recursive delete of the working tree",
        "pattern": _RM + r"[\"']?(?:\.|\./|\./\*|\*|\$PWD|\$\(pwd\)|\$\(git rev-parse --show-toplevel\))[\"']?" + _END},
    "git-force-push-protected": {
        "why": "force push to a protected branch",
        "pattern": r"\bgit\s+push\b(?:(?=.*\s(?:-f|--force(?:-with-lease)?(?:=\S*)?)(?:\s|$))"
                   r"(?=.*\s(?:\S+:)?" + _PROTECTED + r")|.*\s\+(?:\S+:)?" + _PROTECTED + ")"},
    "git-clean-all": {
        "why": "git clean -fd, which deletes every untracked file and folder",
        "pattern": r"\bgit\s+clean\s+(?:-\S*\s+)*-[a-zA-Z]*(?:f[a-zA-Z]*d|d[a-zA-Z]*f)[a-zA-Z]*"},
    "git-reset-hard": {
        "why": "git reset --hard, which throws away uncommitted work",
        "pattern": r"\bgit\s+reset\s+(?:\S+\s+)*--hard\b"},
    "format-disk": {
        "why": "formatting or partitioning a disk",
        "pattern": r"(?:^|[;&|]\s*|\bsudo\s+)(?:mkfs(?:\.\w+)?|mke2fs|fdisk|sfdisk|parted|wipefs"
                   r"|sgdisk\s+(?:-Z|--zap-all))\b"},
    "dd-to-device": {
        "why": "dd writing straight to a device",
        "pattern": r"\bdd\b[^;&|]*\bof=/dev/(?!null\b|zero\b|stdout\b|stderr\b)\w+"},
    "chmod-777-root": {
        "why": "chmod -R 777 on the filesystem root",
        "pattern": r"\bchmod\s+(?:-\S+\s+)*(?:-R|--recursive)\s+(?:-\S+\s+)*0?777\s+/(?:\s|$)"
                   r"|\bchmod\s+0?777\s+(?:-\S+\s+)*(?:-R|--recursive)\s+/(?:\s|$)"},
    "download-into-shell": {
        "why": "piping a download straight into a shell",
        "pattern": r"\b(?:curl|wget|fetch)\b[^|;&]*\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:ba|z|da|k|fi)?sh\b"},
}


@dataclass(frozen=True)
class Rule:
    """One refusing rule, compiled."""

    id: str
    pattern: re.Pattern
    why: str


@dataclass(frozen=True)
class Refusal:
    """A command a rule refused: the rule, and the command as the model wrote it."""

    rule: Rule
    command: str

    def message(self) -> str:
        """What the agent reads instead of the command's output: what was refused, why, and what to do."""
        return (f"zengate blocked this command before it ran: `{self.command}` ({self.rule.why}; rule "
                f"{self.rule.id}). Nothing was executed. If the user really wants this, ask them to run it "
                "themselves; otherwise choose a narrower command.")


def compile_rules(rules: Mapping[str, Mapping[str, Any]]) -> tuple[Rule, ...]:
    """The rules of the ``command_rules`` setting, compiled (they are checked when the setting is saved)."""
    return tuple(Rule(rule_id, re.compile(r["pattern"]), r.get("why") or rule_id) for rule_id, r in rules.items())


def check_rules(value: Any) -> str | None:
    """What is wrong with a ``command_rules`` setting (``{id: {"pattern", "why"}}``), or None."""
    if not isinstance(value, dict):
        return "must be an object of rules by id"
    for rule_id, rule in value.items():
        if not rule_id.strip():
            return "a rule's id must not be empty"
        if not isinstance(rule, dict):
            return f"{rule_id}: a rule is {{\"pattern\", \"why\"}}"
        if set(rule) - {"pattern", "why"}:
            return f"{rule_id}: unknown fields {sorted(set(rule) - {'pattern', 'why'})}; a rule has pattern and why"
        if not isinstance(rule.get("pattern"), str) or not rule["pattern"]:
            return f"{rule_id}: pattern must be a regular expression"
        try:
            re.compile(rule["pattern"])
        except re.error as exc:
            return f"{rule_id}: pattern is not a regular expression ({exc})"
        if not isinstance(rule.get("why", ""), str):
            return f"{rule_id}: why must be text"
    return None


def is_shell_tool(name: str, schema: Any = None) -> bool:
    """Whether a tool runs shell commands: by its name, or a name that says so and a ``command`` string input."""
    lowered = name.lower()
    if lowered in SHELL_TOOLS:
        return True
    properties = (schema or {}).get("properties") if isinstance(schema, dict) else None
    takes_command = isinstance(properties, dict) and any(f in properties for f in COMMAND_FIELDS)
    return takes_command and any(word in lowered for word in ("shell", "bash", "exec", "command", "terminal"))


def command_of(arguments: Any) -> str | None:
    """The command a shell call would run: its ``command`` (a string, or a list joined as argv) or kin."""
    if not isinstance(arguments, dict):
        return None
    for name in COMMAND_FIELDS:
        value = arguments.get(name)
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            if len(value) >= 3 and value[0].rsplit("/", 1)[-1] in ("bash", "sh", "zsh") and value[1] in ("-c", "-lc"):
                return " ".join(value[2:])
            return " ".join(value)
    return None


def refusal(command: str, rules: Iterable[Rule]) -> Refusal | None:
    """The first rule that refuses ``command``, as a :class:`Refusal`; None when none does."""
    for rule in rules:
        if rule.pattern.search(command):
            return Refusal(rule, command)
    return None
