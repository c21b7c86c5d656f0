"""The OpenAI Responses dialect's requests, answers, errors and token count (zengate.dialects.responses).

Requests: every recorded Codex and openai-SDK request parses into the internal form and renders
back into a request that keeps its items (ids, phases, reasoning with its encrypted content, calls
with their raw arguments, custom and namespaced calls), its tools (namespaces gathered again, hosted
tools in their places) and its own fields; bad input is a 400 naming the field. Answers: a
``response`` object parses into the form, and the form renders into a ``response`` the SDK's
``Response`` model validates. Across dialects: every recorded Responses request renders for the
Anthropic and chat upstreams, and every recorded Anthropic and chat request for a Responses
upstream, with none of the form's own keys left. The streams are test_responses_stream.py's.
"""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.responses import Response
from openai.types.responses.input_token_count_response import InputTokenCountResponse

from tests.support.fixtures import fixture_body, fixture_requests
from zengate.dialects.anthropic.shapes import GATEWAY_SIGNATURE, validate_messages_request
from zengate.dialects.base import Context, Dialect, Target
from zengate.dialects.errors import ProtocolError
from zengate.dialects.responses import (
    DIALECT,
    error_body,
    input_tokens,
    note_answer,
    parse_answer,
    render_answer,
    unserved_tools,
    validate_request,
)
from zengate.dialects.responses_request import parse_request, render_request
from zengate.exchange.form import without_extensions

RECORDED = fixture_requests("/v1/responses", ("cx_", "py_openai_responses_"))


def _target(body: dict, **kw: Any) -> Target:
    return Target(kw.pop("upstream_model", "gpt-5-up"), stream=bool(body.get("stream")), **kw)


def _normal_item(item: dict) -> dict:
    """An input item as the API reads it: ``type`` spelled out, string content as one text part, output
    text parts without their (output-only) annotations and logprobs."""
    item = copy.deepcopy(item)
    if item.get("type") is None and "role" in item:
        item["type"] = "message"
    if item.get("type") == "message":
        if isinstance(item["content"], str):
            kind = "output_text" if item["role"] == "assistant" else "input_text"
            item["content"] = [{"type": kind, "text": item["content"]}]
        for part in item["content"]:
            part.pop("annotations", None)
            part.pop("logprobs", None)
    return item


def _normal_input(value: Any) -> list[dict]:
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    return [_normal_item(item) for item in value]


def _names(form: dict) -> list[str]:
    return [tool["name"] for tool in form.get("tools") or []]


# --- the recorded requests ------------------------------------------------------------------------------

