"""Quota savers (zengate/steering/housekeeping.py): each client's housekeeping call recognised from
its real prompt or recorded shape, near misses left alone, and the local answer through each
client API in the app, with no upstream call, noted in the request log and counted in the stats."""

from __future__ import annotations

import json

import pytest

from tests.support.fixtures import load_fixture
from tests.unit.test_api_guards import last_row, sse
from zengate.dialects import registry
from zengate.dialects.gemini.request import parse_request as parse_gemini
from zengate.steering import housekeeping as hk

CLAUDE_UA = {"User-Agent": "claude-cli/2.1.330 (external, cli)", "anthropic-version": "2023-06-01"}
GEMINI_UA = {"User-Agent": "GeminiCLI-tui/0.61.0/gemini-3.1-pro-preview (linux; x64; terminal)"}
ANTHROPIC = {"anthropic-version": "2023-06-01"}

# Claude Code 2.1.330's session-title prompt (generate_session_title), first and last paragraphs.
CC_TITLE_SYSTEM = (
    "You are naming a coding session so the user can pick it out of a long list of sessions. The title is a "
    "name for what the session is about, not a sentence describing the task: a short noun phrase of two to "
    "five words, in sentence case.\n\nReturn JSON with a single \"title\" field. Capitalize the first letter "
    "of the title.")
CC_TITLE_SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"],
                   "additionalProperties": False}
CC_OLD_TITLE_SYSTEM = (
    "Generate a concise, sentence-case title (3-7 words) that captures the main topic or goal of this coding "
    "session. The title should be clear enough that the user recognizes the session in a list. Use sentence "
    "case: capitalize only the first word and proper nouns.\n\nReturn JSON with a single \"title\" field.")
CC_TOPIC_SYSTEM = (
    "Analyze if this message indicates a new conversation topic. If it does, extract a 2-3 word title that "
    "captures the new topic. Format your response as a JSON object with two fields: 'isNewTopic' (boolean) and "
    "'title' (string, or null if isNewTopic is false). Only include these fields, no other text.")
CC_SUGGESTION = (
    "[SUGGESTION MODE: Suggest what the user might naturally type next into Claude Code.]\n\nFIRST: Look at the "
    "user's recent messages and original request.\n\nFormat: 2-12 words, match the user's style. Or nothing.\n\n"
    "Reply with ONLY the suggestion, no quotes or explanation.")
CC_POLICY = (
    "<policy_spec>\n# Claude Code Code Bash command prefix detection\n\n## Command prefix extraction examples\n"
    "- git status => git status\n- git push => none\n- git status`ls` => command_injection_detected\n"
    "</policy_spec>\n\nThe user has allowed certain command prefixes to be run, and will otherwise be asked to "
    "approve or deny the command.\nYour task is to determine the command prefix for the following command.\n"
    "Note that not every command has a prefix. If a command has no prefix, return \"none\".\n\n"
    "Command: git push --force origin main")
GEMINI_NEXT_SPEAKER = (
    "Analyze *only* the content and structure of your immediately preceding response (your last turn in the "
    "conversation history). Based *strictly* on that response, determine who should logically speak next: "
    "the 'user' or the 'model' (you).")
NEXT_SPEAKER_SCHEMA = {"type": "object", "properties": {
    "reasoning": {"type": "string"}, "next_speaker": {"type": "string", "enum": ["user", "model"]}},
    "required": ["reasoning", "next_speaker"]}
GEMINI_LOOP_SYSTEM = ("You are a diagnostic agent that determines whether a conversational AI assistant is stuck "
                      "in an unproductive loop. Analyze the conversation history.")
LOOP_SCHEMA = {"type": "object", "properties": {
    "unproductive_state_analysis": {"type": "string"}, "unproductive_state_confidence": {"type": "number"}},
    "required": ["unproductive_state_analysis", "unproductive_state_confidence"]}


def cc_title_body(stream: bool = True) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 32000, "stream": stream,
            "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.330; cc_entrypoint=cli;"},
                       {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
                       {"type": "text", "text": CC_TITLE_SYSTEM}],
            "messages": [{"role": "user", "content": "<session>\nfix the flaky test in tests/test_wire.py please\n"
                          "</session>\n\nWrite the title in the predominant language of the session."}],
            "output_config": {"format": {"type": "json_schema", "schema": CC_TITLE_SCHEMA}}}


