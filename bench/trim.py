"""Context trimming measured: the input tokens of long agent sessions before and after trimming.

    .venv/bin/python bench/trim.py [--turns 50] [--client NAME] [--seed 28] [--verbose]

For each agent client with recordings in ``tests/fixtures/clients/``, a session of ``--turns`` tool
round trips is built in that client's own request format; every request is parsed by the client's
dialect, trimmed by ``zengate.steering.trim.trim`` with the default ``TrimOptions()`` and counted
with ``estimate_anthropic_tokens``: the same pure functions the gateway calls. No server, no network.
Request n carries n round trips, so a session of T turns is T + 1 requests.

**The sessions** start from a recorded first agent request (system prompt, tools, the user's first
message, generation options; headers play no part) and append turns as the client does:

* claude-code (``cc_thinking_tool_bash.json``, Anthropic): an assistant message of a thinking block
  (200-1,200 characters, signed), a sentence every other turn and a ``tool_use`` of Read, Bash or
  Edit; a user message of its ``tool_result`` (``is_error`` when the command failed: the test run);
  ``cache_control`` on the last message's last block only, moved on every request, as recorded.
* opencode (``oc_tool_read.json``, OpenAI chat): ``content: ""`` with ``tool_calls`` (read, bash,
  grep, edit), then a ``tool`` message. No reasoning: none is recorded.
* codex (``cx_gpt55_tool_roundtrip_reasoning_applypatch.json``, Responses): a ``reasoning`` item
  (a 80-400 character summary, ``encrypted_content``), a ``commentary`` message every third turn, a
  ``function_call`` to exec_command (or a ``custom_tool_call`` to apply_patch for edits) and its
  output, under Codex's header (chunk id, wall time, exit code, token count) as in
  ``cx_tool_exec_command.json``.
* gemini-cli (``gm_tool_shell_yolo_m25pro.json``, the recording whose tools include a shell and
  edits): a model turn of a ``functionCall`` part with its ``thoughtSignature`` (read_file,
  grep_search, run_shell_command, replace), a text part every third turn, then a user turn of the
  ``functionResponse`` ``{"output": ...}`` as in ``gm_tool_read_file.json``. No thought text: none
  is recorded.

``<system-reminder>`` blocks: the recordings hold none in readable form (the filler replaced the
prose; the first user message's first text block is where Claude Code puts one), so none is added.

**The tool outputs**, one plan for every client (from ``--seed``, so each client does the same work,
each in its own tool's output format), one action per turn, drawn with these weights:

* read, 25 %: a new file of 200-800 lines of code-like text (about 40 characters a line);
* read again, 15 %: a file read before: the same text unless it was edited since;
* edit, 15 %: 2-6 lines of a file read before replaced; a short answer;
* test run, 15 %: 100-300 passing test lines, one failure's traceback (40-80 lines), the summary;
* grep, 15 %: 50-300 matching lines (``path:line:text``);
* git, 15 %: ``git status`` (5-30 files) or ``git diff`` (40-200 lines), half each.

The first turn is a read; an edit or a read again before any read is a read.

**Checked per request:** the last ``keep_turns`` turns (a turn as trim.py counts it: an assistant
message and the messages after it up to the next one) are byte-identical (``json.dumps`` with
sorted keys) in the trimmed form and the untrimmed one; the turns trimmed in request n are
byte-identical in request n+1's trimmed form; and the whole trimmed conversation of request n is a
prefix of request n+1's (``cache_control`` markers left out of both: a cache breakpoint the client
moves is no content) except where more turns became old. Each step's share is also measured alone
(the steps overlap: a repeated result is either referenced or shortened, so the shares do not add
up). Exit status 1 when any check fails.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zengate.dialects import registry  # noqa: E402
from zengate.dialects.tokens import estimate_anthropic_tokens  # noqa: E402
from zengate.steering.trim import STEPS, TrimOptions, old_turns, trim  # noqa: E402

RECORDINGS = ROOT / "tests" / "fixtures" / "clients"
PROJECT = "/home/dev/project"

# --- the scripted tool outputs ----------------------------------------------------------------------

WORDS = ("request", "response", "session", "config", "handler", "user", "token", "cache", "route", "model",
         "stream", "buffer", "limit", "result", "error", "value", "item", "path", "key", "record", "worker",
         "queue", "client", "reply", "header", "body", "chunk", "state", "entry", "batch")
PROSE = ("the", "a", "this", "that", "should", "check", "first", "then", "when", "because", "it", "is", "not",
         "file", "test", "function", "call", "returns", "value", "error", "fails", "change", "line", "look",
         "at", "why", "which", "needs", "fix", "handler", "cache", "request", "the", "of", "in", "to", "and")
TYPES = ("None", "int", "str", "bool", "dict", "list[str]", "Response", "Record | None")
KINDS = (("read", 25), ("reread", 15), ("edit", 15), ("test", 15), ("grep", 15), ("git", 15))


def _ident(rng: random.Random) -> str:
    return f"{rng.choice(WORDS)}_{rng.choice(WORDS)}"


def _sentence(rng: random.Random, low: int, high: int) -> str:
    words = [rng.choice(PROSE) for _ in range(rng.randint(low, high))]
    return " ".join(words).capitalize() + "."


def _prose(rng: random.Random, low: int, high: int) -> str:
    """Prose of ``low`` to ``high`` characters."""
    size, parts = rng.randint(low, high), []
    while sum(len(p) + 1 for p in parts) < size:
        parts.append(_sentence(rng, 5, 16))
    return " ".join(parts)[:size]


def _code_line(rng: random.Random) -> str:
    a, b, c = _ident(rng), _ident(rng), rng.choice(WORDS)
    pad = "    " * rng.choice((1, 1, 1, 2, 2, 3))
    return pad + rng.choice((
        f"{a} = {b}({c}, timeout={rng.randint(1, 60)})",
        f"if {a} is None:",
        f"for {c} in {a}.{rng.choice(WORDS)}s():",
        f"{a}[{c!r}] = {b}",
        f"return {a}",
        f"# {_sentence(rng, 4, 10)}",
        f'raise ValueError(f"bad {c}: {{{a}!r}}")',
        f"self.{a} = {b}",
        f"{a}.append({b}.{c})",
        f"log.debug(\"{c} %s\", {a})",
    ))


def code(rng: random.Random, lines: int) -> list[str]:
    """``lines`` lines of Python-like code: functions and classes with docstrings."""
    out = [f"import {rng.choice(WORDS)}" for _ in range(rng.randint(2, 6))] + [""]
    while len(out) < lines:
        if rng.random() < 0.12:
            out += [f"class {rng.choice(WORDS).capitalize()}{rng.choice(WORDS).capitalize()}:",
                    f'    """{_sentence(rng, 6, 14)}"""', ""]
            continue
        args = ", ".join(_ident(rng) for _ in range(rng.randint(1, 3)))
        out += [f"def {_ident(rng)}({args}) -> {rng.choice(TYPES)}:", f'    """{_sentence(rng, 6, 14)}"""']
        out += [_code_line(rng) for _ in range(rng.randint(3, 14))] + [""]
    return out[:lines]


def file_text(seed: int, path: str, version: int) -> list[str]:
    """A file's lines at ``version`` (each edit is a version: a few lines changed)."""
    rng = random.Random(f"{seed}:{path}")
    lines = code(rng, rng.randint(200, 800))
    for v in range(1, version + 1):
        vrng = random.Random(f"{seed}:{path}:{v}")
        at = vrng.randrange(len(lines) - 6)
        lines[at:at + vrng.randint(2, 6)] = [_code_line(vrng) for _ in range(vrng.randint(2, 6))]
    return lines