@pytest.mark.parametrize(("case", "body"), RECORDED, ids=[c for c, _ in RECORDED])
def test_recorded_request_renders_back_as_it_came(case: str, body: dict) -> None:
    form = parse_request(body)
    assert form["model"] == body["model"]
    roles = [m["role"] for m in form["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles)), "same-role turns are merged"
    context = Context(body["model"], "gpt-5-up")
    out = render_request(form, _target(body), context)
    assert out["model"] == "gpt-5-up"
    assert out["store"] is False
    assert out.get("stream") == body.get("stream")
    assert _normal_input(out["input"]) == _normal_input(body["input"])
    for key in ("tools", "tool_choice", "parallel_tool_calls", "reasoning", "text", "prompt_cache_key",
                "client_metadata", "instructions", "max_output_tokens", "include"):
        if key in body:
            assert out[key] == body[key], key
    assert {k for k in out if k not in body} <= {"store", "tool_choice", "parallel_tool_calls", "include"}


def test_codex_history_in_the_form() -> None:
    body = fixture_body("cx_gpt55_tool_roundtrip_reasoning_applypatch.json", 2)
    form = parse_request(body)
    assert [b["text"] for b in form["system"]] == [p["text"] for i in body["input"][:2] for p in i["content"]]
    assert all(set(b) == {"type", "text"} for b in form["system"])  # plain: any upstream takes them
    system_items = form["x_extras"]["responses"]["x_system"]
    assert [m["item"] for m in system_items] == [{"id": i["id"], "role": "developer"} for i in body["input"][:2]
                                                 for _ in i["content"]]
    assert [m["role"] for m in form["messages"]] == ["user", "assistant", "user", "assistant", "user"]
    assistant = form["messages"][1]["content"]
    reasoning = body["input"][4]
    assert assistant[0] == {"type": "thinking", "thinking": reasoning["summary"][0]["text"],
                            "signature": reasoning["encrypted_content"], "x_origin": "responses",
                            "x_item": {"id": reasoning["id"], "content": None}}
    call = body["input"][5]
    assert assistant[1]["type"] == "tool_use" and assistant[1]["id"] == call["call_id"]
    assert assistant[1]["input"] == json.loads(call["arguments"])
    assert assistant[1]["x_item"]["arguments"] == call["arguments"]
    result = form["messages"][2]["content"][0]
    assert result == {"type": "tool_result", "tool_use_id": call["call_id"], "content": body["input"][6]["output"],
                      "x_item": {"id": body["input"][6]["id"]}}
    patch = form["messages"][3]["content"][1]
    assert patch["x_kind"] == "custom" and patch["name"] == "apply_patch"
    assert patch["input"] == {"input": body["input"][8]["input"]}
    assert form["messages"][4]["content"][0]["content"] == body["input"][9]["output"]
    apply_patch = next(t for t in form["tools"] if t["name"] == "apply_patch")
    assert apply_patch["x_kind"] == "custom" and apply_patch["x_format"]["type"] == "grammar"
    assert apply_patch["input_schema"]["required"] == ["input"]
    assert apply_patch["x_format"]["definition"] in apply_patch["input_schema"]["properties"]["input"]["description"]
    assert form["x_effort"] == "medium" and form["x_cache_key"] == body["prompt_cache_key"]
    extras = form["x_extras"]["responses"]
    assert extras["store"] is False and extras["include"] == ["reasoning.encrypted_content"]
    assert extras["client_metadata"] == body["client_metadata"] and extras["x_text"] == {"verbosity": "low"}
    assert [tool["type"] for _, tool in extras["x_tools"]] == ["tool_search", "web_search"]
    assert unserved_tools(form) == ["tool_search", "web_search"]


def test_namespace_tools_are_flattened_and_gathered_again() -> None:
    body = fixture_body("cx_basic_say_hi.json", 0)
    namespace = next(t for t in body["tools"] if t["type"] == "namespace")
    form = parse_request(body)
    flat = [t for t in form["tools"] if "x_namespace" in t]
    assert [t["name"] for t in flat] == [f"multi_agent_v1__{t['name']}" for t in namespace["tools"]]
    assert flat[0]["x_namespace"] == {"name": "multi_agent_v1", "description": namespace["description"],
                                      "tool": "close_agent"}
    assert flat[0]["input_schema"] == namespace["tools"][0]["parameters"]
    assert render_request(form, _target(body), Context("m"))["tools"] == body["tools"]
    assert body["reasoning"] == {"summary": "auto"} and form["x_reasoning_summary"] == "auto"


def test_output_schema_and_instructions() -> None:
    codex = parse_request(fixture_body("cx_output_schema.json", 0))
    fmt = fixture_body("cx_output_schema.json", 0)["text"]["format"]
    assert codex["x_output_format"] == fmt
    sdk = fixture_body("py_openai_responses_nonstream.json", 0)
    form = parse_request(sdk)
    assert form["system"] == [{"type": "text", "text": "You are terse."}]
    assert form["messages"] == [{"role": "user", "content": [{"type": "text", "text": "say hi"}]}]
    assert form["max_tokens"] == 256 and form["x_effort"] == "low"
    out = render_request(form, Target("up", max_output_tokens=100), Context("gpt-5"))
    assert out["instructions"] == "You are terse." and out["max_output_tokens"] == 100
    assert out["reasoning"] == {"effort": "low"} and out["include"] == ["reasoning.encrypted_content"]
    assert "stream" not in out


def test_history_items_the_form_has_no_word_for_keep_their_place() -> None:
    body = {
        "model": "gpt-5",
        "input": [
            {"type": "compaction", "id": "cmp_1", "encrypted_content": "CMP"},
            {"role": "developer", "content": "rules"},
            {"role": "user", "content": [{"type": "input_text", "text": "find a tool"}]},
            {"type": "tool_search_call", "call_id": "ts_1", "execution": "client", "arguments": {"query": "x"}},
            {"type": "tool_search_output", "call_id": "ts_1", "tools": []},
            {"type": "additional_tools", "role": "developer",
             "tools": [{"type": "function", "name": "found", "parameters": {"type": "object"}, "strict": False}]},
            {"type": "function_call", "call_id": "c1", "name": "spawn_agent", "namespace": "agents",
             "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "ok"}]},
            {"type": "item_reference", "id": "msg_old"},
        ],
        "tools": [{"type": "namespace", "name": "agents", "description": "Agents.",
                   "tools": [{"type": "function", "name": "spawn_agent", "parameters": {"type": "object"},
                              "strict": False}]},
                  {"type": "web_search"}],
    }
    form = parse_request(body)
    assert _names(form) == ["agents__spawn_agent", "found"]
    assert form["tools"][1]["x_additional"] is True
    call = form["messages"][1]["content"][0]
    assert call["name"] == "agents__spawn_agent" and call["x_before"] == body["input"][3:6]
    assert form["system"] == [{"type": "text", "text": "rules"}]
    assert form["x_extras"]["responses"]["x_system"] == [{"item": {"role": "developer"}, "before": body["input"][:1]}]
    assert form["x_extras"]["responses"]["x_input_tail"] == body["input"][8:]
    out = render_request(form, _target(body), Context("gpt-5"))
    assert _normal_input(out["input"]) == _normal_input(body["input"])
    assert out["tools"] == body["tools"]  # the additional tools stay in their item


def test_function_tool_without_parameters() -> None:
    form = parse_request(_with(tools=[{"type": "function", "name": "ping"}]))
    assert form["tools"] == [{"name": "ping", "input_schema": {"type": "object", "properties": {}}}]
    [tool] = render_request(form, Target("gpt-5"), Context("m"))["tools"]
    assert tool == {"type": "function", "name": "ping", "parameters": {"type": "object", "properties": {}},
                    "strict": False}


def test_tool_choice_naming_a_namespaced_tool() -> None:
    tools = [{"type": "namespace", "name": "agents", "description": "",
              "tools": [{"type": "function", "name": "spawn", "strict": False}]}]
    form = parse_request(_with(tools=tools, tool_choice={"type": "function", "name": "spawn"}))
    assert form["tool_choice"] == {"type": "tool", "name": "agents__spawn"}
    out = render_request(form, Target("gpt-5"), Context("gpt-5"))
    assert out["tool_choice"] == {"type": "function", "name": "spawn"}
    assert parse_request(_with(tools=tools, tool_choice="required"))["tool_choice"] == {"type": "any"}
    allowed = {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "spawn"}]}
    form = parse_request(_with(tools=tools, tool_choice=allowed, parallel_tool_calls=False))
    assert form["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    out = render_request(form, Target("gpt-5"), Context("gpt-5"))
    assert out["tool_choice"] == allowed and out["parallel_tool_calls"] is False


def test_round_trip_keeps_ids_phases_and_raw_arguments() -> None:
    body = {
        "model": "gpt-5", "stream": True,
        "input": [
            {"type": "message", "role": "user", "id": "msg_u", "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"},
                {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}]},
            {"role": "user", "content": [{"type": "input_text", "text": "and"},
                                         {"type": "input_image", "image_url": "data:image/png;base64,iVBO",
                                          "detail": "high"}]},
            {"type": "reasoning", "id": "rs_1", "encrypted_content": "E1",
             "summary": [{"type": "summary_text", "text": "one"}, {"type": "summary_text", "text": "two"}]},
            {"type": "message", "role": "assistant", "id": "msg_a", "status": "completed", "phase": "commentary",
             "content": [{"type": "output_text", "text": "Doing it."}]},
            {"type": "function_call", "id": "fc_1", "status": "completed", "call_id": "c1", "name": "run",
             "arguments": "{\"cmd\": \"ls\",  \"n\": 1}"},
            {"type": "custom_tool_call", "id": "ctc_1", "call_id": "c2", "name": "apply_patch", "input": "PATCH"},
            {"type": "function_call_output", "call_id": "c1", "output": [
                {"type": "input_text", "text": "files"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBO", "detail": "auto"}]},
            {"type": "custom_tool_call_output", "call_id": "c2", "output": "done"},
            {"role": "system", "content": "late instruction"},
            {"role": "user", "content": "thanks"},
        ],
        "tools": [{"type": "function", "name": "run", "parameters": {"type": "object"}, "strict": True},
                  {"type": "custom", "name": "apply_patch"}],
        "parallel_tool_calls": False,
        "tool_choice": {"type": "custom", "name": "apply_patch"},
    }
    form = parse_request(body)
    assert form["tool_choice"] == {"type": "tool", "name": "apply_patch", "disable_parallel_tool_use": True}
    assert [m["role"] for m in form["messages"]] == ["user", "assistant", "user", "system", "user"]
    assert [b["type"] for b in form["messages"][0]["content"]] == ["text", "image", "document", "text", "image"]
    assert form["messages"][1]["content"][0]["thinking"] == "one\n\ntwo"
    assert form["messages"][2]["content"][0]["content"][1]["type"] == "image"
    assert _form_keys(form["messages"][2]["content"][0]["content"]) == []  # none inside a tool result
    out = render_request(form, _target(body), Context("gpt-5"))
    assert _normal_input(out["input"]) == _normal_input(body["input"])
    for key in ("tools", "tool_choice", "parallel_tool_calls"):
        assert out[key] == body[key]


# --- property: any well-formed conversation goes round ----------------------------------------------------

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
words = st.text(alphabet=st.sampled_from(list('ab \n"{}é中🙂')), min_size=1, max_size=10).filter(str.strip)
arguments = st.dictionaries(st.sampled_from(["cmd", "path", "n"]),
                            st.one_of(st.integers(-3, 3), words, st.booleans()), max_size=3)
TOOLS = [{"type": "function", "name": "exec_command", "parameters": {"type": "object"}, "strict": False},
         {"type": "custom", "name": "apply_patch", "format": {"type": "text"}},
         {"type": "namespace", "name": "agents", "description": "Agents.",
          "tools": [{"type": "function", "name": "spawn", "parameters": None, "strict": False}]},
         {"type": "web_search"}]


@st.composite
def conversation(draw) -> list[dict]:
    """Codex-like input: developer rules, then user and assistant turns with calls answered at once."""
    items: list[dict] = [{"type": "message", "id": "msg_dev", "role": "developer",
                          "content": [{"type": "input_text", "text": draw(words)}]}]
    n = 0
    for _ in range(draw(st.integers(1, 5))):
        n += 1
        items.append({"type": "message", "id": f"msg_{n}", "role": "user",
                      "content": [{"type": "input_text", "text": draw(words)}]})
        if draw(st.booleans()):
            items.append({"type": "reasoning", "id": f"rs_{n}", "content": None, "encrypted_content": f"E{n}",
                          "summary": [{"type": "summary_text", "text": t} for t in draw(st.lists(words, max_size=2))]})
        if draw(st.booleans()):
            items.append({"type": "message", "id": f"msg_a{n}", "role": "assistant", "status": "completed",
                          "phase": draw(st.sampled_from(["commentary", "final_answer"])),
                          "content": [{"type": "output_text", "text": draw(words)}]})
        calls = draw(st.lists(st.sampled_from(["function", "custom", "namespaced"]), max_size=3))
        outputs = []
        for k, kind in enumerate(calls):
            call_id = f"call_{n}_{k}"
            if kind == "custom":
                items.append({"type": "custom_tool_call", "id": f"ctc_{n}{k}", "call_id": call_id,
                              "name": "apply_patch", "input": draw(words)})
                outputs.append({"type": "custom_tool_call_output", "call_id": call_id, "output": draw(words)})
                continue
            call = {"type": "function_call", "id": f"fc_{n}{k}", "status": "completed", "call_id": call_id,
                    "name": "exec_command", "arguments": json.dumps(draw(arguments))}
            if kind == "namespaced":
                call.update(name="spawn", namespace="agents")
            items.append(call)
            output: Any = draw(st.one_of(words, st.lists(words.map(lambda t: {"type": "input_text", "text": t}),
                                                         min_size=1, max_size=2)))
            outputs.append({"type": "function_call_output", "call_id": call_id, "output": output})
        items.extend(outputs)
        if draw(st.integers(0, 4)) == 0:
            items.append({"type": "item_reference", "id": f"old_{n}"})
    return items


@SETTINGS
@given(conversation(), st.booleans())
def test_any_codex_like_conversation_goes_round(items: list[dict], stream: bool) -> None:
    body = {"model": "gpt-5.5", "stream": stream, "input": items, "tools": TOOLS, "tool_choice": "auto",
            "parallel_tool_calls": True, "reasoning": {"effort": "high"}, "store": False,
            "include": ["reasoning.encrypted_content"]}
    form = parse_request(body)
    validate_messages_request(without_extensions(form), require_max_tokens=False)
    roles = [m["role"] for m in form["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles))
    out = render_request(form, _target(body), Context("gpt-5.5"))
    assert _normal_input(out["input"]) == _normal_input(items)
    assert out["tools"] == TOOLS and out["reasoning"] == {"effort": "high"}


# --- across dialects ----------------------------------------------------------------------------------------

OTHER_CLIENTS = ([(case, body, "anthropic") for case, body in fixture_requests("/v1/messages")]
                 + [(case, body, "openai") for case, body in fixture_requests("/v1/chat/completions")])


def _form_keys(value: Any, path: str = "") -> list[str]:
    """Where the form's own (``x_``) keys are in ``value``: an upstream must see none."""
    if isinstance(value, dict):
        return [f"{path}.{k}" for k in value if k.startswith("x_")] + [
            p for k, v in value.items() for p in _form_keys(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _form_keys(v, f"{path}.{i}")]
    return []


@pytest.mark.parametrize(("case", "body"), RECORDED, ids=[c for c, _ in RECORDED])
def test_a_responses_client_reaches_the_other_upstreams(case: str, body: dict) -> None:
    from zengate.dialects import anthropic, openai

    form = parse_request(body)
    for upstream in (anthropic.DIALECT, openai.DIALECT):
        out = upstream.render_request(form, Target("up", 32000, True), Context(body["model"], "up"))
        assert _form_keys(out) == [], upstream.name


@pytest.mark.parametrize(("case", "body", "dialect"), OTHER_CLIENTS, ids=[c for c, _, _ in OTHER_CLIENTS])
def test_the_other_clients_reach_a_responses_upstream(case: str, body: dict, dialect: str) -> None:
    from zengate.dialects import anthropic, openai

    client = anthropic.DIALECT if dialect == "anthropic" else openai.DIALECT
    out = render_request(client.parse_request(body), Target("gpt-5.5", 128000, True), Context(body["model"]))
    assert _form_keys(out) == []
    assert out["store"] is False and out["input"]
    assert all(t["type"] == "function" and t["strict"] is False for t in out.get("tools", []))


# --- bad input ---------------------------------------------------------------------------------------------

BASE: dict[str, Any] = {"model": "gpt-5", "input": [{"role": "user", "content": "hi"}]}
ITEM = "input.0"


def _with(**changes: Any) -> dict:
    body = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is ...:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def _item(item: Any) -> dict:
    return _with(input=[item])


BAD = [
    (_with(model=...), "model"),
    (_with(model=""), "model"),
    (_with(model=5), "model"),
    (_with(input=...), "input"),
    (_with(input=5), "input"),
    (_with(input=[]), "input"),
    (_with(input=[{"role": "developer", "content": "only rules"}]), "input"),
    (_item(5), ITEM),
    (_item({"content": "x"}), f"{ITEM}.type"),
    (_item({"type": 5}), f"{ITEM}.type"),
    (_item({"role": "tool", "content": "x"}), f"{ITEM}.role"),
    (_item({"role": "user", "content": 5}), f"{ITEM}.content"),
    (_item({"role": "user", "content": [5]}), f"{ITEM}.content.0"),
    (_item({"role": "user", "content": [{"type": "input_audio"}]}), f"{ITEM}.content.0.type"),
    (_item({"role": "user", "content": [{"type": "input_text"}]}), f"{ITEM}.content.0.text"),
    (_item({"role": "user", "content": [{"type": "refusal", "refusal": "no"}]}), f"{ITEM}.content.0.type"),
    (_item({"role": "user", "content": [{"type": "input_image"}]}), f"{ITEM}.content.0.image_url"),
    (_item({"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png", "detail": "big"}]}),
     f"{ITEM}.content.0.detail"),
    (_item({"role": "user", "content": [{"type": "input_file"}]}), f"{ITEM}.content.0.file_data"),
    (_item({"type": "function_call", "name": "f", "arguments": "{}"}), f"{ITEM}.call_id"),
    (_item({"type": "function_call", "call_id": "c", "arguments": "{}"}), f"{ITEM}.name"),
    (_item({"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}), f"{ITEM}.arguments"),
    (_item({"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}", "namespace": 1}),
     f"{ITEM}.namespace"),
    (_item({"type": "function_call_output", "output": "x"}), f"{ITEM}.call_id"),
    (_item({"type": "function_call_output", "call_id": "c", "output": 5}), f"{ITEM}.output"),
    (_item({"type": "function_call_output", "call_id": "c", "output": [{"type": "output_image"}]}),
     f"{ITEM}.output.0.type"),
    (_item({"type": "custom_tool_call", "call_id": "c", "name": "p"}), f"{ITEM}.input"),
    (_item({"type": "custom_tool_call_output", "call_id": "", "output": "x"}), f"{ITEM}.call_id"),
    (_item({"type": "reasoning", "summary": "x"}), f"{ITEM}.summary"),
    (_item({"type": "reasoning", "summary": [{"type": "summary_text"}]}), f"{ITEM}.summary.0.text"),
    (_item({"type": "reasoning", "summary": [], "encrypted_content": 5}), f"{ITEM}.encrypted_content"),
    (_item({"type": "additional_tools", "role": "developer"}), f"{ITEM}.tools"),
    (_with(instructions=5), "instructions"),
    (_with(tools={}), "tools"),
    (_with(tools=[5]), "tools.0"),
    (_with(tools=[{"name": "f"}]), "tools.0.type"),
    (_with(tools=[{"type": "function"}]), "tools.0.name"),
    (_with(tools=[{"type": "function", "name": "f", "parameters": []}]), "tools.0.parameters"),
    (_with(tools=[{"type": "function", "name": "f", "strict": "yes"}]), "tools.0.strict"),
    (_with(tools=[{"type": "function", "name": "f", "description": 5}]), "tools.0.description"),
    (_with(tools=[{"type": "custom", "name": "p", "format": {"type": "xml"}}]), "tools.0.format.type"),
    (_with(tools=[{"type": "custom", "name": "p", "format": {"type": "grammar", "syntax": "lark"}}]),
     "tools.0.format.definition"),
    (_with(tools=[{"type": "custom", "name": "p", "format": {"type": "grammar", "syntax": "ebnf",
                                                             "definition": "x"}}]), "tools.0.format.syntax"),
    (_with(tools=[{"type": "namespace", "name": "ns"}]), "tools.0.tools"),
    (_with(tools=[{"type": "namespace", "name": "ns", "tools": [{"type": "web_search"}]}]), "tools.0.tools.0.type"),
    (_with(tools=[{"type": "namespace", "tools": []}]), "tools.0.name"),
    (_with(tools=[{"type": "function", "name": "a__b"},
                  {"type": "namespace", "name": "a", "tools": [{"type": "function", "name": "b"}]}]), "tools"),
    (_with(tool_choice="always"), "tool_choice"),
    (_with(tool_choice={"name": "f"}), "tool_choice.type"),
    (_with(tool_choice={"type": "function"}), "tool_choice.name"),
    (_with(parallel_tool_calls="yes"), "parallel_tool_calls"),
    (_with(max_output_tokens=0), "max_output_tokens"),
    (_with(max_output_tokens="5"), "max_output_tokens"),
    (_with(max_output_tokens=True), "max_output_tokens"),
    (_with(temperature=3), "temperature"),
    (_with(temperature="hot"), "temperature"),
    (_with(top_p=-0.1), "top_p"),
    (_with(stream="yes"), "stream"),
    (_with(store="no"), "store"),
    (_with(reasoning=5), "reasoning"),
    (_with(reasoning={"effort": "ultra"}), "reasoning.effort"),
    (_with(reasoning={"summary": "long"}), "reasoning.summary"),
    (_with(text=5), "text"),
    (_with(text={"format": {"type": "xml"}}), "text.format.type"),
    (_with(text={"format": {"type": "json_schema", "schema": {}}}), "text.format.name"),
    (_with(text={"format": {"type": "json_schema", "name": "x"}}), "text.format.schema"),
    (_with(text={"verbosity": "loud"}), "text.verbosity"),
    (_with(include="all"), "include"),
    (_with(include=[1]), "include"),
    (_with(metadata=[]), "metadata"),
    (_with(prompt_cache_key=5), "prompt_cache_key"),
    (_with(previous_response_id="resp_1"), "previous_response_id"),
    (_with(conversation="conv_1"), "conversation"),
    (_with(background=True), "background"),
]


@pytest.mark.parametrize(("body", "field"), BAD, ids=[f for _, f in BAD])
def test_bad_request_is_a_400_naming_the_field(body: dict, field: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_request(body)
    assert caught.value.status == 400
    assert caught.value.param == field
    assert caught.value.message.startswith(f"{field}: ")


def test_not_an_object_and_stored_responses() -> None:
    with pytest.raises(ProtocolError) as caught:
        validate_request([1])
    assert (caught.value.status, caught.value.param) == (400, None)
    with pytest.raises(ProtocolError) as caught:
        validate_request(_with(previous_response_id="resp_1"))
    assert "send the whole conversation in input" in caught.value.message
    assert "store: false" in caught.value.message


PARSE_ONLY = [  # valid Responses requests whose content the form cannot carry
    (_item({"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}), f"{ITEM}.content.0.file_id"),
    (_item({"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png,xyz"}]}),
     f"{ITEM}.content.0.image_url"),
    (_item({"role": "user", "content": [{"type": "input_image", "image_url": "data:image/tiff;base64,AA"}]}),
     f"{ITEM}.content.0.image_url"),
    (_item({"role": "user", "content": [{"type": "input_image", "image_url": "ftp://x/y.png"}]}),
     f"{ITEM}.content.0.image_url"),
    (_item({"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}), f"{ITEM}.content.0.file_id"),
    (_item({"role": "user", "content": [{"type": "input_file", "file_data": "data:text/csv;base64,YQ=="}]}),
     f"{ITEM}.content.0.file_data"),
    (_with(input=[{"role": "developer", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]},
                  {"role": "user", "content": "hi"}]), f"{ITEM}.content.0.type"),
    (_with(input=[{"role": "user", "content": "hi"},
                  {"role": "assistant", "content": [{"type": "input_file", "file_url": "https://x/a.pdf"}]}]),
     "input.1.content.0.type"),
]


@pytest.mark.parametrize(("body", "field"), PARSE_ONLY, ids=[f for _, f in PARSE_ONLY])
def test_content_the_form_cannot_carry_is_a_400(body: dict, field: str) -> None:
    validate_request(body)  # a Responses upstream could take it as it is
    with pytest.raises(ProtocolError) as caught:
        parse_request(body)
    assert (caught.value.status, caught.value.param) == (400, field)
    assert caught.value.message.startswith(f"{field}: ")


# --- another client's form to a Responses upstream ---------------------------------------------------------

def _anthropic_form() -> dict:
    return {
        "model": "claude-sonnet-4-5", "max_tokens": 64000, "stream": True,
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use tools."}],
        "thinking": {"type": "enabled", "budget_tokens": 20000},
        "metadata": {"user_id": "u" * 100},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
                 "title": "spec.pdf"}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "mine", "signature": "anthropic-sig"},
                {"type": "thinking", "thinking": "gateway's", "signature": GATEWAY_SIGNATURE},
                {"type": "thinking", "thinking": "openai's", "signature": "ENC", "x_origin": "responses"},
                {"type": "redacted_thinking", "data": "xx"},
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "functions.Read:0", "name": "mcp.read file", "input": {"path": "/a"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "functions.Read:0", "content": "nope", "is_error": True},
                {"type": "text", "text": "and?"}]},
            {"role": "system", "content": "mid-conversation note"},
        ],
        "tools": [{"name": "mcp.read file", "description": "Read", "input_schema": {"type": "object"}},
                  {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "temperature": 1, "stop_sequences": ["END"],
    }


def test_another_dialects_form_renders_for_a_responses_upstream() -> None:
    context = Context("claude-sonnet-4-5", "gpt-5.5")
    out = render_request(_anthropic_form(), Target("gpt-5.5", max_output_tokens=32000, stream=True), context)
    assert out["instructions"] == "Be brief.\n\nUse tools."
    assert out["max_output_tokens"] == 32000 and out["stream"] is True and out["store"] is False
    assert out["reasoning"] == {"effort": "high", "summary": "auto"}
    assert out["include"] == ["reasoning.encrypted_content"]
    wire = context.names.name_out("mcp.read file")
    assert wire != "mcp.read file" and context.names.name_in(wire) == "mcp.read file"
    assert out["tools"] == [{"type": "function", "name": wire, "description": "Read",
                             "parameters": {"type": "object"}, "strict": False}]
    assert out["tool_choice"] == "auto" and out["parallel_tool_calls"] is False
    call_id = context.names.id_out("functions.Read:0")
    user, reasoning, text, call, result, user2, note = out["input"]
    assert user["role"] == "user"
    assert [p["type"] for p in user["content"]] == ["input_text", "input_image", "input_file"]
    assert user["content"][1]["image_url"] == "data:image/png;base64,iVBO"
    assert user["content"][2] == {"type": "input_file", "filename": "spec.pdf",
                                  "file_data": "data:application/pdf;base64,JVBE"}
    assert reasoning == {"type": "reasoning", "summary": [{"type": "summary_text", "text": "openai's"}],
                         "encrypted_content": "ENC"}
    assert text == {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "calling"}]}
    assert call == {"type": "function_call", "call_id": call_id, "name": wire, "arguments": '{"path":"/a"}'}
    assert result == {"type": "function_call_output", "call_id": call_id, "output": "[tool error] nope"}
    assert user2["content"] == [{"type": "input_text", "text": "and?"}]
    assert note == {"type": "message", "role": "developer",
                    "content": [{"type": "input_text", "text": "mid-conversation note"}]}
    assert "temperature" not in out  # reasoning asked: a reasoning model refuses sampling settings
    assert "stop" not in out and "stop_sequences" not in out
    assert len(out["safety_identifier"]) <= 64


def test_sampling_settings_and_answer_count() -> None:
    form = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.3, "top_p": 0.9,
            "stream": True, "x_extras": {"responses": {"stream_options": {"include_obfuscation": False}}}}
    out = render_request(form, Target("gpt-4.1"), Context("m"))
    assert (out["temperature"], out["top_p"]) == (0.3, 0.9)
    assert "stream" not in out and "stream_options" not in out
    with pytest.raises(ProtocolError) as caught:
        render_request({**form, "x_n": 2}, Target("gpt-4.1"), Context("m"))
    assert (caught.value.status, caught.value.param) == (400, "n")


def test_no_reasoning_asked_no_encrypted_content_asked() -> None:
    form = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "x_effort": "none"}
    out = render_request(form, Target("gpt-5.1"), Context("m"))
    assert out["reasoning"] == {"effort": "none"} and "include" not in out
    out = render_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, Target("gpt-4.1"),
                         Context("m"))
    assert "reasoning" not in out and "include" not in out
    assert out["input"] == [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]


def test_image_by_file_id_cannot_go_to_a_responses_upstream() -> None:
    form = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "file", "file_id": "f"}}]}]}
    with pytest.raises(ProtocolError) as caught:
        render_request(form, Target("gpt-5"), Context("m"))
    assert caught.value.param == "messages.0.content.0.source"