def quota_body(**more) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 1, "messages": [{"role": "user", "content": "quota"}], **more}


def cc_turn() -> dict:
    """Claude Code's recorded agent turn (24 tools)."""
    return next(r["body"] for r in load_fixture("cc_tool_bash.json")["requests"]
                if isinstance(r.get("body"), dict) and r["body"].get("tools"))


def suggestion_body() -> dict:
    body = cc_turn()
    return {**body, "messages": [*body["messages"], {"role": "assistant", "content": "Done: the test passes."},
                                 {"role": "user", "content": [{"type": "text", "text": CC_SUGGESTION}]}]}


def gemini_router_request() -> tuple[dict, dict]:
    """Gemini CLI's recorded router call (numerical classifier) and its headers."""
    recorded = load_fixture("gm_basic_say_hi.json")["requests"][0]
    return recorded["body"], dict(recorded["headers"])


def anthropic_form(body: dict) -> dict:
    return registry.get("anthropic").parse_request(body)


def openai_form(body: dict) -> dict:
    return registry.get("openai").parse_request(body)


# --- recognising ---------------------------------------------------------------------------------

def test_claude_codes_quota_probe_gets_a_one_token_answer():
    chore = hk.recognise(anthropic_form(quota_body()), CLAUDE_UA)
    assert chore is not None and chore.kind == "quota_probe" and chore.stop_reason == "max_tokens"


def test_claude_codes_session_title_is_json_that_fits_the_schema():
    chore = hk.recognise(anthropic_form(cc_title_body()), CLAUDE_UA)
    assert chore is not None and chore.kind == "title"
    answer = json.loads(chore.text)
    assert answer == {"title": "Flaky test in tests/test_wire.py"}
    assert hk.fits(answer, CC_TITLE_SCHEMA)


def test_the_older_claude_code_title_prompt_without_a_schema_still_gets_json():
    body = {**cc_title_body(), "system": CC_OLD_TITLE_SYSTEM}
    del body["output_config"]
    chore = hk.recognise(anthropic_form(body), CLAUDE_UA)
    assert chore is not None and json.loads(chore.text) == {"title": "Flaky test in tests/test_wire.py"}


