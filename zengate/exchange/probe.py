"""One short test request to a model, sent the way a client's would be (the Models page's Test button).

The request ("Reply with OK") is planned by the gateway's router and run by the exchange's
fallback loop, in this process, exactly as an OpenAI chat-completions request naming the model:
aliases, the Claude/Gemini family map, fallbacks, backends, keys and their cooldowns all apply.
What belongs to a client's key or conversation does not: key limits, ``forced_model``, in-chat
commands, stages and guards. It is logged like any request, under the path ``/_admin/models/test``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..dialects import openai as openai_dialect
from ..dialects.errors import ProtocolError
from ..runtime.logs import redact
from ..upstream.client import UpstreamError
from . import routing
from . import serve as exchange
from .routing import RoutingError

if TYPE_CHECKING:
    from ..gateway import Gateway

PATH = "/_admin/models/test"  # the request log's path for these requests
PROMPT = "Reply with OK"
MAX_TOKENS = 200  # room for a reasoning model's short thought before its answer
MAX_TEXT = 2000  # characters of the answer shown


def body_for(model: str) -> dict:
    """The chat-completions body of a test request."""
    return {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": MAX_TOKENS}


def answer_text(answer: dict) -> str:
    """The assistant's text in a chat-completions answer ("" when it said nothing in text)."""
    choices = answer.get("choices") if isinstance(answer, dict) else None
    message = choices[0].get("message") if isinstance(choices, list) and choices and isinstance(choices[0], dict) \
        else None
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content[:MAX_TEXT] if isinstance(content, str) else ""


def run(gw: Gateway, model: str) -> dict[str, Any]:
    """Send the test request; the outcome as ``{"model", "answered_by", "backend", "status",
    "latency_ms", "text", "error", "attempts"}``. A failure (routing, upstream, protocol) is an
    outcome with the status and message a client would have got, not an exception."""
    body = body_for(model)
    record = gw.new_record("POST", PATH, "openai")
    record.model, record.input_messages = model, body["messages"]
    text, error, status = "", None, 200
    try:
        plan = gw.plan(model, lambda: openai_dialect.DIALECT.parse_request(body))
        routes = plan.routes(gw.cooldowns, lambda: routing.conversation_key(body, {}),
                             max_attempts=gw.settings.get("max_attempts"))
        options = exchange.Options(stream_upstream=gw.settings.get("stream_upstream"))
        result = exchange.serve(gw.upstream, routes, body, record, gw.cooldowns, dialect=openai_dialect.DIALECT,
                                options=options)
        text = answer_text(result.body) if isinstance(result, exchange.Answer) else ""
    except (RoutingError, UpstreamError, ProtocolError) as exc:
        status, error = exc.status, redact(exc.message)
    except Exception:
        record.finish(500, "the model test failed inside the gateway")
        raise
    latency_ms = round((time.perf_counter() - record.started) * 1000, 1)
    record.finish(status, error)
    last = record.attempts[-1] if record.attempts else {}
    return {"model": model, "answered_by": record.upstream_model if status == 200 else None,
            "backend": last.get("backend") if status == 200 else None, "status": status,
            "latency_ms": latency_ms, "text": text, "error": error, "attempts": record.attempts}