def test_passthrough_body_maps_the_model_only() -> None:
    body = fixture_body("cx_basic_say_hi.json", 0)
    out = DIALECT.passthrough_body(body, Target("gpt-5.1-codex-up", stream=True))
    assert out == {**body, "model": "gpt-5.1-codex-up"} and out is not body
    assert "stream" not in DIALECT.passthrough_body({**body, "stream": False}, Target("x"))


# --- answers -------------------------------------------------------------------------------------------------

def _response(output: list[dict], **extra: Any) -> dict:
    return {"id": "resp_abc123", "object": "response", "created_at": 1, "status": "completed", "model": "gpt-5",
            "output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "usage": {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 0},
                      "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 8}, "total_tokens": 120},
            **extra}


UPSTREAM_OUTPUT = [
    {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "a"},
                                                     {"type": "summary_text", "text": "b"}],
     "encrypted_content": "ENC"},
    {"id": "rs_2", "type": "reasoning", "summary": [{"type": "summary_text", "text": "plain"}]},
    {"id": "rs_3", "type": "reasoning", "summary": []},
    {"id": "ws_1", "type": "web_search_call", "status": "completed", "action": {"type": "search", "query": "q"}},
    {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
     "content": [{"type": "output_text", "text": "Hi", "annotations": []}]},
    {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "spawn_agent", "namespace": "agents",
     "arguments": "{\"message\": \"go\"}", "status": "completed"},
    {"id": "ctc_1", "type": "custom_tool_call", "call_id": "call_2", "name": "apply_patch", "input": "PATCH"},
]