def test_claude_codes_topic_check_continues_its_prefill_and_says_no_new_topic():
    body = {"model": "claude-3-5-haiku-20241022", "max_tokens": 512, "system": [
        {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
        {"type": "text", "text": CC_TOPIC_SYSTEM}],
        "messages": [{"role": "user", "content": "add retries to the upstream client"},
                     {"role": "assistant", "content": "{"}]}
    chore = hk.recognise(anthropic_form(body), CLAUDE_UA)
    assert chore is not None and chore.kind == "topic"
    assert json.loads("{" + chore.text) == {"isNewTopic": False, "title": None}


def test_claude_codes_prompt_suggestion_is_answered_with_silence():
    chore = hk.recognise(anthropic_form(suggestion_body()), CLAUDE_UA)
    assert chore is not None and chore.kind == "suggestion" and chore.text == ""


def test_the_command_prefix_check_is_answered_none_so_the_user_is_asked():
    body = {"model": "claude-3-5-haiku-20241022", "max_tokens": 512,
            "system": "Your task is to process Bash commands that an AI coding agent wants to run.",
            "messages": [{"role": "user", "content": CC_POLICY}]}
    chore = hk.recognise(anthropic_form(body), CLAUDE_UA)
    assert chore is not None and chore.kind == "command_prefix" and chore.text == "none"


@pytest.mark.parametrize("file, expected", [("oc_basic_say_hi.json", "Say hi"), ("oc_tool_read.json", None)])
def test_opencodes_recorded_title_call_is_recognised_by_its_shape(file, expected):
    recorded = load_fixture(file)["requests"][0]
    chore = hk.recognise(openai_form(recorded["body"]), dict(recorded["headers"]))
    assert chore is not None and chore.kind == "title"
    assert chore.text == expected or (expected is None and 0 < len(chore.text) <= 50 and "\n" not in chore.text)


def test_gemini_clis_recorded_router_call_keeps_the_users_model():
    body, headers = gemini_router_request()
    chore = hk.recognise(parse_gemini({**body, "model": "gemini-3.5-flash-lite"}), headers)
    assert chore is not None and chore.kind == "router"
    assert json.loads(chore.text)["complexity_score"] == 100


def test_gemini_clis_next_speaker_and_loop_checks():
    history = [{"role": "user", "parts": [{"text": "list the files"}]},
               {"role": "model", "parts": [{"text": "Here they are: a.py, b.py."}]}]
    speaker = parse_gemini({"model": "gemini-2.5-flash", "contents": [
        *history, {"role": "user", "parts": [{"text": GEMINI_NEXT_SPEAKER}]}], "generationConfig": {
        "responseMimeType": "application/json", "responseJsonSchema": NEXT_SPEAKER_SCHEMA}})
    chore = hk.recognise(speaker, GEMINI_UA)
    assert chore is not None and json.loads(chore.text)["next_speaker"] == "user"
    loop = parse_gemini({"model": "gemini-2.5-flash", "contents": history,
                         "systemInstruction": {"parts": [{"text": GEMINI_LOOP_SYSTEM}]}, "generationConfig": {
                             "responseMimeType": "application/json", "responseJsonSchema": LOOP_SCHEMA}})
    chore = hk.recognise(loop, GEMINI_UA)
    assert chore is not None and chore.kind == "loop_check"
    assert json.loads(chore.text)["unproductive_state_confidence"] == 0


# --- near misses ---------------------------------------------------------------------------------

@pytest.mark.parametrize("body, headers", [
    pytest.param(quota_body(max_tokens=2), CLAUDE_UA, id="quota-with-max_tokens-2"),
    pytest.param({**quota_body(), "messages": [{"role": "user", "content": "how much quota is left?"}]}, CLAUDE_UA,
                 id="a-question-about-quota"),
    pytest.param({**quota_body(), "tools": [{"name": "Bash", "input_schema": {"type": "object"}}]}, CLAUDE_UA,
                 id="quota-with-tools"),
    pytest.param({**cc_title_body(), "tools": cc_turn()["tools"]}, CLAUDE_UA, id="title-prompt-with-tools"),
    pytest.param({**cc_title_body(), "output_config": {"format": {"type": "json_schema", "schema": {
        "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}}}, CLAUDE_UA,
        id="title-prompt-with-a-schema-it-does-not-fit"),
    pytest.param({**suggestion_body(), "messages": [{"role": "user", "content": "what does [SUGGESTION MODE: do?"}]},
                 CLAUDE_UA, id="suggestion-marker-not-at-the-start"),
    pytest.param({"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": CC_SUGGESTION}]},
                 {"User-Agent": "Anthropic/Python 2.12.0"}, id="suggestion-text-from-another-client"),
    pytest.param({"model": "m", "max_tokens": 100, "messages": [
        {"role": "user", "content": "explain what <policy_spec> means in Claude Code"}]}, CLAUDE_UA,
        id="policy-spec-mentioned"),
    pytest.param({"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": CC_POLICY.rsplit(
        "\n\nCommand:", 1)[0] + "\n\nWhat does this prompt do?"}]}, CLAUDE_UA, id="policy-spec-without-a-command"),
    pytest.param({"model": "m", "max_tokens": 100, "system": "Stop when you are stuck in an unproductive loop.",
                  "messages": [{"role": "user", "content": "fix it"}]}, GEMINI_UA, id="loop-words-in-a-system-prompt"),
    pytest.param({"model": "m", "max_tokens": 100, "system": "Summarise what the user says.", "messages": [
        {"role": "user", "content": "Analyze if this message indicates a new conversation topic."}]}, CLAUDE_UA,
        id="topic-words-from-the-user"),
])
def test_near_misses_on_the_anthropic_api_go_upstream(body, headers):
    assert hk.recognise(anthropic_form(body), headers) is None


def test_near_misses_from_opencode_and_gemini_go_upstream():
    title = load_fixture("oc_basic_say_hi.json")["requests"][0]
    sdk = {"User-Agent": "OpenAI/Python 3.54.0"}
    assert hk.recognise(openai_form(title["body"]), sdk) is None  # the words, another client, another system
    agent_turn = load_fixture("oc_basic_say_hi.json")["requests"][1]
    assert hk.recognise(openai_form(agent_turn["body"]), dict(agent_turn["headers"])) is None
    body, headers = gemini_router_request()
    schema = body["generationConfig"]["responseJsonSchema"]
    extra = {**schema, "properties": {**schema["properties"], "model": {"type": "STRING"}}}
    odd = {**body, "generationConfig": {**body["generationConfig"], "responseJsonSchema": extra}}
    assert hk.recognise(parse_gemini({**odd, "model": "g"}), headers) is None  # another schema
    assert hk.recognise(parse_gemini({**body, "model": "g"}), {"User-Agent": "google-genai-sdk/3.4.0"}) is None


def test_no_recorded_agent_turn_or_sdk_call_is_taken_for_a_chore():
    """Every recorded request but the three chores (opencode's titles, Gemini CLI's router) goes upstream."""
    from pathlib import Path

    taken = []
    for path in sorted(Path(__file__).parents[1].joinpath("fixtures", "clients").glob("*.json")):
        for n, r in enumerate(json.loads(path.read_text())["requests"]):
            dialect = registry.for_path(r["path"])
            if r["method"] != "POST" or dialect is None or r["path"].endswith(("count_tokens", "input_tokens")) \
                    or ":countTokens" in r["path"]:
                continue
            body = {**r["body"], "model": r["body"].get("model") or r["path"].split("/models/")[1].split(":")[0]}
            if hk.worth_a_look(body) and hk.recognise(dialect.parse_request(body), dict(r["headers"])):
                taken.append(f"{path.stem}#{n}")
    assert taken == ["gm_basic_say_hi#0", "gm_tool_read_file#0", "oc_anthropic_provider#0", "oc_basic_say_hi#0",
                     "oc_tool_read#0"]


def test_the_cheap_look_skips_agent_turns_but_not_a_suggestion():
    assert not hk.worth_a_look(cc_turn())
    assert hk.worth_a_look(suggestion_body()) and hk.worth_a_look(quota_body())


def test_switches():
    assert not hk.switched_on({}, "title") and hk.switched_on({"all": True}, "title")
    assert not hk.switched_on({"all": True, "title": False}, "title") and hk.switched_on({"router": True}, "router")
    assert hk.check_setting({"all": True, "loop_check": False}) is None


# --- through the app -----------------------------------------------------------------------------

@pytest.fixture
def savers(setting):
    setting("quota_savers", {"all": True})


@pytest.mark.parametrize("stream", [False, True])
def test_an_anthropic_client_gets_its_title_from_the_gateway(client, upstream, savers, admin_headers, stream):
    r = client.post("/v1/messages?beta=true", json=cc_title_body(stream), headers=CLAUDE_UA)
    assert r.status_code == 200
    if stream:
        events = sse(r.get_data())
        assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
        text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    else:
        answer = r.get_json()
        assert answer["model"] == "claude-haiku-4-5" and answer["stop_reason"] == "end_turn"
        text = answer["content"][0]["text"]
    assert json.loads(text) == {"title": "Flaky test in tests/test_wire.py"}
    assert upstream.requests == []
    row = last_row(client, admin_headers)
    assert row["status"] == 200
    assert row["guards"] == [{"guard": "quota_saver", "action": "answered", "why": "title: Claude Code session title"}]


def test_the_quota_probe_ends_at_max_tokens_in_each_api(client, upstream, savers):
    answer = client.post("/v1/messages", json=quota_body(), headers=CLAUDE_UA).get_json()
    assert answer["stop_reason"] == "max_tokens" and answer["content"][0]["type"] == "text"
    chat = client.post("/v1/chat/completions", json={"model": "big-pickle", "max_tokens": 1,
                                                     "messages": [{"role": "user", "content": "quota"}]}).get_json()
    assert chat["choices"][0]["finish_reason"] == "length" and chat["object"] == "chat.completion"
    assert upstream.requests == []


def test_a_suggestion_fork_with_claude_codes_tools_gets_an_empty_answer(client, upstream, savers):
    r = client.post("/v1/messages?beta=true", json={**suggestion_body(), "model": "claude-sonnet-4-5",
                                                    "stream": True}, headers=CLAUDE_UA)
    events = sse(r.get_data())
    assert events[-1]["type"] == "message_stop"
    assert "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta") == ""
    assert not [e for e in events if e["type"] == "content_block_start" and
                e["content_block"]["type"] == "tool_use"]
    assert upstream.requests == []


