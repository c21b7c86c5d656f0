"""The Responses front door end to end: the official openai SDK's ``client.responses`` through the real
gateway (gunicorn, gevent workers) in front of the stand-in upstream, over each upstream API.

Each test names the model's upstream API by its model: ``big-pickle`` speaks chat completions,
``minimax-m2.5-free`` Anthropic Messages and ``gpt-5-nano`` Responses (passed through). The SDK's
own objects are checked (its parsed output items, its accumulated final response and usage), and
what reached the upstream in that upstream's API. The refusals a stateless gateway makes
(``previous_response_id``, ``background``, files by id, a WebSocket upgrade) and bad input get
OpenAI's error shape with the field named. The real Codex CLI is in ``test_codex_gateway_e2e.py``.
"""

from __future__ import annotations

import json
import socket

import openai
import pydantic
import pytest
import requests

from tests.support.fake_upstream import (
    anthropic_text,
    anthropic_tool_use,
    drop_after,
    error,
    openai_text,
    openai_tool_calls,
    responses_function_call,
    responses_text,
)

pytestmark = pytest.mark.e2e

CHAT, ANTHROPIC, RESPONSES = "big-pickle", "minimax-m2.5-free", "gpt-5-nano"
MODELS = [pytest.param(CHAT, id="chat-upstream"), pytest.param(ANTHROPIC, id="anthropic-upstream"),
          pytest.param(RESPONSES, id="responses-upstream")]
UPSTREAM_PATH = {CHAT: "/chat/completions", ANTHROPIC: "/messages", RESPONSES: "/responses"}
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def sdk(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-anything", max_retries=0, timeout=30)


def upstream_call(up, model: str):
    """The one request that reached the upstream for ``model`` (and on that API's path)."""
    sent = [r for r in up.requests if r.method == "POST" and r.model == model]
    assert len(sent) == 1, [(r.method, r.path, r.model) for r in up.requests]
    assert sent[0].path == UPSTREAM_PATH[model], sent[0].path
    return sent[0]


def upstream_texts(model: str, body: dict) -> list[str]:
    """Every text the upstream got in its own API's body (system and turns), for checking what arrived."""
    texts: list[str] = []

    def walk(value):
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, dict):
            for key in ("text", "content", "output", "instructions", "system"):
                if key in value:
                    walk(value[key])

    walk(body.get("input") if model == RESPONSES else body.get("messages"))
    walk(body.get("instructions") if model == RESPONSES else body.get("system"))
    return texts


def tool_call_reply(model: str, name: str, arguments: dict, call_id: str):
    """``model``'s upstream answering with one call of ``name`` in its own API."""
    if model == CHAT:
        return openai_tool_calls([(name, arguments, call_id)])
    if model == ANTHROPIC:
        return anthropic_tool_use([(name, arguments, call_id)], text="Let me look.")
    return responses_function_call(name, arguments, call_id=call_id)


def text_reply(model: str, text: str, **reasoning):
    if model == CHAT:
        return openai_text(text, reasoning=reasoning.get("reasoning"))
    if model == ANTHROPIC:
        return anthropic_text(text, thinking=reasoning.get("reasoning"))
    return responses_text(text, reasoning=reasoning.get("reasoning"), encrypted=reasoning.get("encrypted"))


def tool_result_upstream(model: str, body: dict, call_id: str):
    """The result of call ``call_id`` as the upstream got it in its own API (None when absent)."""
    if model == CHAT:
        found = [m for m in body["messages"] if m.get("role") == "tool" and m.get("tool_call_id") == call_id]
        return found[0]["content"] if found else None
    if model == ANTHROPIC:
        found = [b for m in body["messages"] if isinstance(m.get("content"), list) for b in m["content"]
                 if b.get("type") == "tool_result" and b.get("tool_use_id") == call_id]
        return found[0]["content"] if found else None
    found = [i for i in body["input"] if i.get("type") == "function_call_output" and i.get("call_id") == call_id]
    return found[0]["output"] if found else None


