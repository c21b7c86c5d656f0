"""One client request tried on its routes, in order, until one answers: the fallback loop.

Each attempt speaks the route's upstream dialect. When it is the client's own and nothing needs
changing, the client's body goes up as it is (the model mapped) and the upstream's bytes come back
untouched; otherwise the client's request is read into the internal form once (``exchange.form``)
and each attempt renders it for its upstream, decodes the upstream's answer or stream into the
form and renders that for the client. Only failures before the first byte reach the client move
on to the next route; the socket work is :mod:`zengate.exchange.relay`'s.

The time before the first byte (a stream's first client bytes, a JSON answer whole) is one budget
over all the attempts, ``first_byte_budget``, connecting included: while another model may follow,
an attempt gets half of what is left (:func:`first_byte_share`), so that a hung upstream leaves its
fallback time; the last one gets all of it. When it runs out the client gets a 504 in its API's
shape that says which upstreams were tried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..dialects import registry
from ..dialects.anthropic import note_answer as note_form_answer
from ..dialects.base import Context, Dialect, Target
from ..dialects.errors import ProtocolError
from ..upstream.client import (
    DEADLINE_SLACK,
    FirstByteDeadline,
    FirstByteTimeout,
    UpstreamClient,
    UpstreamError,
    seconds_text,
)
from . import adapters, relay, stages
from .form import fold_events
from .records import RequestRecord
from .routing import RETRYABLE_STATUSES, Attempts, Cooldowns, Route

log = logging.getLogger(__name__)


@dataclass
class Answer:
    body: dict


Result = Answer | Iterator[bytes]


class AnswerGuard(adapters.EventGuard, Protocol):
    """What an answer's guard does (zengate.guards.toolcalls.ToolCallGuard): a stream's events, or a whole answer."""

    def answer(self, answer: dict) -> dict: ...


#: Makes an attempt's answer guard from the request's form (None: nothing to guard in this request).
GuardFactory = Callable[[dict], "AnswerGuard | None"]


class GuardChain:
    """Several answer guards in a row: each gets what the one before it let through."""

    def __init__(self, guards: Sequence[AnswerGuard]):
        self.guards = guards

    def feed(self, events):
        for guard in self.guards:
            events = guard.feed(events)
        return events

    def answer(self, answer: dict) -> dict:
        for guard in self.guards:
            answer = guard.answer(answer)
        return answer


def chain_guards(*factories: GuardFactory | None) -> GuardFactory | None:
    """One factory making every given factory's guard (in order) for a request; None when none is given."""
    present = [f for f in factories if f is not None]
    if len(present) < 2:
        return present[0] if present else None

    def make(form: dict) -> AnswerGuard | None:
        made = [guard for guard in (f(form) for f in present) if guard is not None]
        return made[0] if len(made) == 1 else (GuardChain(made) if made else None)

    return make


@dataclass(frozen=True)
class Options:
    """Per-request choices the views pass down."""

    passed_headers: dict[str, str] = field(default_factory=dict)  # the client's own, for an upstream of its API
    ping_seconds: float = 0  # the client dialect's heartbeat on upstream silence (0: none)
    stream_upstream: bool = False  # stream from the upstream even for a non-streaming client; fold it
    input_estimate: int = 0  # a cheap first guess of the prompt's tokens for message_start (upstream usage follows)
    guard: GuardFactory | None = None  # the answer's guard for the request's form (zengate/guards), or None


class Request:
    """The client's request as the attempts need it: its body, and its form, read at most once.

    ``changed`` says a stage changed the form: then no upstream gets the client's own body.
    """

    __slots__ = ("_form", "body", "changed", "dialect")

    def __init__(self, dialect: Dialect, body: dict, form: dict | None = None):
        self.dialect = dialect
        self.body = body
        self._form = form
        self.changed = False

    @property
    def form(self) -> dict:
        if self._form is None:
            self._form = self.dialect.parse_request(self.body)
        return self._form

    def run_stages(self, chosen: Sequence[stages.Stage], context: stages.StageContext) -> None:
        changed = stages.run(chosen, self.form, context)
        if changed is not None:
            self._form, self.changed = changed, True


