"""Answers the gateway gives itself, without an upstream (a guard's steering message): rendered in
the client's API as an upstream's answer would be, whole or as a stream, and logged as any answer."""

from __future__ import annotations

from collections.abc import Iterator

from ..dialects.base import Context, Dialect
from ..dialects.translate_common import new_id
from .form import answer_events
from .records import RequestRecord
from .serve import Answer, Result

#: The model name local answers carry upstream-side (the client sees the name it asked for).
LOCAL_MODEL = "zengate"


def text_answer(model: str, text: str, stop_reason: str = "end_turn") -> dict:
    """A finished answer in the form that says ``text``."""
    return {"id": new_id("msg_"), "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}], "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0}}


def answer_locally(dialect: Dialect, form: dict, body: dict, text: str, record: RequestRecord,
                   stop_reason: str = "end_turn") -> Result:
    """``text`` as the answer to the client's request, in its API; a stream when it asked for one
    (``stop_reason`` in the form's words: ``max_tokens`` for an answer cut at a ``max_tokens: 1``)."""
    model = body.get("model") or LOCAL_MODEL
    context = Context(model, LOCAL_MODEL, request=form,
                      include_usage=bool((body.get("stream_options") or {}).get("include_usage")))
    answer = text_answer(model, text, stop_reason)
    record.add_output(text)
    record.first_byte()
    if not body.get("stream"):
        return Answer(dialect.render_answer(answer, context))
    return _stream(dialect, context, answer, record)


def _stream(dialect: Dialect, context: Context, answer: dict, record: RequestRecord) -> Iterator[bytes]:
    yield from dialect.encoder(context).encode(answer_events(answer))
    record.finish(200)
