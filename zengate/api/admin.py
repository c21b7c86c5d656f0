"""The admin API: login, API keys, settings, password."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, current_app, jsonify, make_response, request

from .. import auth
from ..errors import ApiError
from ..gateway import current_gateway
from ..protocols import openai as openai_proto
from ..settings import SettingError
from ..store.models import ApiKey
from .limits import MAX_ROW_ID
from .loginlimit import LoginLimiter

bp = Blueprint("admin", __name__, url_prefix="/_admin")

MIN_PASSWORD_LENGTH = 8

#: The dashboard's session cookie (HttpOnly: page scripts never see the token).
COOKIE_NAME = "zengate_admin"
#: Header a cookie-authenticated state-changing request must carry. A cross-site form cannot set a
#: custom header, and a cross-site fetch that sets one needs a CORS preflight, which we never grant.
CSRF_HEADER = "X-Zengate-CSRF"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


#: Where the app keeps its login limiter (per worker, in memory; see loginlimit.py).
LIMITER_KEY = "zengate.login_limiter"


def login_limiter() -> LoginLimiter:
    limiter = current_app.extensions.get(LIMITER_KEY)
    if limiter is None:
        limiter = current_app.extensions[LIMITER_KEY] = LoginLimiter()
    return limiter


def render_error(err: ApiError):
    return jsonify(openai_proto.error_body(err.status, err.message, param=err.param)), err.status, err.headers


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


def admin_token() -> str | None:
    return _bearer_token() or request.cookies.get(COOKIE_NAME)


def require_admin() -> None:
    """401 unless the request carries a live admin session; 403 for a cookie session without the CSRF header."""
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
    if request.endpoint not in ("admin.login", "admin.session"):
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
    info = {"expires_at": auth.iso(expires), "default_password": gw.admin_password_is_default()}
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
    return jsonify({"authenticated": True, "default_password": gw.admin_password_is_default()})


@bp.post("/logout")
def logout():
    auth.close_session(admin_token() or "")
    response = make_response(jsonify({"ok": True}))
    if request.cookies.get(COOKIE_NAME):
        _clear_session_cookie(response)
    return response


@bp.get("/api-keys")
def list_keys():
    keys = ApiKey.select().order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    return jsonify({"keys": [auth.key_to_dict(k) for k in keys]})


@bp.post("/api-keys")
def create_key():
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > 200 or "\x00" in name:  # PostgreSQL refuses NUL in text
        raise ApiError(400, "name: must be a string of at most 200 characters, without NUL", param="name",
                       kind="input")
    new = auth.create_key(name.strip())
    return jsonify({"key": new.key, **auth.key_to_dict(new.record),
                    "note": "store this key now: it is shown only once"}), 201


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
    return jsonify({"revoked": True})


@bp.get("/settings")
def get_settings():
    gw = current_gateway()
    return jsonify({"settings": gw.settings.public(), "describe": gw.settings.describe()})


@bp.post("/settings")
def set_setting():
    gw = current_gateway()
    body = json_object()
    if "key" not in body or "value" not in body:
        missing = "key" if "key" not in body else "value"
        raise ApiError(400, f"{missing}: required (body is {{\"key\": …, \"value\": …}})", param=missing, kind="input")
    try:
        value = gw.settings.set(body["key"], body["value"])
    except SettingError as exc:
        raise ApiError(400, str(exc), param=exc.field, kind="input") from None
    return jsonify({"key": body["key"], "value": value})


@bp.post("/change-password")
def change_password():
    gw = current_gateway()
    body = json_object()
    current = _string_field(body, "current_password")
    new = _string_field(body, "new_password")
    gw.settings.refresh(force=True)
    if not auth.check_password(gw.settings.get("admin_password_hash"), current):
        raise ApiError(403, "current_password: wrong password", param="current_password", kind="auth")
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
