"""The tool-call guard: each tool call of an answer, held until it is whole, then mended or refused.

In a stream (the form's events) a ``tool_use`` block is held from its start to its stop, then
goes out whole: as it came, mended (``tool_repair``), or replaced by a text block that tells the
agent why its command was refused (``dangerous_commands``). With ``tool_repair`` a text block is
also read for calls the model wrote as text (textcalls.py): text that cannot be part of one goes
on at once, a call to an offered tool becomes a ``tool_use`` block of its own. Blocks are numbered
anew as they go out, since a text block may become several. When every tool call of an answer
was refused, its stop reason becomes ``end_turn`` (the agent reads the refusal instead of
waiting for a tool result); when calls came out of its text, ``tool_use``. A whole answer (not
streamed) gets the same treatment in :meth:`ToolCallGuard.answer`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..dialects.translate_common import new_id
from ..exchange.form import FormEvent
from .commands import Rule, command_of, compile_rules, is_shell_tool, refusal
from .repair import repair_arguments, schema_problem, tool_named
from .textcalls import Piece, TextCallScanner, calls_in

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
        self.scanner: TextCallScanner | None = None  # reading a text block for written calls
        self.text_open: int | None = None  # the index of the text block open on the way out
        self.indices: dict[int, int] = {}  # an upstream block's index → its index on the way out
        self.next_index = 0
        self.released = 0  # tool calls that went out as calls
        self.refused = 0
        self.from_text = 0  # tool calls found in text

    # --- streams ---------------------------------------------------------------------------------

    def feed(self, events: Iterable[FormEvent]) -> list[FormEvent]:
        """The events to send on for these: a tool call's go out together once it is whole."""
        out: list[FormEvent] = []
        for name, data in events:
            index = data.get("index")
            if self.held is not None and index == self.held[0]["index"]:
                if name == "content_block_delta":
                    piece = (data.get("delta") or {}).get("partial_json")
                    self.held[1].append(piece if isinstance(piece, str) else "")
                    continue
                if name == "content_block_stop":
                    start, pieces = self.held
                    self.held = None
                    out.extend(self._release(start, "".join(pieces)))
                    continue
            if self.held is not None:  # cut off (an error): the call as it came, then what ended it
                start, pieces = self.held
                self.held = None
                out.extend(self._as_it_came(start, pieces))
            if self.scanner is not None and name in ("content_block_delta", "content_block_stop") \
                    and index in self.indices and self.indices[index] < 0:
                if name == "content_block_delta":
                    text = (data.get("delta") or {}).get("text")
                    out.extend(self._pieces(self.scanner.feed(text if isinstance(text, str) else "")))
                else:
                    out.extend(self._pieces(self.scanner.finish()))
                    out.extend(self._close_text())
                    self.scanner = None
                continue
            if name == "content_block_start":
                block = data.get("content_block") or {}
                if block.get("type") == "tool_use" and self._judged(block):
                    self.held = (data, [])
                    continue
                if block.get("type") == "text" and self.repair and self.offered and not block.get("text"):
                    self.scanner, self.indices[index] = TextCallScanner(), -1  # opened when text goes out
                    continue
                self.indices[index] = self._claim()
            elif name == "message_delta":
                data = self._stop_reason(data)
            if index is not None and index in self.indices:
                data = {**data, "index": self.indices[index]}
            out.append((name, data))
        return out

    def _claim(self) -> int:
        index, self.next_index = self.next_index, self.next_index + 1
        return index

    def _judged(self, block: dict) -> bool:
        """Whether this guard holds a tool call: any, to mend a name; else only the offered ones."""
        name = block.get("name")
        return isinstance(name, str) and (self.repair or name in self.offered)

    def _stop_reason(self, data: dict) -> dict:
        delta = data.get("delta") or {}
        reason = delta.get("stop_reason")
        if reason == "tool_use" and self.refused and not self.released:
            reason = "end_turn"
        elif reason in ("end_turn", "stop_sequence") and self.from_text and self.released:
            reason = "tool_use"
        return data if reason == delta.get("stop_reason") else {**data, "delta": {**delta, "stop_reason": reason}}

    def _pieces(self, pieces: list[Piece]) -> list[FormEvent]:
        """A text block's scanned pieces on the way out: text into the open text block, calls as blocks."""
        out: list[FormEvent] = []
        for kind, value in pieces:
            if kind == "candidate":
                blocks = self._written_calls(value[0])
                if blocks is None:
                    kind, value = "text", value[1]  # not a call after all: the text it was
                else:
                    out.extend(self._close_text())
                    for block in blocks:
                        out.extend(self._block(block))
                    continue
            if value:
                if self.text_open is None:
                    self.text_open = self._claim()
                    out.append(("content_block_start", {"type": "content_block_start", "index": self.text_open,
                                                        "content_block": {"type": "text", "text": ""}}))
                out.append(("content_block_delta", {"type": "content_block_delta", "index": self.text_open,
                                                    "delta": {"type": "text_delta", "text": value}}))
        return out

    def _close_text(self) -> list[FormEvent]:
        if self.text_open is None:
            return []
        index, self.text_open = self.text_open, None
        return [("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _offered_call(self, name: str, arguments: dict) -> str | None:
        """The offered tool a call written as text is for, when its arguments fit that tool's schema."""
        tool = tool_named(name, self.offered)
        return tool if tool is not None and schema_problem(arguments, self.offered[tool]) is None else None

    def _written_calls(self, candidate: tuple[str, str]) -> list[dict] | None:
        """The blocks a call written as text becomes (tool calls, judged), or None when it is no call."""
        calls = calls_in(candidate, self._offered_call)
        if calls is None:
            return None
        blocks = []
        for tool, arguments in calls:
            self.from_text += 1
            self.note("tool_repair", "from_text", f"{tool} call written as text")
            blocks.append(self._judge({"type": "tool_use", "id": new_id("toolu_"), "name": tool, "input": arguments},
                                      None))
        return blocks

    def _release(self, start: dict, raw: str) -> list[FormEvent]:
        """A held tool call, judged: its arguments go out as the model wrote them unless they were mended."""
        block = start["content_block"]
        judged = self._judge(block, raw)
        return self._block(judged, raw if judged.get("input") is block.get("input") else None)

    def _block(self, block: dict, arguments: str | None = None) -> list[FormEvent]:
        """A whole block as the events that say it, under the next index on the way out."""
        index = self._claim()
        if block["type"] == "text":
            opened, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": block["text"]}
        else:
            opened = {**block, "input": {}}
            text = arguments if arguments is not None else json.dumps(block.get("input") or {}, ensure_ascii=False)
            delta = {"type": "input_json_delta", "partial_json": text}
        return [("content_block_start", {"type": "content_block_start", "index": index, "content_block": opened}),
                ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}),
                ("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _as_it_came(self, start: dict, pieces: list[str]) -> list[FormEvent]:
        index = self._claim()
        return [("content_block_start", {**start, "index": index}),
                *(("content_block_delta", {"type": "content_block_delta", "index": index,
                                           "delta": {"type": "input_json_delta", "partial_json": p}}) for p in pieces)]

    # --- whole answers ---------------------------------------------------------------------------

    def answer(self, answer: dict) -> dict:
        """A whole answer in the form, its tool calls judged (and, with repair, its text read for calls)."""
        content = answer.get("content")
        if not isinstance(content, list):
            return answer
        judged: list[Any] = []
        for block in content:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "tool_use" and self._judged(block):
                judged.append(self._judge(block, _raw_arguments(block.get("input"))))
            elif kind == "text" and self.repair and self.offered and isinstance(block.get("text"), str):
                judged.extend(self._text_blocks(block))
            else:
                judged.append(block)
        if not self.released and not self.refused:
            return answer  # nothing judged, nothing found: the answer as it came
        out = {**answer, "content": judged}
        out["stop_reason"] = self._stop_reason({"delta": {"stop_reason": answer.get("stop_reason")}})["delta"][
            "stop_reason"]
        return out

    def _text_blocks(self, block: dict) -> list[dict]:
        """A whole text block, read for calls: the blocks it becomes."""
        scanner = TextCallScanner()
        blocks: list[dict] = []
        for kind, value in [*scanner.feed(block["text"]), *scanner.finish()]:
            calls = self._written_calls(value[0]) if kind == "candidate" else None
            if calls is not None:
                blocks.extend(calls)
                continue
            text = value if kind == "text" else value[1]
            if blocks and blocks[-1]["type"] == "text":
                blocks[-1] = {**blocks[-1], "text": blocks[-1]["text"] + text}
            elif text:
                blocks.append({**block, "text": text})
        if len(blocks) == 1 and blocks[0].get("text") == block["text"]:
            return [block]
        return [b for b in blocks if b["type"] != "text" or b["text"].strip()] or [block]

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