def _attempt(client: UpstreamClient, route: Route, request: Request, record: RequestRecord,
             options: Options, deadline: FirstByteDeadline) -> Result:
    dialect = request.dialect
    upstream = registry.get(route.protocol)
    body = request.body
    stream = bool(body.get("stream"))
    fold = not stream and options.stream_upstream
    target = Target(route.upstream_model, route.max_output, stream or fold)
    context = Context(route.client_model, route.upstream_model, input_estimate=options.input_estimate,
                      include_usage=bool((body.get("stream_options") or {}).get("include_usage")))
    same = upstream is dialect and not request.changed
    guard = options.guard(request.form) if options.guard is not None else None
    if same:
        upstream_body = dialect.passthrough_body(body, target)
        if guard is not None:  # the answer comes back through the form, for the guard
            context.request = request.form
    else:
        context.request = request.form
        try:
            upstream_body = upstream.render_request(request.form, target, context)
        except ProtocolError as err:
            if upstream is dialect:
                raise
            # what this upstream's API cannot say: the form's field names are not the client's
            reason = err.message.removeprefix(f"{err.param}: ") if err.param else err.message
            raise ProtocolError(err.status, f"this request cannot be sent to {route.upstream_model}, which speaks "
                                f"the {upstream.title} API: {reason}", None) from None
        if upstream is not dialect:
            _note_unserved(dialect, request.form, route, record)
    response = relay.send(client, route, upstream_body, stream=stream or fold, record=record,
                          extra_headers=options.passed_headers if same else None, deadline=deadline)
    if fold:
        folded = _folded(response, upstream, context, record, deadline)
        return Answer(dialect.render_answer(guard.answer(folded) if guard is not None else folded, context))
    same_answer = same and guard is None
    if stream:
        heartbeat = ((options.ping_seconds, dialect.heartbeat)
                     if dialect.heartbeat is not None and options.ping_seconds > 0 else None)
        adapter = (adapters.Passthrough(dialect.passthrough(context, record)) if same_answer
                   else adapters.Translating(upstream.decoder(context), dialect.encoder(context), record, guard))
        return relay.pump(response, adapter, record, heartbeat=heartbeat, deadline=deadline)
    answer = relay.read_answer(client, response, deadline)
    record.first_byte()
    try:
        if same_answer:
            dialect.note_answer(answer, record)
            answer["model"] = route.client_model
            return Answer(answer)
        form_answer = upstream.parse_answer(answer, context)
    except ProtocolError as err:
        raise UpstreamError(err.status, err.message, "protocol") from None
    note_form_answer(form_answer, record)
    if guard is not None:
        form_answer = guard.answer(form_answer)
    return Answer(dialect.render_answer(form_answer, context))


def _note_unserved(dialect: Dialect, form: dict, route: Route, record: RequestRecord) -> None:
    """A log line when the client's hosted tools (web_search…) go to an upstream that cannot run them."""
    unserved = dialect.unserved(form)
    if unserved:
        log.info("request %s: %s on %s speaks another API and cannot run the hosted tools %s; sent without them",
                 record.request_id, route.upstream_model, route.tier, ", ".join(unserved))


def _folded(response, upstream: Dialect, context: Context, record: RequestRecord,
            deadline: FirstByteDeadline) -> dict:
    """An upstream stream read whole and folded into the form's answer, for a non-streaming client.

    A stream that failed (its error event, or no end) is an :class:`UpstreamError`: nothing has
    reached the client yet, so the next route may still be tried. The client's first byte is the
    whole answer: the stream must end by the ``deadline``.
    """
    collector = adapters.Collecting(upstream.decoder(context), record)
    for _ in relay.pump(response, collector, record, finish_record=False, deadline=deadline):
        pass
    try:
        return fold_events(collector.events, model=context.client_model)
    except ProtocolError as err:
        raise UpstreamError(err.status, err.message, "protocol") from None


# --- fallbacks ---------------------------------------------------------------------------------------

