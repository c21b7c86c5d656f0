"""Tool calls a model wrote as text, found as the text streams by, holding back only what may be one.

Open models asked to call a tool sometimes write the call into their answer instead. The forms
known here:

* ``<tool_call>{"name": …, "arguments": {…}}</tool_call>`` (Hermes, Qwen);
* ``<function=NAME>{…}</function>`` (Llama);
* ``[TOOL_CALLS][{"name": …, "arguments": {…}}]`` (Mistral);
* a fenced block (```` ```json ````) holding such an object, or a list of them;
* the whole answer being such an object (after leading spaces).

The object may name its tool by ``name``, ``tool`` or ``function.name`` and its arguments by
``arguments``, ``parameters``, ``input``, ``args`` or ``tool_input`` (an object, or JSON in a
string). A :class:`TextCallScanner` is fed a text block's pieces and gives back text to pass on at
once and candidates to judge: from where a call may begin it holds the text until it knows. Text
that cannot begin a call is never held, and a fenced block is held only while its first
characters could still open a call object. A candidate that is not a call to an offered tool,
with arguments its schema accepts, goes on as the text it was.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

#: Opening markers with the marker that closes them ("" for a JSON value that closes itself).
MARKERS = {"<tool_call>": "</tool_call>", "<function=": "</function>", "[TOOL_CALLS]": ""}
FENCE = "```"
#: The start of a JSON object (or list of them) that names a tool.
CALL_START = re.compile(r'\s*\[?\s*\{\s*"(?:name|tool|function|tool_name)"\s*:')
_START_SO_FAR = re.compile(r'\s*(?:\[\s*)?(?:\{\s*(?:"([a-z_]*)("\s*)?)?)?$')
#: Where a call may open inside a text: a marker's first character, or a backtick after a line break.
OPENING = re.compile(r"[<\[]|(?<=\n)`")
NAME_KEYS = ("name", "tool", "tool_name")
ARGUMENT_KEYS = ("arguments", "parameters", "input", "args", "tool_input")

#: A piece of a scanned text: ("text", str) passes on; ("candidate", ((kind, inner text), whole text))
#: is to be judged, and goes on as its whole text when it is not a call.
Piece = tuple[str, Any]


class TextCallScanner:
    """One text block's text, fed piece by piece (see the module)."""

    def __init__(self) -> None:
        self.pending = ""  # text not yet given back
        self.mode = ""  # "" (scanning) | a marker | "fence" | "json" (a bare object at the start)
        self.started = False  # text of the block has gone out: a bare object counts only at the start
        self.line_start = True  # the last character given back ended a line (a fence opens only there)

    def feed(self, text: str) -> list[Piece]:
        self.pending += text
        return self._scan(final=False)

    def finish(self) -> list[Piece]:
        """The end of the block: whatever is still held goes out as it came."""
        return self._scan(final=True)

    def _scan(self, final: bool) -> list[Piece]:
        out: list[Piece] = []
        while self.pending:
            if self.mode:
                if not self._held(out, final):
                    break
                continue
            start = self._opening()
            if start is None:  # nothing here can open a call
                self._text(out, self.pending)
                break
            self._text(out, self.pending[:start])
            if self._enter():
                continue
            if not final and self._may_open():
                break  # wait for more text
            self._text(out, self.pending[:1])  # not an opening after all: one character on, look again
        return out

    def _text(self, out: list[Piece], text: str) -> None:
        """Give ``text`` (the start of ``pending``) back as text."""
        if text:
            out.append(("text", text))
            self.pending = self.pending[len(text):]
            self.started = self.started or bool(text.strip())
            self.line_start = text.endswith("\n")

    def _bare(self) -> bool:
        """Whether ``pending`` is at the start of the block and opens a JSON object or list."""
        return not self.started and self.pending.lstrip()[:1] in ("{", "[")

    def _opening(self) -> int | None:
        """Where in ``pending`` a call may open: a marker's first character, a backtick at a line
        start, or a bare object at the start of the block."""
        text = self.pending
        if self._bare():
            return len(text) - len(text.lstrip())
        if self.line_start and text.startswith("`"):
            return 0
        found = OPENING.search(text)
        return found.start() if found else None

    def _may_open(self) -> bool:
        """Whether ``pending`` (at an opening) may still become one with more text."""
        if self._bare() and may_start_call(self.pending):
            return True
        return any(marker.startswith(self.pending) for marker in (*MARKERS, FENCE))

    def _enter(self) -> bool:
        """Take the opening at the start of ``pending``: True when a mode was entered."""
        text = self.pending
        self.mode = next((m for m in MARKERS if text.startswith(m)), "")
        if not self.mode and text.startswith(FENCE):
            self.mode = "fence"
        if not self.mode and self._bare() and CALL_START.match(text):
            self.mode = "json"
        return bool(self.mode)

    def _held(self, out: list[Piece], final: bool) -> bool:
        """Go on with a held candidate: True when it was decided, False to wait for more text."""
        text, mode = self.pending, self.mode
        if mode == "fence":
            newline = text.find("\n")
            body = text[newline + 1:] if newline >= 0 else ""
            if newline >= 0 and CALL_START.match(body):
                end = body.find("\n" + FENCE)
                if end >= 0:
                    return self._decide(out, ("json", body[:end]), newline + 1 + end + 1 + len(FENCE))
            elif final or (newline < 0 and len(text) > 40) or (newline >= 0 and not may_start_call(body)):
                return self._give_up(out)  # an ordinary code block: on as text, now
            return self._give_up(out) if final else False
        if mode == "json":
            end = json_end(text)
            if end is None:
                return self._give_up(out) if final else False
            return self._decide(out, ("json", text[:end]), end)
        close = MARKERS[mode]
        if not close:  # [TOOL_CALLS], then one JSON value
            end = json_end(text[len(mode):])
            length = None if end is None else len(mode) + end
        else:
            end = text.find(close)
            length = None if end < 0 else end + len(close)
        if length is None:
            return self._give_up(out) if final else False
        inner = text[len(mode):length - len(close)]
        return self._decide(out, ("function" if mode == "<function=" else "json", inner), length)

    def _decide(self, out: list[Piece], candidate: tuple[str, str], length: int) -> bool:
        out.append(("candidate", (candidate, self.pending[:length])))
        self.pending, self.mode, self.started = self.pending[length:], "", True
        return True

    def _give_up(self, out: list[Piece]) -> bool:
        """The held text is not a call: its opening goes on as text, and scanning resumes after it."""
        opening = len(self.mode) if self.mode in MARKERS else len(FENCE) if self.mode == "fence" else 1
        self.mode = ""
        self._text(out, self.pending[:opening])
        return True


