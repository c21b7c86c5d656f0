"""The internal form of an exchange: what every dialect converts to and from.

N client APIs and M upstream APIs meet here, so each dialect needs two converters (to the form
and from it), not one per pair. The form is the shape of an Anthropic Messages exchange, relaxed
and extended, because that API already says most of what the others need and what a hub built
on OpenAI's chat format loses: typed content blocks (text, image, document, thinking with its
opaque signature, tool_use, tool_result), a system apart from the turns, tool choice, and a
stream grammar with explicit block boundaries. The form is plain dicts (no copies into classes
on the hot path) and every key it adds to Anthropic's starts with ``x_``; a renderer for
Anthropic drops those.

**A request** is a dict with Anthropic's keys — ``model``, ``system`` (a string or text blocks),
``messages`` (roles ``user``, ``assistant``, and ``system`` for instructions in the middle of a
conversation), ``tools``, ``tool_choice``, ``max_tokens`` (optional here), ``temperature``,
``top_p``, ``top_k``, ``stop_sequences``, ``stream``, ``thinking``, ``metadata``,
``output_config`` — and these:

``x_effort``            reasoning effort as a word (minimal, low, medium, high, xhigh) when the
                        client gave one rather than a thinking budget
``x_reasoning_summary`` the reasoning summary a client asked for (auto, concise, detailed)
``x_output_format``     structured output: ``{"type": "json_schema", "name", "schema", "strict"}``
                        or ``{"type": "json_object"}``
``x_n``                 how many answers (choices) the client asked for
``x_cache_key``         a client's prompt-cache key (it also names the conversation)
``x_extras``            ``{dialect name: {field: value}}``: the client's own fields the form has no
                        word for, given back only to an upstream of the same dialect

Blocks may carry ``x_`` keys too: ``x_origin`` on a thinking block names the dialect whose
upstream made its signature (a signature goes back only to that dialect; the gateway's own
``zengate:`` signature to none), ``x_kind: "custom"`` on a tool and its ``tool_use`` blocks marks
a tool whose input is one free-form string (``{"input": text}`` in the form; ``x_format`` keeps
its grammar), ``x_namespace`` on a tool names the namespace a client grouped it in, and a dialect
may keep a block's own fields under ``x_item`` (and items the form has no word for, under
``x_before`` on the block they preceded) to give them back to its own upstream. Inside
``x_extras[dialect]`` every key is that dialect's own business.

**An answer** is an Anthropic message: ``id``, ``type: "message"``, ``role``, ``model``,
``content`` (blocks as above), ``stop_reason``, ``stop_sequence``, ``usage`` (``input_tokens``,
``output_tokens``, ``cache_creation_input_tokens``, ``cache_read_input_tokens``).

**A stream** is a list of ``(event name, data)`` pairs in Anthropic's grammar: ``message_start``
once; content blocks indexed from 0, each ``content_block_start``, its deltas (``text_delta``,
``thinking_delta``, ``signature_delta``, ``input_json_delta``) and ``content_block_stop`` before
the next starts; ``message_delta`` (stop reason, usage) and ``message_stop`` last; or an
``error`` event that ends it. :func:`grammar_problems` checks a stream against that.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..dialects.errors import ProtocolError

#: One event of a stream in the internal form.
FormEvent = tuple[str, dict]

BLOCK_DELTAS = {"text": ("text_delta",), "thinking": ("thinking_delta", "signature_delta"),
                "redacted_thinking": (), "tool_use": ("input_json_delta",)}


def without_extensions(form: dict) -> dict:
    """``form`` without its ``x_`` keys (top level): what Anthropic's API takes of it."""
    return {key: value for key, value in form.items() if not key.startswith("x_")}


def is_server_tool(tool: dict) -> bool:
    """A form tool that is not a function any upstream can be given: an Anthropic server tool
    (``web_search_20250305``, ``bash_20250124``…), which only an Anthropic upstream runs."""
    return tool.get("type") not in (None, "custom") or not isinstance(tool.get("input_schema"), dict)


