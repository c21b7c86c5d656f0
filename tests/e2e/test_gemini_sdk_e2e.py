"""The Gemini surface of the real gateway, driven by Google's own ``google-genai`` SDK: v1 (its
default) and v1beta, streaming and not, a tool round trip, ``count_tokens``, structured output,
the models, keys, and errors the SDK raises with Google's details."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import errors, types

from tests.support.fake_upstream import (
    anthropic_text,
    anthropic_tool_use,
    error,
    openai_text,
    openai_tool_calls,
    responses_text,
)

pytestmark = pytest.mark.e2e

MODEL = "gemini-2.5-flash"
WEATHER = types.Tool(function_declarations=[types.FunctionDeclaration(
    name="get_weather", description="Get weather",
    parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})])


def sdk(gw, version: str = "v1", key: str = "sk-zen-whatever") -> genai.Client:
    options = types.HttpOptions(base_url=gw.url, api_version=version, timeout=30_000,
                                retry_options=types.HttpRetryOptions(attempts=1))
    return genai.Client(api_key=key, http_options=options)


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_generate_content_answers_text_and_usage(gw, up, version):
    up.script("big-pickle", openai_text("Hello from upstream", usage=(12, 4)))
    client = sdk(gw, version)  # held: the SDK closes its connection pool when the client is collected
    answer = client.models.generate_content(
        model=MODEL, contents="say hi",
        config=types.GenerateContentConfig(system_instruction="be brief", temperature=0.2, max_output_tokens=64))
    assert answer.text == "Hello from upstream"
    assert answer.candidates[0].finish_reason == types.FinishReason.STOP
    assert (answer.usage_metadata.prompt_token_count, answer.usage_metadata.candidates_token_count) == (12, 4)
    assert answer.model_version == MODEL
    sent = up.requests[-1]
    assert sent.path.endswith("/chat/completions") and sent.model == "big-pickle"
    assert sent.body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "say hi"}]
    assert sent.body["temperature"] == 0.2 and sent.body["max_tokens"] == 64


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_streaming_arrives_in_pieces_and_ends_with_usage(gw, up, version):
    up.script("big-pickle", openai_text("one two three four", chunks=4, usage=(9, 4)))
    client = sdk(gw, version)
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="count"))
    assert "".join(c.text or "" for c in chunks) == "one two three four"
    assert len([c for c in chunks if c.text]) >= 2  # streamed, not one answer at the end
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count == 4
    assert up.requests[-1].body["stream"] is True


def test_a_tool_round_trip_keeps_the_call_id_through_the_upstream(gw, up):
    client = sdk(gw)
    up.script("big-pickle", openai_tool_calls([("get_weather", {"city": "Paris"}, "call_w1")]))
    config = types.GenerateContentConfig(tools=[WEATHER])
    first = client.models.generate_content(model=MODEL, contents="weather in Paris?", config=config)
    [call] = first.function_calls
    assert (call.name, call.args, call.id) == ("get_weather", {"city": "Paris"}, "call_w1")
    offered = up.requests[-1].body["tools"]
    assert offered == [{"type": "function", "function": {
        "name": "get_weather", "description": "Get weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]

    up.script("big-pickle", openai_text("It is sunny in Paris."))
    history = [types.Content(role="user", parts=[types.Part(text="weather in Paris?")]),
               first.candidates[0].content,
               types.Content(role="user", parts=[types.Part(function_response=types.FunctionResponse(
                   id=call.id, name="get_weather", response={"output": "sunny, 21 C"}))])]
    second = client.models.generate_content(model=MODEL, contents=history, config=config)
    assert second.text == "It is sunny in Paris."
    messages = up.requests[-1].body["messages"]
    assert messages[1]["tool_calls"][0]["id"] == "call_w1"
    assert messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert messages[2]["role"] == "tool" and messages[2]["tool_call_id"] == "call_w1"
    assert "sunny, 21 C" in messages[2]["content"]


def test_structured_output_reaches_the_upstream_as_a_json_schema(gw, up):
    up.script("big-pickle", openai_text('{"city": "Paris", "score": 3}'))
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "score": {"type": "integer"}},
              "required": ["city", "score"]}
    client = sdk(gw, "v1beta")
    answer = client.models.generate_content(
        model=MODEL, contents="rate Paris",
        config=types.GenerateContentConfig(response_mime_type="application/json", response_json_schema=schema))
    assert answer.parsed == {"city": "Paris", "score": 3}
    sent = up.requests[-1].body["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["schema"] == schema


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_count_tokens_costs_no_upstream_call(gw, up, version):
    client = sdk(gw, version)
    short = client.models.count_tokens(model=MODEL, contents="hi")
    long = client.models.count_tokens(model=MODEL, contents="a much longer prompt " * 50)
    assert 0 < short.total_tokens < long.total_tokens
    assert up.requests == []


def test_models_are_listed_and_looked_up(gw, up):
    client = sdk(gw, "v1beta")
    names = [m.name for m in client.models.list()]
    assert "models/big-pickle" in names
    model = client.models.get(model="big-pickle")
    assert model.name == "models/big-pickle" and "generateContent" in model.supported_actions
    with pytest.raises(errors.ClientError) as missing:
        client.models.get(model="no-such-model-anywhere")
    assert missing.value.code == 404 and missing.value.status == "NOT_FOUND"


def test_a_per_minute_key_limit_reaches_the_sdk_with_googles_details(gw, up):
    gw.set_setting("require_auth", True)
    key = gw.admin("POST", "/_admin/api-keys", json={"name": "genai", "rpm": 1}).json()["key"]
    client = sdk(gw, key=key)
    assert client.models.generate_content(model=MODEL, contents="one").text == "Hello from upstream"
    with pytest.raises(errors.ClientError) as limited:
        client.models.generate_content(model=MODEL, contents="two")
    assert limited.value.code == 429 and limited.value.status == "RESOURCE_EXHAUSTED"
    assert "limit of 1 request per minute" in limited.value.message
    details = {d["@type"].rsplit(".", 1)[-1]: d for d in limited.value.details["error"]["details"]}
    assert details["QuotaFailure"]["violations"][0]["quotaId"] == "KeyRequestsPerMinute"
    assert details["RetryInfo"]["retryDelay"].endswith("s")
    stranger = sdk(gw, key="sk-zen-not-a-key")
    with pytest.raises(errors.ClientError) as refused:
        stranger.models.generate_content(model=MODEL, contents="x")
    assert refused.value.code == 401 and refused.value.status == "UNAUTHENTICATED"


def test_upstream_and_input_errors_are_googles_errors(gw, up):
    client = sdk(gw)
    up.script("big-pickle", error(429, "Rate limit exceeded", headers={"retry-after": "2"}))
    with pytest.raises(errors.ClientError) as limited:
        client.models.generate_content(model=MODEL, contents="hi")
    assert limited.value.code == 429 and "Rate limit exceeded" in limited.value.message
    assert limited.value.details["error"]["details"] == [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}]
    up.script("big-pickle", error(500, "upstream exploded", type="api_error"))
    with pytest.raises(errors.ServerError) as failed:
        client.models.generate_content(model=MODEL, contents="hi")
    assert failed.value.code == 500 and "upstream exploded" in failed.value.message
    with pytest.raises(errors.ClientError) as bad:  # a part with nothing in it
        client.models.generate_content(model=MODEL, contents=[types.Content(role="user", parts=[types.Part()])])
    assert bad.value.code == 400 and bad.value.status == "INVALID_ARGUMENT"
    assert len(up.requests) == 2  # the bad request never went upstream


def test_the_readmes_client_as_written(gw, up):
    client = genai.Client(api_key="sk-zen-YOUR-KEY", http_options={"base_url": gw.url})  # README.md, as written
    assert client.models.generate_content(model="gemini-2.5-flash", contents="say hi").text == "Hello from upstream"
    assert up.requests[-1].path.endswith("/chat/completions")


def test_an_anthropic_protocol_model_streams_thoughts_and_calls_back(gw, up):
    client = sdk(gw, "v1beta")
    up.script("minimax-m2.5-free", anthropic_text("translated back", thinking="let me think"))
    thoughtful = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True,
                                                                                  thinking_budget=2048))
    chunks = list(client.models.generate_content_stream(model="minimax-m2.5-free", contents="hi", config=thoughtful))
    parts = [p for c in chunks for p in c.candidates[0].content.parts]
    assert "".join(p.text for p in parts if p.thought) == "let me think"
    assert "".join(p.text for p in parts if p.text and not p.thought) == "translated back"
    sent = up.requests[-1]
    assert sent.path.endswith("/messages")
    assert sent.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert sent.body["thinking"] == {"type": "enabled", "budget_tokens": 2048}

    up.script("minimax-m2.5-free", anthropic_tool_use([("get_weather", {"city": "Lima"}, "toolu_lima")]))
    answer = client.models.generate_content(model="minimax-m2.5-free", contents="weather in Lima?",
                                            config=types.GenerateContentConfig(tools=[WEATHER]))
    [call] = answer.function_calls
    assert (call.name, call.args, call.id) == ("get_weather", {"city": "Lima"}, "toolu_lima")
    assert up.requests[-1].body["tools"][0]["input_schema"]["required"] == ["city"]


def test_a_responses_protocol_model_answers_the_sdk(gw, up):
    client = sdk(gw)
    up.script("gpt-5-nano", responses_text("from the Responses API", usage=(7, 3)))
    answer = client.models.generate_content(model="gpt-5-nano", contents="hi",
                                            config=types.GenerateContentConfig(system_instruction="be brief"))
    assert answer.text == "from the Responses API"
    assert (answer.usage_metadata.prompt_token_count, answer.usage_metadata.candidates_token_count) == (7, 3)
    sent = up.requests[-1]
    assert sent.path.endswith("/responses") and sent.body["instructions"] == "be brief"