def test_run(rng: random.Random) -> str:
    tests = [f"tests/unit/test_{rng.choice(WORDS)}.py::test_{_ident(rng)}" for _ in range(rng.randint(100, 300))]
    failed = rng.randrange(len(tests))
    out = ["=" * 29 + " test session starts " + "=" * 30,
           "platform linux -- Python 3.12.3, pytest-8.3.4, pluggy-1.5.0", f"rootdir: {PROJECT}",
           f"collected {len(tests)} items", ""]
    out += [f"{t} {'FAILED' if i == failed else 'PASSED'} [{100 * (i + 1) // len(tests):>3}%]"
            for i, t in enumerate(tests)]
    out += ["", "=" * 35 + " FAILURES " + "=" * 35, f"_____ {tests[failed].split('::')[1]} _____", ""]
    for _ in range(rng.randint(40, 80)):
        out.append(rng.choice((_code_line(rng), f"src/{rng.choice(WORDS)}.py:{rng.randint(10, 700)}: in {_ident(rng)}",
                               f">   {_code_line(rng).strip()}", f"E   AssertionError: {_sentence(rng, 3, 8)}")))
    out += ["=" * 28 + " short test summary info " + "=" * 27, f"FAILED {tests[failed]} - AssertionError",
            f"{'=' * 20} 1 failed, {len(tests) - 1} passed in {rng.uniform(3, 40):.2f}s {'=' * 20}"]
    return "\n".join(out)