def grammar_problems(events: Iterable[FormEvent]) -> list[str]:
    """What is wrong with a stream in the internal form (empty when nothing is).

    Used by the tests of every decoder and encoder: a stream must start with ``message_start``,
    open one block at a time with consecutive indexes, give each block only its own kind of
    deltas, and end with ``message_delta`` then ``message_stop`` — or with one ``error``.
    """
    problems: list[str] = []
    state = "before"
    open_index: int | None = None
    open_kind: str | None = None
    next_index = 0
    for position, (name, data) in enumerate(events):
        where = f"event {position} ({name})"
        if state == "ended":
            problems.append(f"{where}: after the end of the stream")
            continue
        if name == "ping":
            continue
        if name == "error":
            state = "ended"
            continue
        if state == "before":
            if name != "message_start":
                problems.append(f"{where}: the stream must start with message_start")
            state = "blocks"
            if name == "message_start":
                continue
        if name == "message_start":
            problems.append(f"{where}: a second message_start")
        elif name == "content_block_start":
            if open_index is not None:
                problems.append(f"{where}: block {open_index} is still open")
            if data.get("index") != next_index:
                problems.append(f"{where}: index {data.get('index')}, expected {next_index}")
            open_index, next_index = data.get("index"), next_index + 1
            open_kind = (data.get("content_block") or {}).get("type")
        elif name == "content_block_delta":
            kind = (data.get("delta") or {}).get("type")
            if data.get("index") != open_index:
                problems.append(f"{where}: a delta for block {data.get('index')}, open is {open_index}")
            elif kind not in BLOCK_DELTAS.get(open_kind or "", ()):
                problems.append(f"{where}: a {kind} in a {open_kind} block")
        elif name == "content_block_stop":
            if data.get("index") != open_index:
                problems.append(f"{where}: stops block {data.get('index')}, open is {open_index}")
            open_index = open_kind = None
        elif name == "message_delta":
            if open_index is not None:
                problems.append(f"{where}: block {open_index} is still open")
            state = "finishing"
        elif name == "message_stop":
            if state != "finishing":
                problems.append(f"{where}: message_stop without message_delta")
            state = "ended"
        else:
            problems.append(f"{where}: not an event of the internal form")
        if state == "finishing" and name not in ("message_delta", "message_stop"):
            problems.append(f"{where}: content after message_delta")
    if state != "ended":
        problems.append("the stream does not end (message_stop or error)")
    return problems


def usage_of(answer: Any) -> dict:
    """An answer's usage with every count present (0 where the upstream said nothing)."""
    usage = answer.get("usage") if isinstance(answer, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    return {key: usage.get(key) or 0 for key in
            ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")}


def fold_events(events: list[FormEvent], *, model: str | None = None) -> dict:
    """A whole stream in the form → the form's answer (for a client that asked for no stream while
    the upstream was asked for one). An ``error`` event, or no end, is a :class:`ProtocolError` 502."""
    message: dict[str, Any] | None = None
    blocks: dict[int, dict] = {}
    partial_json: dict[int, list[str]] = {}
    stopped = False
    for name, data in events:
        kind = data.get("type") or name
        if kind == "error":
            err = data.get("error") or {}
            raise ProtocolError(502, f"upstream error: {err.get('message', err)}")
        if kind == "message_start":
            message = dict(data.get("message") or {})
            message["content"] = []
        elif kind == "content_block_start":
            blocks[data["index"]] = dict(data.get("content_block") or {})
        elif kind == "content_block_delta":
            block = blocks.setdefault(data["index"], {})
            delta = data.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                block["text"] = block.get("text", "") + delta.get("text", "")
            elif dtype == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
            elif dtype == "signature_delta":
                block["signature"] = block.get("signature", "") + delta.get("signature", "")
            elif dtype == "input_json_delta":
                partial_json.setdefault(data["index"], []).append(delta.get("partial_json", ""))
        elif kind == "message_delta" and message is not None:
            delta = data.get("delta") or {}
            message.update({k: v for k, v in delta.items() if k in ("stop_reason", "stop_sequence")})
            usage = dict(message.get("usage") or {})
            usage.update(data.get("usage") or {})
            message["usage"] = usage
        elif kind == "message_stop":
            stopped = True
    if message is None or not stopped:
        raise ProtocolError(502, "the upstream stream ended before the answer was finished")
    for index in sorted(blocks):
        block = blocks[index]
        if index in partial_json:
            raw = "".join(partial_json[index])
            try:
                block["input"] = json.loads(raw) if raw.strip() else {}
            except ValueError:
                raise ProtocolError(502, "the upstream sent tool input that is not JSON") from None
        message["content"].append(block)
    if model:
        message["model"] = model
    return message


def answer_events(answer: dict) -> list[FormEvent]:
    """A whole answer in the form → the stream that says it (text and tool calls; the inverse of
    :func:`fold_events`), for an answer the gateway gives itself to a streaming client."""
    usage = usage_of(answer)
    start = {**{k: v for k, v in answer.items() if k not in ("content", "stop_reason", "stop_sequence")},
             "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 0}}
    events: list[FormEvent] = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(answer.get("content") or []):
        kind = block.get("type")
        opened = {k: v for k, v in block.items() if k not in ("text", "input")}
        opened.update({"text": ""} if kind == "text" else {"input": {}} if kind == "tool_use" else {})
        events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": opened}))
        if kind == "text" and block.get("text"):
            delta = {"type": "text_delta", "text": block["text"]}
        elif kind == "tool_use":
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block.get("input") or {})}
        else:
            delta = None
        if delta is not None:
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": answer.get("stop_reason"),
                                                                          "stop_sequence": answer.get("stop_sequence")},
                                      "usage": {"output_tokens": usage["output_tokens"]}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events
