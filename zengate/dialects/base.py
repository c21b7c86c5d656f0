"""What a dialect is: one API as a module, converting to and from the internal form.

A dialect is used on both sides of an exchange. As the **client's** API it checks and parses a
request into the form, renders the form's answer and stream events back, and shapes errors. As
the **upstream's** API it renders the form into a request, parses the upstream's answer and
decodes its stream into form events. Everything here is pure: no Flask, no I/O.

Each dialect module defines one object satisfying :class:`Dialect` and ``zengate.dialects``
registers it in one line; the exchange asks the registry by name (the catalog's ``protocol``).
A non-streaming client served from an upstream stream gets the form events folded into one
answer (``exchange.form``), rendered by its dialect like any answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..exchange.form import FormEvent
from .sse import Event
from .translate_common import ToolNames


@dataclass
class Target:
    """What rendering a request for one upstream attempt needs to know about that upstream."""

    upstream_model: str
    max_output_tokens: int | None = None  # the model's output limit (requests are clamped to it)
    stream: bool = False  # ask the upstream for a stream
    reasoning_as_content: bool = False  # send earlier thinking back as reasoning text (chat upstreams)


@dataclass
class Context:
    """What converting one attempt's answer back needs: names rewritten on the way up, the model the
    client asked for, and a first estimate of the prompt's tokens for an early ``message_start``."""

    client_model: str
    upstream_model: str = ""  # the name the upstream knows the model by (answers show the client's)
    names: ToolNames = field(default_factory=ToolNames)
    input_estimate: int = 0
    include_usage: bool = False  # the client asked for usage in its stream (OpenAI chat)
    request: dict | None = None  # the client's request in the form, when it was translated (tools, choices)
    output_tool: str | None = None  # the tool an Anthropic upstream was made to answer in (structured output)
    output_wrapped: bool = False  # that tool's input holds the answer under "value" (a schema not of an object)


class StreamDecoder(Protocol):
    """An upstream's stream events in, internal form events out (one object per stream)."""

    done: bool  # the form stream has ended (message_stop or error)

    def feed(self, event: Event) -> list[FormEvent]: ...
    def finish(self) -> list[FormEvent]: ...  # the upstream stream ended
    def fail(self, status: int, message: str) -> list[FormEvent]: ...  # a transport failure mid-stream

    @property
    def usage(self) -> dict: ...  # Anthropic-shaped usage so far (estimates where none was reported)

    @property
    def text(self) -> str: ...  # the answer's text so far, for the request log


class StreamEncoder(Protocol):
    """Internal form events in, the client's bytes out (one object per stream)."""

    def encode(self, events: Iterable[FormEvent]) -> list[bytes]: ...


class Notes(Protocol):
    """Where a passthrough stream notes what the request log keeps (the request's record)."""

    def add_usage(self, input_tokens: int | None, output_tokens: int | None) -> None: ...
    def add_output(self, text: str | None) -> None: ...


class Passthrough(Protocol):
    """An upstream's stream for a client of the same dialect: events pass as received (their raw
    bytes), with the upstream's quirks removed and usage and text noted on the way."""

    ended: bool  # the answer is complete, or ended with an error
    error: str | None  # the error that ended it, if one did

    def on_event(self, event: Event) -> list[bytes]: ...
    def on_end(self) -> list[bytes]: ...  # the upstream stream ended (an unfinished answer: an error event)
    def on_failure(self, status: int, message: str) -> list[bytes]: ...  # a transport failure mid-stream


class Dialect(Protocol):
    """One API: its shapes both ways, its errors, its paths and its auth header."""

    name: str  # the registry's key and the catalog's protocol name (openai, anthropic, responses)
    title: str  # what people call the API, for messages
    upstream_path: str  # appended to a backend's base URL (/chat/completions, /messages, /responses)
    heartbeat: bytes | None  # sent to a streaming client while the upstream is silent, if the API has one
    client_paths: tuple[str, ...]  # where its clients call (the error shape of any answer under them)

    def error_body(self, status: int, message: str, type: str | None = None, param: str | None = None) -> dict: ...
    def auth_headers(self, key: str) -> dict[str, str]: ...
    def passed_headers(self, headers: Any, catalog: Any) -> dict[str, str]: ...  # the client's own, for its API

    # the client's side
    def parse_request(self, body: dict) -> dict: ...  # validated; ProtocolError naming the field
    def render_answer(self, answer: dict, context: Context) -> dict: ...
    def note_answer(self, body: dict, notes: Notes) -> None: ...  # an answer of this API's: usage, text
    def encoder(self, context: Context) -> StreamEncoder: ...
    def unserved(self, form: dict) -> list[str]: ...  # what only an upstream of this API can run (hosted tools)

    # the upstream's side
    def render_request(self, form: dict, target: Target, context: Context) -> dict: ...
    def parse_answer(self, body: Any, context: Context) -> dict: ...
    def decoder(self, context: Context) -> StreamDecoder: ...

    # the same dialect on both sides, nothing to change: the client's body and the upstream's bytes
    def passthrough_body(self, body: dict, target: Target) -> dict: ...
    def passthrough(self, context: Context, notes: Notes) -> Passthrough: ...
