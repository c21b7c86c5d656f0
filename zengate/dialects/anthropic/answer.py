"""Anthropic messages (answers) to and from the internal form.

An upstream's message is the form's answer once its tool names and ids are given back their
client spelling; a form answer is the client's message once the model is the one it asked for,
a signature another dialect's upstream made is wrapped (:func:`.shapes.client_signature`), and
the form's own keys are gone.
"""

from __future__ import annotations

import json
from typing import Any

from ..base import Context
from ..translate_common import ID_MAX, _is_legal, not_an_answer
from .shapes import client_signature


def parse_answer(body: Any, context: Context) -> dict:
    """An Anthropic-protocol upstream's message as the form's answer (ProtocolError 502 if it is none)."""
    if not (isinstance(body, dict) and isinstance(body.get("content"), list)):
        raise not_an_answer(body, "an Anthropic message")
    if context.output_tool:
        body = _structured(body, context)
    names = context.names
    if not names.renamed and not any(_illegal_id(block) for block in body["content"]):
        return body
    salt = str(body.get("id") or "")
    content = [
        {**block, "id": names.id_in(block.get("id"), salt=salt), "name": names.name_in(block.get("name") or "")}
        if isinstance(block, dict) and block.get("type") == "tool_use" else block
        for block in body["content"]
    ]
    return {**body, "content": content}


def _structured(body: dict, context: Context) -> dict:
    """Structured output asked of this upstream through a tool (request.output_tool): that tool's
    input becomes the answer's text, JSON, and its call an ordinary end of turn (unless the model
    called the request's own tools too)."""
    content, others = [], False
    for block in body["content"]:
        if isinstance(block, dict) and block.get("type") == "tool_use":
            if block.get("name") == context.output_tool:
                value = block.get("input")
                if context.output_wrapped and isinstance(value, dict):
                    value = value.get("value")
                block = {"type": "text", "text": json.dumps(value, ensure_ascii=False)}
            else:
                others = True
        content.append(block)
    stop = body.get("stop_reason")
    return {**body, "content": content, "stop_reason": "end_turn" if stop == "tool_use" and not others else stop}


def _illegal_id(block: Any) -> bool:
    return (isinstance(block, dict) and block.get("type") == "tool_use"
            and not (isinstance(block.get("id"), str) and _is_legal(block["id"], ID_MAX)))


def render_answer(answer: dict, context: Context) -> dict:
    """The form's answer as the message an Anthropic client gets."""
    out = {**answer, "model": context.client_model}
    content = answer.get("content")
    if isinstance(content, list) and any(isinstance(b, dict) and any(k.startswith("x_") for k in b)
                                         for b in content):
        out["content"] = [_client_block(block) for block in content]
    return out


def _client_block(block: Any) -> Any:
    if not isinstance(block, dict) or not any(key.startswith("x_") for key in block):
        return block
    out = {key: value for key, value in block.items() if not key.startswith("x_")}
    if block.get("type") == "thinking" and isinstance(block.get("signature"), str):
        out["signature"] = client_signature(block["signature"], block.get("x_origin"))
    return out