def test_parse_answer() -> None:
    answer = parse_answer(_response(UPSTREAM_OUTPUT), Context("client-model", "gpt-5"))
    assert answer["model"] == "client-model" and answer["id"] == "msg_abc123"
    assert answer["content"] == [
        {"type": "thinking", "thinking": "a\n\nb", "signature": "ENC", "x_origin": "responses"},
        {"type": "thinking", "thinking": "plain", "signature": GATEWAY_SIGNATURE},
        {"type": "text", "text": "Hi"},
        {"type": "tool_use", "id": "call_1", "name": "agents__spawn_agent", "input": {"message": "go"}},
        {"type": "tool_use", "id": "call_2", "name": "apply_patch", "input": {"input": "PATCH"}, "x_kind": "custom"},
    ]
    assert answer["stop_reason"] == "tool_use"
    assert answer["usage"] == {"input_tokens": 40, "output_tokens": 20, "cache_creation_input_tokens": 0,
                               "cache_read_input_tokens": 60}


def test_parse_answer_names_back_and_stop_reasons() -> None:
    context = Context("m", "gpt-5")
    wire = context.names.name_out("mcp.read file")
    call = {"type": "function_call", "call_id": "c", "name": wire, "arguments": "not json"}
    answer = parse_answer(_response([call]), context)
    assert answer["content"][0]["name"] == "mcp.read file"
    assert answer["content"][0]["input"] == {"raw_arguments": "not json"}
    text = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "cut"}]}
    cut = parse_answer(_response([text], status="incomplete", incomplete_details={"reason": "max_output_tokens"}),
                       context)
    assert cut["stop_reason"] == "max_tokens"
    refused = parse_answer(_response([], status="incomplete", incomplete_details={"reason": "content_filter"}),
                           context)
    assert refused["stop_reason"] == "refusal" and refused["content"] == [{"type": "text", "text": ""}]
    with pytest.raises(ProtocolError) as caught:
        parse_answer(_response([], status="incomplete", incomplete_details={"reason": "interrupted"}), context)
    assert caught.value.status == 502 and "interrupted" in caught.value.message
    with pytest.raises(ProtocolError) as caught:
        parse_answer(_response([], status="failed", error={"code": "rate_limit_exceeded", "message": "slow"}),
                     context)
    assert (caught.value.status, caught.value.message) == (429, "slow")
    with pytest.raises(ProtocolError) as caught:
        parse_answer({"choices": []}, context)
    assert caught.value.status == 502


