"""Rewriting rules (zengate/steering/rewrite.py): the pure functions on recorded client requests, the
answer guard on streams and whole answers, the models file's section, and the rules through the app
for Anthropic and OpenAI clients, streamed and not (what the upstream got, what the client got, the
log row), with the setting's bad input."""

from __future__ import annotations

import copy
import json
import os
import random

import pytest

from tests.support.fake_upstream import anthropic_text, anthropic_tool_use, openai_text
from tests.support.fixtures import load_fixture
from tests.unit.test_api_guards import last_row, sse
from zengate.dialects.registry import CLIENT_DIALECTS
from zengate.exchange.catalog import ModelsFileError, parse_models_file
from zengate.exchange.form import answer_events, fold_events, grammar_problems
from zengate.steering import rewrite
from zengate.steering.rewrite import OutputRewriter, check_setting, compile_rules, rewrite_request, rules_for

ANTHROPIC = {"anthropic-version": "2023-06-01"}


def recorded_form(name: str, dialect: str) -> dict:
    """The last request of a recording, read into the internal form."""
    body = [r["body"] for r in load_fixture(name)["requests"] if isinstance(r.get("body"), dict)][-1]
    if dialect == "gemini":
        body = {**body, "model": "gemini-2.5-flash"}
    return CLIENT_DIALECTS[dialect].parse_request(body)


def rules(**specs: dict) -> tuple[rewrite.Rule, ...]:
    return compile_rules(specs)


def texts(content) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [b["text"] for b in content if b.get("type") == "text"]


# --- the request -----------------------------------------------------------------------------------

def test_claude_codes_system_prompt_and_every_user_turn_are_rewritten_and_the_form_is_not_touched():
    form = recorded_form("cc_tool_bash.json", "anthropic")
    before = copy.deepcopy(form)
    new, fired = rewrite_request(form, rules(
        agent={"where": "system", "action": "replace", "pattern": "Claude agent", "text": "coding agent"},
        house={"where": "system", "action": "append", "text": "\nAnswer in English."},
        lead={"where": "user", "action": "prepend", "text": "[team] "},
        echo={"where": "user", "action": "replace", "match": "regex", "pattern": r"\becho (\w+)",
              "text": r"printf '\1\\n'"},
    ))
    assert form == before  # shared with the request log and every attempt
    assert fired == ("agent", "house", "lead", "echo")
    system = new["system"]
    assert system[1]["text"] == "You are a coding agent, built on Anthropic's Claude Agent SDK." \
        and system[1]["cache_control"] == {"type": "ephemeral"}
    assert system[-1]["text"].endswith("\nAnswer in English.") and system[0] == form["system"][0]
    users = [m for m in new["messages"] if m["role"] == "user"]
    first, results = users[0], users[-1]
    assert texts(first["content"])[0].startswith("[team] \n budget") and texts(first["content"])[-1] == \
        "run printf 'hi\\n'"
    assert results is form["messages"][-1]  # tool results are no user message: the same object
    assert [m["role"] for m in new["messages"]] == [m["role"] for m in form["messages"]]
    assert new["messages"][2] is form["messages"][2]  # the assistant turn


def test_rewriting_the_same_conversation_twice_gives_the_same_prefix():
    """Every user turn alike: the turns an earlier request rewrote read the same in the next one."""
    form = recorded_form("oc_tool_read.json", "openai")
    rule = rules(sign={"where": "user", "action": "append", "text": "\n(sent via the gateway)"})
    shorter = {**form, "messages": form["messages"][:1]}
    one, _ = rewrite_request(shorter, rule)
    two, _ = rewrite_request(form, rule)
    assert two["messages"][0] == one["messages"][0]
    assert texts(two["messages"][0]["content"])[-1].endswith("(sent via the gateway)")


@pytest.mark.parametrize("name, dialect", [("cc_tool_bash.json", "anthropic"), ("oc_tool_read.json", "openai"),
                                           ("cx_tool_exec_command.json", "responses"),
                                           ("gm_tool_read_file.json", "gemini")])
