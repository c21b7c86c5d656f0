"""Folding a whole stream into the one answer a non-streaming client expects.

Used when zengate asks the upstream for a stream although the client did not (the "stream upstream
always" setting): the client's stream events (already translated to its API, if needed) are folded
into exactly the shape a real non-streaming answer has.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .errors import ProtocolError


def fold_openai_chunks(chunks: list[dict], *, model: str | None = None) -> dict:
    """OpenAI ``chat.completion.chunk`` objects → one ``chat.completion``."""
    content: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, dict] = {}
    finish = None
    usage = None
    first: dict[str, Any] = {}
    for chunk in chunks:
        if not isinstance(chunk, dict):
            continue
        if chunk.get("error"):
            err = chunk["error"]
            message = err.get("message") if isinstance(err, dict) else str(err)
            raise ProtocolError(502, f"upstream error: {message}")
        first = first or chunk
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                content.append(delta["content"])
            for key in ("reasoning_content", "reasoning"):
                if isinstance(delta.get(key), str):
                    reasoning.append(delta[key])
            for fragment in delta.get("tool_calls") or []:
                slot = calls.setdefault(fragment.get("index", len(calls)),
                                        {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                if fragment.get("id"):
                    slot["id"] = fragment["id"]
                fn = fragment.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    if finish is None:
        raise ProtocolError(502, "the upstream stream ended before the answer was finished")
    text = "".join(content)
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = [
            {**call, "id": call["id"] or f"call_{index}",
             "function": {**call["function"], "arguments": call["function"]["arguments"] or "{}"}}
            for index, call in sorted(calls.items())
        ]
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    answer = {
        "id": first.get("id") or "chatcmpl-folded",
        "object": "chat.completion",
        "created": first.get("created") or int(time.time()),
        "model": model or first.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    if usage:
        answer["usage"] = usage
    return answer


def fold_anthropic_events(events: list[tuple[str, dict]], *, model: str | None = None) -> dict:
    """Anthropic stream events → one Anthropic message."""
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
