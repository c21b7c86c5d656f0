"""The real Codex CLI (``codex exec``, ``tests/support/codex.py``) through the real gateway.

Codex asks for ``gpt-5.5`` (a model it has metadata for, so it offers its ``apply_patch`` custom
tool); the ``model_overrides`` setting sends that name to a Zen model of each upstream API, as an
operator would: ``big-pickle`` over chat completions, ``minimax-m2.5-free`` over Anthropic Messages,
``gpt-5-nano`` over Responses (passed through). The stand-in upstream answers in that API: a text,
an ``exec_command`` call whose output must come back upstream (the command really ran), an
``apply_patch`` call that must create a file in Codex's working directory. Failures too: a 429 with
``retry-after`` and a stream that breaks off must reach Codex as what they are.
"""

from __future__ import annotations

import contextlib
import json
import socket
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.codex import (
    DEFAULT_MODEL,
    PROVIDER,
    CodexRun,
    CodexUnavailable,
    add_file_patch,
    codex_binary,
    codex_config,
    run_codex,
)
from tests.support.fake_upstream import (
    anthropic_raw,
    anthropic_text,
    anthropic_tool_use,
    drop_after,
    error,
    openai_text,
    openai_tool_calls,
    responses_custom_tool_call,
    responses_function_call,
    responses_text,
)
from tests.support.gateway import GatewayProcess
from tests.support.tcp_relay import TcpRelay

pytestmark = pytest.mark.e2e

KEY = "sk-zen-codex-through-the-gateway"
CHAT, ANTHROPIC, RESPONSES = "big-pickle", "minimax-m2.5-free", "gpt-5-nano"
UPSTREAMS = [pytest.param(CHAT, id="chat-upstream"), pytest.param(ANTHROPIC, id="anthropic-upstream"),
             pytest.param(RESPONSES, id="responses-upstream")]
PROTOCOL = {CHAT: "openai", ANTHROPIC: "anthropic", RESPONSES: "responses"}
UPSTREAM_PATH = {CHAT: "/chat/completions", ANTHROPIC: "/messages", RESPONSES: "/responses"}
#: A command whose output is not in its own text: seeing ``ran:42`` upstream proves it ran.
COMMAND = "printf 'ran:%s\\n' $((6*7))"


@pytest.fixture(scope="module")
def codex() -> str:
    try:
        return codex_binary()
    except CodexUnavailable as exc:
        pytest.skip(f"the Codex CLI could not be installed: {exc}")


@pytest.fixture
def upstream_model(request, gw):
    """``gpt-5.5`` (what Codex asks for) routed to the parametrized Zen model, on its upstream API."""
    model = request.param
    gw.set_setting("model_overrides", {DEFAULT_MODEL: {"upstream_model": model, "protocol": PROTOCOL[model]}})
    yield model
    gw.set_setting("model_overrides", {})


def run(codex: str, gw, tmp_path: Path, prompt: str, **kwargs: Any) -> CodexRun:
    return run_codex(codex, prompt, base_url=f"{gw.url}/v1", key=KEY, workdir=tmp_path / "work",
                     home=tmp_path / "home", **kwargs)


def posts(up, model: str) -> list:
    sent = [r for r in up.requests if r.method == "POST"]
    assert all(r.model == model and r.path == UPSTREAM_PATH[model] for r in sent), \
        [(r.path, r.model) for r in sent]
    return sent


def call_reply(model: str, name: str, arguments: dict, call_id: str, *, custom: bool = False):
    """``model``'s upstream calling the tool ``name`` in its own API (a custom tool's free-form input is
    the ``input`` argument of the function it is for a chat or Anthropic upstream)."""
    if model == CHAT:
        return openai_tool_calls([(name, arguments, call_id)])
    if model == ANTHROPIC:
        return anthropic_tool_use([(name, arguments, call_id)])
    if custom:
        return responses_custom_tool_call(name, arguments["input"], call_id=call_id)
    return responses_function_call(name, arguments, call_id=call_id)


