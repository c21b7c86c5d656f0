"""Context trimming as a pure function (zengate/steering/trim.py) on agent sessions built from
Claude Code's recorded request: each step, what is never touched, tool calls kept paired, prefix
stability turn by turn, and the share of tokens saved over a long session."""

from __future__ import annotations

import copy

import pytest

from tests.support.fixtures import load_fixture
from zengate.dialects.tokens import estimate_anthropic_tokens
from zengate.steering.trim import TrimOptions, old_turns, trim

REMINDER = "<system-reminder>\nThe user opened src/app.py in the IDE.\n</system-reminder>"


def claude_code_start() -> dict:
    """Claude Code's recorded first request (system prompt, 24 tools, the user's prompt)."""
    body = next(r["body"] for r in load_fixture("cc_tool_bash.json")["requests"]
                if isinstance(r.get("body"), dict) and r["body"].get("tools"))
    return {"model": "claude-sonnet-4-5", "system": body["system"], "tools": body["tools"],
            "messages": [copy.deepcopy(body["messages"][0])], "max_tokens": 32000}


def file_listing(n: int) -> str:
    return "\n".join(f"{i:>6}\tdef handler_{n}_{i}(request):  # line {i} of module {n}" for i in range(1, 400))


def pytest_output(n: int) -> str:
    return "\n".join([f"tests/test_mod{n}.py::test_{i} PASSED" for i in range(150)] + ["150 passed in 3.2s"])


def session(turns: int) -> list[dict]:
    """The requests of a ``turns``-turn agent session, in order: each turn a thought, a Bash or Read
    call and its result (file reads, test runs, a file read twice), reminders now and then."""
    start = claude_code_start()
    requests, messages = [], start["messages"]
    for n in range(turns):
        requests.append({**start, "messages": copy.deepcopy(messages)})
        call_id = f"toolu_{n:03d}"
        kind = n % 4
        if kind == 0:
            call, output = {"name": "Read", "input": {"file_path": f"/repo/src/mod{n}.py"}}, file_listing(n)
        elif kind == 1:
            call, output = {"name": "Bash", "input": {"command": "pytest -q"}}, pytest_output(n)
        elif kind == 2:  # the same file again: the same output
            call, output = {"name": "Read", "input": {"file_path": f"/repo/src/mod{n - 2}.py"}}, file_listing(n - 2)
        else:
            call, output = {"name": "Bash", "input": {"command": "git status"}}, "On branch main\nnothing to commit"
        messages.append({"role": "assistant", "content": [
            {"type": "thinking", "thinking": f"Turn {n}: I should look at the code. " * 30, "signature": "sig" * 20},
            {"type": "text", "text": f"Looking at step {n}."},
            {"type": "tool_use", "id": call_id, **call}]})
        user = [{"type": "tool_result", "tool_use_id": call_id, "content": output}]
        if n % 3 == 0:
            user.append({"type": "text", "text": REMINDER})
        messages.append({"role": "user", "content": user})
    requests.append({**start, "messages": copy.deepcopy(messages)})
    return requests


def has_reminder(message: dict) -> bool:
    return any(b.get("type") == "text" and REMINDER in b["text"] for b in message["content"])


def pairs(form: dict) -> tuple[list[str], list[str]]:
    uses = [b["id"] for m in form["messages"] if isinstance(m["content"], list) for b in m["content"]
            if b.get("type") == "tool_use"]
    results = [b["tool_use_id"] for m in form["messages"] if isinstance(m["content"], list) for b in m["content"]
               if b.get("type") == "tool_result"]
    return uses, results


def test_a_short_conversation_is_left_alone():
    for request in session(7):  # at most 7 turns: under 2 × keep_turns, nothing is old yet
        trimmed, report = trim(request, TrimOptions())
        assert trimmed is None and report.chars_saved == 0 and not report.steps
    assert old_turns(session(8)[-1]["messages"], 4) == 4


def test_old_turns_grow_in_steps_of_keep_turns():
    assert [old_turns([{"role": "assistant"}] * n, 4) for n in (0, 3, 4, 7, 8, 11, 12, 13)] == [0, 0, 0, 0, 4, 4, 8, 8]
    assert old_turns([{"role": "assistant"}] * 5, 0) == 5


