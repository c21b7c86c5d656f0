"""OpenAI Responses as a dialect: ``POST /v1/responses`` for clients (Codex CLI, the openai SDK's
``client.responses``), and ``/responses`` upstream (the gpt-5 family on OpenCode Zen).

responses_request.py converts requests both ways, responses_stream.py streams (and passes them
through), responses_items.py holds the shapes they share (tools, items, usage, the ``response``
object, failures); this module converts answers, shapes errors, counts input tokens and is the
dialect object. Everything is pure: no Flask, no I/O.
"""

from __future__ import annotations

from typing import Any

from .anthropic.shapes import GATEWAY_SIGNATURE
from .base import Context, Notes
from .errors import ProtocolError
from .openai.shapes import error_body as openai_error_body
from .responses_items import (
    DIALECT_NAME,
    INCOMPLETE_FOR_STOP,
    ToolIndex,
    call_item,
    client_encrypted,
    client_request,
    custom_input_text,
    form_usage,
    message_item,
    namespaced_name,
    now,
    reasoning_item,
    response_echo,
    response_id_for,
    response_object,
    responses_usage,
    status_for,
    stop_reason_of,
)
from .responses_request import parse_request, passthrough_body, render_request, unserved_tools, validate_request
from .responses_stream import Decoder, Encoder, Passthrough, failed_event
from .tokens import estimate_anthropic_tokens
from .translate_common import (
    arguments_text,
    is_context_length_error,
    new_id,
    not_an_answer,
    parse_arguments,
)

__all__ = [
    "DIALECT", "error_body", "failed_event", "input_tokens", "note_answer", "parse_answer", "render_answer",
    "unserved_tools", "validate_request",
]

#: What a streaming client is sent while the upstream is silent: an SSE comment, which every
#: Responses client skips (the API itself has no keep-alive event) and which keeps proxies from
#: closing an idle connection.
HEARTBEAT = b": keep-alive\n\n"


def error_body(status: int, message: str, type: str | None = None, param: str | None = None) -> dict:
    """OpenAI's error envelope ``{"error": {"message", "type", "param", "code"}}``; a prompt that does not
    fit says ``context_length_exceeded``, as OpenAI does (Codex stops retrying on it). A 429's
    ``retry-after`` header is the view's to keep."""
    code = "context_length_exceeded" if is_context_length_error(status, message) else None
    return openai_error_body(status, message, type, code=code, param=param)


# --- answers ------------------------------------------------------------------------------------------

def parse_answer(body: Any, context: Context) -> dict:
    """A Responses upstream's ``response`` object as the form's answer (ProtocolError 502 if it is none).

    Messages are text blocks, reasoning items thinking blocks (the ``encrypted_content`` their
    signature, ``x_origin: "responses"``), calls tool_use blocks (a custom call's input
    ``{"input": text}``); hosted tool calls are left out. A failed response is its error.
    """
    if not (isinstance(body, dict) and isinstance(body.get("output"), list)):
        raise not_an_answer(body, "a Responses response")
    if body.get("status") == "failed":
        err = body.get("error") if isinstance(body.get("error"), dict) else {}
        message = err.get("message") if isinstance(err.get("message"), str) else "the upstream's response failed"
        raise ProtocolError(status_for(err.get("code")), message)
    names = context.names
    salt = str(body.get("id") or "")
    content: list[dict] = []
    for index, item in enumerate(body["output"]):
        if isinstance(item, dict):
            content.extend(_answer_blocks(item, names, f"{salt}:{index}"))
    has_tool_use = any(block["type"] == "tool_use" for block in content)
    stop = stop_reason_of(body.get("status") or "completed", body.get("incomplete_details"), has_tool_use)
    if stop is None:
        reason = (body.get("incomplete_details") or {}).get("reason") or "unknown"
        raise ProtocolError(502, f"the upstream's response is incomplete ({reason})")
    return {"id": "msg_" + salt.removeprefix("resp_") if salt else new_id("msg_"), "type": "message",
            "role": "assistant", "model": context.client_model,
            "content": content or [{"type": "text", "text": ""}], "stop_reason": stop, "stop_sequence": None,
            "usage": form_usage(body.get("usage"))}


