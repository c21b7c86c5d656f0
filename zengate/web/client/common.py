"""Steps every client-API view shares: the request record, authentication, reading the body."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from typing import Any
from urllib.parse import quote

from flask import Response, g, jsonify, request

from ... import auth, guards
from ...dialects.base import Dialect
from ...dialects.errors import ProtocolError
from ...dialects.jsoncodec import dumps, loads
from ...dialects.tokens import estimate_anthropic_tokens
from ...exchange import routing, stages
from ...exchange import serve as exchange
from ...exchange.local import answer_locally
from ...exchange.records import RequestRecord
from ...exchange.routing import RoutingError
from ...exchange.serve import Answer
from ...gateway import Gateway, current_gateway
from ...guards import context as window_guard
from ...guards import loops
from ...guards.toolcalls import guard_factory
from ...keylimits import KeyPolicy
from ...steering import commands, housekeeping
from ...upstream.client import UpstreamError
from .. import input_limits as limits
from ..client_limits import ClientTooSlow
from ..errors import DB_RETRY_AFTER, ApiError, to_api_error
from . import conversation, steering

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def begin(fmt: str) -> tuple[Gateway, RequestRecord]:
    """Open the request record for this call; error handlers finish it."""
    gw = current_gateway()
    record = gw.new_record(request.method, request.path, fmt)
    g.record = record
    if gw.settings.get("wire_capture"):  # off, capture costs this lookup and `record.capture is None` checks
        record.capture = gw.capture.begin(request.environ, record.started)
    return gw, record


def authenticate(gw: Gateway, record: RequestRecord, query_key: str | None = None) -> None:
    """Check the client's sk-zen key when keys are required (401 otherwise).

    They are when ``require_auth`` is on, and always while the gateway listens beyond loopback
    unless the operator opened it (``Gateway.keys_required``). ``query_key`` is a key sent as
    ``?key=`` (the Gemini API's way; only its views pass it).
    """
    presented = auth.presented_key(request.headers, query_key)
    if presented and presented.startswith(auth.KEY_PREFIX):
        record.key_prefix = auth.key_prefix(presented)
    if not gw.keys_required():
        return
    try:
        policy = auth.verify_key(presented, gw.key_cache, gw.settings.generation.read())
    except auth.KeyStoreUnavailable:
        raise ApiError(503, "the gateway cannot check API keys right now: its database is unavailable; "
                       "retry shortly", headers={"Retry-After": str(DB_RETRY_AFTER)}, kind="gateway") from None
    if policy is None:
        message = ("this gateway requires an API key: send an active sk-zen key as "
                   "'Authorization: Bearer sk-zen-...' or 'x-api-key'")
        if presented:
            message = "invalid or revoked API key; " + message.split(": ", 1)[1]
        raise ApiError(401, message, kind="auth")
    record.key_id = policy.id
    if policy.expired(time.time()):
        when = dt.datetime.fromtimestamp(policy.expires_at or 0, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        raise ApiError(401, f"API key '{policy.label}' expired at {when}; ask the gateway's admin for a new "
                       "one or a later expiry", kind="auth")
    g.key_policy = policy


def admit(gw: Gateway, record: RequestRecord, model: str) -> None:
    """Hold the request to its key's limits (when keys are required and it has any): 403 for a
    model it may not use, 429 naming the limit it reached, with ``Retry-After``."""
    policy: KeyPolicy | None = g.get("key_policy")
    if policy is None:
        return
    if not policy.allows(model):
        raise ApiError(403, f"API key '{policy.label}' may not use model '{model}'; it may use: "
                       f"{', '.join(policy.models)}", param="model", kind="auth")
    if not policy.counted:
        return
    refused = gw.counters.admit(policy)
    if refused is not None:
        raise ApiError(429, refused.message, headers={"Retry-After": str(refused.retry_after)}, kind="limit",
                       quota=refused.quota_id)
    if policy.tokens_per_day:
        record.charge = partial(gw.counters.spend, policy)


def listed_models(gw: Gateway) -> list[dict]:
    """The catalog's models a client may see (a key limited to some models sees only those)."""
    gw.refresh_models_if_due()
    entries = gw.catalog.entries()
    policy = g.get("key_policy")
    if policy is not None and policy.models:
        entries = [e for e in entries if policy.allows(e["id"])]
    return entries


def read_json_body(gw: Gateway) -> Any:
    """The request body as JSON: 413 over the size limit, 400 when it is not JSON or over an input limit."""
    limit = gw.settings.get("max_body_bytes")
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, f"request body is {length} bytes; the limit is {limit} bytes", kind="input")
    if length is not None:
        # Exactly the declared length, straight from the server's input: werkzeug's request.stream
        # (built per request, from the app's config) would end up reading the same bytes.
        data = request.environ["wsgi.input"].read(length)
    else:  # a chunked body: its length is known at its end
        data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, f"request body exceeds the limit of {limit} bytes", kind="input")
    if not data.strip():
        raise ApiError(400, "request body is empty; send a JSON object", kind="input")
    g.raw_body = data  # what a quick look for in-chat commands reads (conversation.steer)
    try:
        body = loads(data)
    except RecursionError:  # the fallback parser on a very deep body
        raise limits.depth_error(gw.settings.get("max_json_depth")) from None
    except ValueError as exc:
        if "recursion" in str(exc).lower():  # orjson stops at 1024 levels
            raise limits.depth_error(gw.settings.get("max_json_depth")) from None
        raise ApiError(400, f"request body is not valid JSON: {exc}", kind="input") from None
    limits.check(gw.settings, data, body)  # nesting depth, messages, tools: 400 naming the limit
    return body


