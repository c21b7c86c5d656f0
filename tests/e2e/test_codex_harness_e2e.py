"""The real Codex CLI (``codex exec``) against a minimal scripted Responses server: the harness works.

``tests/support/codex.py`` runs the pinned Codex (0.169.0, in ``.ci/node``); here it talks to a
stand-in written for the purpose (below), not to the gateway, so these tests show what Codex
itself needs from a Responses server and sends back: a plain answer, an ``exec_command`` round
trip, an ``apply_patch`` that creates a file, what ends a turn, and ``python -m zengate codex``
giving Codex the right provider. Tests of Codex through the gateway can use the same harness.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.codex import (
    CODEX_BIN,
    DEFAULT_MODEL,
    CodexRun,
    CodexUnavailable,
    add_file_patch,
    apply_patch_call,
    codex_binary,
    exec_command_call,
    message,
    response_events,
    run_codex,
    sse_body,
    tool_output,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-zen-codex-harness-key"


# --------------------------------------------------------------------------- a minimal Responses stand-in


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/healthz":  # as zengate answers it, for python -m zengate codex
            self._send(200, json.dumps({"status": "ok", "version": "stand-in"}).encode())
        elif self.path.startswith("/v1/responses"):  # a WebSocket upgrade: refused, as the gateway does
            self.server.stand_in.record(self, None)
            self._send(426, json.dumps({"error": {"message": "use HTTP"}}).encode())
        else:
            self._send(404, b'{"error": {"message": "not found"}}')

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self.path.startswith("/v1/responses"):
            self._send(404, b'{"error": {"message": "not found"}}')
            return
        stand_in = self.server.stand_in
        stand_in.record(self, json.loads(raw))
        answer = stand_in.next_answer()
        if isinstance(answer, tuple):
            status, body = answer
            self._send(status, json.dumps(body).encode())
        else:
            self._send(200, answer, "text/event-stream")


class StandIn:
    """A Responses server on 127.0.0.1 answering each ``POST /v1/responses`` with the next scripted answer.

    An answer is a list of stream events (sent as SSE), raw SSE bytes, or ``(status, json_body)``;
    with nothing scripted it answers 500 naming that. ``requests`` holds what arrived.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._answers: deque = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.stand_in = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def script(self, *answers: Any) -> None:
        with self._lock:
            self._answers.extend(answers)

    def next_answer(self) -> Any:
        with self._lock:
            if not self._answers:
                return 500, {"error": {"message": "the stand-in has nothing scripted for this request"}}
            answer = self._answers.popleft()
        return sse_body(answer) if isinstance(answer, list) else answer

    def record(self, handler: BaseHTTPRequestHandler, body: Any) -> None:
        with self._lock:
            self.requests.append({"method": handler.command, "path": handler.path,
                                  "headers": {k.lower(): v for k, v in handler.headers.items()}, "body": body})

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def codex() -> str:
    try:
        return codex_binary()
    except CodexUnavailable as exc:
        pytest.skip(f"the Codex CLI could not be installed: {exc}")


@pytest.fixture
def stand_in():
    server = StandIn()
    yield server
    server.stop()


def run(codex: str, stand_in: StandIn, tmp_path: Path, prompt: str, **kwargs: Any) -> CodexRun:
    return run_codex(codex, prompt, base_url=f"{stand_in.url}/v1", key=KEY, workdir=tmp_path / "work",
                     home=tmp_path / "home", **kwargs)


def user_texts(body: dict) -> list[str]:
    return [part.get("text", "") for item in body["input"] if item.get("role") == "user"
            for part in item.get("content") or [] if isinstance(part, dict)]


# --------------------------------------------------------------------------- the tests


def test_plain_answer(codex, stand_in, tmp_path):
    stand_in.script(response_events([message("Hello from the stand-in.")],
                                    usage={"input_tokens": 1234, "output_tokens": 7}))
    result = run(codex, stand_in, tmp_path, "say hi")
    assert result.ok, result.describe()
    assert result.final_text == "Hello from the stand-in."
    assert result.usage["input_tokens"] == 1234 and result.usage["output_tokens"] == 7
    assert [r["method"] + " " + r["path"] for r in stand_in.requests] == ["POST /v1/responses"]
    request = stand_in.requests[0]
    assert request["headers"]["authorization"] == f"Bearer {KEY}"
    body = request["body"]
    assert body["model"] == DEFAULT_MODEL and body["stream"] is True and body["store"] is False
    assert "say hi" in user_texts(body)
    tools = {tool.get("name") or tool["type"]: tool["type"] for tool in body["tools"]}
    assert tools["exec_command"] == "function" and tools["apply_patch"] == "custom", tools
    assert not any(item["type"] == "error" for item in result.items()), result.describe()  # no metadata warning


