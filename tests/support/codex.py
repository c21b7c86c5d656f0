"""The real Codex CLI, run headless against a local Responses server, for end-to-end tests.

Codex is the pinned npm package in ``.ci/node`` (``bash .ci/install --dev`` puts it there;
:func:`codex_binary` installs it there when missing). :func:`run_codex` runs ``codex exec`` once,
isolated: a fresh ``CODEX_HOME`` whose ``config.toml`` defines one provider (the server under test,
``wire_api = "responses"``, no WebSocket, no retries) and turns off everything that would reach
the network or ask a question (analytics, feedback, update checks, plugin sync, approvals); a fresh
HOME and working directory; an environment built from scratch (no proxy or OpenAI variables leak
in); ``--json`` events; a hard timeout::

    codex = codex_binary()                      # raises CodexUnavailable: skip with its reason
    run = run_codex(codex, "create hello.txt", base_url=f"{server}/v1", key="sk-zen-test",
                    workdir=tmp_path / "work", home=tmp_path / "codex")
    assert run.ok, run.describe()
    assert run.file("hello.txt") == "hello\\n"

What Codex does is up to the server: it calls a tool when the answer holds a tool call. The second
half of this module builds such answers (:func:`response_events` over :func:`message`,
:func:`exec_command_call`, :func:`apply_patch_call`) and reads what Codex sends back
(:func:`tool_output`). What Codex 0.169 requires of a stream, learnt by running it:

* each output item must arrive whole in a ``response.output_item.done`` event (``item`` with
  ``type``; a message needs ``role``; a call needs ``call_id``): an item Codex cannot parse is
  dropped silently, and ``response.completed``'s ``response.output`` is never read. Text deltas
  (``response.output_text.delta``) only show progress, after a ``response.output_item.added``;
* the turn ends only at ``response.completed`` with ``response.id`` (a string); its ``usage``, when
  present, needs ``input_tokens``, ``output_tokens`` and ``total_tokens``. A stream that closes
  without it fails the turn ("stream closed before response.completed"), and so does
  ``response.failed`` (its ``response.error.message`` is shown) or ``response.incomplete``;
  an ``error`` event is ignored. The ``event:`` line is not read: ``data``'s ``type`` decides.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.npm_cli import NODE_PREFIX, CliUnavailable, pinned_cli

CODEX_VERSION = "0.169.0"  # keep in step with .ci/install and the cx_* recordings
CODEX_BIN = NODE_PREFIX / "node_modules" / ".bin" / "codex"

PROVIDER = "zengate-test"  # the model_providers entry run_codex defines
KEY_VARIABLE = "ZENGATE_TEST_CODEX_KEY"  # its env_key: Codex sends the value as ``Authorization: Bearer``
#: A model Codex 0.169 has metadata for: no "metadata not found" warning, and it offers the
#: ``apply_patch`` custom tool (with fallback metadata, e.g. gpt-5-nano, it offers only shell tools).
DEFAULT_MODEL = "gpt-5.5"
RUN_TIMEOUT = 120  # seconds one ``codex exec`` may take


CodexUnavailable = CliUnavailable  # the pinned Codex CLI is missing and could not be installed


# --------------------------------------------------------------------------- the binary


def codex_binary(install: bool = True) -> str:
    """The pinned Codex binary in ``.ci/node``, installed there with npm when missing (see :func:`pinned_cli`)."""
    return pinned_cli("@openai/codex", CODEX_VERSION, "codex", install)


# --------------------------------------------------------------------------- the configuration


def codex_config(base_url: str, model: str = DEFAULT_MODEL, sandbox: str = "workspace-write",
                 **extra: Any) -> dict[str, Any]:
    """A ``config.toml`` (as a dict) that sends Codex to ``base_url`` and keeps it off the network otherwise.

    ``base_url`` is what Codex appends ``/responses`` to (the gateway's ``…/v1``). ``extra``
    top-level keys are added or replace these (a dict merges into a table of the same name).
    """
    config: dict[str, Any] = {
        "model": model,
        "model_provider": PROVIDER,
        "approval_policy": "never",  # never ask: a question would hang a headless run
        "sandbox_mode": sandbox,  # workspace-write: apply_patch may write in the working directory
        "check_for_update_on_startup": False,
        "allow_login_shell": False,  # bash -c, not bash -lc: no profile scripts of this machine
        "analytics": {"enabled": False},  # else events go to OpenAI
        "feedback": {"enabled": False},
        "features": {"plugins": False},  # else plugin and marketplace sync (api.github.com, chatgpt.com)
        "history": {"persistence": "none"},
        "model_providers": {PROVIDER: {
            "name": "zengate test",
            "base_url": base_url,
            "env_key": KEY_VARIABLE,
            "wire_api": "responses",
            "supports_websockets": False,  # no GET /responses upgrade first
            "request_max_retries": 0,  # one HTTP attempt and one stream attempt: a failure shows at once
            "stream_max_retries": 0,
            "stream_idle_timeout_ms": 60_000,
        }},
    }
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def toml_text(config: Mapping[str, Any]) -> str:
    """``config`` as TOML: its plain keys, then a ``[table]`` per nested mapping (enough for Codex's config)."""
    lines: list[str] = []

    def emit(name: str, table: Mapping[str, Any]) -> None:
        plain = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, Mapping)]
        if name and plain:
            lines.extend(["", f"[{name}]"])
        lines.extend(plain)
        for key, value in table.items():
            if isinstance(value, Mapping):
                emit(f"{name}.{_toml_key(key)}" if name else _toml_key(key), value)

    emit("", config)
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_key(key: str) -> str:
    return key if key and all(c.isalnum() or c in "-_" for c in key) and key.isascii() else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


