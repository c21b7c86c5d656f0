"""The proxy-rotation admin API: ``/_admin/proxy`` (status), ``/toggle``, ``/refresh``, ``/settings``.

Mode and filters are settings rows, so a change made here applies to every worker's next request
(other instances': within ``ZENGATE_SETTINGS_TTL``). The pool itself is per worker: the status
shows the answering worker's pool (``worker`` is its pid); a refresh asked here is done at once
by this worker and by every other worker's background loop within about a second.
"""

from __future__ import annotations

import os

from flask import jsonify, request

from ...gateway import current_gateway
from ...settings import ALIASES, SPECS, SettingError
from ...upstream.egress import NEXT_MODE
from ..errors import ApiError
from . import admin

bp = admin.admin_blueprint("proxy", "/_admin/proxy")

PREFIX = "proxy_"
#: What POST /_admin/proxy/settings accepts, by short name (``min_uptime``) → settings key.
SETTINGS = {name[len(PREFIX):]: name for name, spec in SPECS.items() if name.startswith(PREFIX) and spec.public}
#: Aliases it accepts too (``enabled`` → ``proxy_enabled``, which sets proxy_mode); applied after the rest.
ALIAS_SETTINGS = {name[len(PREFIX):]: name for name in ALIASES if name.startswith(PREFIX)}

def _status(**extra):
    gw = current_gateway()
    try:
        shown = int(request.args.get("proxies", 20))
    except ValueError:
        raise ApiError(400, "proxies: must be a whole number", param="proxies", kind="input") from None
    gw.egress.sync_static()
    body = gw.egress.status(proxies=max(0, min(shown, 1000)))
    body["settings"] = {short: gw.settings.shown(name) for short, name in SETTINGS.items()}
    body["worker"] = os.getpid()
    body.update(extra)
    return jsonify(body)


@bp.get("")
def status():
    """Mode, whether requests go through proxies now, the Auto state, pool counts and top proxies."""
    return _status()


@bp.post("/toggle")
def toggle():
    """Off → Auto → On → Off. The Auto state starts afresh."""
    gw = current_gateway()
    previous = gw.egress.mode()
    gw.egress.set_mode(NEXT_MODE[previous])
    return _status(previous_mode=previous)


@bp.post("/refresh")
def refresh():
    """Refresh this worker's pool now (Geonode fetched even in Off mode) and ask every worker to."""
    gw = current_gateway()
    gw.egress.request_refresh()
    result = gw.egress.refresh()
    return _status(refresh=result)


def _key(name: str) -> str | None:
    """The settings key a name of this API stands for (short or full, an alias included)."""
    if name in SETTINGS or name in ALIAS_SETTINGS:
        return SETTINGS.get(name) or ALIAS_SETTINGS[name]
    return name if name in SETTINGS.values() or name in ALIAS_SETTINGS.values() else None


@bp.post("/settings")
def settings():
    """Set any proxy setting, by short name (``min_uptime``) or full key (``proxy_min_uptime``).

    Every value is checked first; if one is bad nothing is stored and the 400 names each bad one.
    ``enabled`` (``proxy_enabled``) is read after ``mode``; the two must agree when both are sent.
    """
    gw = current_gateway()
    body = admin.json_object()
    known = ", ".join([*SETTINGS, *ALIAS_SETTINGS])
    if not body:
        raise ApiError(400, f"body: name at least one of {known}", param="body", kind="input")
    problems: list[tuple[str, str]] = []
    changes: dict[str, object] = {}
    named = [(name, _key(name), value) for name, value in body.items()]
    named.sort(key=lambda item: item[1] in ALIASES)  # aliases last: they read what the others set
    for name, key, value in named:
        if key is None:
            problems.append((name, f"unknown proxy setting; known: {known}"))
            continue
        if key == "proxy_mode" and isinstance(value, str):
            value = value.strip().lower()
        try:
            prepared = gw.settings.prepare(key, value, pending=changes)
        except SettingError as exc:
            problems.append((name, exc.message))
            continue
        for target, stored in prepared.items():
            if target in changes and changes[target] != stored:
                earlier = gw.settings.shown(target, changes[target])  # a proxy list: its passwords masked
                problems.append((name, f"contradicts {target[len(PREFIX):]} ({earlier}) in the same body"))
            else:
                changes[target] = stored
    if problems:
        raise ApiError(400, "; ".join(f"{name}: {message}" for name, message in problems),
                       param=",".join(name for name, _ in problems), kind="input")
    gw.settings.store(changes)
    gw.egress.settings_stored(set(changes))
    return _status(changed={key[len(PREFIX):]: gw.settings.shown(key, value) for key, value in changes.items()})
