"""Gemini API requests into the internal form (zengate/dialects/gemini/request.py): the requests
Gemini CLI and the google-genai SDK sent (tests/fixtures/clients/gm_*, py_genai_*), and what the
API allows beyond them."""

from __future__ import annotations

import json

import pytest

from tests.support.fixtures import load_fixture
from zengate.dialects.errors import ProtocolError
from zengate.dialects.gemini.request import json_schema, parse_request


def recorded(name: str, index: int = 0) -> dict:
    request = load_fixture(name + ".json")["requests"][index]
    model = request["path"].rsplit("/", 1)[1].split(":")[0]
    return {**request["body"], "model": model, "stream": ":streamGenerateContent" in request["path"]}


def test_gemini_clis_request_with_its_system_tools_and_thinking():
    form = parse_request(recorded("gm_tool_shell_yolo_m25pro", 1))
    assert form["model"] == "gemini-2.5-pro" and form["stream"] is True
    assert form["system"].strip() and isinstance(form["system"], str)
    assert (form["temperature"], form["top_p"], form["top_k"]) == (1, 0.95, 64)
    assert form["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    names = [tool["name"] for tool in form["tools"]]
    assert "run_shell_command" in names and all(t["input_schema"]["type"] == "object" for t in form["tools"])
    *_, call_turn, answer_turn = form["messages"]
    [call] = call_turn["content"]
    assert call_turn["role"] == "assistant" and call["type"] == "tool_use"
    assert (call["id"], call["name"], call["input"]) == ("fc_c8a277cb1d8a4688", "run_shell_command",
                                                         {"command": "echo hi", "description": "Print hi"})
    assert call["x_item"]["thought_signature"].startswith("ZmFrZS10aG91Z2h0")
    [result] = answer_turn["content"]
    assert result == {"type": "tool_result", "tool_use_id": "fc_c8a277cb1d8a4688",
                      "content": "<untrusted_context>\nOutput: hi\nProcess Group PGID: 19658\n</untrusted_context>"}


def test_the_first_two_user_turns_of_gemini_cli_merge_into_one_message():
    form = parse_request(recorded("gm_basic_say_hi"))
    [message] = form["messages"]
    assert message["role"] == "user" and [b["text"] for b in message["content"]][-1] == "say hi"
    assert len(message["content"]) == 2


def test_the_sdks_calls_without_ids_are_matched_to_their_answers():
    form = parse_request(recorded("py_genai_tool_roundtrip", 1))
    assert form["tool_choice"] == {"type": "auto"}
    [tool] = form["tools"]
    assert tool == {"name": "get_weather", "description": "Get weather", "input_schema": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    _, call_turn, answer_turn = form["messages"]
    call_id = call_turn["content"][0]["id"]
    assert call_id and answer_turn["content"][0]["tool_use_id"] == call_id
    assert json.loads(answer_turn["content"][0]["content"]) == {"temp_c": 21}


def test_snake_case_thinking_and_output_limits_from_the_python_sdk():
    form = parse_request(recorded("py_genai_nonstream"))
    assert form["max_tokens"] == 256 and form["temperature"] == 0.2
    assert form["thinking"] == {"type": "enabled", "budget_tokens": 128}
    assert "stream" not in form and form["system"]


def test_every_recorded_gemini_request_parses():
    for name in ("gm_basic_say_hi", "gm_tool_read_file", "gm_tool_shell_yolo_m25pro", "py_genai_nonstream",
                 "py_genai_stream", "py_genai_tool_roundtrip", "py_genai_v1beta_stream", "py_genai_count_tokens"):
        for index, request in enumerate(load_fixture(name + ".json")["requests"]):
            if isinstance(request.get("body"), dict) and "contents" in request["body"]:
                form = parse_request(recorded(name, index))
                assert form["messages"][0]["role"] == "user", (name, index)


def test_media_thoughts_and_errors_in_parts():
    body = {"model": "m", "contents": [
        {"role": "user", "parts": [{"text": "look"}, {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
                                   {"file_data": {"mime_type": "application/pdf", "file_uri": "gs://b/f.pdf"}}]},
        {"role": "model", "parts": [{"text": "hmm", "thought": True, "thoughtSignature": "c2ln"},
                                    {"functionCall": {"name": "read", "args": {"path": "a"}}},
                                    {"functionCall": {"name": "read", "args": {"path": "b"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "read", "response": {"error": "no such file"}}},
                                   {"functionResponse": {"name": "read", "response": {"output": "B"}}}]},
    ]}
    user, model, answers = parse_request(body)["messages"]
    assert [b["type"] for b in user["content"]] == ["text", "image", "document"]
    assert user["content"][1]["source"] == {"type": "base64", "media_type": "image/png", "data": "iVBO"}
    assert user["content"][2]["source"] == {"type": "url", "url": "gs://b/f.pdf"}
    thinking, first, second = model["content"]
    assert thinking == {"type": "thinking", "thinking": "hmm", "signature": "c2ln", "x_origin": "gemini"}
    assert first["id"] != second["id"]
    assert [(a["tool_use_id"], a["content"], a.get("is_error")) for a in answers["content"]] == [
        (first["id"], "no such file", True), (second["id"], "B", None)]


def test_tool_config_output_format_and_extras():
    body = {"model": "m", "contents": [{"parts": [{"text": "hi"}]}],
            "tools": [{"functionDeclarations": [{"name": "f", "parameters": {
                "type": "OBJECT", "properties": {"n": {"type": "INTEGER", "nullable": True},
                                                 "tags": {"type": "ARRAY", "items": {"type": "STRING"}}},
                "propertyOrdering": ["n", "tags"]}}]}, {"googleSearch": {}}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
            "generationConfig": {"responseMimeType": "application/json", "responseSchema": {"type": "OBJECT"},
                                 "stopSequences": ["END", ""], "candidateCount": 1, "seed": 7,
                                 "thinkingConfig": {"thinkingLevel": "HIGH"}},
            "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}]}
    form = parse_request(body)
    assert form["tools"][0]["input_schema"] == {"type": "object", "properties": {
        "n": {"type": ["integer", "null"]}, "tags": {"type": "array", "items": {"type": "string"}}}}
    assert form["tool_choice"] == {"type": "tool", "name": "f"}
    assert form["x_output_format"] == {"type": "json_schema", "name": "output", "schema": {"type": "object"}}
    assert form["stop_sequences"] == ["END"] and form["x_n"] == 1 and form["x_effort"] == "high"
    assert form["x_extras"]["gemini"] == {
        "safety_settings": body["safetySettings"], "generation_config": {"seed": 7}, "tools": [{"google_search": {}}]}


def test_json_schema_keeps_a_json_schema_as_it_is():
    schema = {"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
              "required": ["a"], "additionalProperties": False}
    assert json_schema(schema) == schema
    assert json_schema({"type": "STRING", "max_length": 5}) == {"type": "string", "maxLength": 5}


@pytest.mark.parametrize(("body", "field"), [
    ({"contents": [{"parts": [{"text": "hi"}]}]}, "model"),
    ({"model": "m"}, "contents"),
    ({"model": "m", "contents": []}, "contents"),
    ({"model": "m", "contents": ["hi"]}, "contents.0"),
    ({"model": "m", "contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "contents.0.role"),
    ({"model": "m", "contents": [{"parts": "hi"}]}, "contents.0.parts"),
    ({"model": "m", "contents": [{"parts": [{"text": 5}]}]}, "contents.0.parts.0.text"),
    ({"model": "m", "contents": [{"parts": [{"inlineData": {"data": "x"}}]}]},
     "contents.0.parts.0.inlineData.mimeType"),
    ({"model": "m", "contents": [{"parts": [{"inlineData": {"mimeType": "audio/wav", "data": "x"}}]}]},
     "contents.0.parts.0.inlineData.mimeType"),
    ({"model": "m", "contents": [{"parts": [{"functionCall": {"args": {}}}]}]}, "contents.0.parts.0.functionCall.name"),
    ({"model": "m", "contents": [{"parts": [{"executableCode": {"code": "1"}}]}]}, "contents.0.parts.0"),
    ({"model": "m", "contents": [{"parts": [{"banana": 1}]}]}, "contents.0.parts.0"),
    ({"model": "m", "contents": [{"parts": [{"text": ""}]}]}, "contents"),
    ({"model": "m", "contents": [{"parts": [{"text": "x"}]}], "tools": {"functionDeclarations": []}}, "tools"),
    ({"model": "m", "contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [{}]}]},
     "tools.0.functionDeclarations.0.name"),
    ({"model": "m", "contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"temperature": "hot"}},
     "generationConfig.temperature"),
    ({"model": "m", "contents": [{"parts": [{"text": "x"}]}], "systemInstruction": {"parts": [{"inlineData": {}}]}},
     "systemInstruction.parts.0.text"),
])
def test_bad_requests_name_the_field(body, field):
    with pytest.raises(ProtocolError) as caught:
        parse_request(body)
    assert caught.value.status == 400 and caught.value.param == field, str(caught.value)
