"""Local token estimates for requests, for ``count_tokens`` and for usage before the upstream says.

How it counts (deliberately on the high side - a client that thinks it has less room than it has
compacts early; one that thinks it has more gets a hard error from the upstream):

* Prose (system prompts, message text, thinking, tool results, tool descriptions and names):
  ASCII characters / 3.2, plus one token per non-ASCII character (CJK text is roughly one token
  per character; accented letters are over-counted, which is the safe side).
* JSON (tool schemas, tool-call inputs and arguments, server-tool blocks): ASCII characters / 2.6
  (punctuation and short keys tokenize densely), non-ASCII as above. Schemas are measured as
  compact JSON (``json.dumps`` with no spaces), whatever the client sent.
* Images: 1600 tokens each (about the most a large image costs on Claude; OpenAI ``detail:
  "low"`` images 85). PDF documents: the larger of 1600 and one token per 32 decoded bytes.
  Opaque data (``redacted_thinking``) one token per 4 characters.
* Overheads: 4 tokens per message, 3 per content block, 8 per tool definition, 350 once when any
  tool is defined (the tool-use system prompt the upstream adds), 8 for the request itself.

Each piece is rounded up on its own. Only the prompt is counted (never ``max_tokens``); a
non-empty request never counts 0.
"""

from __future__ import annotations

import json
import math
from typing import Any

PROSE_CHARS_PER_TOKEN = 3.2
JSON_CHARS_PER_TOKEN = 2.6
IMAGE_TOKENS = 1600
LOW_DETAIL_IMAGE_TOKENS = 85
PDF_BYTES_PER_TOKEN = 32
OPAQUE_CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4
BLOCK_OVERHEAD = 3
TOOL_OVERHEAD = 8
TOOLS_PREAMBLE = 350
REQUEST_OVERHEAD = 8


def _chars(text: str, per_token: float) -> int:
    if not text:
        return 0
    other = 0 if text.isascii() else len(text) - len(text.encode("ascii", "ignore"))
    return math.ceil((len(text) - other) / per_token + other)


def _prose(text: Any) -> int:
    return _chars(text, PROSE_CHARS_PER_TOKEN) if isinstance(text, str) else 0


def _json(value: Any) -> int:
    if value is None:
        return 0
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return _chars(text, JSON_CHARS_PER_TOKEN)


def _pdf(base64_data: Any) -> int:
    size = len(base64_data) * 3 // 4 if isinstance(base64_data, str) else 0
    return max(IMAGE_TOKENS, math.ceil(size / PDF_BYTES_PER_TOKEN))


# --- Anthropic --------------------------------------------------------------------------------

def _anthropic_source(source: Any) -> int:
    if not isinstance(source, dict):
        return IMAGE_TOKENS
    kind = source.get("type")
    if kind == "base64" and source.get("media_type") == "application/pdf":
        return _pdf(source.get("data"))
    if kind == "text":
        return _prose(source.get("data"))
    if kind == "content":
        return _anthropic_content(source.get("content"))
    return IMAGE_TOKENS


def _anthropic_block(block: Any) -> int:
    if not isinstance(block, dict):
        return 0
    kind = block.get("type")
    tokens = BLOCK_OVERHEAD
    if kind == "text":
        tokens += _prose(block.get("text"))
    elif kind == "image":
        tokens += IMAGE_TOKENS
    elif kind == "document":
        tokens += _anthropic_source(block.get("source")) + _prose(block.get("title")) + _prose(block.get("context"))
    elif kind == "tool_use":
        tokens += _prose(block.get("name")) + _json(block.get("input"))
    elif kind == "tool_result":
        tokens += _anthropic_content(block.get("content"))
    elif kind == "thinking":
        tokens += _prose(block.get("thinking"))
    elif kind == "redacted_thinking":
        data = block.get("data")
        tokens += math.ceil(len(data) / OPAQUE_CHARS_PER_TOKEN) if isinstance(data, str) else 0
    elif kind == "search_result":
        tokens += _prose(block.get("title")) + _prose(block.get("source")) + _anthropic_content(block.get("content"))
    else:  # server-tool blocks and anything else: their JSON
        tokens += _json(block)
    return tokens


def _anthropic_content(content: Any) -> int:
    if isinstance(content, str):
        return _prose(content)
    if isinstance(content, list):
        return sum(_anthropic_block(b) for b in content)
    return 0


def _anthropic_tool(tool: Any) -> int:
    if not isinstance(tool, dict):
        return 0
    if isinstance(tool.get("input_schema"), dict):
        return (TOOL_OVERHEAD + _prose(tool.get("name")) + _prose(tool.get("description"))
                + _json(tool["input_schema"]))
    return TOOL_OVERHEAD + _json(tool)  # a server tool: its definition is all we know


def estimate_anthropic_tokens(body: dict) -> int:
    """Estimated input tokens of an Anthropic Messages (or count_tokens) request.

    Counts ``system``, every message (all block types, see the module docstring) and ``tools``.
    """
    if not isinstance(body, dict) or not body:
        return 0
    tokens = REQUEST_OVERHEAD + _anthropic_content(body.get("system"))
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            tokens += MESSAGE_OVERHEAD + _anthropic_content(message.get("content"))
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        tokens += TOOLS_PREAMBLE + sum(_anthropic_tool(t) for t in tools)
    return max(1, tokens)


# --- OpenAI -----------------------------------------------------------------------------------

def _openai_part(part: Any) -> int:
    if not isinstance(part, dict):
        return 0
    kind = part.get("type")
    tokens = BLOCK_OVERHEAD
    if kind == "text":
        tokens += _prose(part.get("text"))
    elif kind == "refusal":
        tokens += _prose(part.get("refusal"))
    elif kind == "image_url":
        image = part.get("image_url")
        low = isinstance(image, dict) and image.get("detail") == "low"
        tokens += LOW_DETAIL_IMAGE_TOKENS if low else IMAGE_TOKENS
    elif kind == "file":
        file = part.get("file") if isinstance(part.get("file"), dict) else {}
        data = file.get("file_data")
        tokens += _pdf(data.partition(",")[2] if isinstance(data, str) else None)
    else:  # input_audio and the like
        tokens += IMAGE_TOKENS
    return tokens


def _openai_content(content: Any) -> int:
    if isinstance(content, str):
        return _prose(content)
    if isinstance(content, list):
        return sum(_openai_part(p) for p in content)
    return 0


def _openai_tool(tool: Any) -> int:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict):
        return TOOL_OVERHEAD + _json(tool)
    return (TOOL_OVERHEAD + _prose(function.get("name")) + _prose(function.get("description"))
            + _json(function.get("parameters")))


def estimate_openai_tokens(body: dict) -> int:
    """Estimated input tokens of an OpenAI Chat Completions request, counted as for Anthropic:
    message content (text, images, files), reasoning sent back, tool calls, tool results, tools."""
    if not isinstance(body, dict) or not body:
        return 0
    tokens = REQUEST_OVERHEAD
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        tokens += MESSAGE_OVERHEAD + _openai_content(message.get("content"))
        tokens += _prose(message.get("reasoning_content")) + _prose(message.get("name"))
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                tokens += BLOCK_OVERHEAD + _prose(function.get("name")) + _json(function.get("arguments"))
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        tokens += TOOLS_PREAMBLE + sum(_openai_tool(t) for t in tools)
    return max(1, tokens)