def _codex_context(model: str = "gpt-5.5") -> Context:
    context = Context(model, "gpt-5.5-up")
    context.request = parse_request(fixture_body("cx_basic_say_hi.json", 0) | {  # type: ignore[attr-defined]
        "tools": [*fixture_body("cx_basic_say_hi.json", 0)["tools"],
                  {"type": "custom", "name": "apply_patch", "format": {"type": "text"}}]})
    return context


def test_render_answer_validates_and_spells_calls_as_the_client_declared_them() -> None:
    context = _codex_context()
    answer = {
        "id": "msg_0123", "type": "message", "role": "assistant", "model": "x", "stop_reason": "tool_use",
        "content": [
            {"type": "thinking", "thinking": "plan", "signature": "ENC", "x_origin": "responses"},
            {"type": "thinking", "thinking": "chat reasoning", "signature": GATEWAY_SIGNATURE},
            {"type": "thinking", "thinking": "", "signature": "claude-sig"},
            {"type": "redacted_thinking", "data": "zz"},
            {"type": "text", "text": "Spawning."},
            {"type": "tool_use", "id": "toolu_1", "name": "multi_agent_v1__spawn_agent", "input": {"message": "go"}},
            {"type": "tool_use", "id": "toolu_2", "name": "apply_patch", "input": {"input": "*** Begin Patch"}},
            {"type": "tool_use", "id": "toolu_3", "name": "exec_command", "input": {}},
        ],
        "usage": {"input_tokens": 5, "output_tokens": 7, "cache_read_input_tokens": 10,
                  "cache_creation_input_tokens": 2},
    }
    body = render_answer(answer, context)
    response = Response.model_validate(body)
    assert response.id == "resp_0123" and response.model == "gpt-5.5" and response.status == "completed"
    kinds = [(o.type, getattr(o, "namespace", None)) for o in response.output]
    assert kinds == [("reasoning", None), ("reasoning", None), ("reasoning", None), ("message", None),
                     ("function_call", "multi_agent_v1"), ("custom_tool_call", None), ("function_call", None)]
    plan, chat, claude = response.output[:3]
    assert plan.encrypted_content == "ENC" and plan.summary[0].text == "plan"
    assert chat.encrypted_content is None and chat.summary[0].text == "chat reasoning"
    assert claude.encrypted_content == "zengate:anthropic:claude-sig" and claude.summary == []
    assert response.output_text == "Spawning."
    spawn, patch, execute = response.output[4:]
    assert (spawn.name, spawn.call_id, json.loads(spawn.arguments)) == ("spawn_agent", "toolu_1", {"message": "go"})
    assert (patch.name, patch.input) == ("apply_patch", "*** Begin Patch")
    assert execute.arguments == "{}"
    assert response.usage.input_tokens == 17 and response.usage.input_tokens_details.cached_tokens == 10
    assert response.usage.total_tokens == 24
    declared = fixture_body("cx_basic_say_hi.json", 0)["tools"]
    assert body["tools"] == [*declared, {"type": "custom", "name": "apply_patch", "format": {"type": "text"}}]
    assert body["parallel_tool_calls"] is True and body["tool_choice"] == "auto"
    assert body["reasoning"] == {"effort": None, "summary": "auto"}
    assert body["prompt_cache_key"] == fixture_body("cx_basic_say_hi.json", 0)["prompt_cache_key"]