def grep_lines(rng: random.Random) -> list[str]:
    return [f"src/app/{rng.choice(WORDS)}.py:{rng.randint(1, 800)}:{_code_line(rng)}"
            for _ in range(rng.randint(50, 300))]


def git_status(rng: random.Random) -> str:
    files = [f"\tmodified:   src/app/{rng.choice(WORDS)}_{rng.choice(WORDS)}.py" for _ in range(rng.randint(5, 30))]
    return "\n".join(["On branch main", "Changes not staged for commit:",
                      '  (use "git add <file>..." to update what will be committed)', *files, "",
                      'no changes added to commit (use "git add" and/or "git commit -a")'])


def git_diff(rng: random.Random) -> str:
    out: list[str] = []
    target = rng.randint(40, 200)
    while len(out) < target:
        path = f"src/app/{_ident(rng)}.py"
        out += [f"diff --git a/{path} b/{path}", f"index {rng.getrandbits(28):07x}..{rng.getrandbits(28):07x} 100644",
                f"--- a/{path}", f"+++ b/{path}", f"@@ -{rng.randint(1, 500)},7 +{rng.randint(1, 500)},8 @@"]
        for _ in range(rng.randint(6, 20)):
            out.append(rng.choice(" -+  ") + _code_line(rng))
    return "\n".join(out[:target])


def _grep_groups(output: str, shown: str) -> tuple[list[str], dict[str, list[str]]]:
    """grep's ``file:number:text`` lines, and per file its lines as the client shows them (``shown``
    names ``number`` and ``text``)."""
    lines = output.splitlines()
    groups: dict[str, list[str]] = {}
    for line in lines:
        file, number, text = line.split(":", 2)
        groups.setdefault(file, []).append(shown.format(number=number, text=text))
    return lines, groups


@dataclass
class Action:
    """One turn's tool call, whatever the client: what it does and what comes back (raw text)."""

    kind: str  # read, edit, test, grep, git_status, git_diff
    path: str = ""
    lines: list[str] = field(default_factory=list)  # a read: the file's lines
    output: str = ""  # anything else: the command's output
    command: str = ""
    old: str = ""  # an edit: the text replaced and its replacement
    new: str = ""
    failed: bool = False


def plan(turns: int, seed: int) -> list[Action]:
    """The session's ``turns`` actions, the same for every client."""
    rng = random.Random(seed)
    versions: dict[str, int] = {}
    actions: list[Action] = []
    for _ in range(turns):
        kind = rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
        if kind in ("reread", "edit") and not versions:
            kind = "read"
        if kind == "read":
            path = f"src/app/{_ident(rng)}.py"
            while path in versions:
                path = f"src/app/{_ident(rng)}.py"
            versions[path] = 0
            actions.append(Action("read", path, file_text(seed, path, 0)))
        elif kind == "reread":
            path = rng.choice(sorted(versions))
            actions.append(Action("read", path, file_text(seed, path, versions[path])))
        elif kind == "edit":
            path = rng.choice(sorted(versions))
            before, after = file_text(seed, path, versions[path]), file_text(seed, path, versions[path] + 1)
            changed = [i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b] or [0]
            versions[path] += 1
            at = changed[0]
            actions.append(Action("edit", path, old="\n".join(before[at:at + 4]), new="\n".join(after[at:at + 4])))
        elif kind == "test":
            actions.append(Action("test", command="python -m pytest -v tests/unit", output=test_run(rng), failed=True))
        elif kind == "grep":
            word = rng.choice(WORDS)
            actions.append(Action("grep", command=word, output="\n".join(grep_lines(rng))))
        elif rng.random() < 0.5:
            actions.append(Action("git_status", command="git status", output=git_status(rng)))
        else:
            actions.append(Action("git_diff", command="git diff", output=git_diff(rng)))
    return actions


