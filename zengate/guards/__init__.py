"""Agent guards: checks on an exchange's internal form that catch what free models get wrong before
an agent fails, loops or does harm. They work on the form, so they work the same whatever API the
client and the upstream speak.

* ``tool_repair`` — a tool call whose arguments are broken JSON (trailing commas, single quotes,
  an object cut off at a boundary…) or whose tool name differs from an offered one only in case
  is mended when that is unambiguous and the result fits the tool's schema (repair.py); a call
  the model wrote as text (``<tool_call>…``, a fenced JSON object…) becomes a tool call (textcalls.py);
* ``dangerous_commands`` — a shell-tool call whose command a rule refuses (``rm -rf /``, a force
  push to ``main``…) is replaced by a refusal the agent can read (commands.py; the rules are the
  ``command_rules`` setting);
* ``context_window`` — a prompt over the model's window gets the client's own prompt-too-long
  error at once, or goes to a fallback whose window holds it (context.py);
* ``loop_breaking`` — when the model's latest move (its tool calls, or its text) was made
  ``loop_repeats`` times among its recent turns with the same results, the gateway answers with
  ``loop_message`` itself, once per loop (loops.py).

The first two hold each tool call of an answer until it is whole, and only tool calls: text
streams on (toolcalls.py). Which guards run is the ``guards`` setting, a switch per guard, with switches per
model and per key (by the prefix the dashboard shows) that win over it, a key's over a model's::

    {"tool_repair": true, "dangerous_commands": false,
     "models": {"big-pickle": {"tool_repair": false}}, "keys": {"sk-zen-abcdef": {"dangerous_commands": true}}}

Every guard is off until switched on. What a guard did is noted on the request's log row and
counted in ``/metrics``.
"""

from __future__ import annotations

from typing import Any

from ..exchange.stages import check_switches, switched_on

#: Each guard, and what its switch does (the dashboard and the docs say it).
GUARDS = {
    "tool_repair": "mend broken tool-call arguments, tool names that differ only in case, and calls written as text",
    "dangerous_commands": "refuse shell commands that command_rules matches",
    "context_window": "refuse a prompt over the model's window at once (or try a fallback that fits first)",
    "loop_breaking": "answer a model that keeps repeating itself with a steering message, not another call",
}


def check_setting(value: Any) -> str | None:
    """What is wrong with a ``guards`` setting, or None."""
    return check_switches(value, GUARDS, "guard")


def active(setting: dict, *, model: str, key: str | None) -> frozenset[str]:
    """The guards switched on for a request: the global switches, then the model's, then the key's."""
    return switched_on(setting, GUARDS, model=model, key=key)
