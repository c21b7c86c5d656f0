"""The real Claude Code CLI (``claude -p``) through the real gateway (gunicorn, gevent) to the fake upstream.

The CLI is the pinned npm package, found at ``.ci/node/node_modules/.bin/claude`` (``bash .ci/install
--dev`` puts it there), else on PATH, else installed there with npm; the module skips only without npm.

Every run is headless and isolated: a temporary HOME and TMPDIR, a fresh working directory, an
environment built from scratch (nothing of the caller's ANTHROPIC_* / CLAUDE_* leaks in), no telemetry
or other non-essential traffic, few retries, and a hard timeout.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_upstream import (
    Recorded,
    Reply,
    anthropic_text,
    anthropic_tool_use,
    openai_text,
    openai_tool_calls,
)
from tests.support.npm_cli import isolated_environment

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CLAUDE_CODE_PACKAGE = "@anthropic-ai/claude-code@2.1.330"  # keep in step with .ci/install
NODE_PREFIX = ROOT / ".ci" / "node"
RUN_TIMEOUT = 120  # seconds per claude run
CLIENT_TOKEN = "sk-zen-claude-code-e2e-token"

MARKER = "zengate-tool-ok"
BASH_ARGS = {"command": f"echo {MARKER}", "description": "Print marker"}
OPENAI_CALL_ID = "call_zg_bash"
ANTHROPIC_CALL_ID = "toolu_zg_bash"

# Body fields of the Anthropic Messages API that have no business in an OpenAI chat completion.
ANTHROPIC_ONLY_FIELDS = {"system", "thinking", "metadata", "context_management", "output_config",
                         "betas", "anthropic_beta", "anthropic_version", "stop_sequences", "top_k"}


# --------------------------------------------------------------------------- the CLI


def _claude_binary() -> Path | None:
    local = NODE_PREFIX / "node_modules" / ".bin" / "claude"
    if local.exists() and os.access(local, os.X_OK):
        return local
    found = shutil.which("claude")
    return Path(found) if found else None


@pytest.fixture(scope="module")
def claude(tmp_path_factory) -> str:
    """Path of the Claude Code binary (installed with npm into .ci/node when missing)."""
    binary = _claude_binary()
    if binary is None:
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("Claude Code is not installed (.ci/node or PATH) and npm is unavailable to install it")
        NODE_PREFIX.mkdir(parents=True, exist_ok=True)
        with open(NODE_PREFIX / ".install.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one installer at a time
            binary = _claude_binary()
            if binary is None:
                done = subprocess.run(
                    [npm, "install", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund", CLAUDE_CODE_PACKAGE],
                    cwd=ROOT, capture_output=True, text=True, timeout=600,
                )
                assert done.returncode == 0, f"npm install {CLAUDE_CODE_PACKAGE} failed:\n{done.stdout}\n{done.stderr}"
                binary = _claude_binary()
        assert binary is not None, f"npm installed {CLAUDE_CODE_PACKAGE} but no .bin/claude under {NODE_PREFIX}"
    home = tmp_path_factory.mktemp("claude-version-home")
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60,
                             env={"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "TMPDIR": str(home),
                                  "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"})
    assert version.returncode == 0, f"{binary} --version failed: {version.stderr}"
    print(f"Claude Code: {binary} ({version.stdout.strip()})")
    return str(binary)


def run_claude(claude: str, tmp_path: Path, gw, prompt: str, *args: str, **env: str) -> dict[str, Any]:
    """``claude -p PROMPT --output-format json ARGS`` against the gateway; the parsed result object.

    ``env`` adds to (or, with an empty string, removes from) the run's environment.
    """
    home, tmp, work = tmp_path / "home", tmp_path / "tmp", tmp_path / "work"
    for d in (home, tmp, work):
        d.mkdir(exist_ok=True)
    # What the interactive first run would record; -p does not prompt, this keeps it that way.
    (home / ".claude.json").write_text(json.dumps({
        "hasCompletedOnboarding": True,
        "numStartups": 1,
        "projects": {str(work): {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}},
    }))
    full_env = {
        **isolated_environment(home, tmp),
        "ANTHROPIC_BASE_URL": gw.url,
        "ANTHROPIC_AUTH_TOKEN": CLIENT_TOKEN,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",  # no update checks, no feature flags, no reports
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_MAX_RETRIES": "2",  # an error surfaces in seconds, not after minutes of backoff
        "API_TIMEOUT_MS": "60000",
        **env,
    }
    full_env = {k: v for k, v in full_env.items() if v}
    cmd = [claude, "-p", prompt, "--output-format", "json", *args]
    started = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=work, env=full_env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"claude did not finish within {RUN_TIMEOUT}s\nstdout: {exc.stdout!r}\nstderr: {exc.stderr!r}\n"
                    f"gateway log (tail):\n{gw.log()[-4000:]}")
    elapsed = time.monotonic() - started
    print(f"claude {' '.join(args) or '(no flags)'}: {elapsed:.2f}s")
    try:
        result = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"claude exited {done.returncode} without a JSON result\nstdout: {done.stdout[-4000:]}\n"
                    f"stderr: {done.stderr[-4000:]}\ngateway log (tail):\n{gw.log()[-4000:]}")
    result["_exit_code"], result["_stderr"], result["_seconds"] = done.returncode, done.stderr, elapsed
    return result


def control_session(claude: str, tmp_path: Path, gw, requests: list[dict], *args: str) -> dict[str, dict]:
    """Claude Code as an SDK host drives it (``--input-format stream-json``): ``requests`` sent as control
    requests (after ``initialize``); each one's response by its request id."""
    home, tmp, work = tmp_path / "home", tmp_path / "tmp", tmp_path / "work"
    for d in (home, tmp, work):
        d.mkdir(exist_ok=True)
    env = {**isolated_environment(home, tmp), "ANTHROPIC_BASE_URL": gw.url, "ANTHROPIC_AUTH_TOKEN": CLIENT_TOKEN,
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
           "DISABLE_ERROR_REPORTING": "1", "CLAUDE_CODE_MAX_RETRIES": "2"}
    sent = [{"type": "control_request", "request_id": "init", "request": {"subtype": "initialize"}},
            *({"type": "control_request", "request_id": f"r{i}", "request": r} for i, r in enumerate(requests))]
    with subprocess.Popen([claude, "-p", "--input-format", "stream-json", "--output-format", "stream-json",
                           "--verbose", *args], cwd=work, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as process:
        answers: dict[str, dict] = {}
        try:
            for line in sent:
                process.stdin.write(json.dumps(line) + "\n")
            process.stdin.flush()
            for line in process.stdout:  # ends with the process; RUN_TIMEOUT below bounds it
                event = json.loads(line)
                if event.get("type") == "control_response":
                    answers[event["response"]["request_id"]] = event["response"]
                if len(answers) == len(sent):
                    break
        finally:
            process.stdin.close()
            try:
                process.wait(RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
        assert len(answers) == len(sent), (answers, process.stderr.read()[-4000:], gw.log()[-4000:])
    return answers


def assert_success(result: dict, gw, up) -> None:
    brief = {k: result.get(k) for k in ("is_error", "subtype", "api_error_status", "result", "_exit_code",
                                        "_stderr", "num_turns")}
    seen = [(r.method, r.path, r.model, r.header("anthropic-beta")) for r in up.requests]
    assert result.get("is_error") is False and result["_exit_code"] == 0, (
        f"claude failed: {brief}\nupstream saw: {seen}\ngateway log (tail):\n{gw.log()[-4000:]}")


# --------------------------------------------------------------------------- request shapes


def tool_names(body: dict) -> set[str]:
    """Names of the tools offered in an OpenAI or an Anthropic request body."""
    names = set()
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            fn = tool.get("function")
            names.add((fn if isinstance(fn, dict) else tool).get("name"))
    return names


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(text_of(part.get("text", part.get("content")))
                       for part in content if isinstance(part, dict))
    return ""


def tool_results(body: dict) -> list[tuple[str | None, str]]:
    """``(call id, text)`` of every tool result: OpenAI ``role: tool`` messages or Anthropic blocks."""
    out = []
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        if message.get("role") == "tool":
            out.append((message.get("tool_call_id"), text_of(message.get("content"))))
        elif message.get("role") == "user" and isinstance(message.get("content"), list):
            out += [(block.get("tool_use_id"), text_of(block.get("content")))
                    for block in message["content"] if isinstance(block, dict) and block.get("type") == "tool_result"]
    return out


def is_main(req: Recorded) -> bool:
    """Claude Code's main conversation (not a side call such as a title or a topic check) offers Bash."""
    return isinstance(req.body, dict) and "Bash" in tool_names(req.body)


class Conversation(Reply):
    """Answers by content rather than by order, so extra calls Claude Code may make cannot shift a script.

    Main-conversation requests get ``first`` until a tool result comes back, then ``after_tool``;
    anything else (side calls) gets a short text in the request's protocol.
    """

    def __init__(self, first: Reply, after_tool: Reply | None = None):
        self.first, self.after_tool = first, after_tool or first

    def send(self, ex) -> None:
        req: Recorded = ex.req
        if is_main(req):
            reply = self.after_tool if tool_results(req.body) else self.first
        elif req.path.endswith("/messages"):
            reply = anthropic_text("side answer")
        else:
            reply = openai_text("side answer")
        reply.send(ex)


def script_conversation(up, model: str, reply: Conversation, copies: int = 20) -> None:
    up.script(model, *([reply] * copies))  # stateless: each request consumes one copy


# --------------------------------------------------------------------------- gateway state


@pytest.fixture
def model_map(gw):
    """Set the gateway's model_map for one test (restored afterwards); returns a setter."""
    before = gw.admin("GET", "/_admin/settings").json()
    original = _setting_value(before, "model_map")

    def set_map(**families: str) -> dict:
        mapping = {**original, **families}
        gw.set_setting("model_map", mapping)
        return mapping

    yield set_map
    gw.set_setting("model_map", original)


def _setting_value(payload: dict, key: str) -> Any:
    """The current value of ``key`` from a GET /_admin/settings answer."""
    return payload["settings"][key]


def claude_family(model: str) -> str:
    for family in ("opus", "sonnet", "haiku"):
        if family in model.lower():
            return family
    return "default"


def log_rows_since(gw, since: datetime, want: int, timeout: float = 15.0) -> list[dict]:
    """The gateway's /v1/messages log rows created at or after ``since``, once ``want`` of them exist."""
    def rows():
        page = gw.admin("GET", "/_stats/requests?limit=50").json()["requests"]
        found = [r for r in page if r["path"].startswith("/v1/messages")
                 and datetime.fromisoformat(r["created_at"]) >= since]
        return found if len(found) >= want else None

    return gw.wait_for(rows, timeout=timeout)


def now() -> datetime:
    return datetime.now().astimezone()


# --------------------------------------------------------------------------- tests


def test_print_mode_text_answer_through_openai_translation(claude, tmp_path, gw, up, model_map):
    mapping = model_map(sonnet="glm-4.7-free")  # a family-specific target, unlike the other families
    text = "Greetings from the zengate fake upstream."
    script_conversation(up, "glm-4.7-free", Conversation(openai_text(text)))
    since = now()

    result = run_claude(claude, tmp_path, gw, "Say the zengate greeting", "--model", "sonnet")

    assert_success(result, gw, up)
    assert text in result["result"]
    main = [r for r in up.requests if is_main(r)]
    assert len(main) == 1, [(r.path, r.model) for r in up.requests]
    sent = main[0]
    assert sent.method == "POST" and sent.path.endswith("/chat/completions")
    assert sent.model == mapping["sonnet"] == "glm-4.7-free"
    body = sent.body
    assert body["stream"] is True
    assert any(m.get("role") == "user" and "Say the zengate greeting" in text_of(m.get("content"))
               for m in body["messages"]), body["messages"]
    assert all(t.get("type") == "function" and isinstance(t["function"].get("parameters"), dict)
               for t in body["tools"])
    assert not ANTHROPIC_ONLY_FIELDS & body.keys(), sorted(body)
    # Nothing of the client's Anthropic headers or credentials reaches an OpenAI upstream.
    assert not [h for h in sent.headers if h.startswith("anthropic-") or h == "x-api-key"], dict(sent.headers)
    assert not [h for h, v in sent.headers.items() if CLIENT_TOKEN in v]

    rows = log_rows_since(gw, since, want=len([r for r in up.requests if r.method == "POST"]))
    assert {r["format"] for r in rows} == {"anthropic"} and {r["status"] for r in rows} == {200}, rows
    row = next(r for r in rows if r["upstream_model"] == "glm-4.7-free")
    assert "sonnet" in row["model"] and row["model"].startswith("claude-")
    assert row["stream"] is True and row["error"] is None
    assert row["key_prefix"] and CLIENT_TOKEN.startswith(row["key_prefix"])
    assert text in (row.get("output_content") or "")


@pytest.mark.parametrize("how", ["ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY"])
def test_require_auth_with_a_real_key(claude, tmp_path, gw, up, how):
    created = gw.admin("POST", "/_admin/api-keys", json={"name": "cc"})
    assert created.status_code == 201, created.text
    key = created.json()
    gw.set_setting("require_auth", True)
    mapping = _setting_value(gw.admin("GET", "/_admin/settings").json(), "model_map")
    for model in set(mapping.values()):
        script_conversation(up, model, Conversation(openai_text("authenticated hello")))
    since = now()

    # Bearer (ANTHROPIC_AUTH_TOKEN) or x-api-key (ANTHROPIC_API_KEY); --model left to the CLI.
    result = run_claude(claude, tmp_path, gw, "hello", **{"ANTHROPIC_AUTH_TOKEN": "", how: key["key"]})

    assert_success(result, gw, up)
    assert "authenticated hello" in result["result"]
    rows = log_rows_since(gw, since, want=1)
    assert {r["status"] for r in rows} == {200} and {r["key_prefix"] for r in rows} == {key["prefix"]}, rows
    main_row = next(r for r in rows if r["path"] == "/v1/messages")
    assert main_row["upstream_model"] == mapping[claude_family(main_row["model"])]
    assert [r.model for r in up.requests if is_main(r)] == [main_row["upstream_model"]]


def test_wrong_key_is_refused_and_claude_code_reports_it(claude, tmp_path, gw, up):
    gw.set_setting("require_auth", True)

    # Claude Code retries a 401 like any other error; no retries here, the first answer is the point.
    result = run_claude(claude, tmp_path, gw, "hello", ANTHROPIC_AUTH_TOKEN="sk-zen-not-a-real-key",
                        CLAUDE_CODE_MAX_RETRIES="0")

    assert result["is_error"] is True and result["api_error_status"] == 401, result
    assert result["_exit_code"] != 0
    assert not [r for r in up.requests if r.method == "POST"]  # refused before anything went upstream


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_bash_tool_round_trip(claude, tmp_path, gw, up, model_map, protocol):
    # openai: translated to chat completions; anthropic: passed through to an Anthropic-protocol model.
    target = "glm-4.7-free" if protocol == "openai" else "minimax-m2.5-free"
    model_map(sonnet=target)
    final = "The marker command ran fine."
    if protocol == "openai":
        first = openai_tool_calls([("Bash", BASH_ARGS, OPENAI_CALL_ID)])
        reply, call_id = Conversation(first, openai_text(final)), OPENAI_CALL_ID
    else:
        first = anthropic_tool_use([("Bash", BASH_ARGS, ANTHROPIC_CALL_ID)], text="Running it.")
        reply, call_id = Conversation(first, anthropic_text(final)), ANTHROPIC_CALL_ID
    script_conversation(up, target, reply)
    since = now()

    result = run_claude(claude, tmp_path, gw, "Run the marker command", "--model", "sonnet",
                        "--allowedTools", "Bash")

    assert_success(result, gw, up)
    assert final in result["result"]
    assert result.get("permission_denials") in (None, []), result["permission_denials"]
    main = [r for r in up.requests if is_main(r)]
    assert len(main) == 2, [(r.path, r.model, tool_results(r.body or {})) for r in up.requests]
    assert {r.model for r in main} == {target}
    assert {r.path.rsplit("/", 1)[-1] for r in main} == {"completions" if protocol == "openai" else "messages"}
    assert tool_results(main[0].body) == []
    results = tool_results(main[1].body)
    assert len(results) == 1 and results[0][0] == call_id and MARKER in results[0][1], results
    if protocol == "openai":
        assistant = [m for m in main[1].body["messages"] if m.get("role") == "assistant" and m.get("tool_calls")]
        assert len(assistant) == 1, main[1].body["messages"]
        call = assistant[0]["tool_calls"][0]
        assert call["id"] == OPENAI_CALL_ID and call["function"]["name"] == "Bash"
        assert json.loads(call["function"]["arguments"])["command"] == BASH_ARGS["command"]
        assert not [h for h in main[1].headers if h.startswith("anthropic-")]
    else:
        assert all("claude-code-" in (r.header("anthropic-beta") or "") for r in main)  # the allow-listed header
        tool_uses = [b for m in main[1].body["messages"] if m.get("role") == "assistant"
                     and isinstance(m.get("content"), list) for b in m["content"] if b.get("type") == "tool_use"]
        assert [(b["id"], b["name"], b["input"]["command"]) for b in tool_uses] == \
            [(ANTHROPIC_CALL_ID, "Bash", BASH_ARGS["command"])]
    for sent in main:
        assert not [h for h, v in sent.headers.items() if CLIENT_TOKEN in v]

    rows = log_rows_since(gw, since, want=2)
    assert {r["format"] for r in rows} == {"anthropic"} and {r["status"] for r in rows} == {200}, rows
    assert [r["upstream_model"] for r in rows if r["upstream_model"] == target] == [target, target]


# --------------------------------------------------------------------------- agent guards


@pytest.fixture
def guards_on(gw):
    """Switch both agent guards on for one test (off again afterwards)."""
    gw.set_setting("guards", {"tool_repair": True, "dangerous_commands": True})
    yield
    gw.set_setting("guards", {})


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_guards_mend_a_broken_bash_call_that_then_runs(claude, tmp_path, gw, up, model_map, guards_on, protocol):
    # The model names the tool "bash" and writes its arguments with single quotes and a trailing comma:
    # without the guard Claude Code gets no such tool and no usable input.
    target = "glm-4.7-free" if protocol == "openai" else "minimax-m2.5-free"
    model_map(sonnet=target)
    broken = f"{{'command': 'echo {MARKER}', 'description': 'Print marker',}}"
    final = "The marker command ran fine."
    if protocol == "openai":
        first, follow = openai_tool_calls([("bash", broken, OPENAI_CALL_ID)]), openai_text(final)
    else:  # an Anthropic upstream streams the arguments as pieces of text, so they can be broken too
        first, follow = anthropic_tool_use([("bash", broken, ANTHROPIC_CALL_ID)]), anthropic_text(final)
    script_conversation(up, target, Conversation(first, follow))
    since = now()

    result = run_claude(claude, tmp_path, gw, "Run the marker command", "--model", "sonnet", "--allowedTools", "Bash")

    assert_success(result, gw, up)
    assert final in result["result"]
    main = [r for r in up.requests if is_main(r)]
    assert len(main) == 2, [(r.path, tool_results(r.body or {})) for r in up.requests]
    [(call_id, output)] = tool_results(main[1].body)
    assert call_id == (OPENAI_CALL_ID if protocol == "openai" else ANTHROPIC_CALL_ID)
    assert MARKER in output  # Claude Code ran the mended call
    rows = log_rows_since(gw, since, want=2)
    notes = [note for row in rows for note in row.get("guards") or []]
    assert [(n["guard"], n["action"]) for n in notes] == [("tool_repair", "renamed"), ("tool_repair", "repaired")]


def test_guards_refuse_a_dangerous_bash_call_before_claude_code_runs_it(claude, tmp_path, gw, up, model_map,
                                                                         guards_on):
    model_map(sonnet="glm-4.7-free")
    danger = {"command": "git reset --hard", "description": "Throw the changes away"}
    script_conversation(up, "glm-4.7-free", Conversation(openai_tool_calls([("Bash", danger, OPENAI_CALL_ID)]),
                                                         openai_text("not reached")))
    since = now()

    result = run_claude(claude, tmp_path, gw, "Start over", "--model", "sonnet", "--allowedTools", "Bash")

    assert_success(result, gw, up)
    assert "zengate blocked this command before it ran: `git reset --hard`" in result["result"]
    assert "git-reset-hard" in result["result"]
    main = [r for r in up.requests if is_main(r)]
    assert len(main) == 1 and tool_results(main[0].body) == []  # no tool ran, so no result went back
    [row] = [r for r in log_rows_since(gw, since, want=1) if r.get("guards")]
    assert row["guards"] == [{"guard": "dangerous_commands", "action": "refused",
                              "why": "Bash: git-reset-hard: git reset --hard"}]


def test_guards_turn_a_bash_call_written_as_text_into_one_claude_code_runs(claude, tmp_path, gw, up, model_map,
                                                                            guards_on):
    model_map(sonnet="glm-4.7-free")
    written = f'Running it.\n<tool_call>{{"name": "Bash", "arguments": {json.dumps(BASH_ARGS)}}}</tool_call>'
    final = "The marker command ran fine."
    script_conversation(up, "glm-4.7-free", Conversation(openai_text(written, chunks=12), openai_text(final)))

    result = run_claude(claude, tmp_path, gw, "Run the marker command", "--model", "sonnet", "--allowedTools", "Bash")

    assert_success(result, gw, up)
    assert final in result["result"]
    main = [r for r in up.requests if is_main(r)]
    assert len(main) == 2
    [(_, output)] = tool_results(main[1].body)
    assert MARKER in output  # Claude Code ran the call the model had only written down


# --------------------------------------------------------------------------- steering


@pytest.mark.parametrize("savers", [{"all": True}, {}])
def test_claude_codes_session_title_is_answered_by_the_gateway(claude, tmp_path, gw, up, model_map, savers):
    model_map(sonnet="glm-4.7-free", haiku="glm-4.7-free")
    gw.set_setting("quota_savers", savers)
    script_conversation(up, "glm-4.7-free", Conversation(openai_text('{"title": "Upstream title"}')))
    since = now()
    try:
        answers = control_session(claude, tmp_path, gw, [{
            "subtype": "generate_session_title", "persist": False,
            "description": "Fix the flaky login test in the auth module"}], "--model", "sonnet")
    finally:
        gw.set_setting("quota_savers", {})
    assert answers["r0"]["subtype"] == "success", answers
    titled = [r for r in up.requests if r.method == "POST" and "naming a coding session" in json.dumps(r.body)]
    if savers:
        assert answers["r0"]["response"] == {"title": "Flaky login test"}
        assert titled == []  # no upstream call
        [row] = log_rows_since(gw, since, want=1)
        assert row["guards"] == [{"guard": "quota_saver", "action": "answered",
                                  "why": "title: Claude Code session title"}]
        assert row["upstream_model"] in (None, "zengate")
    else:  # the same call goes upstream: the test would see a saver that does nothing
        assert len(titled) == 1 and answers["r0"]["response"] != {"title": "Flaky login test"}


@pytest.fixture
def chat_commands_on(gw):
    gw.set_setting("chat_commands", True)
    yield
    gw.set_setting("chat_commands", False)


def test_claude_code_switches_model_mid_session_with_a_chat_command(claude, tmp_path, gw, up, model_map,
                                                                    chat_commands_on):
    model_map(sonnet="glm-4.7-free")
    script_conversation(up, "glm-4.7-free", Conversation(openai_text("glm answers")))
    script_conversation(up, "big-pickle", Conversation(openai_text("big pickle answers")))

    first = run_claude(claude, tmp_path, gw, "Say which model you are", "--model", "sonnet")
    assert_success(first, gw, up)
    assert "glm answers" in first["result"]
    asked = len(up.requests)

    switch = run_claude(claude, tmp_path, gw, "!/model(big-pickle)", "--model", "sonnet", "--continue")
    assert_success(switch, gw, up)
    assert switch["result"].startswith("[zengate] this conversation now uses big-pickle"), switch["result"]
    assert not [r for r in up.requests[asked:] if is_main(r)]  # answered by the gateway

    after = run_claude(claude, tmp_path, gw, "And now?", "--model", "sonnet", "--continue")
    assert_success(after, gw, up)
    assert "big pickle answers" in after["result"]
    last = [r for r in up.requests if is_main(r)][-1]
    assert last.model == "big-pickle"
    sent = json.dumps(last.body["messages"])
    assert "Say which model you are" in sent and "And now?" in sent  # the same conversation, went on
    assert "!/model" not in sent and "[zengate]" not in sent  # the command turn never reached the model


class ToolLoop(Reply):
    """A model that runs ``rounds`` Bash calls one after another (each printing a long output), then
    answers ``final``; side calls get a short text."""

    def __init__(self, rounds: int, command: str, final: str):
        self.rounds, self.command, self.final = rounds, command, final

    def send(self, ex) -> None:
        req: Recorded = ex.req
        if not is_main(req):
            reply = openai_text("side answer")
        elif len(tool_results(req.body)) < self.rounds:
            n = len(tool_results(req.body))
            reply = openai_tool_calls([("Bash", {"command": self.command, "description": f"Step {n}"},
                                        f"call_zg_{n}")])
        else:
            reply = openai_text(self.final)
        reply.send(ex)


def test_claude_codes_old_tool_results_are_trimmed_in_a_long_session(claude, tmp_path, gw, up, model_map):
    model_map(sonnet="glm-4.7-free")
    gw.set_setting("trimming", {"tool_results": True, "repeats": True, "reminders": True, "thinking": True})
    gw.set_setting("trim_keep_turns", 2)
    rounds, final = 7, "All seven steps ran."
    up.script("glm-4.7-free", *([ToolLoop(rounds, "seq 1 4000", final)] * 30))
    try:
        result = run_claude(claude, tmp_path, gw, "Run the steps", "--model", "sonnet", "--allowedTools", "Bash")
    finally:
        gw.set_setting("trimming", {})
        gw.set_setting("trim_keep_turns", 4)
    assert_success(result, gw, up)
    assert final in result["result"]
    main = [r for r in up.requests if is_main(r)]
    assert len(main) == rounds + 1
    outputs = [tool_results(r.body) for r in main]
    assert [len(o) for o in outputs] == list(range(rounds + 1))
    last = outputs[-1]
    # with 7 turns and 2 kept, the first 4 are old (the old part grows 2 turns at a time): the first
    # output is shortened, the same output again refers to it; the latest results came whole
    assert "[zengate trimmed" in last[0][1] and "4000" in last[0][1]
    assert all("the same output as the earlier Bash result (call_zg_0)" in text for _, text in last[1:4])
    assert all("[zengate" not in text and text.rstrip().endswith("4000") for _, text in last[4:])
    assert [call_id for call_id, _ in last] == [f"call_zg_{n}" for n in range(rounds)]  # every call kept its result
    # prefix-stable: a result, once trimmed, reads the same in every later request
    for earlier, later in itertools.pairwise(outputs):
        for (call_id, text), (same_id, again) in zip(earlier, later, strict=False):
            if "[zengate" in text:
                assert (same_id, again) == (call_id, text)