# --- the clients' sessions --------------------------------------------------------------------------

def _recorded(name: str, index: int) -> dict:
    return json.loads((RECORDINGS / name).read_text())["requests"][index]


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Client:
    """A client's session: its first request, and how it appends a turn and sends a request."""

    name = ""
    recording = ""
    index = 0  # the recorded request the session starts from
    dialect = ""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"{seed}:{self.name}")
        recorded = _recorded(self.recording, self.index)
        self.body: dict = copy.deepcopy(recorded["body"])
        self.path: str = recorded["path"]

    def add(self, n: int, action: Action) -> None:
        raise NotImplementedError

    def request(self) -> dict:
        """The body the client sends now (a copy)."""
        return copy.deepcopy(self.body)

    def parse(self, body: dict) -> dict:
        return registry.CLIENT_DIALECTS[self.dialect].parse_request(body)


class ClaudeCode(Client):
    name, recording, index, dialect = "claude-code", "cc_thinking_tool_bash.json", 1, "anthropic"

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        for message in self.body["messages"]:  # the breakpoint goes on the last message, in request()
            for block in message["content"] if isinstance(message["content"], list) else ():
                block.pop("cache_control", None)

    def add(self, n: int, action: Action) -> None:
        rng = self.rng
        path = f"{PROJECT}/{action.path}"
        if action.kind == "read":
            call = {"name": "Read", "input": {"file_path": path}}
            output = "\n".join(f"{i:>6}\u2192{line}" for i, line in enumerate(action.lines, 1))
        elif action.kind == "edit":
            call = {"name": "Edit", "input": {"file_path": path, "old_string": action.old, "new_string": action.new}}
            snippet = action.new.splitlines()
            output = (f"The file {path} has been updated. Here's the result of running `cat -n` on a snippet of the "
                      "edited file:\n" + "\n".join(f"{i:>6}\u2192{line}" for i, line in enumerate(snippet, 1)))
        else:
            command = f"rg -n {action.command} src" if action.kind == "grep" else action.command
            call = {"name": "Bash", "input": {"command": command, "description": _sentence(rng, 3, 6)}}
            output = f"Error: Exit code 1\n{action.output}" if action.failed else action.output
        content: list[dict] = [{"type": "thinking", "thinking": _prose(rng, 200, 1200),
                                "signature": "ZmFrZS1zaWduYXR1cmU=" + _hex(rng, 32)}]
        if n % 2 == 0:
            content.append({"type": "text", "text": _sentence(rng, 5, 12)})
        call_id = "toolu_" + _hex(rng, 24)
        content.append({"type": "tool_use", "id": call_id, **call})
        self.body["messages"] += [
            {"role": "assistant", "content": content},
            {"role": "user", "content": [{"tool_use_id": call_id, "type": "tool_result", "content": output,
                                          "is_error": action.failed}]}]

    def request(self) -> dict:
        body = copy.deepcopy(self.body)
        last = next(m for m in reversed(body["messages"]) if m["role"] == "user")
        last["content"][-1]["cache_control"] = {"type": "ephemeral"}
        return body


class OpenCode(Client):
    name, recording, index, dialect = "opencode", "oc_tool_read.json", 1, "openai"

    def add(self, n: int, action: Action) -> None:
        path = f"{PROJECT}/{action.path}"
        if action.kind == "read":
            name, args = "read", {"filePath": path}
            numbered = "\n".join(f"{i}: {line}" for i, line in enumerate(action.lines, 1))
            output = (f"<path>{path}</path>\n<type>file</type>\n<content>\n{numbered}\n\n"
                      f"(End of file - total {len(action.lines)} lines)\n</content>")
        elif action.kind == "edit":
            name, args = "edit", {"filePath": path, "oldString": action.old, "newString": action.new}
            output = "Edit applied successfully."
        elif action.kind == "grep":
            name, args = "grep", {"pattern": action.command, "path": PROJECT}
            lines, groups = _grep_groups(action.output, "  Line {number}: {text}")
            output = f"Found {len(lines)} matches\n" + "\n\n".join(
                f"{PROJECT}/{file}:\n" + "\n".join(found) for file, found in groups.items())
        else:
            name, args = "bash", {"command": action.command, "description": _sentence(self.rng, 3, 6)}
            output = action.output
        call_id = "call_" + _hex(self.rng, 24)
        self.body["messages"] += [
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": call_id, "type": "function",
                 "function": {"name": name, "arguments": json.dumps(args, separators=(",", ":"))}}]},
            {"role": "tool", "tool_call_id": call_id, "content": output}]