def test_wrapped_signature_comes_back_to_its_dialect() -> None:
    context = _codex_context()
    answer = {"id": "msg_1", "content": [{"type": "thinking", "thinking": "t", "signature": "claude-sig"},
                                         {"type": "text", "text": "x"}], "stop_reason": "end_turn", "usage": {}}
    reasoning = render_answer(answer, context)["output"][0]
    body = {"model": "gpt-5", "input": [{"role": "user", "content": "hi"},
                                        {**reasoning, "content": None},
                                        {"role": "user", "content": "more"}]}
    thinking = parse_request(body)["messages"][1]["content"][0]
    assert thinking["signature"] == "claude-sig" and thinking["x_origin"] == "anthropic"
    assert render_request(parse_request(body), Target("gpt-5"), Context("m"))["input"][1]["role"] == "user"


def test_render_answer_incomplete_and_without_a_request() -> None:
    answer = {"id": "msg_9", "content": [{"type": "text", "text": "cut"}], "stop_reason": "max_tokens",
              "usage": {"input_tokens": 1, "output_tokens": 2}}
    body = render_answer(answer, Context("gpt-5"))
    response = Response.model_validate(body)
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert body["tools"] == [] and body["tool_choice"] == "auto" and response.output_text == "cut"
    custom = {"id": "msg_8", "content": [{"type": "tool_use", "id": "c", "name": "p", "input": {"input": "raw"},
                                          "x_kind": "custom"}], "stop_reason": "tool_use", "usage": {}}
    item = Response.model_validate(render_answer(custom, Context("gpt-5"))).output[0]
    assert (item.type, item.input) == ("custom_tool_call", "raw")