def test_each_step_acts_on_old_turns_only_and_the_rest_is_untouched():
    request = session(16)[-1]  # 16 turns: the first 12 are old
    trimmed, report = trim(request, TrimOptions())
    assert trimmed["system"] is request["system"] and trimmed["tools"] is request["tools"]
    messages, before = trimmed["messages"], request["messages"]
    assert messages[0] is before[0]  # the user's prompt
    assert messages[25:] == before[25:]  # turns 13 to 16 (messages 25 on) as they came
    assert report.steps == {"thinking": 12, "tool_results": 6, "repeats": 3, "reminders": 3}
    assert not [b for m in messages[1:25] if isinstance(m["content"], list) for b in m["content"]
                if b["type"] == "thinking"]
    assert all(b["type"] == "thinking" for b in (messages[25]["content"][0],))
    # a file read twice: the second read refers to the first
    second_read = messages[6]["content"][0]
    assert second_read["tool_use_id"] == "toolu_002"
    assert second_read["content"].startswith("[zengate: the same output as the earlier Read result (toolu_000)")
    # a long result keeps its head and tail, with the marker between
    first_read = messages[2]["content"][0]["content"]
    assert first_read.startswith(file_listing(0)[:1000]) and first_read.endswith(file_listing(0)[-500:])
    assert "[zengate trimmed" in first_read
    # the reminder seen before is dropped from old turns, kept in recent ones
    assert has_reminder(messages[2]) and not has_reminder(messages[8]) and has_reminder(messages[26])
    assert request == session(16)[-1]  # the client's form is left as it was


@pytest.mark.parametrize("step", ["thinking", "tool_results", "repeats", "reminders"])
def test_a_step_switched_off_does_nothing(step):
    request = session(12)[-1]
    others = {s: s == step for s in ("thinking", "tool_results", "repeats", "reminders")}
    _, report = trim(request, TrimOptions(**others))
    assert set(report.steps) == {step}
    _, report = trim(request, TrimOptions(**{step: False}))
    assert step not in report.steps


def test_every_tool_call_keeps_its_result():
    for request in session(30):
        trimmed, _ = trim(request, TrimOptions())
        assert pairs(trimmed or request) == pairs(request)


def test_a_turn_once_trimmed_is_trimmed_the_same_way_in_every_later_request():
    previous: list | None = None
    breaks = 0
    for request in session(50):
        trimmed = (trim(request, TrimOptions())[0] or request)["messages"]
        if previous is not None:
            if trimmed[:len(previous)] != previous:
                breaks += 1  # only when more turns become old
                assert old_turns(request["messages"], 4) > old_turns(request["messages"][:len(previous)], 4)
        previous = trimmed
    assert breaks == 11  # 50 turns: the old part grew at 8, 12, … 48 turns


def test_a_fifty_turn_session_sends_at_least_30_percent_fewer_input_tokens():
    before = after = 0
    for request in session(50):
        before += estimate_anthropic_tokens(request)
        after += estimate_anthropic_tokens(trim(request, TrimOptions())[0] or request)
    saved = 1 - after / before
    assert saved >= 0.30, f"saved {saved:.1%}"


# --- through the app --------------------------------------------------------------------------------

