"""OpenAI chat completions (answers) to and from the internal form.

:func:`parse_answer` reads an upstream's ``chat.completion`` into the form's answer (tool names and
ids given back their client spelling, reasoning text as a thinking block the gateway signs);
:func:`render_answer` writes the form's answer as the ``chat.completion`` a client gets.
"""

from __future__ import annotations

import time
from typing import Any

from ..anthropic.shapes import GATEWAY_SIGNATURE
from ..base import Context
from ..translate_common import (
    ToolNames,
    anthropic_usage,
    arguments_text,
    finish_reason_for,
    new_id,
    not_an_answer,
    openai_usage,
    parse_arguments,
    reasoning_of,
    stop_reason_for,
    text_of_blocks,
)


def _tool_use_block(call: dict, names: ToolNames, salt: str) -> dict:
    function = call.get("function") or {}
    return {
        "type": "tool_use",
        "id": names.id_in(call.get("id"), salt=salt),
        "name": names.name_in(function.get("name") or ""),
        "input": parse_arguments(function.get("arguments")),
    }


def _message_shell(message_id: str, client_model: str) -> dict:
    return {"id": message_id, "type": "message", "role": "assistant", "model": client_model, "content": [],
            "stop_reason": None, "stop_sequence": None}


def parse_answer(openai_resp: Any, context: Context) -> dict:
    """An OpenAI-protocol upstream's chat completion as the form's answer (an Anthropic message).

    Content order: a thinking block (from ``reasoning_content``/``reasoning``/``reasoning_details``,
    with the gateway's signature, see :func:`~zengate.dialects.anthropic.is_gateway_signature`),
    the text, then tool_use blocks. An answer with nothing at all still gets one empty text block,
    so clients always find ``content[0]``.
    """
    if not (isinstance(openai_resp, dict) and isinstance(openai_resp.get("choices"), list)):
        raise not_an_answer(openai_resp, "a chat completion")
    names, client_model = context.names, context.client_model
    choices = openai_resp["choices"]
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    upstream_id = openai_resp.get("id") if isinstance(openai_resp.get("id"), str) else ""
    message_id = new_id("msg_")
    content: list[dict] = []
    reasoning = reasoning_of(message)
    if reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": GATEWAY_SIGNATURE})
    text = message.get("content")
    if isinstance(text, list):  # some upstreams answer with parts
        text = text_of_blocks(text)
    refusal = message.get("refusal")
    if not (isinstance(text, str) and text.strip()) and isinstance(refusal, str) and refusal:
        text = refusal
    if isinstance(text, str) and text.strip():
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls") if isinstance(message.get("tool_calls"), list) else []
    calls = [c for c in calls if isinstance(c, dict)]
    content.extend(_tool_use_block(c, names, upstream_id or message_id) for c in calls)
    if not content:
        content.append({"type": "text", "text": ""})
    answer = _message_shell(message_id, client_model)
    answer["content"] = content
    finish = choice.get("finish_reason")
    if isinstance(refusal, str) and refusal and not calls:
        finish = "content_filter"
    answer["stop_reason"] = stop_reason_for(finish, has_tool_use=bool(calls))
    answer["usage"] = anthropic_usage(openai_resp.get("usage"))
    return answer


def _completion_id(anthropic_id: Any) -> str:
    if isinstance(anthropic_id, str) and anthropic_id:
        return "chatcmpl-" + anthropic_id.removeprefix("msg_")
    return new_id("chatcmpl-")


def _tool_call(block: dict) -> dict:
    return {"id": block.get("id"), "type": "function",
            "function": {"name": block.get("name") or "", "arguments": arguments_text(block.get("input"))}}


def render_answer(anthropic_resp: dict, context: Context, created: int | None = None) -> dict:
    """The form's answer (an Anthropic message) as the ``chat.completion`` an OpenAI client gets.

    Text blocks are joined into ``content`` (None when there is only tool calls), thinking goes to
    ``reasoning_content``, tool_use blocks to ``tool_calls``; server-tool blocks are left out.
    """
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict] = []
    content = anthropic_resp.get("content")
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thoughts.append(block["thinking"])
        elif kind == "tool_use":
            calls.append(_tool_call(block))
    text = "".join(texts)
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    finish = finish_reason_for(anthropic_resp.get("stop_reason"), has_tool_calls=bool(calls))
    return {
        "id": _completion_id(anthropic_resp.get("id")),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": context.client_model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": openai_usage(anthropic_resp.get("usage")),
    }
