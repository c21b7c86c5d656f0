"""Helpers the dialects share: tool names and ids every upstream API accepts, usage in both shapes,
stop reasons, reasoning effort and thinking budgets, data URLs, errors of no answer.

Everything here is pure: plain data in, plain data out.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from typing import Any

from .errors import ProtocolError

# Tool names must satisfy both sides: OpenAI function names are ^[a-zA-Z0-9_-]{1,64}$, Anthropic
# tool names the same set of characters. Tool-call ids must satisfy Anthropic (^[a-zA-Z0-9_-]+$)
# and OpenAI (at most 40 characters), because one conversation may reach either kind of upstream.
NAME_MAX = 64
ID_MAX = 40
_LEGAL = re.compile(r"^[A-Za-z0-9_-]+$")
_ILLEGAL_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_HASH_LEN = 8


def _short_hash(text: str, length: int = _HASH_LEN) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _rewrite(original: str, max_len: int, salt: str = "") -> str:
    """``original`` made legal: illegal characters to ``_``, truncated, plus a hash of the original."""
    base = _ILLEGAL_CHARS.sub("_", original)[: max_len - _HASH_LEN - 1] or "x"
    return f"{base}_{_short_hash(salt + original)}"


def _is_legal(value: str, max_len: int) -> bool:
    return 0 < len(value) <= max_len and bool(_LEGAL.match(value))


class ToolNames:
    """Tool names and tool-call ids as each side may spell them, and the way back.

    Names and ids that are already legal on both sides pass unchanged. Others are rewritten
    deterministically (illegal characters to ``_``, truncated, plus an 8-hex sha256 suffix of the
    original), so the same conversation always produces the same rewritten values, and a
    ``tool_use`` id and its ``tool_result`` id always agree. Rewritten names are remembered so the
    upstream's calls can be given back their original names; unknown names pass unchanged.

    ``*_out`` goes client -> upstream (requests); ``*_in`` goes upstream -> client (answers).
    """

    __slots__ = ("_id_in", "_name_in", "_name_out")

    def __init__(self) -> None:
        self._name_out: dict[str, str] = {}
        self._name_in: dict[str, str] = {}
        self._id_in: dict[str, str] = {}

    def name_out(self, name: str) -> str:
        """The tool name to send upstream for the client's ``name``."""
        if name in self._name_out:
            return self._name_out[name]
        wire = name if _is_legal(name, NAME_MAX) else _rewrite(name, NAME_MAX)
        self._name_out[name] = wire
        self._name_in.setdefault(wire, name)
        return wire

    def name_in(self, wire: str) -> str:
        """The client's tool name for a name the upstream used (unchanged when unknown)."""
        if not isinstance(wire, str):  # a malformed upstream answer: no usable name
            return ""
        return self._name_in.get(wire, wire)

    def id_out(self, original: str) -> str:
        """The tool-call id to send upstream for the client's id (deterministic, no salt)."""
        if _is_legal(original, ID_MAX):
            return original
        wire = _rewrite(original, ID_MAX)
        self._id_in.setdefault(wire, original)
        return wire

    def id_in(self, wire: str | None, *, salt: str = "") -> str:
        """The id to give the client for an upstream tool-call id.

        Ids this object rewrote on the way out get their original back. Other illegal ids (e.g.
        Kimi's ``functions.Bash:0``) are rewritten with ``salt`` (the message id) mixed into the
        hash, so the same upstream id in two different answers gives two different client ids.
        A missing id becomes ``toolu_`` + a hash of the salt.
        """
        if not wire or not isinstance(wire, str):
            return "toolu_" + _short_hash("missing:" + salt, 24)
        if wire in self._id_in:
            return self._id_in[wire]
        if _is_legal(wire, ID_MAX):
            return wire
        return _rewrite(wire, ID_MAX, salt)

    @property
    def renamed(self) -> dict[str, str]:
        """Original tool name -> rewritten name, only for names that had to change."""
        return {orig: wire for orig, wire in self._name_out.items() if orig != wire}

    def __repr__(self) -> str:
        return f"ToolNames(renamed={self.renamed!r})"


# --- errors ---------------------------------------------------------------------------------

_CONTEXT_PATTERNS = (
    "context length",
    "context_length",
    "maximum context",
    "context window",
    "too many tokens",
    "prompt is too long",
    "context_length_exceeded",
    "input is too long",
)


def is_context_length_error(status: int, message: str) -> bool:
    """True when an upstream error says the prompt does not fit the model's context."""
    if status not in (400, 413, 422) and not 500 <= status < 600:
        return False
    text = (message or "").lower()
    return any(p in text for p in _CONTEXT_PATTERNS)


