"""One client request, one upstream exchange: the four pairings of client API and upstream protocol.

Each function takes a validated client body and a :class:`~zengate.exchange.routing.Route`, sends the
upstream request in the route's protocol, and returns either an :class:`Answer` (a JSON body) or
a stream of client bytes. Translation is delegated to the pure functions in
:mod:`zengate.dialects`; the socket work to :mod:`zengate.exchange.relay`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..dialects import anthropic_to_openai, openai_to_anthropic
from ..dialects.anthropic import without_gateway_thinking
from ..dialects.errors import ProtocolError
from ..dialects.fold import fold_anthropic_events, fold_openai_chunks
from ..dialects.jsoncodec import loads
from ..dialects.sse import DONE, SSEParser, encode_event
from ..upstream.client import UpstreamClient, UpstreamError
from . import adapters, relay
from .catalog import ANTHROPIC_BETAS
from .records import RequestRecord
from .routing import RETRYABLE_STATUSES, Attempts, Cooldowns, Route

log = logging.getLogger(__name__)

# Client headers an Anthropic-protocol upstream may see (nothing else of the client's goes up).
ANTHROPIC_HEADER_ALLOW_LIST = ("anthropic-beta",)
_FILTER_CACHE_MAX = 64  # distinct (header value, accepted list) pairs remembered per worker
_LOG_ONCE_MAX = 256  # distinct unknown betas logged per worker; after that, one last line and silence
_filtered: dict[tuple[str, frozenset[str]], str] = {}
_logged: set[str] = set()


def allowed_headers(headers, betas: frozenset[str] = ANTHROPIC_BETAS) -> dict[str, str]:
    """The allow-listed client headers, for passthrough to an Anthropic-protocol upstream.

    ``anthropic-beta`` keeps only the values in ``betas`` (what Anthropic-protocol upstreams are
    known to accept: :data:`~zengate.exchange.catalog.ANTHROPIC_BETAS`, plus the models file's
    ``anthropic_betas`` - pass ``ModelCatalog.anthropic_betas``); left empty, it is not sent.
    """
    out = {}
    for name in ANTHROPIC_HEADER_ALLOW_LIST:
        value = headers.get(name)
        if value and name == "anthropic-beta":
            value = filter_betas(value, betas)
        if value:
            out[name] = value
    return out


def filter_betas(value: str, accepted: frozenset[str]) -> str:
    """The comma-separated betas of ``value`` that are in ``accepted``, in order, without repeats.

    A client sends the same header on every request (Claude Code's names eight or nine), so each
    distinct value is worked out once per worker and remembered (a bounded cache: a client sending
    ever new values costs the split, never memory). A beta dropped is logged once per worker.
    """
    key = (value, accepted)
    kept = _filtered.get(key)
    if kept is not None:
        return kept
    names = [n for n in (part.strip() for part in value.split(",")) if n]
    kept = ",".join(dict.fromkeys(n for n in names if n in accepted))
    for name in names:
        if name not in accepted:
            _log_dropped(name)
    if len(_filtered) >= _FILTER_CACHE_MAX:
        _filtered.clear()
    _filtered[key] = kept
    return kept


def _log_dropped(name: str) -> None:
    if name in _logged or len(_logged) > _LOG_ONCE_MAX:
        return
    _logged.add(name)
    if len(_logged) > _LOG_ONCE_MAX:
        log.info("more anthropic-beta values were dropped; no more are logged by this worker")
        return
    log.info("anthropic-beta %r is not sent upstream: Anthropic-protocol upstreams are not known to accept it "
             "(list it under anthropic_betas in ZENGATE_MODELS_FILE to send it)", name[:100])


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


def anthropic_upstream_body(body: dict, upstream_model: str, stream: bool) -> dict:
    """The client's Anthropic request as an Anthropic-protocol upstream gets it: the model mapped,
    and the thinking blocks zengate made left out of the history (:func:`without_gateway_thinking`)."""
    upstream = {**body, "model": upstream_model, "stream": stream}
    messages = without_gateway_thinking(body["messages"])
    if messages is not None:
        upstream["messages"] = messages
    return upstream


def openai_upstream_body(body: dict, route: Route) -> dict:
    """An OpenAI request as sent upstream: model mapped, usage always asked for in streams."""
    upstream = dict(body)
    upstream["model"] = route.upstream_model
    if body.get("stream"):
        upstream["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return upstream


def _renamed(route: Route) -> str | None:
    return route.client_model if route.client_model != route.upstream_model else None


# --- the four pairings -------------------------------------------------------------------------

@dataclass(frozen=True)
class Options:
    """Per-request choices the views pass down."""

    passed_headers: dict[str, str] = field(default_factory=dict)  # allowed_headers(): all the client sends up
    ping_seconds: float = 0  # Anthropic ping events on upstream silence (0: none)
    stream_upstream: bool = False  # stream from the upstream even for a non-streaming client; fold it
    input_estimate: int = 0  # a cheap first guess of the prompt's tokens for message_start (upstream usage follows)


PING = encode_event("ping", {"type": "ping"})


def _openai_client(client: UpstreamClient, route: Route, body: dict, record: RequestRecord,
                   options: Options) -> Result:
    stream = bool(body.get("stream"))
    fold = not stream and options.stream_upstream
    include_usage = fold or bool((body.get("stream_options") or {}).get("include_usage"))
    if route.protocol == "anthropic":
        upstream_body, names = openai_to_anthropic.request_to_anthropic(
            {**body, "stream": stream or fold}, upstream_model=route.upstream_model, max_output_tokens=route.max_output)
        response = relay.send(client, route, upstream_body, stream=stream or fold, record=record)
        if stream or fold:
            translator = openai_to_anthropic.StreamToOpenAI(client_model=route.client_model, names=names,
                                                            include_usage=include_usage)
            adapter = adapters.OpenAIFromAnthropic(record, translator)
            chunks = relay.pump(response, adapter, record, finish_record=stream)
            return chunks if stream else _folded(chunks, "openai", route.client_model)
        message = check_anthropic_answer(relay.read_answer(client, response))
        record.first_byte()
        record_anthropic_answer(message, record)
        return Answer(openai_to_anthropic.response_from_anthropic(message, client_model=route.client_model,
                                                                  names=names))

    response = relay.send(client, route, openai_upstream_body({**body, "stream": stream or fold}, route),
                          stream=stream or fold, record=record)
    if stream or fold:
        adapter = adapters.OpenAIPassthrough(record, include_usage=include_usage, client_model=_renamed(route))
        chunks = relay.pump(response, adapter, record, finish_record=stream)
        return chunks if stream else _folded(chunks, "openai", route.client_model)
    answer = check_openai_answer(relay.read_answer(client, response))
    record.first_byte()
    answer["model"] = route.client_model
    record_openai_answer(answer, record)
    return Answer(answer)


def _anthropic_client(client: UpstreamClient, route: Route, body: dict, record: RequestRecord,
                      options: Options) -> Result:
    stream = bool(body.get("stream"))
    fold = not stream and options.stream_upstream
    heartbeat = (options.ping_seconds, PING) if stream and options.ping_seconds > 0 else None
    if route.protocol == "anthropic":
        upstream_body = anthropic_upstream_body(body, route.upstream_model, stream or fold)
        response = relay.send(client, route, upstream_body, stream=stream or fold, record=record,
                              extra_headers=options.passed_headers)
        if stream or fold:
            adapter = adapters.AnthropicPassthrough(record, client_model=_renamed(route))
            chunks = relay.pump(response, adapter, record, heartbeat=heartbeat, finish_record=stream)
            return chunks if stream else _folded(chunks, "anthropic", route.client_model)
        message = check_anthropic_answer(relay.read_answer(client, response))
        record.first_byte()
        message["model"] = route.client_model
        record_anthropic_answer(message, record)
        return Answer(message)

    upstream_body, names = anthropic_to_openai.request_to_openai(
        {**body, "stream": stream or fold}, upstream_model=route.upstream_model, max_output_tokens=route.max_output)
    response = relay.send(client, route, upstream_body, stream=stream or fold, record=record)
    if stream or fold:
        translator = anthropic_to_openai.StreamToAnthropic(
            client_model=route.client_model, names=names, input_tokens_estimate=options.input_estimate)
        chunks = relay.pump(response, adapters.AnthropicFromOpenAI(record, translator), record,
                            heartbeat=heartbeat, finish_record=stream)
        return chunks if stream else _folded(chunks, "anthropic", route.client_model)
    answer = check_openai_answer(relay.read_answer(client, response))
    record.first_byte()
    message = anthropic_to_openai.response_from_openai(answer, client_model=route.client_model, names=names)
    record_anthropic_answer(message, record)
    return Answer(message)


def _folded(chunks: Iterator[bytes], client_api: str, model: str) -> Answer:
    """A whole client-format stream folded into the one answer a non-streaming client expects.

    A stream that failed (its error event, or no end) is an :class:`UpstreamError`: nothing has
    reached the client yet, so the next route may still be tried.
    """
    parser = SSEParser()
    events = [e for chunk in chunks for e in parser.feed(chunk)] + parser.finish()
    try:
        if client_api == "openai":
            return Answer(fold_openai_chunks([loads(e.data) for e in events if e.data != DONE], model=model))
        pairs = [(e.event or "", loads(e.data)) for e in events if e.event != "ping"]
        return Answer(fold_anthropic_events(pairs, model=model))
    except ProtocolError as err:
        raise UpstreamError(err.status, err.message, "protocol") from None


# --- fallbacks ---------------------------------------------------------------------------------------

def is_retryable(err: UpstreamError) -> bool:
    """Worth trying the next key or model: rate limits, server errors, timeouts, lost connections, bad keys."""
    return err.kind != "http" or err.status in RETRYABLE_STATUSES or err.status == 401


def serve(client: UpstreamClient, routes: Attempts, body: dict, record: RequestRecord,
          cooldowns: Cooldowns, *, client_api: str, options: Options = Options()) -> Result:
    """Try the routes in order until one answers; only failures before the first byte move on.

    Every attempt lands in the request record; a 429 (or 401) cools its model and key down and the
    next key is tried; any other retryable failure moves on to the next model.
    """
    attempt = _openai_client if client_api == "openai" else _anthropic_client
    last: UpstreamError | None = None
    for route in routes:
        try:
            result = attempt(client, route, body, record, options)
        except UpstreamError as err:
            record.note_attempt(route, err.status, err.detail or err.message, kind=err.kind)
            cooldowns.note(route, err.status, err.retry_after)
            last = err
            if not is_retryable(err):
                raise
            if err.status not in (401, 429):
                routes.next_model(route)
            continue
        record.note_attempt(route, 200)
        return result
    if last is not None:
        raise last
    wait = cooldowns.soonest()
    retry = str(max(1, round(wait))) if wait else "30"
    raise UpstreamError(429, f"every route for this model is cooling down after rate limits; retry in {retry}s",
                        "http", "rate_limit_error", {"retry-after": retry})
