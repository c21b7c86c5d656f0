"""GET /openapi.json describes exactly the routes the app has, and describes the Responses API as the
gateway takes and answers it: what Codex and the openai SDK send fits ``ResponsesRequest``, what the
description refuses the dialect refuses, and the dialect's answers fit ``Response``."""

from __future__ import annotations

import re

import jsonschema_rs
import pytest

from tests.support.fixtures import fixture_requests
from zengate.dialects.base import Context
from zengate.dialects.errors import ProtocolError
from zengate.dialects.responses import input_tokens, render_answer, validate_request
from zengate.dialects.responses_request import parse_request
from zengate.web.openapi import SPEC

#: Flask's own static route (the app has no static folder of its own; the dashboard's is described).
NOT_DESCRIBED = {"/static/{filename}"}
IMPLICIT = {"HEAD", "OPTIONS"}


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)


def test_spec_paths_match_the_url_map(app, client):
    r = client.get("/openapi.json")
    assert r.status_code == 200 and r.headers["X-Content-Type-Options"] == "nosniff"
    spec = r.get_json()
    assert spec["openapi"].startswith("3.1")
    described = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    routed = {(_openapi_path(rule.rule), method) for rule in app.url_map.iter_rules()
              for method in rule.methods - IMPLICIT if _openapi_path(rule.rule) not in NOT_DESCRIBED}
    assert described - routed == set(), "described but not routed"
    assert routed - described == set(), "routed but not described in zengate/web/openapi.py"


def test_every_operation_has_responses_and_refs_resolve(client):
    spec = client.get("/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    text = str(spec)
    for ref in re.findall(r"#/components/schemas/(\w+)", text):
        assert ref in schemas, ref
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op["responses"] and op["summary"], (path, method)
            for param in op.get("parameters", []):
                if param["in"] == "path":
                    assert "{" + param["name"] + "}" in path
    assert "AnthropicError" in str(spec["paths"]["/v1/messages"]["post"]["responses"]["400"])
    assert "OpenAIError" in str(spec["paths"]["/v1/chat/completions"]["post"]["responses"]["400"])
    assert "429" in spec["paths"]["/_admin/login"]["post"]["responses"]


# --- the Responses description against the dialect ---------------------------------------------------------

SCHEMAS = SPEC["components"]["schemas"]
RECORDED_RESPONSES = fixture_requests("/v1/responses", ("cx_", "py_openai_responses_"))


def _validator(name: str):
    return jsonschema_rs.validator_for(SCHEMAS[name])


@pytest.mark.parametrize(("case", "body"), RECORDED_RESPONSES, ids=[c for c, _ in RECORDED_RESPONSES])
def test_recorded_responses_requests_fit_the_description(case, body):
    """What Codex and the openai SDK really send is what the description calls a valid request."""
    errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}"
              for e in _validator("ResponsesRequest").iter_errors(body)]
    assert not errors, errors[:5]
    validate_request(body)  # and the gateway takes it


def test_the_descriptions_examples_are_taken():
    for name in ("ResponsesRequest", "ResponsesInputTokensRequest"):
        for example in SCHEMAS[name]["examples"]:
            assert _validator(name).is_valid(example), (name, example)
            validate_request(example, count=name == "ResponsesInputTokensRequest")


@pytest.mark.parametrize("body", [
    {"model": "m", "input": "hi", "previous_response_id": "resp_1"},
    {"model": "m", "input": "hi", "conversation": "conv_1"},
    {"model": "m", "input": "hi", "background": True},
    {"model": "m", "input": [{"role": "user", "content": [{"type": "input_text"}]}]},
    {"model": "m", "input": [{"type": "function_call", "call_id": "", "name": "f", "arguments": "{}"}]},
    {"model": "m", "input": "hi", "tools": [{"type": "function"}]},
    {"model": "m", "input": "hi", "reasoning": {"effort": "huge"}},
    {"model": "m", "input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}},
    {"model": "m", "input": "hi", "temperature": 3},
    {"model": "m"},
    {"input": "hi"},
], ids=["previous_response_id", "conversation", "background", "text-part-without-text", "empty-call-id",
        "tool-without-name", "effort", "json-schema-without-schema", "temperature", "no-input", "no-model"])
def test_what_the_description_refuses_the_gateway_refuses(body):
    assert not _validator("ResponsesRequest").is_valid(body)
    with pytest.raises(ProtocolError) as refused:
        validate_request(body)
    assert refused.value.status == 400


def test_the_gateways_answers_fit_the_response_schema():
    body = {"model": "gpt-5.5", "input": "hi",
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
                      {"type": "custom", "name": "apply_patch"}]}
    context = Context("gpt-5.5", "big-pickle", request=parse_request(body))
    answer = {"id": "msg_1", "type": "message", "role": "assistant", "model": "big-pickle",
              "content": [{"type": "thinking", "thinking": "hmm", "signature": "sig", "x_origin": "anthropic"},
                          {"type": "text", "text": "Calling."},
                          {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}},
                          {"type": "tool_use", "id": "call_2", "name": "apply_patch", "input": {"input": "*** x"}}],
              "stop_reason": "tool_use", "stop_sequence": None,
              "usage": {"input_tokens": 7, "output_tokens": 3}}
    response = render_answer(answer, context)
    errors = [e.message for e in _validator("Response").iter_errors(response)]
    assert not errors, errors
    assert [item["type"] for item in response["output"]] == ["reasoning", "message", "function_call",
                                                              "custom_tool_call"]
    cut = render_answer({**answer, "stop_reason": "max_tokens", "content": [{"type": "text", "text": "cu"}]}, context)
    assert _validator("Response").is_valid(cut) and cut["status"] == "incomplete"
    count = SPEC["paths"]["/v1/responses/input_tokens"]["post"]["responses"]["200"]
    schema = count["content"]["application/json"]["schema"]
    assert jsonschema_rs.validator_for(schema).is_valid(input_tokens({"input": "say hi"}))