def openai_session(turns: int) -> dict:
    """An OpenAI client's agent conversation: ``turns`` tool round trips, each reading a long file."""
    messages: list[dict] = [{"role": "system", "content": "You are an agent."},
                            {"role": "user", "content": "Tidy the repo."}]
    for n in range(turns):
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": f"call_{n}", "type": "function", "function": {"name": "read", "arguments": '{"path": "a.py"}'}}]})
        messages.append({"role": "tool", "tool_call_id": f"call_{n}", "content": file_listing(n)})
    return {"model": "big-pickle", "messages": messages, "tools": [{"type": "function", "function": {
        "name": "read", "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}]}


def test_an_anthropic_clients_old_turns_reach_the_upstream_trimmed(client, upstream, setting, admin_headers):
    from tests.support.fake_upstream import anthropic_text
    from tests.unit.test_api_guards import last_row

    setting("trimming", {"thinking": True, "tool_results": True, "repeats": True, "reminders": True})
    upstream.script("minimax-m2.5-free", anthropic_text("done"))
    request = {**session(16)[-1], "model": "minimax-m2.5-free"}
    r = client.post("/v1/messages", json=request, headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 200 and r.get_json()["content"][0]["text"] == "done"
    sent = upstream.received("/messages")[-1].body
    assert sent["messages"] == trim(request, TrimOptions())[0]["messages"]
    assert sent["system"] == request["system"]
    [note] = last_row(client, admin_headers)["guards"]
    assert note["guard"] == "trimming" and note["action"] == "trimmed"
    assert "repeats 3" in note["why"] and "thinking 12" in note["why"]


def test_the_log_row_keeps_the_trimmed_requests_tokens_before_and_after(client, upstream, setting, admin_headers):
    from tests.support.fake_upstream import anthropic_text
    from tests.unit.test_api_guards import last_row

    setting("trimming", {"thinking": True, "tool_results": True, "repeats": True, "reminders": True})
    upstream.script("minimax-m2.5-free", anthropic_text("done"), anthropic_text("short"))
    request = {**session(16)[-1], "model": "minimax-m2.5-free"}
    r = client.post("/v1/messages", json=request, headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 200 and r.get_json()["content"][0]["text"] == "done"
    row = last_row(client, admin_headers)
    before, after = estimate_anthropic_tokens(request), estimate_anthropic_tokens(trim(request, TrimOptions())[0])
    assert (row["trim_tokens_before"], row["trim_tokens_after"]) == (before, after)
    assert before > 2 * after  # the old file listings and thinking were most of it
    detail = client.get(f"/_stats/requests/{row['id']}", headers=admin_headers).get_json()
    assert (detail["trim_tokens_before"], detail["trim_tokens_after"]) == (before, after)

    short = {**session(3)[-1], "model": "minimax-m2.5-free"}  # too few turns: nothing to trim
    r = client.post("/v1/messages", json=short, headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 200 and r.get_json()["content"][0]["text"] == "short"
    row = last_row(client, admin_headers)
    assert (row["trim_tokens_before"], row["trim_tokens_after"], row.get("guards")) == (None, None, None)


def test_the_estimates_count_only_the_messages_trimming_replaced():
    from zengate.steering.trim import estimated_tokens

    for request in session(24)[8::5]:
        trimmed = trim(request, TrimOptions())[0]
        assert estimated_tokens(request, trimmed) == (estimate_anthropic_tokens(request),
                                                      estimate_anthropic_tokens(trimmed))


def test_an_openai_clients_old_tool_results_are_shortened_per_model(client, upstream, setting):
    from tests.support.fake_upstream import openai_text

    setting("trimming", {"models": {"big-pickle": {"tool_results": True}}})
    upstream.script("big-pickle", openai_text("ok"))
    r = client.post("/v1/chat/completions", json=openai_session(12))
    assert r.status_code == 200 and r.get_json()["choices"][0]["message"]["content"] == "ok"
    tools = [m["content"] for m in upstream.received("/chat/completions")[-1].body["messages"] if m["role"] == "tool"]
    assert ["[zengate trimmed" in t for t in tools] == [True] * 8 + [False] * 4
    upstream.script("glm-4.7-free", openai_text("ok"))
    client.post("/v1/chat/completions", json={**openai_session(12), "model": "glm-4.7-free"})
    assert not any("[zengate trimmed" in str(m.get("content")) for m in
                   upstream.received("/chat/completions")[-1].body["messages"])  # another model: off


@pytest.mark.parametrize("key, value, says", [
    ("trimming", {"thinking": "yes"}, "thinking: must be true or false"),
    ("trimming", {"compress": True}, "compress: unknown trimming step"),
    ("trimming", {"models": {"m": []}}, "models.m: must be an object of trimming step switches"),
    ("trim_keep_turns", 0, "trim_keep_turns"),
    ("trim_max_result_chars", 10, "trim_max_result_chars"),
])
def test_bad_trimming_settings_are_refused(client, admin_headers, key, value, says):
    r = client.post("/_admin/settings", json={"key": key, "value": value}, headers=admin_headers)
    assert r.status_code == 400
    assert says in r.get_data(as_text=True)


def test_an_old_failure_is_shortened_like_any_result_keeping_its_end():
    request = session(8)[-1]
    failing = request["messages"][2]["content"][0]
    failing["is_error"] = True
    failing["content"] = pytest_output(0) + "\nFAILED tests/test_mod0.py::test_7 - AssertionError: 3 != 4"
    shortened = trim(request, TrimOptions())[0]["messages"][2]["content"][0]
    assert shortened["is_error"] is True and "[zengate trimmed" in shortened["content"]
    assert shortened["content"].endswith("AssertionError: 3 != 4")


def test_a_body_too_short_to_have_old_turns_is_not_read():
    from zengate.steering.trim import could_trim

    assert not could_trim({"messages": [{"role": "user", "content": "hi"}]}, 4)
    assert could_trim(session(8)[-1], 4) and not could_trim(session(3)[-1], 4)
    assert could_trim({"input": [{}] * 8}, 4) and could_trim({"contents": [{}] * 9}, 4)
    assert not could_trim({"contents": "text"}, 4)
    for n in range(12):  # never says no where trim would act
        request = session(n)[-1]
        if trim(request, TrimOptions())[0] is not None:
            assert could_trim(request, 4)