def test_opencodes_title_call_streams_back_in_the_openai_shape(client, upstream, savers, admin_headers):
    recorded = load_fixture("oc_basic_say_hi.json")["requests"][0]
    headers = {k: v for k, v in recorded["headers"] if k.lower() in ("user-agent", "x-session-id")}
    chunks = sse(client.post("/v1/chat/completions", json={**recorded["body"], "model": "big-pickle"},
                             headers=headers).get_data())
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert text == "Say hi"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices") and
            c["choices"][0].get("finish_reason")] == ["stop"]
    assert chunks[-1].get("usage") is not None  # stream_options.include_usage was asked for
    assert upstream.requests == []
    assert last_row(client, admin_headers)["guards"][0]["why"] == "title: opencode title"


def test_gemini_clis_router_and_next_speaker_calls_are_answered_in_geminis_shape(client, upstream, savers):
    body, _ = gemini_router_request()
    r = client.post("/v1beta/models/gemini-3.5-flash-lite:generateContent", json=body, headers=GEMINI_UA)
    parts = r.get_json()["candidates"][0]["content"]["parts"]
    assert json.loads("".join(p.get("text", "") for p in parts))["complexity_score"] == 100
    speaker = {"contents": [{"role": "user", "parts": [{"text": "list the files"}]},
                            {"role": "model", "parts": [{"text": "a.py, b.py"}]},
                            {"role": "user", "parts": [{"text": GEMINI_NEXT_SPEAKER}]}],
               "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": NEXT_SPEAKER_SCHEMA}}
    chunks = sse(client.post("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", json=speaker,
                             headers=GEMINI_UA).get_data())
    text = "".join(p.get("text", "") for c in chunks for p in c["candidates"][0]["content"]["parts"])
    assert json.loads(text) == {"reasoning": "The gateway answered this check: the user speaks next.",
                                "next_speaker": "user"}
    assert upstream.requests == []