def text_of(content) -> str:
    """A tool result's text, whether the upstream API gave it as a string or as text parts."""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


# --------------------------------------------------------------------------- text


@pytest.mark.parametrize("model", MODELS)
def test_text_answer_as_json(gw, up, model):
    answer = sdk(gw).responses.create(model=model, instructions="Answer briefly.", input="say hi",
                                      max_output_tokens=300)
    assert answer.object == "response" and answer.status == "completed" and answer.id.startswith("resp_")
    assert answer.model == model and answer.error is None
    assert answer.output_text == "Hello from upstream"
    assert [item.type for item in answer.output] == ["message"]
    message = answer.output[0]
    assert message.role == "assistant" and message.status == "completed"
    assert [(part.type, part.text) for part in message.content] == [("output_text", "Hello from upstream")]
    assert (answer.usage.input_tokens, answer.usage.output_tokens, answer.usage.total_tokens) == (10, 5, 15)

    sent = upstream_call(up, model)
    assert "say hi" in upstream_texts(model, sent.body) and "Answer briefly." in upstream_texts(model, sent.body)
    if model == CHAT:
        assert sent.body["messages"][0] == {"role": "system", "content": "Answer briefly."}
        assert sent.body["max_tokens"] == 300 or sent.body.get("max_completion_tokens") == 300
    elif model == ANTHROPIC:
        assert sent.body["max_tokens"] == 300 and sent.body["messages"][-1]["role"] == "user"
    else:
        assert sent.body["max_output_tokens"] == 300 and sent.body["input"] == "say hi"
    auth = sent.headers["x-api-key"] if model == ANTHROPIC else sent.headers["authorization"]
    assert auth in ("public", "Bearer public")


@pytest.mark.parametrize("model", MODELS)
def test_text_answer_streamed(gw, up, model):
    up.script(model, text_reply(model, "one two three four"))
    with sdk(gw).responses.stream(model=model, input="count to four") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert [event.sequence_number for event in events] == sorted({event.sequence_number for event in events})
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == "one two three four"  # streamed in pieces, not at the end
    assert final.status == "completed" and final.model == model
    assert final.output_text == "one two three four"
    assert [item.type for item in final.output] == ["message"]
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (10, 5, 15)
    sent = upstream_call(up, model)
    assert sent.stream and "count to four" in upstream_texts(model, sent.body)