def text_reply(model: str, text: str):
    return {CHAT: openai_text, ANTHROPIC: anthropic_text, RESPONSES: responses_text}[model](text)


def tool_result(model: str, body: dict, call_id: str) -> str | None:
    """The text of call ``call_id``'s result as the upstream got it in its own API (None when absent)."""
    if model == CHAT:
        found = [m["content"] for m in body["messages"] if m.get("role") == "tool" and m.get("tool_call_id") == call_id]
    elif model == ANTHROPIC:
        found = [b["content"] for m in body["messages"] if isinstance(m.get("content"), list) for b in m["content"]
                 if b.get("type") == "tool_result" and b.get("tool_use_id") == call_id]
    else:
        outputs = ("function_call_output", "custom_tool_call_output")
        found = [i["output"] for i in body["input"] if i.get("type") in outputs and i.get("call_id") == call_id]
    if not found:
        return None
    content = found[0]
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict))


def user_texts(model: str, body: dict) -> str:
    """Everything of the request's turns as one string (to look for the prompt)."""
    return json.dumps(body["input"] if model == RESPONSES else body["messages"])


# --------------------------------------------------------------------------- a turn that works


@pytest.mark.parametrize("upstream_model", UPSTREAMS, indirect=True)
def test_plain_answer(codex, gw, up, tmp_path, upstream_model):
    model = upstream_model
    up.script(model, text_reply(model, "Hello from the Zen model."))
    result = run(codex, gw, tmp_path, "say hi")
    assert result.ok, result.describe()
    assert result.final_text == "Hello from the Zen model."
    assert result.usage["input_tokens"] == 10 and result.usage["output_tokens"] == 5, result.usage
    assert not [i for i in result.items() if i.get("type") == "error"], result.describe()

    (sent,) = posts(up, model)
    assert sent.stream and "say hi" in user_texts(model, sent.body)
    assert KEY not in json.dumps(sent.body) and KEY not in str(dict(sent.headers))  # the client's key stays here
    if model == RESPONSES:
        assert sent.body["store"] is False
        tools = {t.get("name") or t["type"]: t["type"] for t in sent.body["tools"]}
        assert tools["exec_command"] == "function" and tools["apply_patch"] == "custom", tools
    else:
        names = {t["function"]["name"] if model == CHAT else t["name"] for t in sent.body["tools"]}
        assert {"exec_command", "apply_patch"} <= names, names


@pytest.mark.parametrize("upstream_model", UPSTREAMS, indirect=True)
def test_exec_command_runs_and_its_output_goes_upstream(codex, gw, up, tmp_path, upstream_model):
    model = upstream_model
    call_id = "toolu_exec_1" if model == ANTHROPIC else "call_exec_1"
    up.script(model, call_reply(model, "exec_command", {"cmd": COMMAND}, call_id),
              text_reply(model, "The command printed ran:42."))
    result = run(codex, gw, tmp_path, "run the command")
    assert result.ok, result.describe()
    commands = result.items("command_execution")
    assert len(commands) == 1 and commands[0]["exit_code"] == 0, result.describe()
    assert commands[0]["aggregated_output"] == "ran:42\n"
    assert result.final_text == "The command printed ran:42."

    first, second = posts(up, model)
    assert "run the command" in user_texts(model, first.body) and tool_result(model, first.body, call_id) is None
    output = tool_result(model, second.body, call_id)
    assert output is not None, user_texts(model, second.body)[-2000:]
    assert "ran:42" in output and "Process exited with code 0" in output, output