def test_off_by_default_and_a_kind_switched_off_goes_upstream(client, upstream, setting):
    assert client.post("/v1/messages", json=cc_title_body(False), headers=CLAUDE_UA).get_json()[
        "content"][0]["text"] == "Hello from upstream"
    setting("quota_savers", {"all": True, "title": False})
    assert client.post("/v1/messages", json=cc_title_body(False), headers=CLAUDE_UA).get_json()[
        "content"][0]["text"] == "Hello from upstream"
    assert client.post("/v1/messages", json=quota_body(), headers=CLAUDE_UA).get_json()["stop_reason"] == "max_tokens"
    assert len(upstream.requests) == 2


def test_saved_calls_are_counted_in_the_stats(client, upstream, savers, admin_headers):
    client.post("/v1/messages", json=quota_body(), headers=CLAUDE_UA)
    client.post("/v1/messages", json=cc_title_body(False), headers=CLAUDE_UA)
    client.post("/v1/messages", json={"model": "big-pickle", "max_tokens": 10,
                                      "messages": [{"role": "user", "content": "hi"}]}, headers=ANTHROPIC)
    summary = client.get("/_stats", headers=admin_headers).get_json()
    window = client.get("/_stats/timeseries?minutes=60", headers=admin_headers).get_json()
    assert summary["total_requests"] == 3 and summary["saved_calls"] == 2
    assert window["totals"]["saved_calls"] == 2 and len(upstream.requests) == 1


@pytest.mark.parametrize("value, says", [
    (True, "quota_savers: must be an object"),
    ({"titles": True}, "quota_savers: titles: unknown kind; known: all, quota_probe"),
    ({"all": "yes"}, "quota_savers: all: must be true or false"),
])
def test_bad_quota_saver_settings_are_refused_and_nothing_is_changed(client, admin_headers, value, says):
    before = client.get("/_admin/settings", headers=admin_headers).get_json()["settings"]["quota_savers"]
    r = client.post("/_admin/settings", json={"key": "quota_savers", "value": value}, headers=admin_headers)
    assert r.status_code == 400 and says in r.get_json()["error"]["message"], r.get_json()
    assert client.get("/_admin/settings", headers=admin_headers).get_json()["settings"]["quota_savers"] == before


@pytest.mark.parametrize("asked, title", [
    ("Fix the flaky login test in the auth module", "Flaky login test"),
    ("please add a README", "README"),
    ("hello world program in rust please", "Hello world program in rust"),
    ("<system-reminder>ctx</system-reminder>\n\nrefactor `parse_port` in proxypool.py", "parse_port in proxypool.py"),
    ("the", "The"),
    ("", "Coding session"),
])
def test_a_title_names_the_subject_not_the_request(asked, title):
    assert hk.title_from(asked, fallback="Coding session") == title
