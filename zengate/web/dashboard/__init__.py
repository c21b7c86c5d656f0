"""The admin web dashboard, served by the gateway itself at ``/_admin/ui``.

One HTML page (``templates/index.html``) and plain ES modules and CSS (``static/``): nothing to
build. The page talks to the admin API (``/_admin/*``) and the stats API (``/_stats*``) with the
HttpOnly session cookie that ``POST /_admin/login {"cookie": true}`` sets, so no script ever holds
the admin token; state-changing calls carry the ``X-Zengate-CSRF`` header the API requires of
cookie sessions.
"""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, render_template

from ... import __version__
from ...gateway import current_gateway
from ..admin.admin import render_error, require_admin
from ..errors import ApiError

log = logging.getLogger(__name__)

bp = Blueprint("dashboard", __name__, url_prefix="/_admin/ui", template_folder="templates",
               static_folder="static", static_url_path="/static")

#: No inline script or style anywhere: everything comes from this origin's static files.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))

#: The proxy-pool panel appears when the gateway has this admin endpoint.
PROXY_ENDPOINT = "/_admin/proxy"


@bp.after_request
def _security_headers(response):
    headers = response.headers
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    if response.mimetype in ("text/html", "application/json"):
        headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(ApiError)
def _api_error(err: ApiError):
    return render_error(err)


def _has_endpoint(path: str) -> bool:
    return any(rule.rule == path and "GET" in (rule.methods or ()) for rule in current_app.url_map.iter_rules())


@bp.get("")
@bp.get("/")
def page():
    """The single page; the script shows the login form or the dashboard."""
    return render_template("index.html", version=__version__, proxy_api=_has_endpoint(PROXY_ENDPOINT))


@bp.get("/models")
def models():
    """Model ids and names for the settings form's suggestions (admin session; no sk-zen key needed)."""
    require_admin()
    gw = current_gateway()
    try:
        gw.refresh_models_if_due()
        entries = gw.catalog.entries()
    except Exception:
        log.warning("dashboard: the model list is unavailable", exc_info=True)
        entries = []
    return jsonify({"models": [{"id": e["id"], "name": e.get("name") or e["id"]} for e in entries]})
