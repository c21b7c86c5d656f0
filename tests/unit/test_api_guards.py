"""The agent guards through the app (the Flask test client) in front of the fake upstream: tool
calls mended and refused for OpenAI and Anthropic clients, streamed and not, on upstreams of
either API; what the request log and /metrics say; the settings' bad input."""

from __future__ import annotations

import json

import pytest

from tests.support.fake_upstream import anthropic_tool_use, openai_tool_calls
from tests.support.fixtures import load_fixture
from tests.unit.test_metrics import scrape, value

BASH = {"type": "function", "function": {"name": "bash", "description": "Run a shell command", "parameters": {
    "type": "object", "properties": {"command": {"type": "string"}, "description": {"type": "string"}},
    "required": ["command"]}}}
ASK = [{"role": "user", "content": "tidy up"}]
ANTHROPIC = {"anthropic-version": "2023-06-01"}


def claude_code_request(model: str, stream: bool) -> dict:
    """Claude Code's own request (recorded), with its 24 tools, for ``model``."""
    body = next(r["body"] for r in load_fixture("cc_tool_bash.json")["requests"]
                if isinstance(r.get("body"), dict) and r["body"].get("tools"))
    return {**body, "model": model, "stream": stream}


@pytest.fixture
def switch(client, admin_headers):
    def set_guards(value: dict) -> None:
        r = client.post("/_admin/settings", json={"key": "guards", "value": value}, headers=admin_headers)
        assert r.status_code == 200, r.get_json()
    return set_guards


def last_row(client, admin_headers) -> dict:
    return client.get("/_stats/requests?limit=1&bodies=0", headers=admin_headers).get_json()["requests"][0]


