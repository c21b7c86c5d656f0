"""The forced model and in-chat commands through the app (the Flask test client) in front of the fake
upstream, for Anthropic, OpenAI and Gemini clients, streamed and not: what the upstream received,
what the client got, what the log says; and the settings' bad input."""

from __future__ import annotations

import json

import pytest

from tests.support.fake_upstream import anthropic_text, openai_text
from tests.support.gateway import ADMIN_PASSWORD
from tests.unit.test_api_guards import last_row, sse
from zengate.steering.commands import MARK

ANTHROPIC = {"anthropic-version": "2023-06-01"}


def anthropic_ask(client, text: str, *, session: str = "ses-1", stream: bool = False, history=(),
                  model: str = "claude-sonnet-4-5"):
    messages = [*history, {"role": "user", "content": [{"type": "text", "text": text}]}]
    return client.post("/v1/messages", json={"model": model, "max_tokens": 100, "messages": messages,
                                             "stream": stream},
                       headers={**ANTHROPIC, "x-claude-code-session-id": session})


def generations(upstream) -> list:
    """What the upstream was asked besides its model list."""
    return [q for q in upstream.received() if not q.path.endswith("/models")]


def anthropic_text_of(r, stream: bool) -> str:
    if stream:
        return "".join(e["delta"].get("text", "") for e in sse(r.get_data()) if e["type"] == "content_block_delta")
    return "".join(b["text"] for b in r.get_json()["content"] if b["type"] == "text")


# --- forced model -------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True])
def test_a_forced_model_answers_whatever_the_client_asked_for(client, upstream, setting, stream):
    setting("forced_model", {"default": "glm-4.7-free"})
    upstream.script("glm-4.7-free", openai_text("from glm"))
    r = client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
                                                  "stream": stream})
    assert r.status_code == 200, r.get_data()
    if stream:
        chunks = sse(r.get_data())
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "from glm"
        assert {c["model"] for c in chunks} == {"gpt-4o"}
    else:
        assert r.get_json()["choices"][0]["message"]["content"] == "from glm"
        assert r.get_json()["model"] == "gpt-4o"  # the client's name echoed
    assert [q.model for q in upstream.received("/chat/completions")] == ["glm-4.7-free"]
    assert r.headers["x-zengate-model"] == "glm-4.7-free"


def test_a_keys_forced_model_wins_over_the_default(client, upstream, setting, admin_headers):
    made = client.post("/_admin/api-keys", json={"name": "fixed"}, headers=admin_headers).get_json()
    setting("forced_model", {"default": "glm-4.7-free", "keys": {made["key"][:13]: "big-pickle"}})
    for key, expected in ((made["key"], "big-pickle"), (None, "glm-4.7-free")):
        headers = {"authorization": f"Bearer {key}"} if key else {}
        r = client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user",
                                                                                        "content": "hi"}]},
                        headers=headers)
        assert r.status_code == 200, r.get_data()
        assert upstream.received("/chat/completions")[-1].model == expected


@pytest.mark.parametrize("value, says", [
    ("glm", "must be an object"),
    ({"model": "x"}, "unknown parts"),
    ({"default": 3}, "default: must be a model name"),
    ({"keys": {"abc": "x"}}, "is not a key prefix"),
    ({"keys": {"sk-zen-abcdef": ""}}, "must be a model name"),
    ({"keys": []}, "keys: must be an object"),
])
def test_bad_forced_models_are_refused_and_nothing_changes(client, admin_headers, value, says):
    r = client.post("/_admin/settings", json={"key": "forced_model", "value": value}, headers=admin_headers)
    assert r.status_code == 400
    assert says in json.dumps(r.get_json())
    assert client.get("/_admin/settings", headers=admin_headers).get_json()["settings"]["forced_model"] == {}


# --- in-chat commands ---------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True])
def test_a_model_command_alone_is_answered_here_and_steers_the_next_turns(client, upstream, setting,
                                                                          admin_headers, stream):
    setting("chat_commands", True)
    r = anthropic_ask(client, "!/model(glm-4.7-free)", stream=stream)
    assert r.status_code == 200, r.get_data()
    said = anthropic_text_of(r, stream)
    assert said == f"{MARK} this conversation now uses glm-4.7-free"
    assert generations(upstream) == []  # no upstream call
    row = last_row(client, admin_headers)
    assert row["guards"][0]["guard"] == "chat_commands" and row["guards"][0]["action"] == "answered"

    upstream.script("glm-4.7-free", openai_text("glm here"))
    history = [{"role": "user", "content": [{"type": "text", "text": "!/model(glm-4.7-free)"}]},
               {"role": "assistant", "content": [{"type": "text", "text": said}]}]
    r = anthropic_ask(client, "what is 2+2?", stream=stream, history=history)
    assert anthropic_text_of(r, stream) == "glm here"
    [sent] = upstream.received("/chat/completions")
    assert sent.model == "glm-4.7-free"
    assert [m["content"] for m in sent.body["messages"]] == ["what is 2+2?"]  # the command turn never goes up
    if not stream:
        assert r.get_json()["model"] == "claude-sonnet-4-5"

    r = anthropic_ask(client, "another conversation", session="ses-2")  # its own choice: none
    assert upstream.received()[-1].model != "glm-4.7-free"