def header_value(text: str) -> str:
    """``text`` as a valid response header value: anything but printable ASCII percent-encoded.

    A model name comes from the client and may hold any character; the server refuses to send a
    header with control or non-Latin-1 characters, which would turn the answer into a 500.
    """
    if text.isascii() and text.isprintable():
        return text
    return quote(text, safe=_PRINTABLE_ASCII, errors="backslashreplace")


_PRINTABLE_ASCII = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def respond(result: Answer | Iterator[bytes], record: RequestRecord):
    """A JSON answer or a stream; the record is finished once the answer has gone out.

    A JSON answer's record (log row, metrics, log line) is finished after the server closed the
    answer, its bytes written, at the worker's next idle moment (``RequestRecord.finish_later``):
    neither the client nor its next request waits for the bookkeeping, and the latency logged is
    still up to the moment the answer was ready. A stream's pump finishes its record itself, as
    the stream ends (see ``relay._pump``).
    """
    # The proxy that carried the request (record.proxy) stays out of the answer: a client has no
    # business knowing the operator's proxies. The request log and the log line keep it.
    headers = {"x-zengate-model": header_value(record.upstream_model)} if record.upstream_model else {}
    if record.capture is not None:  # wire capture: the client's answer too
        if isinstance(result, Answer):
            record.capture.answered(result.body)
        else:
            result = record.capture.streamed(result)
    if isinstance(result, Answer):
        response = Response(dumps(result.body), status=200, mimetype="application/json", headers=headers)
        response.call_on_close(partial(record.finish_later, 200, ended=time.perf_counter()))
        return response
    # The pump yields bytes only: werkzeug's encoding layer and closing wrapper (two generator
    # frames per chunk) are skipped, and the server closes the pump itself, as it would the wrapper.
    return Response(result, status=200, mimetype="text/event-stream", headers={**SSE_HEADERS, **headers},
                    direct_passthrough=True)