def sse(data: bytes) -> list[dict]:
    return [json.loads(line[6:]) for line in data.decode().splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"]


@pytest.mark.parametrize("stream", [False, True])
def test_an_openai_client_gets_its_broken_arguments_mended(client, upstream, switch, admin_headers, stream):
    switch({"tool_repair": True})
    before = scrape(client, admin_headers)
    upstream.script("big-pickle", openai_tool_calls([("bash", "{'command': 'ls -la', 'description': 'list',}")]))
    r = client.post("/v1/chat/completions", json={"model": "big-pickle", "messages": ASK, "tools": [BASH],
                                                  "stream": stream})
    assert r.status_code == 200
    if stream:
        calls = [c for chunk in sse(r.get_data()) for c in chunk["choices"][0]["delta"].get("tool_calls") or []]
        arguments = "".join(c["function"].get("arguments") or "" for c in calls)
    else:
        [call] = r.get_json()["choices"][0]["message"]["tool_calls"]
        arguments = call["function"]["arguments"]
    assert json.loads(arguments) == {"command": "ls -la", "description": "list"}
    row = last_row(client, admin_headers)
    assert row["guards"] == [{"guard": "tool_repair", "action": "repaired",
                              "why": "bash arguments: single-quoted strings, trailing commas"}]
    after = scrape(client, admin_headers)
    assert value(after, "zengate_guard_actions_total", guard="tool_repair", action="repaired") - value(
        before, "zengate_guard_actions_total", guard="tool_repair", action="repaired") == 1


def test_without_the_switch_broken_arguments_pass_as_they_came(client, upstream, switch, admin_headers):
    switch({"dangerous_commands": True})  # another guard on: this one still off
    upstream.script("big-pickle", openai_tool_calls([("bash", '{"command": "ls",}')]))
    r = client.post("/v1/chat/completions", json={"model": "big-pickle", "messages": ASK, "tools": [BASH]})
    assert r.get_json()["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"command": "ls",}'
    assert "guards" not in last_row(client, admin_headers)


@pytest.mark.parametrize("model, reply", [
    ("big-pickle", openai_tool_calls([("Bash", {"command": "rm -rf ~", "description": "free space"})])),
    ("minimax-m2.5-free", anthropic_tool_use([("Bash", {"command": "rm -rf ~", "description": "free space"})],
                                             text="Freeing space.")),
])
@pytest.mark.parametrize("stream", [False, True])
def test_claude_codes_bash_call_with_a_dangerous_command_is_refused(client, upstream, switch, admin_headers,
                                                                      model, reply, stream):
    switch({"dangerous_commands": True})
    upstream.script(model, reply)
    r = client.post("/v1/messages", json=claude_code_request(model, stream), headers=ANTHROPIC)
    assert r.status_code == 200
    if stream:
        events = sse(r.get_data())
        text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
        assert not [e for e in events if e["type"] == "content_block_start"
                    and e["content_block"]["type"] == "tool_use"]
        stop_reason = next(e for e in events if e["type"] == "message_delta")["delta"]["stop_reason"]
    else:
        answer = r.get_json()
        assert [b["type"] for b in answer["content"]] in (["text"], ["text", "text"])
        text, stop_reason = "".join(b["text"] for b in answer["content"]), answer["stop_reason"]
    assert "zengate blocked this command before it ran: `rm -rf ~`" in text and "rm-home" in text
    assert stop_reason == "end_turn"
    [note] = last_row(client, admin_headers)["guards"]
    assert note == {"guard": "dangerous_commands", "action": "refused", "why": "Bash: rm-home: rm -rf ~"}


def test_a_safe_command_on_an_anthropic_upstream_still_arrives_whole(client, upstream, switch):
    switch({"dangerous_commands": True, "tool_repair": True})
    upstream.script("minimax-m2.5-free", anthropic_tool_use([("Bash", {"command": "git status"}, "toolu_ok")]))
    r = client.post("/v1/messages", json=claude_code_request("minimax-m2.5-free", True), headers=ANTHROPIC)
    events = sse(r.get_data())
    [started] = [e for e in events if e["type"] == "content_block_start" and e["content_block"]["type"] == "tool_use"]
    assert started["content_block"]["id"] == "toolu_ok"
    arguments = "".join(e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta"
                        and e["delta"]["type"] == "input_json_delta")
    assert json.loads(arguments) == {"command": "git status"}
    assert next(e for e in events if e["type"] == "message_delta")["delta"]["stop_reason"] == "tool_use"


def test_a_keys_switch_turns_a_guard_on_for_that_key_only(client, upstream, switch, admin_headers):
    client.post("/_admin/settings", json={"key": "require_auth", "value": True}, headers=admin_headers)
    created = client.post("/_admin/api-keys", json={"name": "careful"}, headers=admin_headers).get_json()
    other = client.post("/_admin/api-keys", json={"name": "bold"}, headers=admin_headers).get_json()
    switch({"keys": {created["prefix"]: {"dangerous_commands": True}}})
    body = {"model": "big-pickle", "messages": ASK, "tools": [BASH]}
    for key, refused in ((created["key"], True), (other["key"], False)):
        upstream.script("big-pickle", openai_tool_calls([("bash", {"command": "git clean -fdx"})]))
        message = client.post("/v1/chat/completions", json=body,
                              headers={"Authorization": f"Bearer {key}"}).get_json()["choices"][0]["message"]
        assert ("git-clean-all" in (message.get("content") or "")) is refused
        assert bool(message.get("tool_calls")) is not refused


@pytest.mark.parametrize("key, value, says", [
    ("guards", {"tool_repair": 1}, "guards: tool_repair: must be true or false"),
    ("guards", {"loops": True}, "guards: loops: unknown guard"),
    ("guards", [], "guards: must be an object"),
    ("command_rules", {"bad": {"pattern": "(unclosed"}}, "command_rules: bad: pattern is not a regular expression"),
    ("command_rules", {"x": {"pattern": "rm", "severity": "high"}}, "command_rules: x: unknown fields"),
])
def test_bad_guard_settings_are_refused_and_nothing_is_changed(client, admin_headers, key, value, says):
    before = client.get("/_admin/settings", headers=admin_headers).get_json()["settings"][key]
    r = client.post("/_admin/settings", json={"key": key, "value": value}, headers=admin_headers)
    assert r.status_code == 400 and says in r.get_json()["error"]["message"], r.get_json()
    assert client.get("/_admin/settings", headers=admin_headers).get_json()["settings"][key] == before


def test_an_edited_rule_takes_effect(client, upstream, switch, admin_headers):
    switch({"dangerous_commands": True})
    rules = {"no-npm-publish": {"pattern": r"\bnpm\s+publish\b", "why": "publishing a package"}}
    assert client.post("/_admin/settings", json={"key": "command_rules", "value": rules},
                       headers=admin_headers).status_code == 200
    upstream.script("big-pickle", openai_tool_calls([("bash", {"command": "npm publish --access public"})]))
    message = client.post("/v1/chat/completions", json={"model": "big-pickle", "messages": ASK, "tools": [BASH]}
                          ).get_json()["choices"][0]["message"]
    assert "publishing a package" in message["content"] and not message.get("tool_calls")


# --- the context window --------------------------------------------------------------------------

HUGE = "word " * 180_000  # about 280,000 tokens by the local estimate: over big-pickle's 200,000


@pytest.mark.parametrize("path, body, headers, check", [
    ("/v1/messages", {"model": "big-pickle", "max_tokens": 100, "messages": [{"role": "user", "content": HUGE}]},
     ANTHROPIC, lambda e: e["type"] == "error" and e["error"]["type"] == "invalid_request_error"
     and e["error"]["message"].startswith("prompt is too long: ")),
    ("/v1/chat/completions", {"model": "big-pickle", "messages": [{"role": "user", "content": HUGE}]}, {},
     lambda e: e["error"]["code"] == "context_length_exceeded" and e["error"]["param"] == "messages"),
    ("/v1/responses", {"model": "big-pickle", "input": HUGE}, {},
     lambda e: e["error"]["code"] == "context_length_exceeded"),
    ("/v1beta/models/big-pickle:generateContent", {"contents": [{"role": "user", "parts": [{"text": HUGE}]}]}, {},
     lambda e: e["error"]["status"] == "INVALID_ARGUMENT" and "prompt is too long" in e["error"]["message"]),
])
def test_a_prompt_over_the_window_is_refused_in_each_apis_words(client, upstream, switch, admin_headers,
                                                                 path, body, headers, check):
    switch({"context_window": True})
    r = client.post(path, json=body, headers=headers)
    assert r.status_code == 400 and check(r.get_json()), r.get_json()
    assert upstream.requests == []  # no upstream call, no quota spent
    [note] = last_row(client, admin_headers)["guards"]
    assert note["guard"] == "context_window" and note["action"] == "refused" and "big-pickle" in note["why"]


def test_a_fallback_whose_window_fits_goes_first(client, upstream, switch, admin_headers):
    switch({"context_window": True})
    client.post("/_admin/settings", json={"key": "fallbacks", "value": {"big-pickle": ["mimo-v2-pro-free"]}},
                headers=admin_headers)
    r = client.post("/v1/chat/completions", json={"model": "big-pickle",
                                                  "messages": [{"role": "user", "content": HUGE}]})
    assert r.status_code == 200 and r.get_json()["choices"][0]["message"]["content"] == "Hello from upstream"
    assert [sent.model for sent in upstream.requests] == ["mimo-v2-pro-free"]  # big-pickle was never tried
    [note] = last_row(client, admin_headers)["guards"]
    assert note["action"] == "skipped" and note["why"].startswith("big-pickle: window under")


def test_without_the_switch_the_upstream_decides(client, upstream, switch):
    switch({"tool_repair": True})
    r = client.post("/v1/chat/completions", json={"model": "big-pickle",
                                                  "messages": [{"role": "user", "content": HUGE}]})
    assert r.status_code == 200 and [sent.model for sent in upstream.requests] == ["big-pickle"]


# --- loops ------------------------------------------------------------------------------------------

def anthropic_reads(times: int) -> list[dict]:
    """Claude Code's way of reading the same file ``times`` times, each time with the same result."""
    messages: list[dict] = [{"role": "user", "content": "fix the bug in app.py"}]
    for i in range(times):
        messages += [{"role": "assistant", "content": [
                         {"type": "tool_use", "id": f"toolu_{i}", "name": "Read", "input": {"file_path": "app.py"}}]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i}",
                                                   "content": "print('hi')"}]}]
    return messages


