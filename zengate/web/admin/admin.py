"""The admin API: login, API keys, settings, password."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify, make_response, request

from ... import auth, keylimits
from ...dialects import openai as openai_proto
from ...gateway import current_gateway
from ...settings import SettingError
from ...store import keyusage
from ...store.models import ApiKey
from ..errors import ApiError
from ..input_limits import MAX_ROW_ID
from .loginlimit import LoginLimiter

bp = Blueprint("admin", __name__, url_prefix="/_admin")

MIN_PASSWORD_LENGTH = 8

#: The dashboard's session cookie (HttpOnly: page scripts never see the token).
COOKIE_NAME = "zengate_admin"
#: Header a cookie-authenticated state-changing request must carry. A cross-site form cannot set a
#: custom header, and a cross-site fetch that sets one needs a CORS preflight, which we never grant.
CSRF_HEADER = "X-Zengate-CSRF"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
#: Sec-Fetch-Site values a browser sends for a request another site's page started.
FOREIGN_FETCH_SITES = ("cross-site", "same-site")
_DEFAULT_PORTS = {"http": 80, "https": 443}


#: Where the app keeps its login limiter (shared by the instance's workers; see loginlimit.py).
LIMITER_KEY = "zengate.login_limiter"


def login_limiter() -> LoginLimiter:
    limiter = current_app.extensions.get(LIMITER_KEY)
    if limiter is None:
        limiter = current_app.extensions[LIMITER_KEY] = LoginLimiter.for_instance(current_gateway().relay)
    return limiter


def render_error(err: ApiError):
    return jsonify(openai_proto.error_body(err.status, err.message, param=err.param)), err.status, err.headers


def admin_blueprint(name: str, url_prefix: str) -> Blueprint:
    """A blueprint of admin calls: every one needs an admin session, errors in the admin API's shape."""
    bp = Blueprint(name, __name__, url_prefix=url_prefix)
    bp.register_error_handler(ApiError, render_error)
    bp.before_request(require_admin)
    return bp


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


def admin_token() -> str | None:
    return _bearer_token() or request.cookies.get(COOKIE_NAME)


