"""Stages: functions on the internal form that the exchange runs between the client and the upstream.

A stage gets the request in the form and returns the form the upstream should get instead (a new
dict: the one it was given is shared with the request log and every attempt) or None when it has
nothing to change. The exchange runs the stages chosen for a request, in order, once, before the
first attempt; when one changed the request, even an upstream of the client's own API gets the
form rendered, not the client's bytes. Whatever API the client speaks, a stage sees the same form,
so a guard or a trimmer is written once for all of them.

Stages are registered by name (:func:`register`) and chosen by the ``stages`` setting:
``{"default": [names], "models": {model: [names]}, "keys": {key prefix: [names]}}`` (a key by the
prefix the dashboard shows, ``sk-zen-abcdef``); a model's
list and a key's list replace the default for that model or key (a key's wins over a model's).
With no stage chosen the exchange does no work for them at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StageContext:
    """What a stage may know of the request besides its form."""

    client_api: str  # the client's dialect
    model: str  # the model the client asked for
    key: str | None = None  # the sk-zen key's shown prefix (sk-zen-abcdef), when the request carried one


Stage = Callable[[dict, StageContext], "dict | None"]

REGISTRY: dict[str, Stage] = {}


def register(name: str) -> Callable[[Stage], Stage]:
    """Make ``stage`` choosable as ``name`` in the ``stages`` setting."""
    def add(stage: Stage) -> Stage:
        REGISTRY[name] = stage
        return stage
    return add


def check_setting(value: Any) -> str | None:
    """What is wrong with a ``stages`` setting (None when nothing is); names must be registered."""
    if not isinstance(value, dict):
        return "must be an object"
    unknown = set(value) - {"default", "models", "keys"}
    if unknown:
        return f"unknown parts {sorted(unknown)}; use default, models, keys"

    def names_problem(where: str, names: Any) -> str | None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return f"{where}: must be a list of stage names"
        missing = [n for n in names if n not in REGISTRY]
        if missing:
            known = ", ".join(sorted(REGISTRY)) or "none yet"
            return f"{where}: unknown stages {missing}; known: {known}"
        return None

    return names_problem("default", value.get("default", [])) or scoped_problem(value, names_problem, "lists")


def scoped_problem(value: dict, check: Callable[[str, Any], str | None], what: str) -> str | None:
    """The first problem in a setting's ``models`` and ``keys`` parts (as ``stages`` and ``guards``
    have them): each an object of ``what`` by model or key prefix, each item ``check``-ed with where it is."""
    for part in ("models", "keys"):
        scoped = value.get(part, {})
        if not isinstance(scoped, dict):
            return f"{part}: must be an object of {what}"
        for name, item in scoped.items():
            problem = check(f"{part}.{name}", item)
            if problem:
                return problem
    return None


def check_switches(value: Any, names: Mapping[str, str], what: str) -> str | None:
    """What is wrong with a setting of switches by name (as ``guards`` and ``trimming`` are:
    ``{name: bool, models: {model: {name: bool}}, keys: {key prefix: {name: bool}}}``), or None."""
    if not isinstance(value, dict):
        return "must be an object"

    def switches_problem(where: str, switches: Any) -> str | None:
        if not isinstance(switches, dict):
            return f"{where}: must be an object of {what} switches"
        prefix = f"{where}." if where else ""
        for name, on in switches.items():
            if name not in names:
                return f"{prefix}{name}: unknown {what}; known: {', '.join(names)}"
            if not isinstance(on, bool):
                return f"{prefix}{name}: must be true or false"
        return None

    own = {k: v for k, v in value.items() if k not in ("models", "keys")}
    return switches_problem("", own) or scoped_problem(value, switches_problem, f"{what} switches")


def switched_on(setting: dict, names: Mapping[str, str], *, model: str, key: str | None) -> frozenset[str]:
    """The names a setting of switches turns on for a request: its own switches, then the model's,
    then the key's (each wins over the one before)."""
    if not setting:
        return frozenset()
    switches = {name: on for name, on in setting.items() if name in names}
    switches.update((setting.get("models") or {}).get(model) or {})
    if key is not None:
        switches.update((setting.get("keys") or {}).get(key) or {})
    return frozenset(name for name, on in switches.items() if on is True)


def chosen(setting: dict, *, model: str, key: str | None) -> Sequence[Stage]:
    """The stages the ``stages`` setting chooses for a request (unknown names are skipped)."""
    if not setting:
        return ()
    keys = setting.get("keys") or {}
    models = setting.get("models") or {}
    if key is not None and key in keys:
        names = keys[key]
    elif model in models:
        names = models[model]
    else:
        names = setting.get("default") or ()
    return tuple(REGISTRY[n] for n in names if n in REGISTRY)


def run(stages: Sequence[Stage], form: dict, context: StageContext) -> dict | None:
    """The form after ``stages`` (in order), or None when none of them changed it."""
    changed = None
    for stage in stages:
        result = stage(changed if changed is not None else form, context)
        if result is not None:
            changed = result
    return changed