@pytest.mark.parametrize("stream", [False, True])
def test_a_model_that_keeps_reading_the_same_file_is_steered_without_an_upstream_call(
        client, upstream, switch, admin_headers, stream):
    switch({"loop_breaking": True})
    body = {"model": "big-pickle", "max_tokens": 100, "messages": anthropic_reads(3), "stream": stream}
    r = client.post("/v1/messages", json=body, headers=ANTHROPIC)
    assert r.status_code == 200
    if stream:
        events = sse(r.get_data())
        assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
        text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
        stop_reason = next(e for e in events if e["type"] == "message_delta")["delta"]["stop_reason"]
    else:
        answer = r.get_json()
        assert answer["model"] == "big-pickle" and answer["role"] == "assistant"
        text, stop_reason = answer["content"][0]["text"], answer["stop_reason"]
    assert "(Read called 3 times with the same arguments and the same result)" in text
    assert stop_reason == "end_turn" and upstream.requests == []
    row = last_row(client, admin_headers)
    assert row["status"] == 200 and row["guards"] == [
        {"guard": "loop_breaking", "action": "steered",
         "why": "Read called 3 times with the same arguments and the same result"}]


def test_an_openai_client_is_steered_in_its_own_shape_with_the_configured_text(client, upstream, switch,
                                                                               admin_headers):
    switch({"loop_breaking": True})
    for key, setting in (("loop_repeats", 2), ("loop_message", "Stuck: {loop}. Ask the user.")):
        assert client.post("/_admin/settings", json={"key": key, "value": setting},
                           headers=admin_headers).status_code == 200
    call = {"id": "call_1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "make"}'}}
    messages = [{"role": "user", "content": "build it"}]
    for i in range(2):
        messages += [{"role": "assistant", "content": None, "tool_calls": [{**call, "id": f"call_{i}"}]},
                     {"role": "tool", "tool_call_id": f"call_{i}", "content": "make: *** No rule to make target"}]
    chunks = sse(client.post("/v1/chat/completions", json={"model": "big-pickle", "messages": messages,
                                                           "tools": [BASH], "stream": True}).get_data())
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert text == "Stuck: bash called 2 times with the same arguments and the same result. Ask the user."
    assert [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices") and
            c["choices"][0].get("finish_reason")] == ["stop"]
    assert upstream.requests == []


def test_fewer_repeats_or_the_switch_off_go_upstream(client, upstream, switch):
    switch({"loop_breaking": True})
    body = {"model": "big-pickle", "max_tokens": 100, "messages": anthropic_reads(2)}
    assert client.post("/v1/messages", json=body, headers=ANTHROPIC).get_json()["content"][0]["text"] == \
        "Hello from upstream"
    switch({"tool_repair": True})
    body["messages"] = anthropic_reads(5)
    assert client.post("/v1/messages", json=body, headers=ANTHROPIC).get_json()["content"][0]["text"] == \
        "Hello from upstream"
    assert len(upstream.requests) == 2


@pytest.mark.parametrize("key, value, says", [
    ("loop_repeats", 1, "loop_repeats: must be at least 2"),
    ("loop_message", "", "loop_message: must be 1 to 2000 characters"),
    ("loop_message", "x" * 2001, "loop_message: must be 1 to 2000 characters"),
])
def test_bad_loop_settings_are_refused(client, admin_headers, key, value, says):
    r = client.post("/_admin/settings", json={"key": key, "value": value}, headers=admin_headers)
    assert r.status_code == 400 and says in r.get_json()["error"]["message"], r.get_json()


def test_codex_and_gemini_clients_get_the_steering_answer_in_their_own_streams(client, upstream, switch):
    switch({"loop_breaking": True})
    turns: list[dict] = [{"role": "user", "content": "build"}]
    for i in range(3):
        turns += [{"type": "function_call", "call_id": f"call_{i}", "name": "exec_command",
                   "arguments": '{"cmd": "make"}'},
                  {"type": "function_call_output", "call_id": f"call_{i}", "output": "make: nothing to do"}]
    events = sse(client.post("/v1/responses", json={"model": "big-pickle", "input": turns, "stream": True}).get_data())
    assert events[-1]["type"] == "response.completed"
    [message] = [i for i in events[-1]["response"]["output"] if i["type"] == "message"]
    assert "exec_command called 3 times" in message["content"][0]["text"]

    contents: list[dict] = [{"role": "user", "parts": [{"text": "list files"}]}]
    for i in range(3):
        contents += [{"role": "model", "parts": [{"functionCall": {"id": f"c{i}", "name": "glob",
                                                                   "args": {"pattern": "*"}}}]},
                     {"role": "user", "parts": [{"functionResponse": {"id": f"c{i}", "name": "glob",
                                                                      "response": {"output": "a.py"}}}]}]
    chunks = sse(client.post("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                             json={"contents": contents}).get_data())
    text = "".join(p.get("text", "") for c in chunks for p in c["candidates"][0]["content"]["parts"])
    assert "glob called 3 times" in text and chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert upstream.requests == []


@pytest.mark.parametrize("stream", [False, True])
def test_a_call_the_model_wrote_as_text_reaches_the_client_as_a_tool_call(client, upstream, switch, admin_headers,
                                                                         stream):
    from tests.support.fake_upstream import openai_text

    switch({"tool_repair": True})
    written = 'I will list the files.\n<tool_call>{"name": "bash", "arguments": {"command": "ls"}}</tool_call>'
    upstream.script("big-pickle", openai_text(written, chunks=9))
    r = client.post("/v1/chat/completions", json={"model": "big-pickle", "messages": ASK, "tools": [BASH],
                                                  "stream": stream})
    if stream:
        chunks = sse(r.get_data())
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
        calls = [t for c in chunks if c.get("choices") for t in c["choices"][0]["delta"].get("tool_calls") or []]
        arguments = "".join(t["function"].get("arguments") or "" for t in calls)
        name = calls[0]["function"]["name"]
        finish = [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices")
                  and c["choices"][0].get("finish_reason")]
    else:
        choice = r.get_json()["choices"][0]
        text, [call] = choice["message"]["content"], choice["message"]["tool_calls"]
        name, arguments, finish = call["function"]["name"], call["function"]["arguments"], [choice["finish_reason"]]
    assert text == "I will list the files.\n" and name == "bash" and json.loads(arguments) == {"command": "ls"}
    assert finish == ["tool_calls"]
    assert last_row(client, admin_headers)["guards"] == [
        {"guard": "tool_repair", "action": "from_text", "why": "bash call written as text"}]
