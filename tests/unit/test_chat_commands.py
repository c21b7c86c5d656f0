"""In-chat commands as pure functions (zengate/steering/commands.py): what counts as a command, how
the conversation is cleaned of them before it goes upstream, and the confirmation guard."""

from __future__ import annotations

import pytest

from tests.support.fixtures import load_fixture
from zengate.exchange.form import fold_events
from zengate.steering import commands
from zengate.steering.commands import MARK, Command, Confirmation


def user(*texts: str) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": t} for t in texts]}


def form(*messages: dict) -> dict:
    return {"model": "m", "messages": list(messages)}


@pytest.mark.parametrize("text, found, rest", [
    ("!/model(glm-4.7-free)", [Command("model", "glm-4.7-free")], False),
    ("!/model(glm-4.7-free) now fix the test", [Command("model", "glm-4.7-free")], True),
    ("please !/oneoff(go:kimi-k2) review this.", [Command("oneoff", "go:kimi-k2")], True),
    ("!/STATUS", [Command("status", None)], False),
    ("!/help\n!/reset", [Command("help", None), Command("reset", None)], False),
    ("!/frobnicate", [Command("frobnicate", None)], False),
    ("!/model", [Command("model", None)], False),
])
def test_commands_in_the_latest_user_turn_are_read(text, found, rest):
    turn = commands.read(form(user(text)))
    assert turn is not None
    assert list(turn.commands) == found
    assert turn.has_message is rest


@pytest.mark.parametrize("text", [
    "#!/usr/bin/env python\nprint('hi')",  # a shebang
    "run !/usr/bin/true for me",  # a path, not a name followed by an end
    "no commands here",
    "x!/model(a)",  # glued to a word
    "call it with !/model(a(b))",  # nested parentheses are not an argument
])
def test_near_misses_are_not_commands(text):
    assert commands.read(form(user(text))) is None


def test_only_a_user_turn_is_read_not_tool_results_or_an_assistant_prefill():
    assert commands.read(form(user("!/help"), {"role": "assistant", "content": "ok"})) is None
    tool_result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "!/help"}]}
    assert commands.read(form(user("!/help"), {"role": "assistant", "content": "x"}, tool_result)) is None
    assert commands.read({"messages": []}) is None


def test_claude_codes_reminders_do_not_count_as_a_message():
    turn = commands.read(form(user("<system-reminder>\nfiles changed\n</system-reminder>", "!/model(big-pickle)")))
    assert turn is not None and turn.has_message is False


@pytest.mark.parametrize("command, ok", [
    (Command("model", "x"), True), (Command("model", None), False), (Command("model", " "), False),
    (Command("help", None), True), (Command("help", "x"), False), (Command("nope", None), False),
])
def test_well_formed(command, ok):
    assert command.well_formed is ok


def test_strip_removes_commands_and_the_gateways_answers_from_every_turn():
    history = form(
        user("!/model(glm-4.7-free)"),
        {"role": "assistant", "content": [{"type": "text", "text": f"{MARK} this conversation now uses glm"}]},
        user("!/oneoff(big-pickle) fix the bug"),
        {"role": "assistant", "content": [{"type": "text", "text": f"{MARK} this turn goes to big-pickle\n\n"},
                                          {"type": "text", "text": "Fixed."}]},
        {"role": "user", "content": "thanks, and !/status later"},
    )
    stripped = commands.strip(history)
    assert stripped["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "fix the bug"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Fixed."}]},
        {"role": "user", "content": "thanks, and later"},
    ]
    assert history["messages"][0]["content"][0]["text"] == "!/model(glm-4.7-free)"  # the client's form untouched
    assert commands.strip(stripped) is None  # stripped once, nothing left: the same every later turn


def test_an_openai_clients_joined_answer_loses_only_the_gateways_paragraph():
    history = form({"role": "user", "content": "!/model(x) hi"},
                   {"role": "assistant", "content": f"{MARK} this conversation now uses x\n\nHello!\n\nBye."},
                   {"role": "user", "content": "more"})
    assert [m["content"] for m in commands.strip(history)["messages"]] == ["hi", "Hello!\n\nBye.", "more"]


def test_strip_leaves_a_conversation_without_commands_alone_and_is_cheap_on_a_real_one():
    body = next(r["body"] for r in load_fixture("cc_tool_bash.json")["requests"] if isinstance(r.get("body"), dict))
    real = {"system": body["system"], "messages": body["messages"]}
    assert commands.strip(real) is None
    assert commands.read(real) is None


def confirmation_events() -> list:
    return [("message_start", {"type": "message_start", "message": {"id": "m", "content": [], "model": "x",
                                                                      "role": "assistant", "type": "message",
                                                                      "usage": {"input_tokens": 1,
                                                                                "output_tokens": 0}}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": "Hello"}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                               "usage": {"output_tokens": 1}}),
            ("message_stop", {"type": "message_stop"})]


def test_the_confirmation_comes_first_in_a_stream_and_in_a_whole_answer():
    guard = Confirmation(f"{MARK} switched")
    events = guard.feed(confirmation_events()[:2]) + guard.feed(confirmation_events()[2:])
    answer = fold_events(events)
    assert [b["text"] for b in answer["content"]] == [f"{MARK} switched\n\n", "Hello"]
    whole = Confirmation(f"{MARK} switched").answer({"content": [{"type": "text", "text": "Hello"}]})
    assert [b["text"] for b in whole["content"]] == [f"{MARK} switched\n\n", "Hello"]
    # what the client keeps of it is stripped on the next turn
    assert commands.strip(form(user("q"), {"role": "assistant", "content": answer["content"]}))["messages"][1] == {
        "role": "assistant", "content": [{"type": "text", "text": "Hello"}]}
