"""Steering in the real gateway (gunicorn, two gevent workers), through the official OpenAI and
Anthropic SDKs: in-chat commands kept for the conversation whichever worker takes its next turn,
a key's forced model, rewriting rules and prompt redaction on what the upstream gets and the
client reads, and housekeeping calls answered without an upstream call. (The real Claude Code
switching model and getting its session title from the gateway: test_claude_code_e2e.py.)"""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from tests.support.fake_upstream import anthropic_text, openai_text
from tests.support.fixtures import load_fixture

pytestmark = pytest.mark.e2e

MARK = "[zengate]"


@pytest.fixture
def steering(gw):
    """Every steering setting this module touches back to its default afterwards."""
    yield gw
    for key, value in (("chat_commands", False), ("forced_model", {}), ("rewrite_rules", {}),
                       ("prompt_redaction", False), ("quota_savers", {})):
        gw.set_setting(key, value)


def logged(gw, upstream_model: str) -> dict:
    """The newest log row of an answer from ``upstream_model``, once written (a moment after the answer)."""
    def found():
        page = gw.admin("GET", "/_stats/requests?limit=5").json()["requests"]
        return next((r for r in page if r.get("upstream_model") == upstream_model), None)
    row = gw.wait_for(found)
    assert row, f"no log row for {upstream_model}"
    return row


def generations(up) -> list:
    return [r for r in up.requests if r.method == "POST" and not r.path.endswith("/models")]


def test_a_conversations_model_command_holds_on_every_worker(steering, up):
    gw = steering
    gw.set_setting("chat_commands", True)
    claude = anthropic.Anthropic(base_url=gw.url, api_key="sk-zen-e2e", max_retries=0,
                                 default_headers={"x-claude-code-session-id": "e2e-steer-1"})
    turns = [{"role": "user", "content": "!/model(glm-4.7-free)"}]
    said = claude.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=turns)
    assert said.content[0].text == f"{MARK} this conversation now uses glm-4.7-free"
    assert said.model == "claude-sonnet-4-6"
    assert generations(up) == []
    turns.append({"role": "assistant", "content": said.content[0].text})
    for n in range(6):  # new connections: the turns land on both workers
        up.script("glm-4.7-free", openai_text(f"answer {n}"))
        turns.append({"role": "user", "content": f"question {n}"})
        with claude.messages.stream(model="claude-sonnet-4-6", max_tokens=50, messages=turns) as stream:
            text = stream.get_final_text()
        assert text == f"answer {n}"
        turns.append({"role": "assistant", "content": text})
        sent = generations(up)[-1]
        assert sent.model == "glm-4.7-free"
        assert "!/model" not in json.dumps(sent.body) and MARK not in json.dumps(sent.body)
    status = claude.messages.create(model="claude-sonnet-4-6", max_tokens=50,
                                    messages=[*turns, {"role": "user", "content": "!/status"}])
    assert "glm-4.7-free on the zen backend (chosen in this chat" in status.content[0].text
    assert len(generations(up)) == 6


