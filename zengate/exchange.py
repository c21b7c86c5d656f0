"""One client request, one upstream exchange: the four pairings of client API and upstream protocol.

Each function takes a validated client body and a :class:`~zengate.routing.Route`, sends the
upstream request in the route's protocol, and returns either an :class:`Answer` (a JSON body) or
a stream of client bytes. Translation is delegated to the pure functions in
:mod:`zengate.protocols`; the socket work to :mod:`zengate.relay`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from . import adapters, relay
from .protocols import anthropic_to_openai, openai_to_anthropic
from .protocols.sse import encode_event
from .protocols.tokens import estimate_anthropic_tokens
from .records import RequestRecord
from .routing import Route
from .upstream.client import UpstreamClient, UpstreamError

# Client headers an Anthropic-protocol upstream may see (nothing else of the client's goes up).
ANTHROPIC_HEADER_ALLOW_LIST = ("anthropic-beta",)


@dataclass
class Answer:
    body: dict


Result = Answer | Iterator[bytes]


# --- shared checks of upstream answers -----------------------------------------------------

def check_openai_answer(answer: object) -> dict:
    """A 200 answer that is not a chat completion becomes a clear 502."""
    if isinstance(answer, dict) and isinstance(answer.get("choices"), list):
        return answer
    raise _not_an_answer(answer, "a chat completion")


def check_anthropic_answer(answer: object) -> dict:
    if isinstance(answer, dict) and isinstance(answer.get("content"), list):
        return answer
    raise _not_an_answer(answer, "an Anthropic message")


def _not_an_answer(answer: object, what: str) -> UpstreamError:
    if isinstance(answer, dict) and answer.get("error"):
        err = answer["error"]
        message = err.get("message") if isinstance(err, dict) else str(err)
        return UpstreamError(502, f"upstream error: {message}", "protocol")
    return UpstreamError(502, f"the upstream answered 200 with something that is not {what}", "protocol")


def record_openai_answer(answer: dict, record: RequestRecord) -> None:
    usage = answer.get("usage") or {}
    record.add_usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))
    for choice in answer.get("choices") or []:
        message = choice.get("message") or {}
        record.add_output(message.get("content") if isinstance(message.get("content"), str) else None)
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            record.add_output(f"[tool_call {fn.get('name')}({fn.get('arguments', '')})]")


def record_anthropic_answer(message: dict, record: RequestRecord) -> None:
    usage = message.get("usage") or {}
    cached = (usage.get("cache_read_input_tokens") or 0) + (usage.get("cache_creation_input_tokens") or 0)
    record.add_usage((usage.get("input_tokens") or 0) + cached, usage.get("output_tokens"))
    for block in message.get("content") or []:
        if block.get("type") == "text":
            record.add_output(block.get("text"))
        elif block.get("type") == "tool_use":
            record.add_output(f"[tool_use {block.get('name')}({block.get('input')})]")


def openai_upstream_body(body: dict, route: Route) -> dict:
    """An OpenAI request as sent upstream: model mapped, usage always asked for in streams."""
    upstream = dict(body)
    upstream["model"] = route.upstream_model
    if body.get("stream"):
        upstream["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return upstream


def _renamed(route: Route) -> str | None:
    return route.client_model if route.client_model != route.upstream_model else None


# --- OpenAI clients --------------------------------------------------------------------------

def for_openai_client(client: UpstreamClient, route: Route, body: dict, record: RequestRecord) -> Result:
    stream = bool(body.get("stream"))
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    if route.protocol == "anthropic":
        upstream_body, names = openai_to_anthropic.request_to_anthropic(
            body, upstream_model=route.upstream_model, max_output_tokens=route.max_output)
        response = relay.send(client, route, upstream_body, stream=stream, record=record)
        if stream:
            translator = openai_to_anthropic.StreamToOpenAI(client_model=route.client_model, names=names,
                                                            include_usage=include_usage)
            return relay.pump(response, adapters.OpenAIFromAnthropic(record, translator), record)
        message = check_anthropic_answer(client.read_json(response))
        record.first_byte()
        record_anthropic_answer(message, record)
        return Answer(openai_to_anthropic.response_from_anthropic(message, client_model=route.client_model,
                                                                  names=names))

    response = relay.send(client, route, openai_upstream_body(body, route), stream=stream, record=record)
    if stream:
        adapter = adapters.OpenAIPassthrough(record, include_usage=include_usage, client_model=_renamed(route))
        return relay.pump(response, adapter, record)
    answer = check_openai_answer(client.read_json(response))
    record.first_byte()
    answer["model"] = route.client_model
    record_openai_answer(answer, record)
    return Answer(answer)


# --- Anthropic clients -----------------------------------------------------------------------

PING = encode_event("ping", {"type": "ping"})


def for_anthropic_client(client: UpstreamClient, route: Route, body: dict, record: RequestRecord,
                         client_headers: dict[str, str], *, ping_seconds: float = 0) -> Result:
    """An Anthropic client's request; ``ping_seconds`` > 0 sends ``ping`` events on upstream silence."""
    stream = bool(body.get("stream"))
    heartbeat = (ping_seconds, PING) if ping_seconds > 0 else None
    if route.protocol == "anthropic":
        upstream_body = {**body, "model": route.upstream_model}
        passed = {k: v for k, v in client_headers.items() if k.lower() in ANTHROPIC_HEADER_ALLOW_LIST and v}
        response = relay.send(client, route, upstream_body, stream=stream, record=record, extra_headers=passed)
        if stream:
            adapter = adapters.AnthropicPassthrough(record, client_model=_renamed(route))
            return relay.pump(response, adapter, record, heartbeat=heartbeat)
        message = check_anthropic_answer(client.read_json(response))
        record.first_byte()
        message["model"] = route.client_model
        record_anthropic_answer(message, record)
        return Answer(message)

    upstream_body, names = anthropic_to_openai.request_to_openai(
        body, upstream_model=route.upstream_model, max_output_tokens=route.max_output)
    response = relay.send(client, route, upstream_body, stream=stream, record=record)
    if stream:
        translator = anthropic_to_openai.StreamToAnthropic(
            client_model=route.client_model, names=names, input_tokens_estimate=estimate_anthropic_tokens(body))
        return relay.pump(response, adapters.AnthropicFromOpenAI(record, translator), record, heartbeat=heartbeat)
    answer = check_openai_answer(client.read_json(response))
    record.first_byte()
    message = anthropic_to_openai.response_from_openai(answer, client_model=route.client_model, names=names)
    record_anthropic_answer(message, record)
    return Answer(message)

