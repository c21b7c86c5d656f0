"""Local token estimates (zengate.dialects.tokens)."""

from __future__ import annotations

import copy
import json

import pytest

from tests.support.fixtures import fixture_body, fixture_requests
from tests.support.pairs import request_to_openai
from zengate.dialects import tokens
from zengate.dialects.tokens import estimate_anthropic_tokens, estimate_openai_tokens


def msgs(*contents) -> dict:
    return {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": c} for c in contents]}


def test_docstring_says_how_it_counts():
    doc = tokens.__doc__ + estimate_anthropic_tokens.__doc__
    for words in ("3.2", "2.6", "1600", "non-ASCII", "per message", "tool"):
        assert words in doc


@pytest.mark.parametrize(("name", "body"), fixture_requests(("/v1/messages", "/v1/messages/count_tokens")),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_anthropic_fixture_is_estimated_high_but_sane(name, body):
    estimate = estimate_anthropic_tokens(body)
    size = len(json.dumps(body["messages"])) + len(json.dumps(body.get("system", "")))
    size += len(json.dumps(body.get("tools", [])))
    assert estimate > 0
    assert estimate >= size / 4.5, "should err high, not low"
    assert estimate <= size / 2 + tokens.TOOLS_PREAMBLE + 50, "but not absurdly"


@pytest.mark.parametrize(("name", "body"), fixture_requests(("/v1/chat/completions",)),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_openai_fixture_is_estimated(name, body):
    estimate = estimate_openai_tokens(body)
    size = len(json.dumps(body["messages"])) + len(json.dumps(body.get("tools", [])))
    assert size / 4.5 <= estimate <= size / 2 + tokens.TOOLS_PREAMBLE + 50


def test_claude_code_turn_is_in_the_expected_range():
    # ~76 KB with 24 tools: Anthropic counts such a Claude Code turn at roughly 20k tokens.
    estimate = estimate_anthropic_tokens(fixture_body("cc_basic_say_hi.json", 1))
    assert 20_000 <= estimate <= 35_000


def test_never_zero_for_a_non_empty_body():
    assert estimate_anthropic_tokens(msgs("")) > 0
    assert estimate_anthropic_tokens({"model": "m"}) > 0
    assert estimate_openai_tokens({"model": "m", "messages": [{"role": "user", "content": ""}]}) > 0
    assert estimate_anthropic_tokens({}) == 0 and estimate_openai_tokens({}) == 0


def test_prose_is_counted_at_about_chars_over_3_2():
    text = "word " * 640  # 3200 characters
    base = estimate_anthropic_tokens(msgs(""))
    assert estimate_anthropic_tokens(msgs(text)) - base == 1000


def test_non_ascii_counts_one_token_per_character():
    base = estimate_anthropic_tokens(msgs(""))
    assert estimate_anthropic_tokens(msgs("你好世界" * 100)) - base == 400


def test_grows_with_tools_and_their_schemas():
    body = msgs("hi")
    small_tool = {"name": "a", "description": "d", "input_schema": {"type": "object"}}
    big_schema = {"type": "object", "properties": {f"p{i}": {"type": "string", "description": "x" * 50}
                                                   for i in range(20)}}
    big_tool = {"name": "b", "description": "d", "input_schema": big_schema}
    none = estimate_anthropic_tokens(body)
    one = estimate_anthropic_tokens({**body, "tools": [small_tool]})
    two = estimate_anthropic_tokens({**body, "tools": [small_tool, big_tool]})
    assert none < one < two
    assert one - none >= tokens.TOOLS_PREAMBLE
    assert two - one >= len(json.dumps(big_schema)) / 3


def test_every_block_type_counts():
    base = estimate_anthropic_tokens(msgs([{"type": "text", "text": "x"}]))
    blocks = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "tool_result", "tool_use_id": "t", "content": "result " * 100},
        {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "r " * 200}]},
        {"type": "thinking", "thinking": "deep " * 100, "signature": "s"},
        {"type": "redacted_thinking", "data": "Z" * 400},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "A" * 400_000}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc " * 100}},
    ]
    for block in blocks:
        assert estimate_anthropic_tokens(msgs([{"type": "text", "text": "x"}, block])) > base + 50, block["type"]
    image = estimate_anthropic_tokens(msgs([{"type": "text", "text": "x"}, blocks[0]])) - base
    assert 1600 <= image <= 1610
    pdf = estimate_anthropic_tokens(msgs([{"type": "text", "text": "x"}, blocks[5]])) - base
    assert pdf >= 300_000 / 32


def test_tool_use_input_json_counts():
    small = {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Write", "input": {"a": 1}}]}
    big = copy.deepcopy(small)
    big["content"][0]["input"] = {"content": "line of code;\n" * 500}
    body = msgs("x")
    assert (estimate_anthropic_tokens({**body, "messages": body["messages"] + [big]})
            - estimate_anthropic_tokens({**body, "messages": body["messages"] + [small]})) >= 7000 / 3


def test_system_counts_as_string_or_blocks():
    text = "rules " * 100
    plain = estimate_anthropic_tokens({**msgs("x"), "system": text})
    blocks = estimate_anthropic_tokens({**msgs("x"), "system": [{"type": "text", "text": text}]})
    assert plain > estimate_anthropic_tokens(msgs("x")) + 150
    assert abs(plain - blocks) <= tokens.BLOCK_OVERHEAD


def test_openai_estimate_of_a_translated_request_is_close():
    body = fixture_body("cc_tool_bash.json", 2)
    translated, _ = request_to_openai(body, upstream_model="m")
    anthropic_estimate = estimate_anthropic_tokens(body)
    openai_estimate = estimate_openai_tokens(translated)
    assert abs(anthropic_estimate - openai_estimate) / anthropic_estimate < 0.05


def test_openai_parts_tool_calls_and_tools_count():
    base = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    with_image = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}
    low = copy.deepcopy(with_image)
    low["messages"][0]["content"][1]["image_url"]["detail"] = "low"
    assert estimate_openai_tokens(with_image) - estimate_openai_tokens(base) >= tokens.IMAGE_TOKENS
    assert estimate_openai_tokens(low) < estimate_openai_tokens(with_image)
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "w", "arguments": json.dumps({"t": "y" * 2600})}}]}
    with_call = {**base, "messages": [*base["messages"], call]}
    assert estimate_openai_tokens(with_call) - estimate_openai_tokens(base) >= 1000
    tool = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}
    assert estimate_openai_tokens({**base, "tools": [tool]}) > estimate_openai_tokens(base) + tokens.TOOLS_PREAMBLE