# --------------------------------------------------------------------------- one run


@dataclass
class CodexRun:
    """What one ``codex exec`` did: exit code, output, the parsed ``--json`` events, its folders."""

    command: list[str]
    exit_code: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]]
    workdir: Path
    codex_home: Path
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Exit 0 and a ``turn.completed`` event, without ``turn.failed``."""
        kinds = [e.get("type") for e in self.events]
        return self.exit_code == 0 and "turn.completed" in kinds and "turn.failed" not in kinds

    def items(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The completed items (``item.completed``), of one ``type`` when given (agent_message,
        command_execution, file_change, reasoning, error)."""
        done = [e["item"] for e in self.events if e.get("type") == "item.completed" and isinstance(e.get("item"), dict)]
        return [i for i in done if kind is None or i.get("type") == kind]

    @property
    def final_text(self) -> str | None:
        """The last agent message's text (what ``codex exec`` prints as its answer), or None."""
        messages = self.items("agent_message")
        return messages[-1].get("text") if messages else None

    @property
    def turn_error(self) -> str | None:
        """The message of ``turn.failed``, or None."""
        for event in self.events:
            if event.get("type") == "turn.failed":
                return (event.get("error") or {}).get("message")
        return None

    @property
    def usage(self) -> dict[str, Any] | None:
        """``turn.completed``'s usage: the token counts Codex reports for the turn (from ``response.completed``)."""
        for event in self.events:
            if event.get("type") == "turn.completed":
                return event.get("usage")
        return None

    def file(self, name: str) -> str:
        """The text of a file in the working directory (one Codex made, say)."""
        return (self.workdir / name).read_text()

    def describe(self) -> str:
        """Everything needed to see why a run went wrong, for an assertion message."""
        return (f"codex exited {self.exit_code}\ncommand: {self.command}\nevents: {json.dumps(self.events)[-6000:]}\n"
                f"stdout: {self.stdout[-3000:]}\nstderr: {self.stderr[-3000:]}")


def run_codex(binary: str, prompt: str, *, base_url: str, key: str, workdir: Path, home: Path,
              model: str = DEFAULT_MODEL, sandbox: str = "workspace-write", config: Mapping[str, Any] | None = None,
              args: Iterable[str] = (), env: Mapping[str, str] | None = None, timeout: float = RUN_TIMEOUT,
              json_events: bool = True) -> CodexRun:
    """``codex exec --json PROMPT`` in ``workdir`` against ``base_url``, sending ``key``; what it did.

    ``home`` becomes HOME and holds ``CODEX_HOME`` (``home/.codex``) with the config of
    :func:`codex_config` (``config`` adds to it); both folders are made when missing. ``args``
    go to ``codex exec`` before the prompt; ``env`` adds variables (an empty value removes one).
    Without ``json_events`` Codex prints its human output (the answer on stdout) and ``events`` is empty.
    The run fails the test (AssertionError, with its output so far) when it outlasts ``timeout``.
    """
    codex_home = home / ".codex"
    for folder in (workdir, codex_home):
        folder.mkdir(parents=True, exist_ok=True)
    settings = codex_config(base_url, model, sandbox, **dict(config or {}))
    (codex_home / "config.toml").write_text(toml_text(settings))
    full_env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "CODEX_HOME": str(codex_home),
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
        "LANG": "C.UTF-8",
        "SHELL": shutil.which("bash") or "/bin/bash",
        KEY_VARIABLE: key,
        **(env or {}),
    }
    full_env = {k: v for k, v in full_env.items() if v}
    command = [binary, "exec", *(["--json"] if json_events else []), "--skip-git-repo-check", "--ephemeral",
               "--sandbox", sandbox, "--color", "never", *args, prompt]
    try:
        done = subprocess.run(command, cwd=workdir, env=full_env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"codex did not finish within {timeout:g} s\nstdout: {exc.stdout!r}\n"
                             f"stderr: {exc.stderr!r}") from None
    events = []
    for line in done.stdout.splitlines() if json_events else ():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
    return CodexRun(command, done.returncode, done.stdout, done.stderr, events, workdir, codex_home, settings)


