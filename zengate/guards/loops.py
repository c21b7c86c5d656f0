"""Loop breaking: an agent whose model keeps making the same move gets a short steering answer from
the gateway instead of one more upstream call.

A loop is the model's latest move (its tool calls with their arguments, or its text of some
length: "OK." twice is not a loop) made ``loop_repeats`` times among its recent turns (the last
``RECENT`` times ``loop_repeats``), in a row or not (reading A, then B, then A again… is a loop
too), each time with the same results. Same results matter: a model polling a build whose status
changes is not looping. A loop is steered once: only the turns after the gateway's last steering
answer count, so the model must repeat itself ``loop_repeats`` times more to be steered again.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: The shortest assistant text whose repetition counts as a loop.
MIN_LOOP_TEXT = 16
#: How many of the model's turns count as recent, per repeat looked for.
RECENT = 3
DEFAULT_MESSAGE = ("I have made the same move several times without getting anywhere ({loop}), so I have stopped "
                   "here instead of repeating it. Tell me how you want to go on, or what to try instead.")


def could_loop(body: dict, repeats: int) -> bool:
    """Whether a client's request (any API's body, unread) holds ``repeats`` turns of the model at all:
    a conversation shorter than that is no loop, and is not read into the form to find out."""
    turns = 0
    for key in ("messages", "input", "contents"):  # chat and Messages, Responses, Gemini
        items = body.get(key)
        for item in items if isinstance(items, list) else ():
            if isinstance(item, dict) and (item.get("role") in ("assistant", "model")
                                           or item.get("type") in ("function_call", "custom_tool_call")):
                turns += 1
                if turns >= repeats:
                    return True
    return False


def loop_of(form: dict, repeats: int, template: str = DEFAULT_MESSAGE) -> str | None:
    """What the conversation keeps doing, when its latest move was made ``repeats`` times among the
    recent turns since the last steering answer (``template`` says what one looks like; see the
    module), each time with the same results; None otherwise."""
    messages = form.get("messages")
    if not isinstance(messages, list) or repeats < 2:
        return None
    steered = _steering(template)
    turns: list[Any] = []  # the model's turns since the last steering answer, oldest first
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "assistant":
            if steered.fullmatch(_text(message.get("content")).strip()):
                turns = []
            else:
                turns.append(message.get("content"))
    recent = turns[-RECENT * repeats:]
    if len(recent) < repeats:
        return None
    latest = _move(recent[-1], {})
    if latest is None:
        return None
    results = _results(messages)
    same = [_move(turn, results) for turn in recent if _move(turn, {}) == latest]  # the move, then its results
    if len(same) < repeats or any(move != same[-1] for move in same[-repeats:]):
        return None  # not made often enough, or it got different results: progress, not a loop
    kind, what = latest
    if kind == "calls":
        names = ", ".join(sorted({name for name, _, _ in what}))
        return f"{names} called {repeats} times with the same arguments and the same result"
    return f"the same answer given {repeats} times"


def steering_text(template: str, loop: str) -> str:
    """The steering answer: the ``loop_message`` setting, its ``{loop}`` replaced by what repeats."""
    return template.replace("{loop}", loop)


def _steering(template: str) -> re.Pattern:
    """What a steering answer made from ``template`` looks like (its ``{loop}`` any text)."""
    return re.compile(".*".join(re.escape(part) for part in template.strip().split("{loop}")), re.DOTALL)


def _move(content: Any, results: dict[str, str]) -> tuple[str, Any] | None:
    """One assistant turn as a comparable move: its tool calls (name, arguments, result), else its text."""
    blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
    calls = tuple(sorted((b.get("name") or "", _canonical(b.get("input")), results.get(b.get("id") or "", ""))
                         for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"))
    if calls:
        return "calls", calls
    text = _text(content).strip()
    return ("text", text) if len(text) >= MIN_LOOP_TEXT else None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    blocks = content if isinstance(content, list) else ()
    return "".join(b.get("text") or "" for b in blocks if isinstance(b, dict) and b.get("type") == "text")


def _results(messages: list) -> dict[str, str]:
    """Every tool result of the conversation, by the id of the call it answers."""
    found: dict[str, str] = {}
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else ():
            if isinstance(block, dict) and block.get("type") == "tool_result":
                found[str(block.get("tool_use_id"))] = _canonical(block.get("content"))
    return found


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