@pytest.mark.parametrize("stream", [False, True])
def test_a_oneoff_with_a_message_is_forwarded_and_confirmed_once(client, upstream, setting, stream):
    setting("chat_commands", True)
    upstream.script("big-pickle", openai_text("pickled"))
    r = client.post("/v1/chat/completions", json={
        "model": "glm-4.7-free", "stream": stream,
        "messages": [{"role": "user", "content": "!/oneoff(big-pickle) say something"}]},
        headers={"x-session-id": "oc-1"})
    assert r.status_code == 200, r.get_data()
    if stream:
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in sse(r.get_data()) if c["choices"])
    else:
        text = r.get_json()["choices"][0]["message"]["content"]
    assert text == f"{MARK} this turn goes to big-pickle\n\npickled"
    [sent] = upstream.received("/chat/completions")
    assert sent.model == "big-pickle"
    assert sent.body["messages"] == [{"role": "user", "content": "say something"}]
    # the next turn is the conversation's own model again, the gateway's note gone from its history
    client.post("/v1/chat/completions", json={"model": "glm-4.7-free", "messages": [
        {"role": "user", "content": "!/oneoff(big-pickle) say something"},
        {"role": "assistant", "content": text}, {"role": "user", "content": "and?"}]},
        headers={"x-session-id": "oc-1"})
    last = upstream.received("/chat/completions")[-1]
    assert last.model == "glm-4.7-free"
    assert [m["content"] for m in last.body["messages"]] == ["say something", "pickled", "and?"]


@pytest.mark.parametrize("text, expect", [
    ("!/frobnicate", "!/frobnicate is not a command."),
    ("!/help", "In-chat commands"),
    ("!/model", "!/model needs an argument"),
    ("!/status please", "this conversation uses claude-sonnet-4-5"),
    ("!/model(no-such-model-anywhere)", "the gateway does not know that model"),
    ("!/backend(nowhere)", "there is no backend named 'nowhere'"),
    ("!/oneoff(big-pickle)", "applies to the message written after it"),
])
def test_help_status_and_mistakes_are_answered_here_without_an_upstream_call(client, upstream, setting, text,
                                                                              expect):
    setting("chat_commands", True)
    setting("model_map", {"sonnet": "claude-sonnet-4-5"})
    r = anthropic_ask(client, text)
    assert r.status_code == 200, r.get_data()
    said = anthropic_text_of(r, False)
    assert said.startswith(MARK) and expect in said, said
    assert generations(upstream) == []


def test_status_tells_the_chosen_model_and_reset_forgets_it(client, upstream, setting):
    setting("chat_commands", True)
    anthropic_ask(client, "!/model(big-pickle)")
    said = anthropic_text_of(anthropic_ask(client, "!/status"), False)
    assert "big-pickle on the zen backend (chosen in this chat; the client asked for claude-sonnet-4-5)" in said
    assert "no API key" in said
    assert "uses claude-sonnet-4-5 again" in anthropic_text_of(anthropic_ask(client, "!/reset"), False)
    assert "chosen in this chat" not in anthropic_text_of(anthropic_ask(client, "!/status"), False)
    assert generations(upstream) == []


def test_a_gemini_conversation_is_known_by_its_first_turn(client, upstream, setting):
    setting("chat_commands", True)
    setting("model_map", {"gemini": "glm-4.7-free"})
    first = {"role": "user", "parts": [{"text": "!/model(big-pickle)"}]}
    r = client.post("/v1beta/models/gemini-2.5-flash:generateContent", json={"contents": [first]})
    assert r.status_code == 200, r.get_data()
    assert r.get_json()["candidates"][0]["content"]["parts"][0]["text"].startswith(f"{MARK} this conversation")
    upstream.script("big-pickle", openai_text("gemini via pickle"))
    said = r.get_json()["candidates"][0]["content"]["parts"][0]["text"]
    r = client.post("/v1beta/models/gemini-2.5-flash:generateContent", json={"contents": [
        first, {"role": "model", "parts": [{"text": said}]}, {"role": "user", "parts": [{"text": "go on"}]}]})
    assert r.get_json()["candidates"][0]["content"]["parts"][0]["text"] == "gemini via pickle"
    assert upstream.received()[-1].model == "big-pickle"
    other = client.post("/v1beta/models/gemini-2.5-flash:generateContent",
                        json={"contents": [{"role": "user", "parts": [{"text": "a new chat"}]}]})
    assert other.status_code == 200
    assert upstream.received()[-1].model == "glm-4.7-free"