class Codex(Client):
    name, recording, index, dialect = "codex", "cx_gpt55_tool_roundtrip_reasoning_applypatch.json", 0, "responses"

    def add(self, n: int, action: Action) -> None:
        rng = self.rng
        summary = "**" + " ".join(rng.choice(PROSE) for _ in range(2)).capitalize() + "** " + _prose(rng, 80, 400)
        items: list[dict] = [{"type": "reasoning", "id": "rs_" + _hex(rng, 32),
                              "summary": [{"type": "summary_text", "text": summary}], "content": None,
                              "encrypted_content": _b64("fake-encrypted:" + _hex(rng, 32))}]
        if n % 3 == 0:
            items.append({"type": "message", "status": "completed", "id": "msg_" + _hex(rng, 32), "role": "assistant",
                          "content": [{"type": "output_text", "text": _sentence(rng, 5, 12), "annotations": [],
                                       "logprobs": []}], "phase": "commentary"})
        call_id = "call_" + _hex(rng, 24)
        if action.kind == "edit":
            patch = (f"*** Begin Patch\n*** Update File: {action.path}\n@@\n"
                     + "".join(f"-{line}\n" for line in action.old.splitlines())
                     + "".join(f"+{line}\n" for line in action.new.splitlines()) + "*** End Patch\n")
            items += [{"type": "custom_tool_call", "id": "ctc_" + _hex(rng, 32), "status": "completed",
                       "call_id": call_id, "name": "apply_patch", "input": patch},
                      {"type": "custom_tool_call_output", "id": "ctco_" + _hex(rng, 32), "call_id": call_id,
                       "output": "Exit code: 0\nWall time: 0 seconds\nOutput:\nSuccess. Updated the following "
                                 f"files:\nM {action.path}\n"}]
        else:
            if action.kind == "read":
                command, text = f"cat {action.path}", "\n".join(action.lines) + "\n"
            elif action.kind == "grep":
                command, text = f"rg -n {action.command} src", action.output + "\n"
            else:
                command, text = action.command, action.output + "\n"
            output = (f"Chunk ID: {_hex(rng, 6)}\nWall time: {rng.uniform(0, 3):.4f} seconds\n"
                      f"Process exited with code {1 if action.failed else 0}\n"
                      f"Original token count: {len(text) // 4}\nOutput:\n{text}")
            items += [{"type": "function_call", "status": "completed", "id": "fc_" + _hex(rng, 32),
                       "name": "exec_command", "arguments": json.dumps({"cmd": command, "yield_time_ms": 1000}),
                       "call_id": call_id},
                      {"type": "function_call_output", "id": "fco_" + _hex(rng, 32), "call_id": call_id,
                       "output": output}]
        self.body["input"] += items


class GeminiCli(Client):
    name, recording, index, dialect = "gemini-cli", "gm_tool_shell_yolo_m25pro.json", 0, "gemini"

    def add(self, n: int, action: Action) -> None:
        rng = self.rng
        path = f"{PROJECT}/{action.path}"
        if action.kind == "read":
            name, args, output = "read_file", {"file_path": path}, "\n".join(action.lines) + "\n"
        elif action.kind == "edit":
            name = "replace"
            args = {"file_path": path, "instruction": _sentence(rng, 6, 14), "old_string": action.old,
                    "new_string": action.new}
            output = f"Successfully modified file: {path} (1 replacements)."
        elif action.kind == "grep":
            name, args = "grep_search", {"pattern": action.command, "dir_path": "."}
            lines, groups = _grep_groups(action.output, "L{number}: {text}")
            output = f'Found {len(lines)} matches for pattern "{action.command}" in path ".":\n---\n' + "".join(
                f"File: {file}\n" + "\n".join(found) + "\n---\n" for file, found in groups.items())
        else:
            name, args = "run_shell_command", {"command": action.command, "description": _sentence(rng, 3, 6)}
            code = "Exit Code: 1\n" if action.failed else ""
            output = (f"<untrusted_context>\nOutput: {action.output}\n{code}Process Group PGID: "
                      f"{rng.randint(1000, 99999)}\n</untrusted_context>")
        call_id = f"{name}_{1795308017850 + 1000 * n}_0"
        parts: list[dict] = [{"text": _sentence(rng, 5, 12)}] if n % 3 == 0 else []
        parts.append({"functionCall": {"id": call_id, "args": args, "name": name},
                      "thoughtSignature": _b64("fake-thought-signature-" + _hex(rng, 32))})
        self.body["contents"] += [
            {"parts": parts, "role": "model"},
            {"parts": [{"functionResponse": {"name": name, "response": {"output": output}, "id": call_id}}],
             "role": "user"}]

    def parse(self, body: dict) -> dict:
        model = self.path.split("/models/")[1].split(":")[0]  # the view puts in the model named in the URL
        return super().parse({**body, "model": model, "stream": True})