def test_an_openai_client_gets_a_oneoff_with_the_gateways_note_first(steering, up):
    gw = steering
    gw.set_setting("chat_commands", True)
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-zen-e2e", max_retries=0,
                           default_headers={"x-session-id": "e2e-steer-2"})
    up.script("big-pickle", openai_text("pickled answer", chunks=3))
    chunks = list(client.chat.completions.create(
        model="glm-4.7-free", stream=True, messages=[{"role": "user", "content": "!/oneoff(big-pickle) hello"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"{MARK} this turn goes to big-pickle\n\npickled answer"
    assert {c.model for c in chunks} == {"glm-4.7-free"}
    [sent] = generations(up)
    assert sent.model == "big-pickle" and sent.body["messages"] == [{"role": "user", "content": "hello"}]
    row = logged(gw, "big-pickle")
    assert row["guards"] == [{"guard": "chat_commands", "action": "switched", "why": f"{MARK} this turn goes to "
                                                                                       "big-pickle"}]
    assert row["upstream_model"] == "big-pickle"


def test_a_keys_forced_model_through_the_openai_sdk(steering, up):
    gw = steering
    made = gw.admin("POST", "/_admin/api-keys", json={"name": "pinned"}).json()
    gw.set_setting("forced_model", {"keys": {made["key"][:13]: "glm-4.7-free"}})
    up.script("glm-4.7-free", openai_text("pinned answer"))
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=made["key"], max_retries=0)
    answer = client.chat.completions.create(model="gpt-5.5", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "pinned answer" and answer.model == "gpt-5.5"
    assert generations(up)[-1].model == "glm-4.7-free"
    other = openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-zen-someone-else", max_retries=0)
    other.chat.completions.create(model="big-pickle", messages=[{"role": "user", "content": "hi"}])
    assert generations(up)[-1].model == "big-pickle"


def test_rules_and_redaction_on_both_sdks(steering, up):
    gw = steering
    gw.set_setting("rewrite_rules", {
        "house": {"where": "system", "action": "append", "text": "\nAnswer in English."},
        "codename": {"where": "assistant", "action": "replace", "pattern": "Falcon", "text": "the project"}})
    gw.set_setting("prompt_redaction", True)
    secret = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk6l"
    up.script("big-pickle", openai_text("Falcon is ready; Falcon ships.", chunks=7))
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-zen-e2e", max_retries=0)
    chunks = list(client.chat.completions.create(model="big-pickle", stream=True, messages=[
        {"role": "system", "content": "You are terse."}, {"role": "user", "content": f"my key is {secret}"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "the project is ready; the project ships."
    sent = json.dumps(generations(up)[-1].body)
    assert secret not in sent and "[redacted:openai-key]" in sent and "Answer in English." in sent

    up.script("minimax-m2.5-free", anthropic_text("Falcon lands.", chunks=4))
    claude = anthropic.Anthropic(base_url=gw.url, api_key="sk-zen-e2e", max_retries=0)
    with claude.messages.stream(model="minimax-m2.5-free", max_tokens=50, system="Be brief.",
                                messages=[{"role": "user", "content": f"use {secret}"}]) as stream:
        assert stream.get_final_text() == "the project lands."
    sent = generations(up)[-1].body
    assert secret not in json.dumps(sent), sent
    assert sent["system"] == "Be brief.\nAnswer in English."
    guards = [g["guard"] for g in logged(gw, "minimax-m2.5-free")["guards"]]
    assert sorted(set(guards)) == ["prompt_redaction", "rewrite"]


def test_housekeeping_calls_are_answered_here(steering, up):
    gw = steering
    gw.set_setting("quota_savers", {"all": True})
    claude = anthropic.Anthropic(base_url=gw.url, api_key="sk-zen-e2e", max_retries=0,
                                 default_headers={"User-Agent": "claude-cli/2.1.330 (external, cli)"})
    probe = claude.messages.create(model="claude-haiku-4-5", max_tokens=1,
                                   messages=[{"role": "user", "content": "quota"}])
    assert probe.stop_reason == "max_tokens" and probe.content[0].text == "OK"
    recorded = load_fixture("oc_basic_say_hi.json")["requests"][0]  # opencode's title call
    headers = {k: v for k, v in recorded["headers"] if k.lower() in ("user-agent", "x-session-id")}
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-zen-e2e", max_retries=0, default_headers=headers)
    body = recorded["body"]
    chunks = list(client.chat.completions.create(model="big-pickle", messages=body["messages"], stream=True,
                                                 max_tokens=body["max_tokens"]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Say hi"
    assert generations(up) == []
    stats = gw.wait_for(lambda: (s := gw.admin("GET", "/_stats").json()).get("saved_calls", 0) >= 2 and s)
    assert stats["saved_calls"] >= 2