# --------------------------------------------------------------------------- what a server answers


def message(text: str, item_id: str = "msg_zg_1") -> dict[str, Any]:
    """An assistant message output item."""
    return {"type": "message", "id": item_id, "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def exec_command_call(cmd: str, call_id: str = "call_zg_exec", item_id: str = "fc_zg_1") -> dict[str, Any]:
    """A ``function_call`` output item asking Codex to run ``cmd`` with its ``exec_command`` tool."""
    return {"type": "function_call", "id": item_id, "call_id": call_id, "name": "exec_command",
            "arguments": json.dumps({"cmd": cmd}), "status": "completed"}


def apply_patch_call(patch: str, call_id: str = "call_zg_patch", item_id: str = "ctc_zg_1") -> dict[str, Any]:
    """A ``custom_tool_call`` output item handing Codex's ``apply_patch`` tool a patch (free-form input)."""
    return {"type": "custom_tool_call", "id": item_id, "call_id": call_id, "name": "apply_patch", "input": patch,
            "status": "completed"}


def add_file_patch(path: str, text: str) -> str:
    """An ``apply_patch`` patch that creates ``path`` holding ``text`` (its lines end with a newline)."""
    body = "".join(f"+{line}\n" for line in text.splitlines())
    return f"*** Begin Patch\n*** Add File: {path}\n{body}*** End Patch\n"


def response_events(items: Sequence[dict[str, Any]], response_id: str = "resp_zg_1", model: str = DEFAULT_MODEL,
                    usage: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    """The Responses stream events of one answer holding ``items``, as the OpenAI API sends them.

    For each item: ``output_item.added`` (a message empty, a function call without arguments),
    its deltas (``output_text.delta``, ``function_call_arguments.delta``,
    ``custom_tool_call_input.delta``), ``output_item.done`` with the whole item; then
    ``response.completed`` with ``usage``. Codex needs only the ``done`` events and ``completed``.
    """
    usage = dict(usage or {"input_tokens": 10, "output_tokens": 5})
    usage.setdefault("total_tokens", usage["input_tokens"] + usage["output_tokens"])
    response = {"id": response_id, "object": "response", "status": "in_progress", "model": model, "output": []}
    events: list[dict[str, Any]] = [{"type": "response.created", "response": response},
                                    {"type": "response.in_progress", "response": response}]
    for index, item in enumerate(items):
        base = {"output_index": index, "item_id": item.get("id")}
        if item["type"] == "message":
            text = "".join(part.get("text", "") for part in item["content"])
            events.append({"type": "response.output_item.added", "output_index": index,
                           "item": {**item, "status": "in_progress", "content": []}})
            events.append({"type": "response.output_text.delta", **base, "content_index": 0, "delta": text})
        elif item["type"] == "function_call":
            events.append({"type": "response.output_item.added", "output_index": index,
                           "item": {**item, "status": "in_progress", "arguments": ""}})
            events.append({"type": "response.function_call_arguments.delta", **base, "delta": item["arguments"]})
        elif item["type"] == "custom_tool_call":
            events.append({"type": "response.output_item.added", "output_index": index,
                           "item": {**item, "status": "in_progress", "input": ""}})
            events.append({"type": "response.custom_tool_call_input.delta", **base, "delta": item["input"]})
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append({"type": "response.completed",
                   "response": {**response, "status": "completed", "output": list(items), "usage": usage}})
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return events


def sse_body(events: Iterable[Mapping[str, Any]]) -> bytes:
    """``events`` as a ``text/event-stream`` body: ``event: TYPE`` and ``data: JSON`` per event."""
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def tool_output(body: Mapping[str, Any], call_id: str) -> dict[str, Any] | None:
    """The ``function_call_output`` or ``custom_tool_call_output`` item for ``call_id`` in a request body's input."""
    for item in body.get("input") or []:
        if item.get("type") in ("function_call_output", "custom_tool_call_output") and item.get("call_id") == call_id:
            return item
    return None