def test_every_clients_system_prompt_is_replaced_whole_from_a_file(tmp_path, name, dialect):
    prompt = tmp_path / "prompt.md"
    prompt.write_text("You are the house agent. Backslashes \\1 stay.")
    form = recorded_form(name, dialect)
    new, fired = rewrite_request(form, rules(house={"where": "system", "action": "replace", "file": str(prompt)}))
    assert fired == ("house",)
    assert texts(new["system"]) == ["You are the house agent. Backslashes \\1 stay."]
    if isinstance(form["system"], list) and any("cache_control" in b for b in form["system"]):
        assert new["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert new["messages"] is form["messages"]


def test_a_file_is_read_again_when_it_changes_and_its_last_text_kept_when_it_goes(tmp_path):
    prompt = tmp_path / "prompt.md"
    prompt.write_text("first")
    rule = rules(house={"where": "system", "action": "replace", "file": str(prompt)})
    form = {"model": "m", "system": "old", "messages": [{"role": "user", "content": "hi"}]}
    assert rewrite_request(form, rule)[0]["system"] == "first"
    prompt.write_text("second, longer")
    os.utime(prompt, ns=(1, 2_000_000_000_000_000_000))
    assert rewrite_request(form, rule)[0]["system"] == "second, longer"
    prompt.unlink()
    assert rewrite_request(form, rule)[0]["system"] == "second, longer"
    # the setting still passes its check (as when the settings reload): the other rules go on too
    assert check_setting({"house": {"where": "system", "action": "replace", "file": str(prompt)}}) is None
    never = str(tmp_path / "never-there.md")
    assert "cannot be read" in check_setting({"typo": {"where": "system", "action": "replace", "file": never}})


def test_a_system_prompt_is_made_when_the_client_sent_none_and_mid_conversation_ones_are_rewritten():
    form = recorded_form("cc_tool_bash.json", "anthropic")
    bare = {k: v for k, v in form.items() if k != "system"}
    new, fired = rewrite_request(bare, rules(
        lead={"where": "system", "action": "prepend", "text": "Be brief. "},
        zen={"where": "system", "action": "replace", "pattern": "stream zen", "text": "STREAM ZEN"}))
    assert new["system"] == "Be brief. " and fired == ("lead", "zen")
    assert new["messages"][1]["content"].startswith("\n STREAM ZEN write key")


def test_nothing_to_change_gives_none_so_the_clients_body_can_go_up_as_it_is():
    form = recorded_form("cc_tool_bash.json", "anthropic")
    assert rewrite_request(form, rules(
        x={"where": "user", "action": "replace", "pattern": "no such words", "text": "y"},
        y={"where": "assistant", "action": "append", "text": "!"})) == (None, ())


def test_a_regex_may_use_groups_and_inline_flags():
    form = {"model": "m", "messages": [{"role": "user", "content": "Deploy To PROD now, deploy to prod later"}]}
    new, _ = rewrite_request(form, rules(
        prod={"where": "user", "action": "replace", "match": "regex", "pattern": r"(?i)deploy to (prod)",
              "text": r"deploy to staging (not \1)"}))
    assert new["messages"][0]["content"] == "deploy to staging (not PROD) now, deploy to staging (not prod) later"


def test_later_replacements_see_earlier_ones_but_never_prepended_or_appended_text():
    form = {"model": "m", "messages": [{"role": "user", "content": "a b"}]}
    new, fired = rewrite_request(form, rules(
        edge={"where": "user", "action": "append", "text": " b"},
        one={"where": "user", "action": "replace", "pattern": "a", "text": "b"},
        two={"where": "user", "action": "replace", "pattern": "b", "text": "c"}))
    assert new["messages"][0]["content"] == "c c b" and fired == ("edge", "one", "two")  # in rule order


@pytest.mark.parametrize("models, keys, asked, sent_to, key, applies", [
    (["claude-*"], None, "claude-sonnet-4-5", "big-pickle", None, True),
    (["claude-*"], None, "big-pickle", "big-pickle", None, False),
    (["big-pickle"], None, "claude-sonnet-4-5", "big-pickle", None, True),  # the model it is sent to
    (None, ["sk-zen-abcdef"], "big-pickle", "big-pickle", "sk-zen-abcdef", True),
    (None, ["sk-zen-abcdef"], "big-pickle", "big-pickle", "sk-zen-zzzzzz", False),
    (None, ["sk-zen-abcdef"], "big-pickle", "big-pickle", None, False),
    (["gpt-*"], ["sk-zen-abcdef"], "big-pickle", "big-pickle", "sk-zen-abcdef", False),
])
def test_rules_are_scoped_by_model_and_key(models, keys, asked, sent_to, key, applies):
    spec = {"where": "user", "action": "prepend", "text": "x", **({"models": models} if models else {}),
            **({"keys": keys} if keys else {})}
    assert bool(rules_for({"r": spec}, None, models=(asked, sent_to), key=key)) is applies


def test_the_settings_rules_replace_the_models_files_of_the_same_id_and_follow_the_others():
    parsed = parse_models_file("""
rewrite_rules:
  tone: {where: system, action: append, text: " Be terse."}
  sign: {where: assistant, action: append, text: " -- file"}
""")
    chosen = rules_for({"sign": {"where": "assistant", "action": "append", "text": " -- setting"},
                        "more": {"where": "user", "action": "prepend", "text": "> "}},
                       parsed.rewrite_rules, models=("m",), key=None)
    assert [(r.id, r.text) for r in chosen] == [("tone", " Be terse."), ("sign", " -- setting"), ("more", "> ")]
    assert rules_for({}, None, models=("m",), key=None) == ()


def test_a_bad_rule_in_the_models_file_stops_it_naming_the_rule():
    with pytest.raises(ModelsFileError, match=r"rewrite_rules: tone: action must be one of replace, prepend"):
        parse_models_file("rewrite_rules:\n  tone: {where: system, action: shout, text: x}\n")


@pytest.mark.parametrize("value, says", [
    ([], "must be an object of rules by id"),
    ({"r": "x"}, "r: must be an object"),
    ({"r": {"where": "tools", "action": "append", "text": "x"}}, "r: where must be one of system, user, assistant"),
    ({"r": {"where": "user", "action": "append", "text": "x", "colour": 1}}, "r: unknown fields ['colour']"),
    ({"r": {"where": "user", "action": "replace", "text": "x"}}, "r: a replace rule needs a pattern"),
    ({"r": {"where": "user", "action": "append", "pattern": "a", "text": "x"}}, "r: pattern and match are for"),
    ({"r": {"where": "user", "action": "append"}}, "r: give either text or file"),
    ({"r": {"where": "user", "action": "append", "text": ""}}, "r: text must not be empty"),
    ({"r": {"where": "user", "action": "replace", "match": "glob", "pattern": "a", "text": "b"}},
     "r: match must be literal or regex"),
    ({"bad-re": {"where": "user", "action": "replace", "match": "regex", "pattern": "(unclosed", "text": "b"}},
     "bad-re: pattern or text is not a valid regular expression replacement (missing ), unterminated"),
    ({"r": {"where": "user", "action": "replace", "match": "regex", "pattern": "a", "text": r"\2"}},
     "r: pattern or text is not a valid regular expression replacement (invalid group reference 2"),
    ({"r": {"where": "system", "action": "replace", "file": "prompt.md"}}, "r: file must be an absolute path"),
    ({"r": {"where": "system", "action": "replace", "file": "/nonexistent/prompt.md"}},
     "r: file /nonexistent/prompt.md cannot be read (No such file or directory)"),
    ({"r": {"where": "user", "action": "append", "text": "x", "models": "claude-*"}},
     "r: models must be a list of non-empty strings"),
])
def test_bad_rules_are_named_with_what_is_wrong(value, says):
    assert says in (check_setting(value) or ""), check_setting(value)


# --- the answer ------------------------------------------------------------------------------------

ANSWER_RULES = dict(
    secret={"where": "assistant", "action": "replace", "pattern": "Project Falcon", "text": "the project"},
    year={"where": "assistant", "action": "replace", "match": "regex", "pattern": r"\b20(\d\d)\b", "text": r"'\1"},
    hello={"where": "assistant", "action": "prepend", "text": "> "},
    bye={"where": "assistant", "action": "append", "text": "\n-- via zengate"},
)


def answer_of(*blocks: dict, stop: str = "end_turn") -> dict:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": list(blocks),
            "stop_reason": stop, "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 5}}


def split_stream(answer: dict, seed: int) -> list:
    """``answer``'s stream with every text delta cut into random pieces."""
    rng = random.Random(seed)
    out = []
    for name, data in answer_events(answer):
        delta = data.get("delta") or {}
        if delta.get("type") == "text_delta":
            text = delta["text"]
            while text:
                n = rng.randint(1, 4)
                out.append((name, {**data, "delta": {**delta, "text": text[:n]}}))
                text = text[n:]
        else:
            out.append((name, data))
    return out


ANSWERS = [
    answer_of({"type": "text", "text": "Project Falcon ships in 2026; Project Falcon, not Project Falco."}),
    answer_of({"type": "thinking", "thinking": "Project Falcon", "signature": "s"},
              {"type": "text", "text": "Project Falcon in 2025"}),
    answer_of({"type": "text", "text": "Running it for Project Falcon."},
              {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls 2026"}}, stop="tool_use"),
    answer_of({"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}, stop="tool_use"),
]


@pytest.mark.parametrize("answer", ANSWERS)
def test_a_streamed_answer_is_rewritten_as_the_whole_answer_is(answer):
    notes: list = []
    whole = OutputRewriter(rules(**ANSWER_RULES), lambda *n: notes.append(n)).answer(answer)
    for seed in range(20):
        guard = OutputRewriter(rules(**ANSWER_RULES), lambda *n: None)
        events = split_stream(answer, seed)
        out = [e for piece in range(0, len(events), 3) for e in guard.feed(events[piece:piece + 3])]
        assert grammar_problems(out) == []
        assert fold_events(out)["content"] == whole["content"], seed


def test_the_whole_answers_text_and_notes():
    notes: list = []
    first = OutputRewriter(rules(**ANSWER_RULES), lambda *n: notes.append(n)).answer(ANSWERS[0])
    assert first["content"][0]["text"] == "> the project ships in '26; the project, not Project Falco.\n-- via zengate"
    assert notes == [("rewrite", "fired", "answer: secret, year, hello, bye")]
    ends_with_call = OutputRewriter(rules(**ANSWER_RULES), lambda *n: None).answer(ANSWERS[2])
    assert [b["type"] for b in ends_with_call["content"]] == ["text", "tool_use", "text"]
    assert ends_with_call["content"][1] is ANSWERS[2]["content"][1]  # tool calls are not text
    assert OutputRewriter(rules(**ANSWER_RULES), lambda *n: None).answer(ANSWERS[3]) is ANSWERS[3]
    assert ANSWERS[1]["content"][0]["thinking"] == "Project Falcon"


def test_a_literal_holds_back_only_what_could_begin_a_match():
    guard = OutputRewriter(rules(secret=ANSWER_RULES["secret"]), lambda *n: None)
    start = answer_events(answer_of({"type": "text", "text": ""}))[:2]
    guard.feed(start)

    def sent(text: str) -> str:
        out = guard.feed([("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                   "delta": {"type": "text_delta", "text": text}})])
        return "".join(d["delta"]["text"] for _, d in out)

    assert sent("We call it Proj") == "We call it "  # "Proj" may begin "Project Falcon"
    assert sent("ect Falcon and more text") == "the project and more text"
    assert sent(", Pro") == ", "
    assert sent("ject Falc") == ""
    out = guard.feed([("content_block_stop", {"type": "content_block_stop", "index": 0})])
    assert [d.get("delta", {}).get("text") for _, d in out] == ["Project Falc", None]


def test_a_regex_holds_its_text_block_to_the_end_and_nothing_is_reordered():
    guard = OutputRewriter(rules(year=ANSWER_RULES["year"]), lambda *n: None)
    events = split_stream(ANSWERS[2], 1)
    out = guard.feed(events)
    names = [n for n, _ in out]
    assert names[:2] == ["message_start", "content_block_start"]
    first_stop = names.index("content_block_stop")
    assert names[2:first_stop] == ["content_block_delta"]  # the whole text in one delta, at the block's end
    assert [n for n, _ in events if n != "content_block_delta"] == [n for n in names if n != "content_block_delta"]


# --- through the app -----------------------------------------------------------------------------

APP_RULES = {
    "house-style": {"where": "system", "action": "append", "text": "\nAlways answer in English."},
    "ticket": {"where": "user", "action": "replace", "match": "regex", "pattern": r"\bJIRA-(\d+)",
               "text": r"ticket \1"},
    "codename": {"where": "assistant", "action": "replace", "pattern": "Falcon", "text": "the project"},
    "sign": {"where": "assistant", "action": "append", "text": " [gw]"},
}


REPLY = "Falcon is ready; Falcon ships."
SEEN = "the project is ready; the project ships. [gw]"


def guards_of(row: dict) -> list[tuple[str, str, str]]:
    return [(g["guard"], g["action"], g["why"]) for g in row.get("guards") or []]


@pytest.mark.parametrize("model, reply", [("minimax-m2.5-free", anthropic_text(REPLY, chunks=7)),
                                          ("big-pickle", openai_text(REPLY, chunks=7))])
@pytest.mark.parametrize("stream", [False, True])
def test_an_anthropic_client_on_either_upstream(client, upstream, setting, admin_headers, model, reply, stream):
    setting("rewrite_rules", APP_RULES)
    upstream.script(model, reply)
    body = {"model": model, "max_tokens": 100, "stream": stream, "system": "You are helpful.",
            "messages": [{"role": "user", "content": "Look at JIRA-42"},
                         {"role": "assistant", "content": "Done."},
                         {"role": "user", "content": [{"type": "text", "text": "And JIRA-43?"}]}]}
    r = client.post("/v1/messages", json=body, headers=ANTHROPIC)
    assert r.status_code == 200
    if stream:
        events = sse(r.get_data())
        text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    else:
        text = "".join(b["text"] for b in r.get_json()["content"] if b["type"] == "text")
    assert text == SEEN
    sent = upstream.requests[-1].body
    if model == "minimax-m2.5-free":  # Anthropic's own API
        assert sent["system"] == "You are helpful.\nAlways answer in English."
        assert [m["content"] for m in sent["messages"]] == [
            "Look at ticket 42", "Done.", [{"type": "text", "text": "And ticket 43?"}]]
    else:
        assert sent["messages"][0] == {"role": "system", "content": "You are helpful.\nAlways answer in English."}
        assert "Look at ticket 42" in json.dumps(sent["messages"][1]) and "ticket 43" in json.dumps(sent)
    assert body["system"] == "You are helpful."  # the client's body is not changed in place
    assert guards_of(last_row(client, admin_headers)) == [
        ("rewrite", "fired", "house-style, ticket"), ("rewrite", "fired", "answer: codename, sign")]


@pytest.mark.parametrize("stream", [False, True])
def test_an_openai_client_on_its_own_api_and_on_anthropics(client, upstream, setting, admin_headers, stream):
    setting("rewrite_rules", APP_RULES)
    for model, reply in (("big-pickle", openai_text(REPLY, chunks=5)),
                         ("minimax-m2.5-free", anthropic_text(REPLY, chunks=5))):
        upstream.script(model, reply)
        r = client.post("/v1/chat/completions", json={
            "model": model, "stream": stream,
            "messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "JIRA-7 please"}]})
        assert r.status_code == 200
        if stream:
            text = "".join(c["choices"][0]["delta"].get("content") or "" for c in sse(r.get_data()) if c.get("choices"))
        else:
            text = r.get_json()["choices"][0]["message"]["content"]
        assert text == SEEN
        sent = upstream.requests[-1].body
        blob = json.dumps(sent)
        assert "ticket 7 please" in blob and "JIRA-7" not in blob and "Be kind.\\nAlways answer in English." in blob
        assert guards_of(last_row(client, admin_headers)) == [
            ("rewrite", "fired", "house-style, ticket"), ("rewrite", "fired", "answer: codename, sign")]


def test_a_keys_rule_applies_to_that_key_only_and_without_rules_the_body_goes_up_as_it_came(
        client, upstream, setting, admin_headers):
    body = {"model": "big-pickle", "messages": [{"role": "user", "content": "hi JIRA-1"}], "temperature": 0.5}
    setting("rewrite_rules", {"elsewhere": {**APP_RULES["ticket"], "models": ["claude-*"]}})
    client.post("/v1/chat/completions", json=body)
    assert upstream.requests[-1].body["messages"] == body["messages"]
    assert "guards" not in last_row(client, admin_headers)
    setting("require_auth", True)
    one = client.post("/_admin/api-keys", json={"name": "one"}, headers=admin_headers).get_json()
    two = client.post("/_admin/api-keys", json={"name": "two"}, headers=admin_headers).get_json()
    setting("rewrite_rules", {"ticket": {**APP_RULES["ticket"], "keys": [one["prefix"]]}})
    for key, rewritten in ((one["key"], True), (two["key"], False)):
        r = client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200
        assert ("ticket 1" in json.dumps(upstream.requests[-1].body)) is rewritten
        assert bool(last_row(client, admin_headers).get("guards")) is rewritten


def test_a_system_prompt_from_a_file_reaches_the_upstream(client, upstream, setting, tmp_path):
    prompt = tmp_path / "system.md"
    prompt.write_text("You are the house agent.")
    setting("rewrite_rules", {"house": {"where": "system", "action": "replace", "file": str(prompt),
                                        "models": ["claude-*"]}})
    r = client.post("/v1/messages", json={"model": "claude-sonnet-4-5", "max_tokens": 10, "system": [
        {"type": "text", "text": "Long client prompt", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"}]}, headers=ANTHROPIC)
    assert r.status_code == 200
    assert "You are the house agent." in json.dumps(upstream.requests[-1].body)
    assert "Long client prompt" not in json.dumps(upstream.requests[-1].body)


def test_a_tool_call_answer_keeps_its_call_and_gets_the_appended_text(client, upstream, setting):
    setting("rewrite_rules", APP_RULES)
    upstream.script("minimax-m2.5-free", anthropic_tool_use([("Bash", {"command": "ls Falcon"})], text="Falcon:"))
    events = sse(client.post("/v1/messages", json={"model": "minimax-m2.5-free", "max_tokens": 10, "stream": True,
                                                   "messages": [{"role": "user", "content": "ls"}]},
                             headers=ANTHROPIC).get_data())
    kinds = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    assert kinds == ["text", "tool_use", "text"]
    text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    arguments = "".join(e["delta"].get("partial_json", "") for e in events if e["type"] == "content_block_delta")
    assert text == "the project: [gw]" and json.loads(arguments) == {"command": "ls Falcon"}


@pytest.mark.parametrize("value, says", [
    ({"r": {"where": "user", "action": "append"}}, "rewrite_rules: r: give either text or file"),
    ({"bad": {"where": "user", "action": "replace", "match": "regex", "pattern": "(x", "text": "y"}},
     "rewrite_rules: bad: pattern or text is not a valid regular expression replacement"),
    ({"house": {"where": "system", "action": "replace", "file": "/nonexistent/system.md"}},
     "rewrite_rules: house: file /nonexistent/system.md cannot be read"),
    ("[]", "rewrite_rules: must be an object"),
])
def test_bad_rules_are_refused_by_the_admin_api_and_nothing_changes(client, admin_headers, value, says):
    before = client.get("/_admin/settings", headers=admin_headers).get_json()["settings"]["rewrite_rules"]
    r = client.post("/_admin/settings", json={"key": "rewrite_rules", "value": value}, headers=admin_headers)
    assert r.status_code == 400 and says in r.get_json()["error"]["message"], r.get_json()
    assert client.get("/_admin/settings", headers=admin_headers).get_json()["settings"]["rewrite_rules"] == before


@pytest.mark.parametrize("pattern", ["aa", "aba", "abab", "ab", "b"])
def test_a_streamed_literal_replaces_exactly_what_str_replace_does(pattern):
    rng = random.Random(pattern)
    rule = rules(r={"where": "assistant", "action": "replace", "pattern": pattern, "text": "<X>"})
    for _ in range(200):
        text = "".join(rng.choice("ab ") for _ in range(rng.randint(0, 30)))
        answer = answer_of({"type": "text", "text": text})
        out = OutputRewriter(rule, lambda *n: None).feed(split_stream(answer, rng.randint(0, 10**6)))
        assert fold_events(out)["content"][0]["text"] == text.replace(pattern, "<X>"), text