def test_exec_command_round_trip(codex, stand_in, tmp_path):
    stand_in.script(response_events([message("Running it.", "msg_zg_a"), exec_command_call("echo hi", "call_zg_echo")]),
                    response_events([message("It printed hi.")], response_id="resp_zg_2"))
    result = run(codex, stand_in, tmp_path, "run echo hi")
    assert result.ok, result.describe()
    commands = result.items("command_execution")
    assert len(commands) == 1 and commands[0]["exit_code"] == 0, result.describe()
    assert "echo hi" in commands[0]["command"] and commands[0]["aggregated_output"] == "hi\n"
    assert result.final_text == "It printed hi."

    assert len(stand_in.requests) == 2, stand_in.requests
    follow_up = stand_in.requests[1]["body"]
    call = [i for i in follow_up["input"] if i.get("type") == "function_call"]
    assert [(c["call_id"], c["name"], json.loads(c["arguments"])) for c in call] == [
        ("call_zg_echo", "exec_command", {"cmd": "echo hi"})]
    output = tool_output(follow_up, "call_zg_echo")
    assert output is not None and output["type"] == "function_call_output", follow_up["input"][-3:]
    assert isinstance(output["output"], str) and "Process exited with code 0" in output["output"]
    assert output["output"].endswith("Output:\nhi\n"), output["output"]
    # the history keeps the order: the commentary, the call, then its output
    kinds = [i.get("type") for i in follow_up["input"]]
    assert kinds[-3:] == ["message", "function_call", "function_call_output"], kinds


def test_apply_patch_creates_a_file(codex, stand_in, tmp_path):
    stand_in.script(response_events([apply_patch_call(add_file_patch("hello.txt", "hello from a patch"),
                                                      "call_zg_patch")]),
                    response_events([message("Created hello.txt.")], response_id="resp_zg_2"))
    result = run(codex, stand_in, tmp_path, "create hello.txt")
    assert result.ok, result.describe()
    assert result.file("hello.txt") == "hello from a patch\n"
    changes = result.items("file_change")
    assert [(c["status"], [(Path(x["path"]).name, x["kind"]) for x in c["changes"]]) for c in changes] == [
        ("completed", [("hello.txt", "add")])], result.describe()

    follow_up = stand_in.requests[1]["body"]
    output = tool_output(follow_up, "call_zg_patch")
    assert output is not None and output["type"] == "custom_tool_call_output", follow_up["input"][-2:]
    assert "Success. Updated the following files:\nA hello.txt" in output["output"], output
    call = [i for i in follow_up["input"] if i.get("type") == "custom_tool_call"]
    assert [(c["call_id"], c["name"], c["input"]) for c in call] == [
        ("call_zg_patch", "apply_patch", add_file_patch("hello.txt", "hello from a patch"))]


COMPLETED = {"type": "response.completed", "response": {"id": "resp_zg_1"}}
TEXT_DONE = {"type": "response.output_item.done", "item": message("partial answer")}