def is_retryable(err: UpstreamError) -> bool:
    """Worth trying the next key or model: rate limits, server errors, timeouts, lost connections, bad keys."""
    return err.kind != "http" or err.status in RETRYABLE_STATUSES or err.status == 401


#: While another model may follow, an attempt may wait this part of what is left of the budget.
SHARE_WHILE_MORE = 0.5


def first_byte_share(left: float, more: bool) -> float:
    """An attempt's share of the ``left`` seconds of ``first_byte_budget``.

    Half while another model may follow (``more``): a hung upstream leaves its fallback as long
    again. All of it for the last attempt. Attempts that fail at once use almost nothing of theirs,
    and the next one shares what is left anew.
    """
    return left * SHARE_WHILE_MORE if more else left


def _no_first_byte(budget: float, waited: float, failures: list[tuple[Route, UpstreamError]]) -> FirstByteTimeout:
    """The 504 when no attempt began its answer in time: how long, and which upstreams were tried."""
    def outcome(err: UpstreamError) -> str:
        if isinstance(err, FirstByteTimeout):
            return f"no first byte in {seconds_text(err.seconds)} s"
        return f"HTTP {err.status}" if err.kind == "http" else err.kind

    tried = ", ".join(f"{route.upstream_model} on {route.tier} ({outcome(err)})" for route, err in failures)
    within = seconds_text(budget if waited >= budget - DEADLINE_SLACK else waited)
    subject = "the upstream did not start" if len(failures) == 1 else "no upstream started"
    return FirstByteTimeout(waited, f"{subject} answering within {within} s (first_byte_budget); tried {tried}")


def serve(client: UpstreamClient, routes: Attempts, body: dict, record: RequestRecord,
          cooldowns: Cooldowns, *, dialect: Dialect, options: Options = Options(),
          form: dict | None = None, chosen_stages: Sequence[stages.Stage] = (),
          stage_context: stages.StageContext | None = None) -> Result:
    """Try the routes in order until one answers; only failures before the first byte move on.

    Every attempt lands in the request record, with the first-byte timeout it had; a 429 (or 401)
    cools its model and key down and the next key is tried; any other retryable failure moves on
    to the next model. All of them share ``first_byte_budget`` (see :func:`first_byte_share`).
    ``form`` is the client's request already read into the internal form, when the caller had to
    (auto routing); ``chosen_stages`` run on it once, before the first attempt.
    """
    request = Request(dialect, body, form)
    if chosen_stages:
        request.run_stages(chosen_stages, stage_context or stages.StageContext(dialect.name, body.get("model", "")))
    settings = client.settings
    budget = settings.get("first_byte_budget")
    after = settings.get("upstream_read_timeout")
    max_attempts = settings.get("max_attempts")
    begun = time.monotonic()
    ends = begun + budget
    last: UpstreamError | None = None
    failures: list[tuple[Route, UpstreamError]] = []
    for number, route in enumerate(routes, 1):
        now = time.monotonic()
        if now >= ends:  # an attempt that failed otherwise used the budget up
            break
        share = first_byte_share(ends - now, number < max_attempts and routes.fallback_follows(route))
        try:
            result = _attempt(client, route, request, record, options, FirstByteDeadline(now + share, share, after))
        except UpstreamError as err:
            record.note_attempt(route, err.status, err.detail or err.message, kind=err.kind, timeout=share)
            cooldowns.note(route, err.status, err.retry_after)
            last = err
            failures.append((route, err))
            if not is_retryable(err):
                raise
            if err.status not in (401, 429):
                routes.next_model(route)
            continue
        record.note_attempt(route, 200, timeout=share)
        return result
    if last is not None:
        waited = time.monotonic() - begun
        if isinstance(last, FirstByteTimeout) or (last.kind == "timeout" and waited >= budget):
            raise _no_first_byte(budget, waited, failures) from last
        raise last
    wait = cooldowns.soonest()
    retry = str(max(1, round(wait))) if wait else "30"
    raise UpstreamError(429, f"every route for this model is cooling down after rate limits; retry in {retry}s",
                        "http", "rate_limit_error", {"retry-after": retry})
