"""Context trimming: fewer tokens per agent turn, without touching what the model sees last.

Every agent turn re-sends the whole conversation. :func:`trim` shortens its old turns in the
internal form, in four steps, each switchable (:class:`TrimOptions`):

* ``thinking``: thinking blocks of old assistant turns are dropped (the upstream reads only the
  latest turn's, and a translating upstream none);
* ``tool_results``: an old tool result longer than ``max_result_chars`` keeps its head and tail
  with a marker saying how much was cut;
* ``repeats``: an old tool result identical to an earlier one becomes a reference to it;
* ``reminders``: a ``<system-reminder>`` block that repeats an earlier one unchanged is dropped.

Never touched: the system prompt, the tools, and the recent turns. A turn is an assistant message
and the user message after it; the first user message belongs to no turn and is kept as it is.
**Prefix-stable:** how a turn is trimmed depends only on it and on what came before it, never on
what came after, and the part that may be trimmed grows in steps of ``keep_turns`` turns: with
``keep_turns`` at 4 the first 4 turns become old once 8 are there, the first 8 once 12 are. A
turn, once trimmed, is trimmed the same way in every later request, and the upstream's prompt
cache misses once per ``keep_turns`` turns, not on every one. Tool calls keep their results: a
shortened or referenced result is still a ``tool_result`` with its ``tool_use_id``.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..dialects.tokens import estimate_anthropic_tokens

#: What the markers say; a model reads them in place of the text that was cut.
CUT_MARKER = "\n[zengate trimmed {cut} characters of this old tool result; {head} kept before, {tail} after]\n"
REPEAT_MARKER = "[zengate: the same output as the earlier {name} result ({id}); {chars} characters not repeated]"
_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>\s*", re.S)


#: Each step, and what its switch does (the settings check, the dashboard and the docs say it).
STEPS = {
    "thinking": "drop thinking blocks from old assistant turns",
    "tool_results": "shorten old tool results over trim_max_result_chars to their head and tail",
    "repeats": "turn an old tool result identical to an earlier one into a reference to it",
    "reminders": "drop <system-reminder> blocks that repeat an earlier one unchanged",
}


@dataclass(frozen=True)
class TrimOptions:
    """Which steps run, and how much of the conversation they leave alone."""

    thinking: bool = True
    tool_results: bool = True
    repeats: bool = True
    reminders: bool = True
    keep_turns: int = 4  # the latest turns left as they are (between keep_turns and 2 × keep_turns − 1)
    max_result_chars: int = 2_000  # old tool results longer than this are shortened
    head_chars: int = 1_000
    tail_chars: int = 500


@dataclass
class TrimReport:
    """What :func:`trim` did: characters removed, and how often each step acted."""

    chars_saved: int = 0
    steps: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        acted = ", ".join(f"{name} {count}" for name, count in sorted(self.steps.items()))
        return f"{self.chars_saved} characters: {acted}" if acted else "nothing"


def old_turns(messages: list, keep_turns: int) -> int:
    """How many of the conversation's turns (assistant messages) may be trimmed: a multiple of
    ``keep_turns`` that leaves at least ``keep_turns`` of them alone."""
    assistants = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
    if keep_turns <= 0:
        return assistants
    return max(0, (assistants - keep_turns) // keep_turns * keep_turns)


def could_trim(body: dict, keep_turns: int) -> bool:
    """Whether a client's body (any API) may hold enough turns for :func:`trim` to act: a cheap
    test before the body is read into the form (old turns need 2 × ``keep_turns`` assistant
    messages, and every API lists each message or item on its own)."""
    items = body.get("messages") or body.get("input") or body.get("contents")
    return isinstance(items, list) and len(items) >= 2 * keep_turns


def trim(form: dict, options: TrimOptions) -> tuple[dict | None, TrimReport]:
    """The form with its old turns trimmed (a new dict; ``form`` is shared and left alone), or None
    when nothing changed; and what was done."""
    report = TrimReport()
    messages = form.get("messages")
    if not isinstance(messages, list):
        return None, report
    old = old_turns(messages, options.keep_turns)
    if old == 0:
        return None, report
    seen_results: dict[str, tuple[str, str]] = {}  # a result's digest → (its call id, the tool's name)
    seen_reminders: set[str] = set()
    names: dict[str, str] = {}  # tool call id → tool name
    out: list = []
    turn = 0  # assistant messages so far
    changed = False
    for message in messages:
        if not isinstance(message, dict):
            out.append(message)
            continue
        if message.get("role") == "assistant":
            turn += 1
        trimmable = 0 < turn <= old
        new = _message(message, trimmable, options, names, seen_results, seen_reminders, report)
        changed |= new is not message
        out.append(new)
    if not changed:
        return None, report
    return {**form, "messages": out}, report


def _message(message: dict, trimmable: bool, options: TrimOptions, names: dict[str, str],
             seen_results: dict[str, tuple[str, str]], seen_reminders: set[str], report: TrimReport) -> dict:
    """One message, trimmed when it belongs to an old turn; what it holds is remembered either way."""
    content = message.get("content")
    mine = TrimReport()  # counted into ``report`` only when the message does change
    if isinstance(content, str) and message.get("role") == "user":
        text = _reminders(content, trimmable and options.reminders, seen_reminders, mine)
        if text == content or not text.strip():
            return message
        new_message = {**message, "content": text}
    elif isinstance(content, list):
        blocks = [new for block in content if (new := _block(block, message.get("role"), trimmable, options,
                                                               names, seen_results, seen_reminders, mine))
                  is not None]
        if len(blocks) == len(content) and all(a is b for a, b in zip(blocks, content, strict=True)):
            return message
        if not blocks:  # never leave a message empty
            return message
        new_message = {**message, "content": blocks}
    else:
        return message
    report.chars_saved += mine.chars_saved
    report.steps.update(mine.steps)
    return new_message


def _block(block: Any, role: Any, trimmable: bool, options: TrimOptions, names: dict[str, str],
           seen_results: dict[str, tuple[str, str]], seen_reminders: set[str], report: TrimReport) -> Any:
    """One block as it goes on (itself when untouched, None when dropped)."""
    if not isinstance(block, dict):
        return block
    kind = block.get("type")
    if kind == "tool_use" and isinstance(block.get("id"), str):
        names[block["id"]] = str(block.get("name") or "tool")
        return block
    if kind in ("thinking", "redacted_thinking") and role == "assistant":
        if trimmable and options.thinking:
            report.steps["thinking"] += 1
            report.chars_saved += len(str(block.get("thinking") or block.get("data") or ""))
            return None
        return block
    if kind == "text" and role == "user" and isinstance(block.get("text"), str):
        text = _reminders(block["text"], trimmable and options.reminders, seen_reminders, report)
        if text == block["text"]:
            return block
        return {**block, "text": text} if text.strip() else None
    if kind == "tool_result":
        return _tool_result(block, trimmable, options, names, seen_results, report)
    return block


def _tool_result(block: dict, trimmable: bool, options: TrimOptions, names: dict[str, str],
                 seen_results: dict[str, tuple[str, str]], report: TrimReport) -> dict:
    text = _result_text(block.get("content"))
    if text is None:  # images or other non-text parts: left as they are
        return block
    call_id = str(block.get("tool_use_id") or "")
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    first = seen_results.get(digest)
    if first is None:
        seen_results[digest] = (call_id, names.get(call_id, "tool"))
    if not trimmable:
        return block
    if first is not None and options.repeats and len(text) > len(REPEAT_MARKER) + 40:
        marker = REPEAT_MARKER.format(name=first[1], id=first[0], chars=len(text))
        report.steps["repeats"] += 1
        report.chars_saved += len(text) - len(marker)
        return {**block, "content": marker}
    if options.tool_results and len(text) > options.max_result_chars:
        head, tail = options.head_chars, options.tail_chars
        cut = len(text) - head - tail
        if cut <= 0:
            return block
        marker = CUT_MARKER.format(cut=cut, head=head, tail=tail)
        report.steps["tool_results"] += 1
        report.chars_saved += cut - len(marker)
        return {**block, "content": text[:head] + marker + text[len(text) - tail:]}
    return block


def _result_text(content: Any) -> str | None:
    """A tool result's content as one text, or None when it holds anything but text."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    parts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            return None
        parts.append(part["text"])
    return "\n".join(parts)


def _reminders(text: str, trimmable: bool, seen: set[str], report: TrimReport) -> str:
    """``text`` without the ``<system-reminder>`` blocks seen before (when ``trimmable``); every
    reminder in it is remembered either way."""
    if "<system-reminder>" not in text:
        return text
    out = text
    for match in _REMINDER.finditer(text):
        reminder = match.group(0).strip()
        if reminder in seen and trimmable:
            out = out.replace(match.group(0), "", 1)
            report.steps["reminders"] += 1
            report.chars_saved += len(match.group(0))
        seen.add(reminder)
    return out


def estimated_tokens(form: dict, trimmed: dict) -> tuple[int, int]:
    """The estimated input tokens of ``form`` and of ``trimmed`` (what :func:`trim` made of it).

    One pass over ``form``; only the messages trimming replaced are estimated again (the
    estimate is a sum over the messages, and :func:`trim` keeps every other message as it was).
    """
    before = estimate_anthropic_tokens(form)
    saved = sum(estimate_anthropic_tokens({"messages": [old]}) - estimate_anthropic_tokens({"messages": [new]})
                for old, new in zip(form.get("messages") or (), trimmed.get("messages") or (), strict=False)
                if old is not new)
    return before, before - saved