@pytest.mark.parametrize("upstream_model", UPSTREAMS, indirect=True)
def test_apply_patch_creates_a_file(codex, gw, up, tmp_path, upstream_model):
    model = upstream_model
    call_id = "toolu_patch_1" if model == ANTHROPIC else "call_patch_1"
    patch = add_file_patch("hello.txt", "hello through zengate\nsecond line")
    up.script(model, call_reply(model, "apply_patch", {"input": patch}, call_id, custom=True),
              text_reply(model, "Created hello.txt."))
    result = run(codex, gw, tmp_path, "create hello.txt")
    assert result.ok, result.describe()
    assert result.file("hello.txt") == "hello through zengate\nsecond line\n"
    changes = result.items("file_change")
    assert [(c["status"], [(Path(x["path"]).name, x["kind"]) for x in c["changes"]]) for c in changes] == [
        ("completed", [("hello.txt", "add")])], result.describe()
    assert result.final_text == "Created hello.txt."

    first, second = posts(up, model)
    assert tool_result(model, first.body, call_id) is None
    output = tool_result(model, second.body, call_id)
    assert output is not None and "Success. Updated the following files:\nA hello.txt" in output, output


@pytest.mark.parametrize("upstream_model", UPSTREAMS[:2], indirect=True)
def test_two_calls_in_one_answer(codex, gw, up, tmp_path, upstream_model):
    """Parallel calls (interleaved fragments from a chat upstream): both run, both outputs go back by id."""
    model = upstream_model
    prefix = "toolu_" if model == ANTHROPIC else "call_"
    calls = [("exec_command", {"cmd": "printf 'first:%s\\n' $((2*3))"}, prefix + "one"),
             ("exec_command", {"cmd": "printf 'second:%s\\n' $((3*3))"}, prefix + "two")]
    first = openai_tool_calls(calls, interleave=True) if model == CHAT else anthropic_tool_use(calls)
    up.script(model, first, text_reply(model, "Both ran."))
    result = run(codex, gw, tmp_path, "run both")
    assert result.ok, result.describe()
    assert sorted(c["aggregated_output"] for c in result.items("command_execution")) == ["first:6\n", "second:9\n"]
    _, second = posts(up, model)
    assert "first:6" in (tool_result(model, second.body, prefix + "one") or "")
    assert "second:9" in (tool_result(model, second.body, prefix + "two") or "")
    assert result.final_text == "Both ran."


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("upstream_model", UPSTREAMS, indirect=True)
def test_upstream_429_reaches_codex(codex, gw, up, tmp_path, upstream_model):
    model = upstream_model
    up.script(model, error(429, "Rate limit exceeded for this model", headers={"retry-after": "9"}),
              error(429, "Rate limit exceeded for this model", headers={"retry-after": "9"}))
    # the gateway's own answer keeps the upstream's status, message and retry-after
    r = requests.post(gw.url + "/v1/responses", json={"model": DEFAULT_MODEL, "input": "say hi", "stream": True},
                      timeout=30)
    assert r.status_code == 429 and r.headers["retry-after"] == "9", (r.status_code, r.headers, r.text)
    assert r.json()["error"]["message"] == "Rate limit exceeded for this model"

    result = run(codex, gw, tmp_path, "say hi")
    assert result.exit_code == 1 and not result.ok, result.describe()
    assert result.turn_error == "exceeded retry limit, last status: 429 Too Many Requests", result.describe()
    assert len(posts(up, model)) == 2  # no retry behind Codex's back


@pytest.mark.parametrize("upstream_model", UPSTREAMS, indirect=True)
def test_stream_that_breaks_off_fails_the_turn(codex, gw, up, tmp_path, upstream_model):
    model = upstream_model
    base = {CHAT: openai_text, ANTHROPIC: anthropic_text, RESPONSES: responses_text}[model]("one two three four five")
    up.script(model, drop_after(6, base))
    result = run(codex, gw, tmp_path, "say hi")
    assert result.exit_code == 1 and not result.ok, result.describe()
    # response.failed, whose message Codex shows (a stream that just stopped would say
    # "stream closed before response.completed")
    assert result.turn_error == ("stream disconnected before completion: the upstream closed the connection "
                                 "before the answer was complete (mid-stream)"), result.describe()
    assert [m["text"] for m in result.items("agent_message")] == []  # no half answer passed off as whole