@pytest.mark.parametrize("model", MODELS)
def test_create_stream_true_gives_raw_events(gw, up, model):
    events = list(sdk(gw).responses.create(model=model, input="say hi", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    done = [e.item for e in events if e.type == "response.output_item.done"]
    assert [(i.type, i.content[0].text) for i in done] == [("message", "Hello from upstream")]
    completed = events[-1].response
    assert completed.output_text == "Hello from upstream" and completed.usage.total_tokens == 15


# --------------------------------------------------------------------------- tools


@pytest.mark.parametrize("model", MODELS)
def test_function_tool_round_trip(gw, up, model):
    """The SDK gets a parsed function_call; its output goes back as the upstream API's tool result."""
    call_id = "toolu_weather_1" if model == ANTHROPIC else "call_weather_1"
    up.script(model, tool_call_reply(model, "get_weather", {"city": "Paris"}, call_id),
              text_reply(model, "It is sunny in Paris."))
    client = sdk(gw)
    question = [{"role": "user", "content": "weather in Paris?"}]
    with client.responses.stream(model=model, input=question, tools=[WEATHER]) as stream:
        first = stream.get_final_response()
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1, first.output
    call = calls[0]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert call.call_id == call_id and call.status == "completed"
    if model == ANTHROPIC:  # the text before the call is its own message item, in order
        assert [item.type for item in first.output] == ["message", "function_call"]
        assert first.output_text == "Let me look."
    sent = up.requests[-1].body
    tools = sent["tools"]
    if model == CHAT:
        assert [t["function"]["name"] for t in tools] == ["get_weather"]
        assert tools[0]["function"]["parameters"]["required"] == ["city"]
    elif model == ANTHROPIC:
        assert [(t["name"], t["input_schema"]["required"]) for t in tools] == [("get_weather", ["city"])]
    else:
        assert [(t["type"], t["name"]) for t in tools] == [("function", "get_weather")]

    second_input = [*question, *[item.model_dump(exclude_none=True) for item in first.output],
                    {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}]
    second = client.responses.create(model=model, input=second_input, tools=[WEATHER])
    assert second.output_text == "It is sunny in Paris." and second.status == "completed"

    follow_up = [r for r in up.requests if r.model == model][-1]
    assert text_of(tool_result_upstream(model, follow_up.body, call_id)) == "sunny, 21 C"
    if model == CHAT:
        assistant = [m for m in follow_up.body["messages"] if m.get("tool_calls")]
        assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                for c in assistant[0]["tool_calls"]] == [(call_id, "get_weather", {"city": "Paris"})]
    elif model == ANTHROPIC:
        uses = [b for m in follow_up.body["messages"] if m["role"] == "assistant" for b in m["content"]
                if b.get("type") == "tool_use"]
        assert [(u["id"], u["name"], u["input"]) for u in uses] == [(call_id, "get_weather", {"city": "Paris"})]


@pytest.mark.parametrize("model", MODELS)
def test_tool_choice_required_reaches_the_upstream(gw, up, model):
    up.script(model, tool_call_reply(model, "get_weather", {"city": "Oslo"},
                                     "toolu_oslo" if model == ANTHROPIC else "call_oslo"))
    answer = sdk(gw).responses.create(model=model, input="weather in Oslo?", tools=[WEATHER], tool_choice="required")
    assert [json.loads(i.arguments) for i in answer.output if i.type == "function_call"] == [{"city": "Oslo"}]
    sent = upstream_call(up, model).body
    if model == CHAT:
        assert sent["tool_choice"] == "required"
    elif model == ANTHROPIC:
        assert sent["tool_choice"]["type"] == "any"
    else:
        assert sent["tool_choice"] == "required"


# --------------------------------------------------------------------------- reasoning


@pytest.mark.parametrize("model", MODELS)
def test_reasoning_reaches_the_sdk(gw, up, model):
    up.script(model, text_reply(model, "It is 4.", reasoning="two plus two is four", encrypted="enc_opaque_1"))
    with sdk(gw).responses.stream(model=model, input="2+2?", reasoning={"effort": "low", "summary": "auto"}) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [item.type for item in final.output] == ["reasoning", "message"], final.output
    reasoning = final.output[0]
    assert [(s.type, s.text) for s in reasoning.summary] == [("summary_text", "two plus two is four")]
    assert final.output_text == "It is 4."
    summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert summary == "two plus two is four"
    if model == CHAT:
        assert reasoning.encrypted_content is None  # reasoning text nobody signed: nothing to send back
    elif model == ANTHROPIC:
        assert reasoning.encrypted_content and "sig_fake" in reasoning.encrypted_content
    else:
        assert reasoning.encrypted_content == "enc_opaque_1"
    sent = upstream_call(up, model).body
    if model == RESPONSES:
        assert sent["reasoning"] == {"effort": "low", "summary": "auto"}
    elif model == CHAT:
        assert sent.get("reasoning_effort") == "low"


@pytest.mark.parametrize("model", [pytest.param(ANTHROPIC, id="anthropic-upstream"),
                                   pytest.param(RESPONSES, id="responses-upstream")])
def test_reasoning_goes_back_to_the_upstream_that_made_it(gw, up, model):
    """A reasoning item the SDK got is sent back in the next turn and reaches its upstream with its signature."""
    up.script(model, text_reply(model, "It is 4.", reasoning="two plus two", encrypted="enc_opaque_2"),
              text_reply(model, "Still 4."))
    client = sdk(gw)
    first = client.responses.create(model=model, input="2+2?", reasoning={"effort": "low", "summary": "auto"})
    assert first.output[0].type == "reasoning"
    history = [{"role": "user", "content": "2+2?"}, *[i.model_dump(exclude_none=True) for i in first.output],
               {"role": "user", "content": "sure?"}]
    second = client.responses.create(model=model, input=history, reasoning={"effort": "low", "summary": "auto"})
    assert second.output_text == "Still 4."
    sent = [r for r in up.requests if r.model == model][-1].body
    if model == ANTHROPIC:
        thinking = [b for m in sent["messages"] if m["role"] == "assistant" for b in m["content"]
                    if b.get("type") == "thinking"]
        assert [(b["thinking"], b["signature"]) for b in thinking] == [("two plus two", "sig_fake")]
    else:
        items = [i for i in sent["input"] if i.get("type") == "reasoning"]
        assert [i["encrypted_content"] for i in items] == ["enc_opaque_2"]


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("model", MODELS)
def test_upstream_429_reaches_the_sdk_with_retry_after(gw, up, model):
    up.script(model, error(429, "Rate limit exceeded", headers={"retry-after": "7"}))
    with pytest.raises(openai.RateLimitError) as exc:
        sdk(gw).responses.create(model=model, input="say hi")
    assert exc.value.status_code == 429 and exc.value.response.headers["retry-after"] == "7"
    body = exc.value.response.json()
    assert set(body) == {"error"} and body["error"]["message"] == "Rate limit exceeded"
    assert body["error"]["type"] and "param" in body["error"] and "code" in body["error"]


@pytest.mark.parametrize("model", MODELS)
def test_a_stream_that_breaks_off_ends_with_response_failed(gw, up, model):
    base = text_reply(model, "one two three four five six")
    up.script(model, drop_after(6, base))
    events = list(sdk(gw).responses.create(model=model, input="say hi", stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.failed", kinds
    assert "response.completed" not in kinds
    failed = events[-1].response
    assert failed.status == "failed" and failed.error.message and failed.error.code
    assert events[-1].sequence_number == events[-2].sequence_number + 1


def test_previous_response_id_is_refused_naming_it(gw, up):
    with pytest.raises(openai.BadRequestError) as exc:
        sdk(gw).responses.create(model=CHAT, input="and then?", previous_response_id="resp_123")
    err = exc.value.response.json()["error"]
    assert err["param"] == "previous_response_id" and err["message"].startswith("previous_response_id:")
    assert "stores no responses" in err["message"] and err["type"] == "invalid_request_error"
    assert up.requests == [] or all(r.method == "GET" for r in up.requests)


@pytest.mark.parametrize(("body", "param", "needle"), [
    pytest.param({"input": "hi"}, "model", "model: required", id="no-model"),
    pytest.param({"model": CHAT}, "input", "input: required", id="no-input"),
    pytest.param({"model": CHAT, "input": 5}, "input", "must be a string or an array", id="input-number"),
    pytest.param({"model": CHAT, "input": [{"type": "message", "role": "robot", "content": "x"}]},
                 "input.0.role", "must be one of", id="bad-role"),
    pytest.param({"model": CHAT, "input": "hi", "background": True}, "background", "not supported",
                 id="background"),
    pytest.param({"model": CHAT, "input": "hi", "conversation": "conv_1"}, "conversation", "stores no responses",
                 id="conversation"),
    pytest.param({"model": CHAT, "input": "hi", "stream": "yes"}, "stream", "true or false", id="stream-string"),
    pytest.param({"model": CHAT, "input": "hi", "temperature": 9}, "temperature", "from 0 to 2", id="temperature"),
    pytest.param({"model": CHAT, "input": "hi", "tools": [{"type": "function"}]}, "tools.0.name", "required",
                 id="tool-without-name"),
    pytest.param({"model": CHAT, "input": [{"role": "user", "content": [
        {"type": "input_file", "file_id": "file_123"}]}]}, "input.0.content.0.file_id", "stores no files",
        id="file-by-id"),
    pytest.param({"model": CHAT, "input": [{"role": "user", "content": [
        {"type": "input_image", "file_id": "file_123"}]}]}, "input.0.content.0.file_id", "stores no files",
        id="image-by-id"),
])
def test_bad_input_is_a_400_in_openai_shape(gw, up, body, param, needle):
    r = requests.post(gw.url + "/v1/responses", json=body, timeout=10)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert set(r.json()) == {"error"} and set(err) >= {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error" and err["param"] == param, err
    assert needle in err["message"] and err["message"].startswith(param), err
    assert not [req for req in up.requests if req.method == "POST"]


def test_body_that_is_not_json_is_a_400(gw, up):
    r = requests.post(gw.url + "/v1/responses", data=b"{not json", timeout=10,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = requests.post(gw.url + "/v1/responses", data=b"[1, 2]", timeout=10,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"] == "request body must be a JSON object"


WEBSOCKET_UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                     "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Authorization": "Bearer sk-anything"}


def test_websocket_upgrade_is_426(gw, up):
    r = requests.get(gw.url + "/v1/responses", headers=WEBSOCKET_UPGRADE, timeout=10)
    assert r.status_code == 426, r.text
    assert "POST /v1/responses" in r.json()["error"]["message"]


def test_get_without_a_full_upgrade(gw, up):
    """The view's own answers: an Upgrade header alone is refused with 426, a plain GET with 405."""
    r = requests.get(gw.url + "/v1/responses", headers={"Upgrade": "websocket"}, timeout=10)
    assert r.status_code == 426, r.text
    err = r.json()["error"]
    assert "POST /v1/responses" in err["message"] and err["type"] and "param" in err
    r = requests.get(gw.url + "/v1/responses", timeout=10)
    assert r.status_code == 405 and r.headers["allow"] == "POST" and "POST" in r.json()["error"]["message"]


def test_input_tokens_counts_locally(gw, up):
    client = sdk(gw)
    short = client.responses.input_tokens.count(model=CHAT, input="say hi")
    long = client.responses.input_tokens.count(model=CHAT, input="say hi " * 400, instructions="be brief",
                                               tools=[WEATHER])
    assert short.object == "response.input_tokens" and 0 < short.input_tokens < long.input_tokens
    assert long.input_tokens >= 400
    assert not [r for r in up.requests if r.method == "POST"]  # estimated, not asked upstream
    r = requests.post(gw.url + "/v1/responses/input_tokens", json={"input": 5}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"


def test_key_required_on_responses(gw, up):
    gw.set_setting("require_auth", True)
    try:
        with pytest.raises(openai.AuthenticationError) as exc:
            sdk(gw).responses.create(model=CHAT, input="say hi")
        assert "sk-zen" in exc.value.response.json()["error"]["message"]
        r = requests.post(gw.url + "/v1/responses/input_tokens", json={"input": "x"}, timeout=10)
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    finally:
        gw.set_setting("require_auth", False)


def test_request_log_keeps_a_responses_call(gw, up):
    assert gw.admin("POST", "/_stats/clear").status_code == 200
    up.script(CHAT, openai_text("logged answer"))
    sdk(gw).responses.create(model=CHAT, input=[{"role": "user", "content": "log me"}])
    row = gw.wait_for(lambda: (rows := gw.admin("GET", "/_stats/requests?limit=5").json()["requests"]) and rows[0])
    assert row["path"] == "/v1/responses" and row["status"] == 200 and row["model"] == CHAT
    assert row["output_content"] == "logged answer"
    assert "log me" in json.dumps(row["input_messages"])
    assert (row["input_tokens"], row["output_tokens"]) == (10, 5)


# --------------------------------------------------------------------------- more of the API


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


@pytest.mark.parametrize("model", MODELS)
def test_structured_output_parses_in_the_sdk(gw, up, model):
    up.script(model, text_reply(model, '{"city": "Paris", "celsius": 21}'))
    answer = sdk(gw).responses.parse(model=model, input="weather in Paris as JSON", text_format=Weather)
    assert answer.output_parsed == Weather(city="Paris", celsius=21)
    sent = upstream_call(up, model).body
    schema = Weather.model_json_schema()
    if model == CHAT:
        spec = sent["response_format"]["json_schema"]
        assert sent["response_format"]["type"] == "json_schema" and spec["name"] == "Weather"
        assert spec["schema"]["required"] == schema["required"] and spec["strict"] is True
    elif model == RESPONSES:
        fmt = sent["text"]["format"]
        assert (fmt["type"], fmt["name"], fmt["strict"], fmt["schema"]["required"]) == (
            "json_schema", "Weather", True, schema["required"])
    else:  # Anthropic's upstreams get no output format (as for a chat client's response_format)
        assert not {"output_format", "response_format", "text"} & set(sent)


@pytest.mark.parametrize("model", MODELS)
def test_image_input_reaches_the_upstream(gw, up, model):
    pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    answer = sdk(gw).responses.create(model=model, input=[{"role": "user", "content": [
        {"type": "input_text", "text": "what is this?"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{pixel}"}]}])
    assert answer.output_text == "Hello from upstream"
    content = upstream_call(up, model).body["input" if model == RESPONSES else "messages"][0]["content"]
    if model == CHAT:
        assert content[1] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{pixel}"}}
    elif model == ANTHROPIC:
        assert content[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": pixel}}
    else:
        assert content[1] == {"type": "input_image", "image_url": f"data:image/png;base64,{pixel}"}
    assert content[0]["text"] == "what is this?"


@pytest.mark.parametrize("model", MODELS)
def test_answer_cut_at_the_token_limit_is_incomplete(gw, up, model):
    reply = {CHAT: openai_text("cut sho", finish="length"),
             ANTHROPIC: anthropic_text("cut sho", stop_reason="max_tokens"),
             RESPONSES: responses_text("cut sho", incomplete="max_output_tokens")}[model]
    up.script(model, reply, reply)
    client = sdk(gw)
    answer = client.responses.create(model=model, input="say a lot", max_output_tokens=16)
    assert answer.status == "incomplete" and answer.incomplete_details.reason == "max_output_tokens"
    assert answer.output_text == "cut sho"
    events = list(client.responses.create(model=model, input="say a lot", max_output_tokens=16, stream=True))
    assert events[-1].type == "response.incomplete", [e.type for e in events]
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    assert events[-1].response.output_text == "cut sho"


@pytest.mark.parametrize("model", MODELS)
def test_first_event_arrives_before_the_upstream_finishes(gw, up, model):
    reply = {CHAT: openai_text("a b c d e f g h", chunks=8, delay=0.25),
             ANTHROPIC: anthropic_text("a b c d e f g h", chunks=8, delay=0.25),
             RESPONSES: responses_text("a b c d e f g h", chunks=8, delay=0.25)}[model]
    up.script(model, reply)
    with sdk(gw).responses.stream(model=model, input="say it slowly") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                assert up.completed_streams == 0  # the upstream is still sending
                break
        final = stream.get_final_response()
    assert final.output_text == "a b c d e f g h"
    assert up.wait_for(lambda: up.completed_streams == 1)


@pytest.mark.parametrize("model", MODELS)
def test_hosted_tools_reach_only_a_responses_upstream(gw, up, model):
    answer = sdk(gw).responses.create(model=model, input="news today?",
                                      tools=[{"type": "web_search"}, WEATHER])
    assert answer.output_text == "Hello from upstream"
    tools = upstream_call(up, model).body["tools"]
    if model == RESPONSES:
        assert [t["type"] for t in tools] == ["web_search", "function"]
    elif model == CHAT:
        assert [t["function"]["name"] for t in tools] == ["get_weather"]
    else:
        assert [t["name"] for t in tools] == ["get_weather"]


@pytest.mark.parametrize("model", MODELS)
def test_a_name_of_the_clients_reaches_a_zen_model(gw, up, model):
    """``model_overrides`` sends a name the client knows (Codex's gpt-5.5) to a Zen model on its own API;
    answers carry the client's name, and x-zengate-model the model that answered."""
    protocol = {CHAT: "openai", ANTHROPIC: "anthropic", RESPONSES: "responses"}[model]
    gw.set_setting("model_overrides", {"gpt-5.5": {"upstream_model": model, "protocol": protocol}})
    try:
        raw = sdk(gw).responses.with_raw_response.create(model="gpt-5.5", input="say hi")
        answer = raw.parse()
        assert answer.model == "gpt-5.5" and answer.output_text == "Hello from upstream"
        assert raw.headers["x-zengate-model"] == model
        with sdk(gw).responses.stream(model="gpt-5.5", input="say hi") as stream:
            final = stream.get_final_response()
        assert final.model == "gpt-5.5" and final.output_text == "Hello from upstream"
    finally:
        gw.set_setting("model_overrides", {})
    sent = [r for r in up.requests if r.method == "POST"]
    assert [(r.model, r.path) for r in sent] == [(model, UPSTREAM_PATH[model])] * 2


def test_client_disconnect_closes_the_upstream(gw, up):
    up.script(CHAT, openai_text("word " * 200, chunks=200, delay=0.05))
    body = json.dumps({"model": CHAT, "input": "say hi", "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as sock:
        sock.sendall(b"POST /v1/responses HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        received = b""
        while b"response.output_text.delta" not in received:
            received += sock.recv(4096)
        assert received.startswith(b"HTTP/1.1 200")
    assert up.wait_for(lambda: up.disconnects == 1, timeout=10), "the gateway kept reading the upstream"
    assert up.completed_streams == 0


def test_max_tools_applies_to_responses(gw, up):
    gw.set_setting("max_tools", 2)
    try:
        tools = [{**WEATHER, "name": f"tool_{i}"} for i in range(3)]
        r = requests.post(gw.url + "/v1/responses", json={"model": CHAT, "input": "hi", "tools": tools}, timeout=10)
    finally:
        gw.set_setting("max_tools", 512)
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools", r.text
    assert "max_tools" in r.json()["error"]["message"]


def test_max_messages_applies_to_responses_input(gw, up):
    gw.set_setting("max_messages", 2)
    try:
        items = [{"role": "user", "content": f"turn {i}"} for i in range(3)]
        r = requests.post(gw.url + "/v1/responses", json={"model": CHAT, "input": items}, timeout=10)
    finally:
        gw.set_setting("max_messages", 10_000)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "input" and "max_messages" in r.json()["error"]["message"]


@pytest.mark.parametrize(("body", "reason"), [
    pytest.param({"model": CHAT, "prompt": {"id": "pmpt_123"}}, "all messages are empty", id="stored-prompt-only"),
    pytest.param({"model": CHAT, "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "read this"},
        {"type": "input_file", "file_url": "https://example.com/a.pdf"}]}]},
        "only base64 PDF documents can be sent to this model", id="file-url-to-chat"),
])
def test_refusals_for_one_upstream_say_which_api_cannot_take_it(gw, up, body, reason):
    """Input only a chat upstream cannot take is refused when the form is rendered for it: the 400 says
    which model and API, and names none of the internal form's fields (the client never sent them)."""
    sent_before = len(up.requests)
    r = requests.post(gw.url + "/v1/responses", json=body, timeout=10)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] is None and error["type"] == "invalid_request_error", r.text
    assert error["message"] == (f"this request cannot be sent to {CHAT}, which speaks the OpenAI Chat "
                                f"Completions API: {reason}"), r.text
    assert len(up.requests) == sent_before  # refused before anything went upstream