def test_commands_are_plain_text_while_the_setting_is_off(client, upstream):
    upstream.script("*", anthropic_text("as text"))
    r = anthropic_ask(client, "!/model(big-pickle) hi", model="minimax-m2.5-free")
    assert anthropic_text_of(r, False) == "as text"
    assert "!/model(big-pickle) hi" in json.dumps(upstream.received()[-1].body)


def test_a_key_may_not_switch_to_a_model_it_may_not_use(client, upstream, setting, admin_headers):
    setting("chat_commands", True)
    made = client.post("/_admin/api-keys", json={"name": "narrow", "models": ["claude-sonnet-4-5", "glm-4.7-free"]},
                       headers=admin_headers).get_json()
    setting("require_auth", True)
    r = client.post("/v1/messages", json={"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [
        {"role": "user", "content": "!/model(big-pickle)"}]}, headers={**ANTHROPIC, "x-api-key": made["key"]})
    said = anthropic_text_of(r, False)
    assert "API key 'narrow' may not use it; the model was not changed" in said
    assert generations(upstream) == []


@pytest.mark.parametrize("key, value, says", [
    ("chat_commands", "maybe", "chat_commands"),
    ("chat_command_days", 0, "chat_command_days"),
])
def test_bad_command_settings_are_refused(client, admin_headers, key, value, says):
    r = client.post("/_admin/settings", json={"key": key, "value": value}, headers=admin_headers)
    assert r.status_code == 400
    assert says in json.dumps(r.get_json())


def test_a_codex_conversation_is_known_by_its_prompt_cache_key(client, upstream, setting):
    setting("chat_commands", True)
    ask = {"model": "gpt-5-nano", "prompt_cache_key": "codex-session-1",
           "input": [{"type": "message", "role": "user", "content": [{"type": "input_text",
                                                                      "text": "!/model(big-pickle)"}]}]}
    r = client.post("/v1/responses", json=ask)
    assert r.status_code == 200, r.get_data()
    [item] = r.get_json()["output"]
    assert item["content"][0]["text"] == f"{MARK} this conversation now uses big-pickle"
    assert generations(upstream) == []
    upstream.script("big-pickle", openai_text("codex via pickle"))
    r = client.post("/v1/responses", json={**ask, "input": [
        *ask["input"], {"type": "message", "role": "assistant",
                        "content": [{"type": "output_text", "text": item["content"][0]["text"]}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list files"}]}]})
    assert r.get_json()["output"][0]["content"][0]["text"] == "codex via pickle"
    sent = upstream.received("/chat/completions")[-1]
    assert sent.model == "big-pickle"
    assert [m["content"] for m in sent.body["messages"] if m["role"] != "system"] == ["list files"]


def test_each_worker_caches_choices_and_a_write_anywhere_empties_every_cache(gateway, monkeypatch):
    from zengate.store import conversations
    from zengate.store.conversations import Choice, Choices

    reads = []
    real_read = conversations.read
    monkeypatch.setattr(conversations, "read", lambda key, days: reads.append(key) or real_read(key, days))
    this, other = gateway.conversations, Choices(gateway.conversations.generation, fresh_seconds=60)
    assert other.read("conv-a", 30) is None and other.read("conv-a", 30) is None
    assert reads == ["conv-a"]  # no choice is cached too
    this.write("conv-a", Choice("glm-4.7-free"), 30)  # another worker's write: the shared generation moves
    assert other.read("conv-a", 30) == Choice("glm-4.7-free")
    assert reads == ["conv-a", "conv-a"]
    stale = Choices(gateway.conversations.generation, fresh_seconds=0)  # nothing stays fresh
    stale.read("conv-a", 30)
    stale.read("conv-a", 30)
    assert len(reads) == 4
    this.write("conv-a", None, 30)
    assert other.read("conv-a", 30) is None


def test_a_backend_command_sends_the_conversation_to_a_named_backend(make_app, upstream, tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_BACKEND_KEY", "lk-test-123")
    models = tmp_path / "models.yaml"
    models.write_text(f"backends:\n  local:\n    base_url: {upstream.url}\n    protocol: openai\n"
                      "    key_env: LOCAL_BACKEND_KEY\n")
    client = make_app(models_file=str(models)).test_client()
    token = client.post("/_admin/login", json={"password": ADMIN_PASSWORD}).get_json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/_admin/settings", json={"key": "chat_commands", "value": True},
                       headers=headers).status_code == 200
    said = anthropic_text_of(anthropic_ask(client, "!/backend(local)", session="ses-b"), False)
    assert said == f"{MARK} this conversation now goes to the local backend"
    upstream.script("big-pickle", openai_text("from the local backend"))
    r = anthropic_ask(client, "hello", session="ses-b", model="big-pickle")
    assert anthropic_text_of(r, False) == "from the local backend"
    sent = generations(upstream)[-1]
    assert sent.model == "big-pickle" and sent.headers["authorization"] == "Bearer lk-test-123"
    status = anthropic_text_of(anthropic_ask(client, "!/status", session="ses-b", model="big-pickle"), False)
    assert "big-pickle on the local backend (chosen in this chat" in status