def may_start_call(text: str) -> bool:
    """Whether ``text`` may still become the start of a call object (:data:`CALL_START`)."""
    found = _START_SO_FAR.match(text)
    if found is None:
        return False
    key, closed = found.group(1), found.group(2)
    if key is None:
        return True
    return key in ("name", "tool", "function", "tool_name") if closed else any(
        k.startswith(key) for k in ("name", "tool", "function", "tool_name"))


def json_end(text: str) -> int | None:
    """Where the JSON value at the start of ``text`` (after spaces) ends, or None while it is unfinished."""
    depth, quote, i = 0, False, 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quote = False
        elif ch == '"':
            quote = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth <= 0:
                return i + 1
        elif not ch.isspace() and depth == 0:
            return None if ch in "{[" else i  # a scalar: not ours
        i += 1
    return None


def calls_in(candidate: tuple[str, str], check: Callable[[str, dict], str | None]) -> list[tuple[str, dict]] | None:
    """The tool calls a candidate holds, as ``(tool name, arguments)``; None unless every one of them
    is a call that ``check`` (given the name and arguments) accepts: it returns the offered tool's name."""
    kind, text = candidate
    if kind == "function":
        name, _, body = text.partition(">")
        value: Any = {"name": name.strip(), "arguments": _loads(body)}
    else:
        value = _loads(text)
    items = value if isinstance(value, list) else [value]
    calls: list[tuple[str, dict]] = []
    for item in items:
        call = _call(item)
        if call is None:
            return None
        offered = check(*call)
        if offered is None:
            return None
        calls.append((offered, call[1]))
    return calls or None


def _call(item: Any) -> tuple[str, dict] | None:
    if not isinstance(item, dict):
        return None
    if isinstance(item.get("function"), dict):
        item = {**item["function"], **{k: v for k, v in item.items() if k != "function"}}
    name = next((item[k] for k in NAME_KEYS if isinstance(item.get(k), str)), None)
    arguments = next((item[k] for k in ARGUMENT_KEYS if k in item), {})
    if isinstance(arguments, str):
        arguments = _loads(arguments) if arguments.strip() else {}
    if not name or not isinstance(arguments, dict):
        return None
    return name, arguments


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