def prompt_too_long_message(message: str) -> str:
    """The message Anthropic clients recognise (Claude Code compacts on it)."""
    return message if message.lower().startswith("prompt is too long") else f"prompt is too long: {message}"


def not_an_answer(answer: Any, what: str) -> ProtocolError:
    """The 502 for an upstream's 200 that is not ``what`` (its own error message when it holds one)."""
    if isinstance(answer, dict) and answer.get("error"):
        err = answer["error"]
        message = err.get("message") if isinstance(err, dict) else str(err)
        return ProtocolError(502, f"upstream error: {message}")
    return ProtocolError(502, f"the upstream answered 200 with something that is not {what}")


# --- small value helpers ---------------------------------------------------------------------

def new_id(prefix: str) -> str:
    """``prefix`` and 24 random hex digits (``msg_…``, ``chatcmpl-…``), as the APIs' ids look."""
    return prefix + secrets.token_hex(12)


def dump_json(value: Any) -> str:
    """Compact JSON, as tool-call arguments are sent."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def parse_arguments(arguments: Any) -> dict:
    """Tool-call arguments (a JSON string, normally) as the object Anthropic's ``input`` must be.

    Empty -> ``{}``; a JSON object -> itself; anything else (invalid or truncated JSON, a
    non-object) -> ``{"raw_arguments": <the text>}`` so nothing is lost and the tool can complain.
    """
    if isinstance(arguments, dict):
        return arguments
    if arguments is None:
        return {}
    if not isinstance(arguments, str):
        return {"raw_arguments": dump_json(arguments)}
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        return {"raw_arguments": arguments}
    return value if isinstance(value, dict) else {"raw_arguments": arguments}


def arguments_text(value: Any) -> str:
    """A tool call's input as an OpenAI-style ``arguments`` string: its JSON, or, for arguments an
    upstream sent that were not JSON (kept as ``{"raw_arguments": text}``), that text as it came."""
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("raw_arguments"), str):
        return value["raw_arguments"]
    return dump_json(value or {})


def join_text(parts: list[str], sep: str = "\n\n") -> str:
    """Non-blank ``parts`` joined; blank ones never produce separators."""
    return sep.join(p for p in parts if p and p.strip())


def text_of_blocks(content: Any) -> str:
    """The text of a string or of a list of ``{"type": "text", "text"}`` blocks/parts, joined."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = [b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text"]
    return join_text([t for t in texts if isinstance(t, str)])


def clamp_max_tokens(requested: int | None, limit: int | None, default: int | None = None) -> int | None:
    value = requested if isinstance(requested, int) and requested > 0 else default
    if value is not None and limit and limit > 0:
        value = min(value, limit)
    return value


def clean_stop_sequences(value: Any, limit: int | None = None) -> list[str]:
    """A string or a list as a list of non-empty strings (first ``limit`` kept)."""
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    result = [s for s in items if isinstance(s, str) and s]
    return result[:limit] if limit else result


def openai_user(user_id: Any) -> str | None:
    """Anthropic ``metadata.user_id`` as OpenAI ``user`` (at most 64 chars; longer ones hashed)."""
    if not isinstance(user_id, str) or not user_id:
        return None
    if len(user_id) <= 64:
        return user_id
    return "u_" + hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:40]


# --- data URLs -------------------------------------------------------------------------------

_DATA_URL = re.compile(r"^data:(?P<type>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)$", re.DOTALL)


