"""The two translation directions the gateway began with, composed from the dialects.

The translation tests were written against pairwise functions (Anthropic request → OpenAI chat
request, OpenAI answer → Anthropic answer, and the two stream translators). These compose the
same from the dialects and the internal form — the client's dialect parses, the upstream's
renders, and back — so the same tests now check each dialect's converters through the form.
"""

from __future__ import annotations

from zengate.dialects import anthropic, openai
from zengate.dialects.anthropic.stream import Decoder as AnthropicDecoder
from zengate.dialects.base import Context, Target
from zengate.dialects.openai import answer as openai_answer
from zengate.dialects.openai.stream import Chunks
from zengate.dialects.openai.stream import Decoder as OpenAIDecoder
from zengate.dialects.translate_common import ToolNames


def request_to_openai(body: dict, *, upstream_model: str, max_output_tokens: int | None = None,
                      reasoning_as_content: bool = False) -> tuple[dict, ToolNames]:
    """An Anthropic client's request as an OpenAI-protocol upstream gets it."""
    context = Context(str(body.get("model", "")) if isinstance(body, dict) else "")
    form = anthropic.DIALECT.parse_request(body)
    target = Target(upstream_model, max_output_tokens, bool(body.get("stream")), reasoning_as_content)
    return openai.DIALECT.render_request(form, target, context), context.names


def response_from_openai(resp: dict, *, client_model: str, names: ToolNames) -> dict:
    """An OpenAI-protocol upstream's answer as an Anthropic client gets it."""
    context = Context(client_model, names=names)
    return anthropic.DIALECT.render_answer(openai.DIALECT.parse_answer(resp, context), context)


def request_to_anthropic(body: dict, *, upstream_model: str,
                         max_output_tokens: int | None = None) -> tuple[dict, ToolNames]:
    """An OpenAI client's request as an Anthropic-protocol upstream gets it."""
    context = Context(str(body.get("model", "")) if isinstance(body, dict) else "")
    form = openai.DIALECT.parse_request(body)
    target = Target(upstream_model, max_output_tokens, bool(body.get("stream")))
    return anthropic.DIALECT.render_request(form, target, context), context.names


def response_from_anthropic(resp: dict, *, client_model: str, names: ToolNames, created: int | None = None) -> dict:
    """An Anthropic-protocol upstream's answer as an OpenAI client gets it."""
    context = Context(client_model, names=names)
    return openai_answer.render_answer(anthropic.DIALECT.parse_answer(resp, context), context, created)


class StreamToAnthropic:
    """OpenAI chunks in (the OpenAI dialect's decoder), Anthropic events out (the form's own)."""

    def __init__(self, *, client_model: str, names: ToolNames, message_id: str | None = None,
                 input_tokens_estimate: int = 0):
        context = Context(client_model, names=names, input_estimate=input_tokens_estimate)
        self._decoder = OpenAIDecoder(context, message_id=message_id)

    def feed(self, chunk: dict) -> list[tuple[str, dict]]:
        return self._decoder.feed_chunk(chunk)

    def __getattr__(self, name: str):
        return getattr(self._decoder, name)


class StreamToOpenAI:
    """Anthropic events in (the Anthropic dialect's decoder), OpenAI chunks out (its encoder's)."""

    def __init__(self, *, client_model: str, names: ToolNames, include_usage: bool,
                 completion_id: str | None = None, created: int | None = None):
        context = Context(client_model, names=names, include_usage=include_usage)
        self._decoder = AnthropicDecoder(context)
        self._chunks = Chunks(context, completion_id=completion_id, created=created)

    def feed(self, event: str, data: dict) -> list:
        out = []
        for name, form_data in self._decoder.feed_data(event, data):
            out.extend(self._chunks.feed(name, form_data))
        return out

    def finish(self) -> list:
        if self._chunks.done:
            return []
        return self._chunks.finish()

    def fail(self, status: int, message: str) -> list:
        return self._chunks.fail(status, message)

    def __getattr__(self, name: str):
        return getattr(self._chunks, name)
