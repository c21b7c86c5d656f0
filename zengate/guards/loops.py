"""Loop breaking: an agent whose model keeps making the same move gets a short steering answer from
the gateway instead of one more upstream call.

A loop is the last N assistant turns of the conversation (N is ``loop_repeats``) making the same
tool calls with the same arguments and getting the same results back, or saying the same text
(of some length: "OK." twice is not a loop). Same results matter: a model polling a build whose
status changes is not looping. The steering answer ends the loop once: it is an assistant turn
itself, so the next request's last N turns are no longer all the same, and only N more repeats
steer again.
"""

from __future__ import annotations

import json
from typing import Any

#: The shortest assistant text whose repetition counts as a loop.
MIN_LOOP_TEXT = 16
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


def loop_of(form: dict, repeats: int) -> str | None:
    """What the conversation keeps doing, when its last ``repeats`` assistant turns are all the same
    move (see the module); None otherwise."""
    messages = form.get("messages")
    if not isinstance(messages, list) or repeats < 2:
        return None
    results = _results(messages)
    moves = []
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "assistant":
            moves.append(_move(message.get("content"), results))
            if len(moves) == repeats:
                break
    if len(moves) < repeats or moves[0] is None or any(move != moves[0] for move in moves):
        return None
    kind, what = moves[0][0], moves[0][1]
    if kind == "calls":
        names = ", ".join(sorted({name for name, _, _ in what}))
        return f"{names} called {repeats} times in a row with the same arguments and the same result"
    return f"the same answer given {repeats} times in a row"


def steering_text(template: str, loop: str) -> str:
    """The steering answer: the ``loop_message`` setting, its ``{loop}`` replaced by what repeats."""
    return template.replace("{loop}", loop)


def _move(content: Any, results: dict[str, str]) -> tuple[str, Any] | None:
    """One assistant turn as a comparable move: its tool calls (name, arguments, result), else its text."""
    blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
    calls = tuple(sorted((b.get("name") or "", _canonical(b.get("input")), results.get(b.get("id") or "", ""))
                         for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"))
    if calls:
        return "calls", calls
    text = "".join(b.get("text") or "" for b in blocks if isinstance(b, dict) and b.get("type") == "text").strip()
    return ("text", text) if len(text) >= MIN_LOOP_TEXT else None


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