CLIENTS: dict[str, Callable[[int], Client]] = {c.name: c for c in (ClaudeCode, OpenCode, Codex, GeminiCli)}


def session(name: str, turns: int, seed: int) -> tuple[Client, list[dict]]:
    """A client's session: the ``turns + 1`` request bodies it sends, in order."""
    client = CLIENTS[name](seed)
    requests = [client.request()]
    for n, action in enumerate(plan(turns, seed)):
        client.add(n, action)
        requests.append(client.request())
    return client, requests


# --- measuring --------------------------------------------------------------------------------------

def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _without_markers(value: Any) -> Any:
    """``value`` without ``cache_control`` keys (a breakpoint the client moves is no content)."""
    if isinstance(value, dict):
        return {k: _without_markers(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_without_markers(v) for v in value]
    return value


def turn_starts(messages: list) -> list[int]:
    """Where each turn begins: its assistant message (trim.py's turn: an assistant message and
    what follows it up to the next one)."""
    return [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"]


def last_turns(messages: list, count: int) -> list:
    starts = turn_starts(messages)
    return messages[starts[-count]:] if len(starts) >= count else messages[starts[0]:] if starts else []


@dataclass
class Row:
    n: int
    old: int  # turns that may be trimmed
    before: int
    after: int
    last_ok: bool
    by_step: dict[str, int]  # tokens saved by each step alone


@dataclass
class Result:
    client: str
    recording: str
    rows: list[Row] = field(default_factory=list)
    unstable: list[int] = field(default_factory=list)  # requests whose previous trimmed turns changed
    breaks: list[tuple[int, bool]] = field(default_factory=list)  # (request, old turns grew there)

    @property
    def before(self) -> int:
        return sum(r.before for r in self.rows)

    @property
    def after(self) -> int:
        return sum(r.after for r in self.rows)

    @property
    def saved(self) -> float:
        return 1 - self.after / self.before if self.before else 0.0

    @property
    def ok(self) -> bool:
        return all(r.last_ok for r in self.rows) and not self.unstable and all(grew for _, grew in self.breaks)


def measure(name: str, turns: int = 50, seed: int = 28, options: TrimOptions | None = None) -> Result:
    """Every request of the client's session trimmed and counted, with the checks."""
    options = options or TrimOptions()
    client, requests = session(name, turns, seed)
    result = Result(name, client.recording)
    previous: tuple[int, list] | None = None  # the last request's old turns and trimmed messages
    for n, body in enumerate(requests):
        form = client.parse(body)
        trimmed = trim(form, options)[0] or form
        before, after = estimate_anthropic_tokens(form), estimate_anthropic_tokens(trimmed)
        keep = options.keep_turns
        last_ok = _dump(last_turns(form["messages"], keep)) == _dump(last_turns(trimmed["messages"], keep))
        by_step = {}
        for step in STEPS:
            alone = trim(form, TrimOptions(**{s: s == step for s in STEPS}, keep_turns=options.keep_turns,
                                           max_result_chars=options.max_result_chars,
                                           head_chars=options.head_chars, tail_chars=options.tail_chars))[0]
            by_step[step] = before - estimate_anthropic_tokens(alone or form)
        old = old_turns(form["messages"], keep)
        messages = _without_markers(trimmed["messages"])
        if previous is not None:
            old_before, earlier = previous
            starts = turn_starts(earlier)
            end = starts[old_before] if old_before < len(starts) else len(earlier)
            if _dump(messages[:end]) != _dump(earlier[:end]):
                result.unstable.append(n)
            if _dump(messages[:len(earlier)]) != _dump(earlier):
                result.breaks.append((n, old > old_before))
        previous = (old, messages)
        result.rows.append(Row(n, old, before, after, last_ok, by_step))
    return result


# --- the report -------------------------------------------------------------------------------------

def _share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _where(breaks: list[tuple[int, bool]]) -> str:
    if not breaks:
        return "0"
    shown = ", ".join(f"{n}" if grew else f"{n}!" for n, grew in breaks)
    return f"{len(breaks)} at {shown}"


def report(results: list[Result], keep: int, verbose: bool, out: Callable[[str], None] = print) -> None:
    """Per request (``verbose``) and per session; the steps alone; what failed, named."""
    if verbose:
        for result in results:
            out(f"{result.client} ({result.recording})")
            out(f"{'request':>9}  {'old turns':>9}  {'before':>9}  {'after':>9}  {'saved':>6}")
            for r in result.rows:
                flag = "" if r.last_ok else f"  last {keep} turns changed"
                saved = _share(r.before - r.after, r.before)
                out(f"{r.n:>9}  {r.old:>9}  {r.before:>9,}  {r.after:>9,}  {saved:>6}{flag}")
            out("")
    width = max(len("client"), *(len(r.client) for r in results))
    out(f"{'client':<{width}}  requests  tokens before  tokens after  saved  last request  last {keep} turns identical"
        "  trimmed turns stable  prefix breaks (at request)")
    for r in results:
        identical = sum(row.last_ok for row in r.rows)
        stable = len(r.rows) - 1 - len(r.unstable)
        last = f"{r.rows[-1].before // 1000}k → {r.rows[-1].after // 1000}k"
        saved = _share(r.before - r.after, r.before)
        out(f"{r.client:<{width}}  {len(r.rows):>8}  {r.before:>13,}  {r.after:>12,}  {saved:>5}  {last:>12}"
            f"  {f'{identical}/{len(r.rows)}':>24}  {f'{stable}/{len(r.rows) - 1}':>20}  {_where(r.breaks)}")
    before, after = sum(r.before for r in results), sum(r.after for r in results)
    out(f"{'all':<{width}}  {sum(len(r.rows) for r in results):>8}  {before:>13,}  {after:>12,}  "
        f"{_share(before - after, before):>5}")
    out("")
    out("saved by each step alone (share of the tokens before; the steps overlap):")
    out(f"{'client':<{width}}  " + "  ".join(f"{step:>12}" for step in STEPS))
    for r in results:
        out(f"{r.client:<{width}}  " + "  ".join(
            f"{_share(sum(row.by_step[step] for row in r.rows), r.before):>12}" for step in STEPS))
    for r in results:
        for row in r.rows:
            if not row.last_ok:
                out(f"FAIL {r.client}: request {row.n}: the last {keep} turns differ after trimming")
        for n in r.unstable:
            out(f"FAIL {r.client}: request {n}: turns trimmed in request {n - 1} came out differently")
        for n, grew in r.breaks:
            if not grew:
                out(f"FAIL {r.client}: request {n}: the prefix broke (marked !) though no more turns became old")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trim.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=50, help="tool round trips per session (default 50)")
    parser.add_argument("--client", choices=sorted(CLIENTS), action="append",
                        help="only this client (repeatable; default: every one)")
    parser.add_argument("--seed", type=int, default=28, help="the tool outputs' seed (default 28)")
    parser.add_argument("--verbose", action="store_true", help="every request: tokens before, after, saved")
    args = parser.parse_args(argv)
    if args.turns < 1:
        parser.error("--turns must be at least 1")
    options = TrimOptions()
    results = [measure(name, args.turns, args.seed, options) for name in (args.client or list(CLIENTS))]
    print(f"{args.turns} turns per session, seed {args.seed}, TrimOptions() defaults: keep_turns "
          f"{options.keep_turns}, max_result_chars {options.max_result_chars}")
    report(results, options.keep_turns, args.verbose)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