def _answer_blocks(item: dict, names, salt: str) -> list[dict]:
    kind = item.get("type")
    if kind == "message":
        blocks = []
        for part in item.get("content") or ():
            text = part.get("text") if isinstance(part, dict) else None
            text = text if isinstance(text, str) else (part.get("refusal") if isinstance(part, dict) else None)
            if isinstance(text, str) and text:
                blocks.append({"type": "text", "text": text})
        return blocks
    if kind == "reasoning":
        texts = [p.get("text") for p in item.get("summary") or () if isinstance(p, dict)]
        if not any(texts):
            texts = [p.get("text") for p in item.get("content") or () if isinstance(p, dict)]
        text = "\n\n".join(t for t in texts if isinstance(t, str) and t)
        encrypted = item.get("encrypted_content")
        if isinstance(encrypted, str) and encrypted:
            return [{"type": "thinking", "thinking": text, "signature": encrypted, "x_origin": DIALECT_NAME}]
        return [{"type": "thinking", "thinking": text, "signature": GATEWAY_SIGNATURE}] if text else []
    if kind in ("function_call", "custom_tool_call") and isinstance(item.get("name"), str):
        name = item["name"]
        if isinstance(item.get("namespace"), str) and item["namespace"]:
            name = namespaced_name(item["namespace"], name)
        else:
            name = names.name_in(name)
        block: dict[str, Any] = {"type": "tool_use", "id": names.id_in(item.get("call_id"), salt=salt), "name": name}
        if kind == "custom_tool_call":
            block["input"] = {"input": item.get("input") if isinstance(item.get("input"), str) else ""}
            block["x_kind"] = "custom"
        else:
            block["input"] = parse_arguments(item.get("arguments"))
        return [block]
    return []  # web search calls and other hosted tools: run upstream, nothing for the client to do


def render_answer(answer: dict, context: Context) -> dict:
    """The form's answer as the ``response`` object a Responses client gets (``incomplete`` with
    ``incomplete_details`` when it stopped at its token limit or was refused)."""
    index = ToolIndex(client_request(context))
    response_id = response_id_for(answer.get("id"))
    hex_ = response_id.removeprefix("resp_")[:16]
    output: list[dict] = []
    for block in answer.get("content") or ():
        if not isinstance(block, dict):
            continue
        item_id = f"{hex_}{len(output):04x}"
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            output.append(message_item("msg_" + item_id, block["text"]))
        elif kind == "thinking":
            text = block.get("thinking") if isinstance(block.get("thinking"), str) else ""
            encrypted = client_encrypted(block.get("signature"), block.get("x_origin"))
            if text or encrypted:
                output.append(reasoning_item("rs_" + item_id, text, encrypted))
        elif kind == "tool_use":
            call = index.call_of(block)
            call_id = block.get("id") if isinstance(block.get("id"), str) else ""
            if call[0] == "custom":
                output.append(call_item("ctc_" + item_id, call_id, call, custom_input_text(block.get("input"))))
            else:
                output.append(call_item("fc_" + item_id, call_id, call, arguments_text(block.get("input"))))
    incomplete = INCOMPLETE_FOR_STOP.get(answer.get("stop_reason") or "")
    return response_object(response_id, now(), context, response_echo(context),
                           status="incomplete" if incomplete else "completed", output=output,
                           usage=responses_usage(answer.get("usage")), incomplete=incomplete)


def note_answer(body: Any, notes: Notes) -> None:
    """What the request log keeps of a ``response``: usage, text, the calls made."""
    if not (isinstance(body, dict) and isinstance(body.get("output"), list)):
        raise not_an_answer(body, "a Responses response")
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    notes.add_usage(usage.get("input_tokens"), usage.get("output_tokens"))
    for item in body["output"]:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    notes.add_output(part["text"])
        elif kind == "function_call":
            notes.add_output(f"[function_call {item.get('name')}({item.get('arguments', '')})]")
        elif kind == "custom_tool_call":
            notes.add_output(f"[custom_tool_call {item.get('name')}({item.get('input', '')})]")


# --- counting ----------------------------------------------------------------------------------------

def input_tokens(body: Any) -> dict:
    """``POST /v1/responses/input_tokens``: the SDK's ``InputTokenCountResponse`` from a local estimate
    of the request in the form (see :mod:`zengate.dialects.tokens`); ProtocolError 400 for bad input."""
    form = parse_request(body, count=True)
    return {"object": "response.input_tokens", "input_tokens": estimate_anthropic_tokens(form)}


# --- the dialect ---------------------------------------------------------------------------------------

class Responses:
    """The OpenAI Responses dialect (see :class:`zengate.dialects.base.Dialect`)."""

    name = DIALECT_NAME
    title = "OpenAI Responses"  # what people call this API
    upstream_path = "/responses"
    client_paths = ("/v1/responses",)
    heartbeat = HEARTBEAT

    @staticmethod
    def error_body(status: int, message: str, type: str | None = None, param: str | None = None) -> dict:
        return error_body(status, message, type, param)

    @staticmethod
    def auth_headers(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    @staticmethod
    def passed_headers(headers: Any, catalog: Any) -> dict[str, str]:
        return {}  # nothing of a Responses client's headers goes upstream

    parse_request = staticmethod(parse_request)
    unserved = staticmethod(unserved_tools)
    render_request = staticmethod(render_request)
    passthrough_body = staticmethod(passthrough_body)
    parse_answer = staticmethod(parse_answer)
    render_answer = staticmethod(render_answer)
    note_answer = staticmethod(note_answer)

    # the stream converters are classes built with (context) or (context, notes)
    decoder = Decoder
    encoder = Encoder
    passthrough = Passthrough

DIALECT = Responses()
