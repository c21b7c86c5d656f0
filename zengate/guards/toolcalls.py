"""The tool-call guard: each tool call of an answer, held until it is whole, then mended or refused.

In a stream (the form's events) a ``tool_use`` block is held from its start to its stop, then
goes out whole: as it came, mended (``tool_repair``), or replaced by a text block that tells the
agent why its command was refused (``dangerous_commands``). Every other event passes at once, so
text is never held back. When every tool call of an answer was refused, its stop reason becomes
``end_turn``: the agent reads the refusal instead of waiting for a tool result. A whole answer
(not streamed) gets the same treatment in :meth:`ToolCallGuard.answer`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..exchange.form import FormEvent
from .commands import Rule, command_of, compile_rules, is_shell_tool, refusal
from .repair import repair_arguments, tool_named

#: Called with (guard, action, why) each time a guard acts: the request's record notes it.
Note = Callable[[str, str, str], None]


class ToolCallGuard:
    """Mends (``repair``) and refuses (``rules``) the tool calls of one answer to a request that offered ``tools``."""

    def __init__(self, tools: Sequence[dict], *, repair: bool, rules: Sequence[Rule], note: Note):
        self.offered = {t["name"]: t.get("input_schema") for t in tools
                        if isinstance(t, dict) and isinstance(t.get("name"), str) and t.get("x_kind") != "custom"}
        self.repair = repair
        self.rules = rules
        self.note = note
        self.held: tuple[dict, list[str]] | None = None  # a tool_use block's start, and its argument pieces
        self.released = 0  # tool calls that went out as calls
        self.refused = 0

    # --- streams ---------------------------------------------------------------------------------

    def feed(self, events: Iterable[FormEvent]) -> list[FormEvent]:
        """The events to send on for these: a tool call's go out together once it is whole."""
        out: list[FormEvent] = []
        for name, data in events:
            held = self.held
            if held is not None:
                index = held[0]["index"]
                if name == "content_block_delta" and data.get("index") == index:
                    piece = (data.get("delta") or {}).get("partial_json")
                    held[1].append(piece if isinstance(piece, str) else "")
                    continue
                self.held = None
                if name == "content_block_stop" and data.get("index") == index:
                    out.extend(self._release(held[0], "".join(held[1])))
                    continue
                out.extend(_as_it_came(held[0], held[1]))  # cut off (an error): as it came, then the error
            if name == "content_block_start":
                block = data.get("content_block") or {}
                if block.get("type") == "tool_use" and block.get("name") in self._judged_names(block):
                    self.held = (data, [])
                    continue
            elif name == "message_delta" and self.refused and not self.released:
                delta = data.get("delta") or {}
                if delta.get("stop_reason") == "tool_use":
                    data = {**data, "delta": {**delta, "stop_reason": "end_turn"}}
            out.append((name, data))
        return out

    def _judged_names(self, block: dict) -> Iterable[str]:
        """Names of tool calls this guard holds: any, to mend a name; else only the offered ones."""
        name = block.get("name")
        return (name,) if isinstance(name, str) and (self.repair or name in self.offered) else ()

    def _release(self, start: dict, raw: str) -> list[FormEvent]:
        block = start["content_block"]
        judged = self._judge(block, raw)
        index = start["index"]
        if judged["type"] == "text":
            return [("content_block_start", {"type": "content_block_start", "index": index,
                                              "content_block": {"type": "text", "text": ""}}),
                    ("content_block_delta", {"type": "content_block_delta", "index": index,
                                              "delta": {"type": "text_delta", "text": judged["text"]}}),
                    ("content_block_stop", {"type": "content_block_stop", "index": index})]
        mended = judged.get("input") is not block.get("input")
        arguments = json.dumps(judged["input"], ensure_ascii=False) if mended else raw
        start = start if judged["name"] == block.get("name") else \
            {**start, "content_block": {**block, "name": judged["name"]}}
        return [("content_block_start", start),
                ("content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "input_json_delta", "partial_json": arguments}}),
                ("content_block_stop", {"type": "content_block_stop", "index": index})]

    # --- whole answers ---------------------------------------------------------------------------

    def answer(self, answer: dict) -> dict:
        """A whole answer in the form, its tool calls judged."""
        content = answer.get("content")
        if not isinstance(content, list) or not any(isinstance(b, dict) and b.get("type") == "tool_use"
                                                    for b in content):
            return answer
        judged = []
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_use" and self._judged_names(block):
                block = self._judge(block, _raw_arguments(block.get("input")))
            judged.append(block)
        out = {**answer, "content": judged}
        if self.refused and not self.released and answer.get("stop_reason") == "tool_use":
            out["stop_reason"] = "end_turn"
        return out

    # --- the judgement ---------------------------------------------------------------------------

    def _judge(self, block: dict, raw: str | None) -> dict:
        """``block`` as it came, mended (a new tool_use block), or refused (a text block).

        ``raw`` is the arguments as the model wrote them (a stream's pieces, or what the upstream's
        decoder could not read); None when the block's ``input`` holds them, read.
        """
        name = block.get("name") or ""
        changes: dict[str, Any] = {}
        if self.repair:
            meant = tool_named(name, self.offered)
            if meant is not None and meant != name:
                self.note("tool_repair", "renamed", f"tool {name!r} called as the offered {meant!r}")
                changes["name"] = name = meant
        value = block.get("input") if raw is None else _loads(raw)
        if value is None and raw is not None and self.repair:
            mended = repair_arguments(raw, self.offered.get(name))
            if mended is not None:
                value = changes["input"] = mended[0]
                self.note("tool_repair", "repaired", f"{name} arguments: {', '.join(mended[1])}")
        if self.rules and isinstance(value, dict) and is_shell_tool(name, self.offered.get(name)):
            command = command_of(value)
            refused = refusal(command, self.rules) if command else None
            if refused is not None:
                self.refused += 1
                self.note("dangerous_commands", "refused", f"{name}: {refused.rule.id}: {command[:200]}")
                return {"type": "text", "text": refused.message()}
        self.released += 1
        return {**block, **changes} if changes else block


def _loads(raw: str) -> dict | None:
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _raw_arguments(value: Any) -> str | None:
    """What an upstream decoder could not read as JSON, which it keeps as ``{"raw_arguments": text}``."""
    if isinstance(value, dict) and set(value) == {"raw_arguments"} and isinstance(value["raw_arguments"], str):
        return value["raw_arguments"]
    return None


def _as_it_came(start: dict, pieces: list[str]) -> list[FormEvent]:
    index = start["index"]
    return [("content_block_start", start),
            *(("content_block_delta", {"type": "content_block_delta", "index": index,
                                       "delta": {"type": "input_json_delta", "partial_json": p}}) for p in pieces)]


def guard_factory(active: frozenset[str], rules: Mapping[str, Mapping[str, Any]],
                  note: Note) -> Callable[[dict], ToolCallGuard | None] | None:
    """What makes a request's tool-call guard from its form, for the ``active`` guards; None when
    none of them looks at tool calls. A form without tools gets no guard."""
    repair = "tool_repair" in active
    compiled = compile_rules(rules) if "dangerous_commands" in active else ()
    if not repair and not compiled:
        return None

    def make(form: dict) -> ToolCallGuard | None:
        tools = form.get("tools")
        return ToolCallGuard(tools, repair=repair, rules=compiled, note=note) if tools else None

    return make