def _origin_of(url: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an http(s) URL or Origin header value; None for anything else (``null``)."""
    try:
        parts = urlsplit(url.strip())
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:
        return None
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    return scheme, host.lower(), port or _DEFAULT_PORTS[scheme]


def refuse_cross_site() -> None:
    """403 for a state-changing call that a browser says another site's page started.

    Defence in depth beside the cookie's SameSite=Strict and the X-Zengate-CSRF header. A browser
    sets Sec-Fetch-Site and Origin itself (page scripts cannot), so: ``Sec-Fetch-Site`` cross-site or
    same-site is refused, same-origin accepted; without it (older browsers) an ``Origin`` that is
    not this gateway's own (``null`` included) is refused. Clients that send neither (curl, SDKs)
    and read-only methods pass. Sec-Fetch-Site is believed over Origin because a reverse proxy
    that rewrites Host makes a same-origin page's Origin look foreign.
    """
    if request.method in SAFE_METHODS:
        return
    fetch_site = request.headers.get("Sec-Fetch-Site", "").strip().lower()
    if fetch_site in FOREIGN_FETCH_SITES:
        raise ApiError(403, f"Sec-Fetch-Site: {fetch_site}: state-changing admin calls are accepted only from "
                       "this gateway's own pages or from clients that are not browsers", param="Sec-Fetch-Site",
                       kind="auth")
    if fetch_site == "same-origin":
        return
    origin = request.headers.get("Origin")
    if origin is None:
        return
    own = _origin_of(request.host_url)
    if own is None or _origin_of(origin) != own:
        shown = origin if len(origin) <= 100 else origin[:97] + "..."
        own_text = request.host_url.rstrip("/")
        raise ApiError(403, f"Origin: {shown} is not this gateway's origin ({own_text}): state-changing admin "
                       "calls from another site's page are refused", param="Origin", kind="auth")


def require_admin() -> None:
    """403 for a state-changing call from another site's page; 401 unless the request carries a live
    admin session; 403 for a cookie session without the CSRF header."""
    refuse_cross_site()
    if not auth.session_valid(admin_token()):
        raise ApiError(401, "admin login required: POST /_admin/login, then send 'Authorization: Bearer <token>'",
                       kind="auth")
    if _bearer_token() is None and request.method not in SAFE_METHODS and not request.headers.get(CSRF_HEADER):
        raise ApiError(403, f"{CSRF_HEADER}: header required on state-changing requests made with the session "
                       "cookie", param=CSRF_HEADER, kind="auth")


def _set_session_cookie(response, token: str, expires) -> None:
    response.set_cookie(COOKIE_NAME, token, expires=expires.replace(tzinfo=dt.UTC), path="/", httponly=True,
                        samesite="Strict", secure=request.is_secure)


def _clear_session_cookie(response) -> None:
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="Strict", secure=request.is_secure)


def json_object() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", kind="input")
    return body


def _string_field(body: dict, name: str, *, required: bool = True) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ApiError(400, f"{name}: must be a non-empty string", param=name, kind="input")
    return value


@bp.errorhandler(ApiError)
def _api_error(err: ApiError):
    return render_error(err)


@bp.before_request
def _guard():
    if request.endpoint in ("admin.login", "admin.session"):
        refuse_cross_site()  # login CSRF: another site's page must not log this browser in
    else:
        require_admin()


@bp.post("/login")
def login():
    """``{"password"}`` → ``{"token"}``; with ``"cookie": true`` the token is set as an HttpOnly cookie instead."""
    gw = current_gateway()
    body = json_object()
    password = _string_field(body, "password")
    cookie = body.get("cookie", False)
    if not isinstance(cookie, bool):
        raise ApiError(400, "cookie: must be true or false", param="cookie", kind="input")
    limiter, address = login_limiter(), request.remote_addr or "unknown"
    refused = limiter.retry_after(address)
    if refused is not None:
        wait, reason = refused
        raise ApiError(429, f"{reason}; try again in {wait} seconds", kind="auth",
                       headers={"Retry-After": str(wait)})
    gw.settings.refresh(force=True)  # a password changed through another worker counts at once
    if not auth.check_password(gw.settings.get("admin_password_hash"), password):
        limiter.failed(address)
        raise ApiError(401, "wrong password", kind="auth")
    limiter.succeeded(address)
    token, expires = auth.open_session(gw.settings.get("admin_session_hours"))
    info = {"expires_at": auth.iso(expires), "default_password": gw.admin_password_is_default(),
            "access": gw.access_report(), "shared_state": gw.shared_state()}
    if not cookie:
        return jsonify({"token": token, **info})
    response = make_response(jsonify({"cookie": True, **info}))
    _set_session_cookie(response, token, expires)
    return response


@bp.get("/session")
def session():
    """Whether this request carries a live admin session (200 either way, for the dashboard)."""
    gw = current_gateway()
    if not auth.session_valid(admin_token()):
        return jsonify({"authenticated": False})
    return jsonify({"authenticated": True, "default_password": gw.admin_password_is_default(),
                    "access": gw.access_report(), "shared_state": gw.shared_state()})


@bp.post("/logout")
def logout():
    auth.close_session(admin_token() or "")
    response = make_response(jsonify({"ok": True}))
    if request.cookies.get(COOKIE_NAME):
        _clear_session_cookie(response)
    return response


@bp.get("/api-keys")
def list_keys():
    """Every key with its limits, and its usage today and this month."""
    keys = list(ApiKey.select().order_by(ApiKey.created_at.desc(), ApiKey.id.desc()))
    usage = keyusage.summary(_utc_today())
    return jsonify({"keys": [{**auth.key_to_dict(k), "usage": usage.get(k.id, keyusage.empty())} for k in keys]})


@bp.post("/api-keys")
def create_key():
    """``{"name", limits…}`` → the new key, shown once."""
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    fields = _key_fields(body)
    new = auth.create_key(fields.pop("name", ""), **fields)
    return jsonify({"key": new.key, **auth.key_to_dict(new.record),
                    "warning": "store this key now: it is shown only once"}), 201


@bp.patch("/api-keys/<int:key_id>")
def update_key(key_id: int):
    """Change a key's name, note or limits (fields left out stay; null clears a limit)."""
    body = json_object()
    fields = _key_fields(body)
    if not fields:
        raise ApiError(400, "nothing to change: send name, note, rpm, requests_per_day, tokens_per_day, models "
                       "or expires_at", kind="input")
    record = _key_or_404(key_id)
    ApiKey.update(**fields).where(ApiKey.id == key_id).execute()
    current_gateway().settings.changed()  # every worker and instance reads the key's new limits
    record = ApiKey.get_by_id(key_id)
    if record.requests_per_day or record.tokens_per_day:  # a daily limit counts what the key used today
        today = keyusage.summary(_utc_today(), [key_id]).get(key_id, keyusage.empty())["today"]
        current_gateway().counters.seed(key_id, today["requests"], today["input_tokens"] + today["output_tokens"])
    return jsonify(auth.key_to_dict(record))


@bp.get("/api-keys/<int:key_id>/usage")
def key_usage(key_id: int):
    """``?days=N`` (1–366, default 30): the key's usage today, this month and by day."""
    days = request.args.get("days", "30")
    if not days.isdigit() or not 1 <= int(days) <= 366:
        raise ApiError(400, "days: must be a whole number from 1 to 366", param="days", kind="input")
    record = _key_or_404(key_id)
    today = _utc_today()
    return jsonify({"key": auth.key_to_dict(record),
                    **keyusage.summary(today, [key_id]).get(key_id, keyusage.empty()),
                    "days": keyusage.daily(key_id, today, int(days))})


def _key_fields(body: dict) -> dict:
    """The ``api_keys`` columns a create or update sets, validated (400 naming the field)."""
    fields = {}
    if "name" in body:
        name = body["name"] if body["name"] is not None else ""
        if not isinstance(name, str) or len(name) > 200 or "\x00" in name:  # PostgreSQL refuses NUL in text
            raise ApiError(400, "name: must be a string of at most 200 characters, without NUL", param="name",
                           kind="input")
        fields["name"] = name.strip()
    try:
        fields.update(keylimits.parse_fields(body))
    except keylimits.LimitError as exc:
        raise ApiError(400, str(exc), param=exc.param, kind="input") from None
    return fields


def _key_or_404(key_id: int) -> ApiKey:
    record = ApiKey.get_or_none(ApiKey.id == key_id) if abs(key_id) <= MAX_ROW_ID else None
    if record is None:
        raise ApiError(404, f"no key with id {key_id}", kind="input")
    return record


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@bp.post("/api-keys/delete")
def delete_key():
    body = json_object()
    key_id, prefix = body.get("id"), body.get("prefix")
    if key_id is not None and (isinstance(key_id, bool) or not isinstance(key_id, int)):
        raise ApiError(400, "id: must be an integer", param="id", kind="input")
    if key_id is None and not isinstance(prefix, str):
        raise ApiError(400, "id or prefix: say which key to revoke", param="id", kind="input")
    if (key_id is not None and abs(key_id) > MAX_ROW_ID) or (key_id is None and "\x00" in prefix):
        raise ApiError(404, "no such key", kind="input")  # past any row id, or a NUL no database text holds
    if not auth.revoke_key(key_id=key_id, prefix=prefix if key_id is None else None):
        raise ApiError(404, "no such key", kind="input")
    current_gateway().settings.changed()  # every worker and instance asks the database again
    return jsonify({"revoked": True})


@bp.get("/settings")
def get_settings():
    """Every setting (credentials masked) and its description; aliases such as proxy_enabled too;
    ``applies``: when a change saved now takes effect."""
    gw = current_gateway()
    return jsonify({"settings": gw.settings.public(), "describe": gw.settings.describe(),
                    "applies": gw.settings.applies()})


@bp.post("/settings")
def set_setting():
    """``{"key", "value"}``; the answer repeats the key and the value now in force (credentials masked),
    and says when the change ``applies`` (every worker of this instance, the other instances)."""
    gw = current_gateway()
    body = json_object()
    if "key" not in body or "value" not in body:
        missing = "key" if "key" not in body else "value"
        raise ApiError(400, f"{missing}: required (body is {{\"key\": …, \"value\": …}})", param=missing, kind="input")
    key = body["key"]
    try:
        changes = gw.settings.prepare(key, body["value"])
    except SettingError as exc:
        raise ApiError(400, str(exc), param=exc.field, kind="input") from None
    gw.settings.store(changes)
    gw.egress.settings_stored(set(changes))  # a new proxy mode or pool filter takes effect at once
    return jsonify({"key": key, "value": gw.settings.shown(key), "applies": gw.settings.applies(key)})


def _current_password_field(body: dict) -> str:
    """Which field carries the current password: ``current_password``, or ``old_password`` (the
    original Zen Gateway's name); both may be sent when they agree."""
    if "old_password" not in body:
        return "current_password"
    if "current_password" in body and body["current_password"] != body["old_password"]:
        raise ApiError(400, "current_password and old_password differ: send the current password in one of them",
                       param="old_password", kind="input")
    return "old_password"


@bp.post("/change-password")
def change_password():
    """``{"current_password" (or "old_password"), "new_password"}``: every session ends, a fresh one is answered."""
    gw = current_gateway()
    body = json_object()
    field = _current_password_field(body)
    current = _string_field(body, field)
    new = _string_field(body, "new_password")
    gw.settings.refresh(force=True)
    if not auth.check_password(gw.settings.get("admin_password_hash"), current):
        raise ApiError(403, f"{field}: wrong password", param=field, kind="auth")
    if len(new) < MIN_PASSWORD_LENGTH:
        raise ApiError(400, f"new_password: must be at least {MIN_PASSWORD_LENGTH} characters",
                       param="new_password", kind="input")
    gw.settings.set("admin_password_hash", auth.hash_password(new), internal=True)
    auth.close_all_sessions()
    token, expires = auth.open_session(gw.settings.get("admin_session_hours"))
    if _bearer_token() is not None:
        return jsonify({"changed": True, "token": token, "expires_at": auth.iso(expires)})
    response = make_response(jsonify({"changed": True, "cookie": True, "expires_at": auth.iso(expires)}))
    _set_session_cookie(response, token, expires)  # the cookie session goes on with a fresh token
    return response