class _Notes:
    def __init__(self) -> None:
        self.usage: tuple = (None, None)
        self.output: list[str] = []

    def add_usage(self, input_tokens: Any, output_tokens: Any) -> None:
        self.usage = (input_tokens, output_tokens)

    def add_output(self, text: Any) -> None:
        if text:
            self.output.append(text)


def test_note_answer() -> None:
    notes = _Notes()
    note_answer(_response(UPSTREAM_OUTPUT), notes)
    assert notes.usage == (100, 20)
    assert notes.output == ["Hi", '[function_call spawn_agent({"message": "go"})]',
                            "[custom_tool_call apply_patch(PATCH)]"]
    with pytest.raises(ProtocolError):
        note_answer({"error": {"message": "boom"}}, notes)


# --- errors, counting, the dialect object --------------------------------------------------------------------

def test_error_bodies() -> None:
    assert error_body(429, "slow down") == {"error": {"message": "slow down", "type": "rate_limit_error",
                                                      "param": None, "code": "rate_limit_exceeded"}}
    assert error_body(400, "input: required", param="input")["error"]["param"] == "input"
    too_long = error_body(400, "prompt is too long: 300000 tokens > 272000 maximum")
    assert too_long["error"]["code"] == "context_length_exceeded"
    assert DIALECT.error_body(500, "boom")["error"]["type"] == "api_error"