def serve(gw: Gateway, body: dict, record: RequestRecord, dialect: Dialect):
    """Plan the routes for the body's model (or the one steering chose) and run them (fallbacks, keys, cooldowns)."""
    parsed: list[dict] = []  # the request in the internal form, when routing had to read it

    def form() -> dict:
        if not parsed:
            parsed.append(dialect.parse_request(body))
        return parsed[0]

    steered = conversation.steer(gw, body, form, record.key_prefix, request.headers)
    admit(gw, record, steered.model)
    if steered.local_text is not None:
        record.note_guard("chat_commands", "answered", steered.local_text)
        return answer_locally(dialect, form(), body, steered.local_text, record)

    active = guards.active(gw.settings.get("guards"), model=body["model"], key=record.key_prefix)
    if "loop_breaking" in active and loops.could_loop(body, repeats := gw.settings.get("loop_repeats")):
        loop = loops.loop_of(form(), repeats, gw.settings.get("loop_message"))
        if loop is not None:
            record.note_guard("loop_breaking", "steered", loop)
            return answer_locally(dialect, form(), body, loops.steering_text(gw.settings.get("loop_message"), loop),
                                  record)
    if (savers := gw.settings.get("quota_savers")) and housekeeping.worth_a_look(body):  # quota savers
        chore = housekeeping.recognise(form(), request.headers)
        if chore is not None and housekeeping.switched_on(savers, chore.kind):
            record.note_guard("quota_saver", "answered", f"{chore.kind}: {chore.what}")
            return answer_locally(dialect, form(), body, chore.text, record, stop_reason=chore.stop_reason)
    plan = gw.plan(steered.model, form)
    plan.client_model = body["model"]  # answers name the model the client asked for
    if "context_window" in active:
        fit_window(plan, form, record)
    headers = request.headers
    routes = plan.routes(gw.cooldowns, steered.conversation or (lambda: routing.conversation_key(body, headers, form)),
                         max_attempts=gw.settings.get("max_attempts"))
    options = exchange.Options(
        passed_headers=dialect.passed_headers(headers, gw.catalog),
        ping_seconds=gw.settings.get("stream_ping_seconds") if dialect.heartbeat is not None else 0,
        stream_upstream=gw.settings.get("stream_upstream"),
        input_estimate=(request.content_length or 0) // 4,  # bytes/4: JSON overhead keeps it on the high side
    )
    if active and body.get("tools"):  # every client API names its tools "tools"
        options = replace(options, guard=guard_factory(active, gw.settings.get("command_rules"), record.note_guard))
    chosen = stages.chosen(gw.settings.get("stages"), model=body["model"], key=record.key_prefix)
    if steered.strip:
        chosen = (*chosen, strip_commands)
    if steered.confirmation is not None:
        record.note_guard("chat_commands", "switched", steered.confirmation)
        options = replace(options, guard=exchange.chain_guards(
            lambda _form: commands.Confirmation(steered.confirmation), options.guard))
    steering_stages, rewriter = steering.for_request(gw, record, body, (body["model"], steered.model))
    if steering_stages:  # trimming, rewriting rules and prompt redaction (zengate/steering), after the others
        chosen = (*chosen, *steering_stages)
    if rewriter is not None:  # the model's own text, before the gateway's notes and tool-call guards
        options = replace(options, guard=exchange.chain_guards(rewriter, options.guard))
    context = stages.StageContext(dialect.name, body["model"], record.key_prefix) if chosen else None
    return exchange.serve(gw.upstream, routes, body, record, gw.cooldowns, dialect=dialect, options=options,
                          form=parsed[0] if parsed else None, chosen_stages=chosen, stage_context=context)


def strip_commands(form: dict, _context: stages.StageContext) -> dict | None:
    """The stage that removes in-chat commands and the gateway's answers to them (zengate/steering/commands.py)."""
    return commands.strip(form)


def fit_window(plan: routing.Plan, form: Callable[[], dict], record: RequestRecord) -> None:
    """The context-window guard (zengate/guards/context.py): keep only the plan's models whose window
    holds the prompt, in order; none: the client's own prompt-too-long error, nothing sent upstream."""
    windows = [candidate.info.context for candidate in plan.candidates]
    if not window_guard.may_overflow(request.content_length or 0, windows):
        return
    estimate = estimate_anthropic_tokens(form())
    keep = window_guard.fitting(windows, estimate)
    if len(keep) == len(windows):
        return
    first = plan.candidates[0]
    if not keep:
        message = window_guard.overflow_message(estimate, max(w for w in windows if w), first.model_id)
        record.note_guard("context_window", "refused", message)
        raise ApiError(400, message, "invalid_request_error", param="messages", kind="input")
    skipped = [plan.candidates[i].model_id for i in range(len(windows)) if i not in keep]
    record.note_guard("context_window", "skipped", f"{', '.join(skipped)}: window under "
                      f"{window_guard.prompt_size(estimate)} tokens; {plan.candidates[keep[0]].model_id} first")
    plan.candidates = [plan.candidates[i] for i in keep]


def install_error_handler(bp, body: Callable[[ApiError], dict],
                          adapt: Callable[[ApiError, Exception], ApiError] | None = None) -> None:
    """Render every error of a client-API blueprint in that API's shape, finishing the request record."""
    def handle(exc: Exception):
        err = to_api_error(exc)
        if adapt is not None:
            err = adapt(err, exc)
        shown = body(err)
        finish_with_error(err, shown)
        return jsonify(shown), err.status, err.headers

    for kind in (ApiError, ProtocolError, RoutingError, UpstreamError, ClientTooSlow):
        bp.register_error_handler(kind, handle)


def finish_with_error(err: ApiError, shown: dict | None = None) -> None:
    """Finish the request's record with ``err``; ``shown``, the body the client gets, goes to wire capture."""
    record = g.get("record")
    if record is None:
        return
    if shown is not None and record.capture is not None:
        record.capture.answered(shown)
    record.finish(err.status, err.message)  # the (last) proxy tried is logged, not sent
