"""Which model a request goes to before routing: the conversation's in-chat commands and choices,
the operator's forced model, else the client's own (docs/steering.md).

The commands themselves are read and removed by pure functions (zengate/steering/commands.py);
this module applies them: checks a named model can be routed (and that the key may use it),
keeps the conversation's choice in the store for every worker, and words the gateway's answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import peewee
from flask import g

from ...exchange import routing
from ...exchange.routing import RoutingError
from ...gateway import Gateway
from ...steering import commands
from ...steering.commands import MARK, Command
from ...store.conversations import Choice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Steering:
    """What the request's steering decided."""

    model: str  # the model to plan for
    reason: str | None = None  # what chose it when not the client: "forced", "!/model", "!/oneoff"…
    local_text: str | None = None  # answer this instead of asking an upstream
    confirmation: str | None = None  # the gateway's note before the model's answer
    strip: bool = False  # commands may be in the conversation: remove them before it goes upstream
    conversation: str | None = None  # the conversation's key, when steering had to work it out


def steer(gw: Gateway, body: dict, form: Callable[[], dict], key: str | None,
          headers: Mapping[str, str]) -> Steering:
    """The model for this request, and what to answer when the latest user turn holds commands."""
    requested = body["model"]
    forced = routing.forced_model(gw.settings.get("forced_model"), key)
    base = forced or requested
    if not gw.settings.get("chat_commands"):
        return Steering(base, "forced" if forced else None)
    days = gw.settings.get("chat_command_days")
    conversation = routing.conversation_key(body, headers, form)
    choice = _read(gw, conversation, days)
    chosen = _apply(gw, choice, base) if choice is not None else base
    reason = "chosen in chat" if choice is not None else ("forced" if forced else None)
    raw = g.get("raw_body")
    if raw is not None and b"!/" not in raw and commands.MARK.encode() not in raw:
        return Steering(chosen, reason, conversation=conversation)  # no command, nothing to strip: body not read
    turn = commands.read(form())
    if turn is None:
        return Steering(chosen, reason, strip=True, conversation=conversation)
    return replace(_run(gw, turn, conversation, choice, base, requested, key, days), conversation=conversation)


def _read(gw: Gateway, conversation: str, days: int) -> Choice | None:
    try:
        return gw.conversations.read(conversation, days)
    except peewee.DatabaseError as exc:  # the conversation goes on with the model it asked for
        log.warning("in-chat commands: the conversation's choice could not be read: %s", type(exc).__name__)
        return None


def _apply(gw: Gateway, choice: Choice, base: str) -> str:
    return gw.router.on_backend(choice.model or base, choice.backend)


def _run(gw: Gateway, turn: commands.Turn, conversation: str, choice: Choice | None, base: str,
         requested: str, key: str | None, days: int) -> Steering:
    """Carry out the turn's commands in order; a local answer unless a message for the model remains."""
    current = choice or Choice()
    notes: list[str] = []
    oneoff: str | None = None
    answer_here = not turn.has_message
    for command in turn.commands:
        if not command.well_formed:
            notes.append(_malformed(command))
            answer_here = True
        elif command.name == "help":
            notes.append(commands.HELP)
            answer_here = True
        elif command.name == "status":
            notes.append(_status(gw, _apply(gw, current, base), current, requested, base, key))
            answer_here = True
        elif command.name == "reset":
            current = Choice()
            notes.append(f"this conversation's choices are forgotten: it uses {base} again")
        elif command.name == "model":
            current, note = _choose_model(gw, current, command.argument.strip(), base)
            notes.append(note)
        elif command.name == "backend":
            current, note = _choose_backend(gw, current, command.argument.strip())
            notes.append(note)
        else:  # oneoff
            target = command.argument.strip()
            problem = _problem(gw, target)
            if problem:
                notes.append(problem)
                answer_here = True
            else:
                oneoff = target
                notes.append(f"this turn goes to {target}")
    if current != (choice or Choice()):
        try:
            gw.conversations.write(conversation, current, days)
        except peewee.DatabaseError as exc:
            log.warning("in-chat commands: the conversation's choice could not be saved: %s", type(exc).__name__)
            notes.append("the choice could not be saved (the gateway's database is unavailable); it is not in effect")
            current, answer_here = choice or Choice(), True
    if oneoff is not None and not turn.has_message:
        notes.append("!/oneoff(…) applies to the message written after it; nothing was sent")
    text = f"{MARK} " + "\n\n".join(notes)
    model = oneoff or _apply(gw, current, base)
    if answer_here:
        return Steering(model, "in-chat command", local_text=text)
    return Steering(model, "!/oneoff" if oneoff else "in-chat command", confirmation=text, strip=True)


def _problem(gw: Gateway, model: str) -> str | None:
    """Why ``model`` cannot be used here (it cannot be routed, or the key may not use it); None: it can."""
    try:
        plan = gw.plan(model, lambda: {})
    except RoutingError as exc:
        return f"{model} cannot be used: {exc.message}"
    first = plan.candidates[0]
    gw.refresh_models_if_due()  # the live lists say which models exist
    if first.backend.name in ("zen", "go") and not gw.catalog.known(first.model_id, gw.settings.get("model_overrides")):
        return f"{model} cannot be used: the gateway does not know that model (GET /v1/models lists them)"
    policy = g.get("key_policy")
    if policy is not None and not policy.allows(first.model_id) and not policy.allows(model):
        return f"{model} cannot be used: API key '{policy.label}' may not use it"
    return None


def _choose_model(gw: Gateway, current: Choice, name: str, base: str) -> tuple[Choice, str]:
    if name.lower() == "default":
        return Choice(None, current.backend), f"this conversation uses {base} again"
    problem = _problem(gw, gw.router.on_backend(name, current.backend))
    if problem:
        return current, problem + "; the model was not changed"
    return Choice(name, current.backend), f"this conversation now uses {gw.router.on_backend(name, current.backend)}"


def _choose_backend(gw: Gateway, current: Choice, name: str) -> tuple[Choice, str]:
    if name.lower() == "default":
        return Choice(current.model, None), "this conversation uses each model's own backend again"
    if name not in gw.router.backends:
        known = ", ".join(sorted(gw.router.backends))
        return current, f"there is no backend named {name!r}; the backends are: {known}"
    return Choice(current.model, name), f"this conversation now goes to the {name} backend"


def _malformed(command: Command) -> str:
    if not command.known:
        return f"{command} is not a command.\n\n{commands.HELP}"
    if command.name in commands.WITH_ARGUMENT:
        return f"!/{command.name} needs an argument: !/{command.name}(NAME).\n\n{commands.HELP}"
    return f"!/{command.name} takes no argument.\n\n{commands.HELP}"


def _status(gw: Gateway, model: str, choice: Choice, requested: str, base: str, key: str | None) -> str:
    try:
        first = gw.plan(model, lambda: {}).candidates[0]
        route = f"{first.model_id} on the {first.backend.name} backend"
    except RoutingError as exc:
        route = f"{model}, which cannot be routed: {exc.message}"
    how = ("chosen in this chat" if choice.model or choice.backend
           else "forced by the gateway's operator" if base != requested else "the one the client asked for")
    policy = g.get("key_policy")
    who = f"API key '{policy.label}' ({key})" if policy is not None else (f"API key {key}" if key else "no API key")
    return f"this conversation uses {route} ({how}; the client asked for {requested}); it is sent with {who}"