@pytest.mark.parametrize(("events", "error"), [
    pytest.param([TEXT_DONE], "stream closed before response.completed", id="no-completed"),
    pytest.param([TEXT_DONE, {"type": "error", "code": "server_error", "message": "upstream broke"}],
                 "stream closed before response.completed", id="error-event-is-ignored"),
    pytest.param([{"type": "response.failed", "response": {
        "id": "resp_zg_1", "status": "failed", "error": {"code": "server_error", "message": "upstream broke"}}}],
        "upstream broke", id="response-failed"),
    pytest.param([TEXT_DONE, {"type": "response.incomplete", "response": {
        "id": "resp_zg_1", "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}}],
        "Incomplete response returned, reason: max_output_tokens", id="response-incomplete"),
    pytest.param([TEXT_DONE, {"type": "response.completed", "response": {
        "id": "resp_zg_1", "usage": {"input_tokens": 3, "output_tokens": 1}}}],
        "missing field `total_tokens`", id="usage-without-total"),
])
def test_what_fails_a_turn(codex, stand_in, tmp_path, events, error):
    """Only ``response.completed`` (with an id, and a whole usage when there is one) ends a turn well."""
    stand_in.script(events)
    result = run(codex, stand_in, tmp_path, "say hi")
    assert result.exit_code == 1 and not result.ok, result.describe()
    assert error in (result.turn_error or ""), result.describe()
    assert len(stand_in.requests) == 1  # no retries with stream_max_retries = 0


def test_items_come_only_from_output_item_done(codex, stand_in, tmp_path):
    """Text deltas alone show nothing, and an item Codex cannot parse (a call without call_id) is dropped."""
    stand_in.script([{"type": "response.output_item.added", "item": {"type": "message", "id": "m1",
                                                                       "role": "assistant", "content": []}},
                     {"type": "response.output_text.delta", "item_id": "m1", "delta": "never shown"},
                     {"type": "response.output_item.done", "item": {"type": "function_call", "name": "exec_command",
                                                                     "arguments": "{\"cmd\": \"echo hi\"}"}},
                     {"type": "response.output_item.done", "item": message("shown")},
                     COMPLETED])
    result = run(codex, stand_in, tmp_path, "say hi")
    assert result.ok, result.describe()
    assert [m["text"] for m in result.items("agent_message")] == ["shown"]
    assert result.items("command_execution") == [] and len(stand_in.requests) == 1


def test_python_m_zengate_codex_gives_codex_the_gateway(codex, stand_in, tmp_path):
    """``python -m zengate codex`` with the real Codex: its -c overrides make a working provider."""
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".codex").mkdir(parents=True)
    work.mkdir()
    user_config = '[features]\nplugins = false\n\n[model_providers.other]\nname = "other"\nbase_url = "http://x"\n'
    (home / ".codex" / "config.toml").write_text(user_config)
    stand_in.script(response_events([message("Hi through zengate's provider.")]))
    env = {"PATH": f"{CODEX_BIN.parent}{os.pathsep}{os.environ.get('PATH', os.defpath)}", "HOME": str(home),
           "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8", "ZENGATE_API_KEY": "sk-zen-from-env"}
    done = subprocess.run([sys.executable, "-m", "zengate", "codex", "--url", stand_in.url, "--key", KEY,
                           "exec", "--json", "--skip-git-repo-check", "--ephemeral", "say hi"],
                          cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.stderr.startswith(f"zengate: Codex will use the gateway at {stand_in.url} (from --url)\n")
    assert '"text":"Hi through zengate\'s provider."' in done.stdout
    posts = [r for r in stand_in.requests if r["method"] == "POST"]
    assert len(posts) == 1 and posts[0]["path"] == "/v1/responses", stand_in.requests
    assert posts[0]["headers"]["authorization"] == f"Bearer {KEY}"  # --key wins over ZENGATE_API_KEY
    assert posts[0]["body"]["model"] == "gpt-5-nano"
    assert (home / ".codex" / "config.toml").read_text() == user_config  # read, never written
    assert KEY not in done.stderr


def test_printed_config_works_as_a_codex_profile(codex, stand_in, tmp_path):
    """``python -m zengate codex --print-config``, saved as a profile file, is a provider the real Codex uses."""
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".codex").mkdir(parents=True)
    work.mkdir()
    (home / ".codex" / "config.toml").write_text("[analytics]\nenabled = false\n\n[features]\nplugins = false\n")
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"}
    printed = subprocess.run([sys.executable, "-m", "zengate", "codex", "--print-config", "--url", stand_in.url],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0, printed.stderr
    (home / ".codex" / "zengate.config.toml").write_text(printed.stdout)
    stand_in.script(response_events([message("Hi through the profile.")]))
    done = subprocess.run([codex, "exec", "--profile", "zengate", "--json", "--skip-git-repo-check", "--ephemeral",
                           "say hi"], cwd=work, env={**env, "ZENGATE_API_KEY": KEY}, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert '"text":"Hi through the profile."' in done.stdout
    assert [(r["method"], r["path"], r["headers"]["authorization"], r["body"]["model"]) for r in stand_in.requests] == [
        ("POST", "/v1/responses", f"Bearer {KEY}", "gpt-5-nano")]