def test_input_tokens() -> None:
    small = input_tokens({"model": "gpt-5", "input": "hi"})
    assert InputTokenCountResponse.model_validate(small).object == "response.input_tokens"
    body = fixture_body("cx_gpt55_tool_roundtrip_reasoning_applypatch.json", 2)
    big = input_tokens(body)["input_tokens"]
    assert big > input_tokens(fixture_body("cx_gpt55_tool_roundtrip_reasoning_applypatch.json", 0))["input_tokens"]
    assert big > small["input_tokens"] > 0
    assert input_tokens({"instructions": "You are terse."})["input_tokens"] > 0  # no model, no input
    with pytest.raises(ProtocolError) as caught:
        input_tokens({"input": 5})
    assert caught.value.param == "input"


def test_the_dialect_object() -> None:
    assert DIALECT.name == "responses" and DIALECT.upstream_path == "/responses"
    assert DIALECT.auth_headers("sk-x") == {"Authorization": "Bearer sk-x"}
    assert DIALECT.passed_headers({"session_id": "s"}, None) == {}
    assert DIALECT.heartbeat.startswith(b":") and DIALECT.heartbeat.endswith(b"\n\n")
    for member in [m for m in vars(Dialect) if not m.startswith("_")] + list(Dialect.__annotations__):
        assert hasattr(DIALECT, member), member