# --------------------------------------------------------------------------- the transport


class RecordingRelay(TcpRelay):
    """A loopback relay to the gateway that keeps what clients sent (to see Codex's WebSocket attempt)."""

    def __init__(self, port: int):
        super().__init__("127.0.0.1", port)
        self.sent: list[bytes] = []

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        from_client = src.getsockname()[1] == self.port  # the relay's accepted side
        try:
            while data := src.recv(65536):
                if from_client:
                    self.sent.append(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.close()


@pytest.mark.parametrize("upstream_model", [pytest.param(RESPONSES, id="responses-upstream")], indirect=True)
def test_codex_with_websockets_falls_back_to_http(codex, gw, up, tmp_path, upstream_model):
    """A provider that allows WebSockets tries an upgrade first; the gateway refuses it and Codex goes on over HTTP."""
    relay = RecordingRelay(gw.port).start()
    try:
        base_url = f"http://127.0.0.1:{relay.port}/v1"
        provider = {**codex_config(base_url)["model_providers"][PROVIDER], "supports_websockets": True}
        up.script(RESPONSES, responses_text("Over plain HTTP."))
        result = run_codex(codex, "say hi", base_url=base_url, key=KEY, workdir=tmp_path / "work",
                           home=tmp_path / "home", config={"model_providers": {PROVIDER: provider}})
    finally:
        relay.stop()
    assert result.ok, result.describe()
    assert result.final_text == "Over plain HTTP."
    heads = [chunk.split(b"\r\n\r\n")[0].decode("latin-1").lower() for chunk in relay.sent
             if chunk[:5] in (b"GET /", b"POST ")]
    upgrades = [h for h in heads if h.startswith("get /v1/responses") and "upgrade: websocket" in h]
    assert upgrades, heads  # Codex did try a WebSocket first
    assert any(h.startswith("post /v1/responses") for h in heads), heads


@pytest.mark.parametrize("upstream_model", [pytest.param(RESPONSES, id="responses-upstream")], indirect=True)
def test_upstream_error_event_reaches_codex_as_its_message(codex, gw, up, tmp_path, upstream_model):
    """A Responses upstream that reports a failure with an ``error`` event mid-stream: Codex ignores
    ``error`` events, so the turn must end with a ``response.failed`` carrying the upstream's message."""
    start = {"id": "resp_up_1", "object": "response", "status": "in_progress", "model": RESPONSES, "output": []}
    up.script(RESPONSES, anthropic_raw([
        {"type": "response.created", "sequence_number": 0, "response": start},
        {"type": "response.in_progress", "sequence_number": 1, "response": start},
        {"type": "error", "sequence_number": 2, "code": "server_error", "message": "the model is overloaded",
         "param": None}]))
    result = run(codex, gw, tmp_path, "say hi")
    assert result.exit_code == 1 and not result.ok, result.describe()
    assert "the model is overloaded" in (result.turn_error or ""), result.describe()


def test_models_file_alias_sends_codex_to_a_zen_model(codex, up, tmp_path):
    """The set-up docs/clients.md gives: an alias in the models file, nothing else to configure."""
    models_file = tmp_path / "models.yaml"
    models_file.write_text(f"aliases:\n  {DEFAULT_MODEL}: {CHAT}\n")
    gateway = GatewayProcess(tmp_path / "gw", up.url, workers=1, env={"ZENGATE_MODELS_FILE": str(models_file)})
    (tmp_path / "gw").mkdir()
    gateway.start_settled(up)
    try:
        up.script(CHAT, openai_text("Hello through the alias."))
        result = run(codex, gateway, tmp_path, "say hi")
    finally:
        gateway.stop()
    assert result.ok, result.describe()
    assert result.final_text == "Hello through the alias."
    (sent,) = posts(up, CHAT)
    assert sent.body["model"] == CHAT and "say hi" in user_texts(CHAT, sent.body)