def data_url(media_type: str, data: str) -> str:
    return f"data:{media_type};base64,{data}"


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``(media_type, base64 data)`` of a base64 ``data:`` URL, else None."""
    match = _DATA_URL.match(url) if isinstance(url, str) else None
    if not match or ";base64" not in match.group("params").lower():
        return None
    return match.group("type").lower(), match.group("data")


# --- stop reasons -----------------------------------------------------------------------------

FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def stop_reason_for(finish_reason: str | None, *, has_tool_use: bool) -> str:
    """Anthropic ``stop_reason`` for an OpenAI ``finish_reason``; tool calls always win."""
    if has_tool_use:
        return "tool_use"
    stop = FINISH_TO_STOP.get(finish_reason, "end_turn") if isinstance(finish_reason, str) else "end_turn"
    return "end_turn" if stop == "tool_use" else stop  # "tool_calls" without any call


def finish_reason_for(stop_reason: str | None, *, has_tool_calls: bool) -> str:
    """OpenAI ``finish_reason`` for an Anthropic ``stop_reason``; tool calls always win."""
    if has_tool_calls:
        return "tool_calls"
    finish = STOP_TO_FINISH.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"
    return "stop" if finish == "tool_calls" else finish  # "tool_use" without any call


# --- thinking <-> reasoning effort ------------------------------------------------------------

EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
_EFFORT_ALIASES = {"low": "low", "medium": "medium", "high": "high", "max": "high", "xhigh": "high"}
MIN_THINKING_BUDGET = 1024


def effort_for_thinking(thinking: Any, output_config: Any = None) -> str | None:
    """OpenAI ``reasoning_effort`` for Anthropic ``thinking`` (+ ``output_config.effort``).

    adaptive -> the requested effort (low/medium/high; max -> high), else medium;
    enabled -> by budget_tokens (<4096 low, <16384 medium, else high); disabled/absent -> None.
    """
    if not isinstance(thinking, dict):
        return None
    kind = thinking.get("type")
    if kind == "adaptive":
        effort = output_config.get("effort") if isinstance(output_config, dict) else None
        return _EFFORT_ALIASES.get(effort, "medium") if isinstance(effort, str) else "medium"
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int):
            return "medium"
        if budget < 4096:
            return "low"
        return "medium" if budget < 16384 else "high"
    return None


def thinking_for_effort(effort: Any, max_tokens: int) -> dict | None:
    """Anthropic ``thinking`` for an OpenAI ``reasoning_effort``, budget kept below max_tokens.

    low 2048, medium 8192, high 24576 (minimal 1024); None for none/unknown or when max_tokens
    leaves no room for the 1024-token minimum budget.
    """
    budget = EFFORT_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        return None
    budget = min(budget, max_tokens - 1)
    if budget < MIN_THINKING_BUDGET:
        return None
    return {"type": "enabled", "budget_tokens": budget}


# --- reasoning text in OpenAI-compatible answers -----------------------------------------------

def reasoning_of(message: Any) -> str:
    """Reasoning text of an OpenAI message or delta.

    Providers spell it ``reasoning_content`` (DeepSeek, Kimi, GLM, vLLM), ``reasoning``
    (OpenRouter, Ollama) or ``reasoning_details`` (a list of ``{"type": "reasoning.text", "text"}``
    or ``reasoning.summary``). Several may carry the same text, so the first present one wins.
    """
    if not isinstance(message, dict):
        return ""
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    details = message.get("reasoning_details")
    if isinstance(details, list):
        texts = []
        for item in details:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "reasoning.text" and isinstance(item.get("text"), str):
                texts.append(item["text"])
            elif item.get("type") == "reasoning.summary" and isinstance(item.get("summary"), str):
                texts.append(item["summary"])
        return "".join(texts)
    return ""


# --- usage -----------------------------------------------------------------------------------

def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


USAGE_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def merge_usage(seen: dict, usage: Any) -> None:
    """Anthropic-shaped usage counts of ``usage`` (a stream reports some at its start, the rest at its
    end) written over ``seen``; anything that is not a count is left out."""
    if not isinstance(usage, dict):
        return
    for key in USAGE_KEYS:
        value = usage.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            seen[key] = value


def anthropic_usage(openai_usage: Any) -> dict:
    """OpenAI usage -> Anthropic usage.

    OpenAI's ``prompt_tokens`` includes cached tokens (``prompt_tokens_details.cached_tokens``,
    or DeepSeek's ``prompt_cache_hit_tokens``); Anthropic's ``input_tokens`` excludes them, so
    they move to ``cache_read_input_tokens`` (cache writes, when reported, to
    ``cache_creation_input_tokens``).
    """
    usage = openai_usage if isinstance(openai_usage, dict) else {}
    details = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
    prompt = _int(usage.get("prompt_tokens"))
    cached = _int(details.get("cached_tokens")) or _int(usage.get("prompt_cache_hit_tokens"))
    written = _int(details.get("cache_write_tokens")) or _int(details.get("cache_creation_tokens"))
    cached = min(cached, prompt)
    written = min(written, prompt - cached)
    return {
        "input_tokens": prompt - cached - written,
        "output_tokens": _int(usage.get("completion_tokens")),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
    }


def openai_usage(anthropic_usage_: Any) -> dict:
    """Anthropic usage -> OpenAI usage (``prompt_tokens`` = input + cache reads + cache writes)."""
    usage = anthropic_usage_ if isinstance(anthropic_usage_, dict) else {}
    cached = _int(usage.get("cache_read_input_tokens"))
    prompt = _int(usage.get("input_tokens")) + cached + _int(usage.get("cache_creation_input_tokens"))
    completion = _int(usage.get("output_tokens"))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
