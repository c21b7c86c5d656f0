"""The proxy-rotation admin API: ``/_admin/proxy`` (status), ``/toggle``, ``/refresh``, ``/settings``.

Mode and filters are settings rows, so a change made here reaches every worker within
``ZENGATE_SETTINGS_TTL``. The pool itself is per worker: the status shows the answering worker's
pool (``worker`` is its pid); a refresh asked here is done at once by this worker and by every
other worker's background loop within about a second.
"""

from __future__ import annotations

import os

from flask import Blueprint, jsonify, request

from ..errors import ApiError
from ..gateway import current_gateway
from ..settings import SPECS, SettingError
from ..upstream.egress import NEXT_MODE
from . import admin

bp = Blueprint("proxy", __name__, url_prefix="/_admin/proxy")

PREFIX = "proxy_"
#: What POST /_admin/proxy/settings accepts, by short name (``min_uptime``) → settings key.
SETTINGS = {name[len(PREFIX):]: name for name, spec in SPECS.items() if name.startswith(PREFIX) and spec.public}
#: Settings that change which proxies the pool holds.
POOL_SETTINGS = {"proxy_geonode", "proxy_min_uptime", "proxy_protocols", "proxy_last_checked_minutes",
                 "proxy_speed", "proxy_anonymity", "proxy_countries", "proxy_page_limit", "proxy_max_pages"}


@bp.errorhandler(ApiError)
def _api_error(err: ApiError):
    return admin.render_error(err)


@bp.before_request
def _guard():
    admin.require_admin()


def _status(**extra):
    gw = current_gateway()
    try:
        shown = int(request.args.get("proxies", 20))
    except ValueError:
        raise ApiError(400, "proxies: must be a whole number", param="proxies", kind="input") from None
    gw.egress.sync_static()
    body = gw.egress.status(proxies=max(0, min(shown, 1000)))
    body["settings"] = {short: gw.settings.get(name) for short, name in SETTINGS.items()}
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


@bp.post("/settings")
def settings():
    """Set any proxy setting, by short name (``min_uptime``) or full key (``proxy_min_uptime``).

    Every value is checked first; if one is bad nothing is stored and the 400 names each bad one.
    """
    gw = current_gateway()
    body = admin.json_object()
    if not body:
        raise ApiError(400, f"body: name at least one of {', '.join(SETTINGS)}", param="body", kind="input")
    problems: list[tuple[str, str]] = []
    changes: dict[str, object] = {}
    for name, value in body.items():
        key = SETTINGS.get(name) or (name if name in SETTINGS.values() else None)
        if key is None:
            problems.append((name, f"unknown proxy setting; known: {', '.join(SETTINGS)}"))
            continue
        if key == "proxy_mode" and isinstance(value, str):
            value = value.strip().lower()
        try:
            changes[key] = SPECS[key].coerce(key, value)
        except SettingError as exc:
            problems.append((name, exc.message))
    if problems:
        raise ApiError(400, "; ".join(f"{name}: {message}" for name, message in problems),
                       param=",".join(name for name, _ in problems), kind="input")
    for key, value in changes.items():
        gw.settings.set(key, value)
    if "proxy_mode" in changes:
        gw.egress.clear_auto_state()
    if set(changes) & POOL_SETTINGS and gw.egress.mode() != "off":
        gw.egress.request_refresh()  # new filters or list: every worker refreshes its pool within a second
    return _status(changed={key[len(PREFIX):]: value for key, value in changes.items()})
