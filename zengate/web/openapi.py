"""``GET /openapi.json``: an OpenAPI 3.1 description of every endpoint, kept as a static dict.

``tests/unit/test_openapi.py`` checks that its paths and methods are exactly the app's
``url_map``, so a route added without describing it here fails the suite.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from .. import __version__
from ..dialects import anthropic as anthropic_proto
from ..dialects import openai as openai_proto

bp = Blueprint("openapi", __name__)

OPENAI_ERROR = {"$ref": "#/components/schemas/OpenAIError"}
ANTHROPIC_ERROR = {"$ref": "#/components/schemas/AnthropicError"}
ADMIN = [{"adminBearer": []}, {"adminCookie": []}]
CLIENT = [{"zenKey": []}, {"zenApiKey": []}, {}]  # an sk-zen key, required only when require_auth is on


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(schema: dict, *statuses: int) -> dict:
    return {str(status): {"description": _STATUS_TEXT[status], **_json(schema)} for status in statuses}


_STATUS_TEXT = {
    400: "Bad input; the message names the field or limit.",
    401: "Missing or wrong credentials.",
    403: "Forbidden (a state-changing admin call whose Origin or Sec-Fetch-Site says another site, a cookie "
         "session without X-Zengate-CSRF, a Go model without a Go key…).",
    404: "Not found.",
    408: "The request body did not arrive within ZENGATE_CLIENT_TIMEOUT seconds.",
    413: "Body over max_body_bytes.",
    429: "Rate limited; see Retry-After.",
    431: "Request line and headers over ZENGATE_MAX_HEADER_BYTES together.",
    502: "The upstream could not be reached.",
    504: "The upstream timed out.",
}


def _op(summary: str, responses: dict, *, body: dict | None = None, security=None, params=None,
        tags: tuple[str, ...] = ()) -> dict:
    op: dict = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
    if security is not None:
        op["security"] = security
    if params:
        op["parameters"] = params
    if tags:
        op["tags"] = list(tags)
    return op


def _ok(description: str = "OK", schema: dict | None = None) -> dict:
    return {"description": description, **_json(schema or {"type": "object"})}


def _query(name: str, schema: dict, description: str = "") -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _admin_op(summary: str, *, body: dict | None = None, ok: str = "200", params=None, extra=(400,)) -> dict:
    return _op(summary, {ok: _ok(), **_errors(OPENAI_ERROR, *extra, 401, 403)}, body=body, security=ADMIN,
               params=params, tags=("admin",))


def _obj(properties: dict, required: tuple[str, ...] = ()) -> dict:
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


STRING, BOOL, INT = {"type": "string"}, {"type": "boolean"}, {"type": "integer"}
STATS_FILTERS = [
    _query("model", STRING), _query("status", STRING, "429, 4xx, 5xx, errors or a status"),
    _query("key", STRING, "key prefix"), _query("since", {"type": "string", "format": "date-time"}),
    _query("until", {"type": "string", "format": "date-time"}),
]
PROXY_STATUS = [_query("proxies", INT, "how many top proxies to list")]
SETTING_VALUE = {"description": "The setting's JSON value. A boolean may also be the string \"true\"/\"false\", "
                 "\"1\"/\"0\" or \"on\"/\"off\", a number a numeric string; a masked value (*** for a password) "
                 "posted back keeps the stored secret."}
CURRENT_PASSWORD_ALIAS = "Same as current_password (the original Zen Gateway's name); if both are sent they must agree"

# One server-sent event each (OpenAPI 3.1: a text/event-stream schema describes one event).
OPENAI_EVENT = _obj({"event": STRING, "data": {
    "type": "string", "description": "A chat.completion.chunk as JSON (an error object on failure), [DONE] last"}},
    ("data",))
ANTHROPIC_EVENT = _obj({"event": STRING, "data": {
    "type": "string", "contentMediaType": "application/json",
    "contentSchema": _obj({"type": STRING}, ("type",)),
    "description": "The event as JSON; its type repeats the event name (error events included)"}}, ("event", "data"))

PATHS: dict[str, dict] = {
    "/": {"get": _op("Name, version and endpoints (a browser is sent to the dashboard)", {"200": _ok()},
                     security=[], tags=("health",))},
    "/healthz": {"get": _op("Liveness and database status", {"200": _ok(), "503": _ok("Database unavailable")},
                            security=[], tags=("health",))},
    "/health": {"get": _op("Same as /healthz", {"200": _ok(), "503": _ok("Database unavailable")},
                           security=[], tags=("health",))},
    "/openapi.json": {"get": _op("This description", {"200": _ok()}, security=[], tags=("health",))},
    "/v1/chat/completions": {"post": _op(
        "OpenAI chat completions (JSON, or text/event-stream with stream: true)",
        {"200": {"description": "A chat.completion, or server-sent chat.completion.chunk events",
                 "content": {"application/json": {"schema": {"type": "object"}},
                             "text/event-stream": {"schema": OPENAI_EVENT}}},
         **_errors(OPENAI_ERROR, 400, 401, 403, 413, 429, 502, 504)},
        body={"$ref": "#/components/schemas/ChatCompletionRequest"}, security=CLIENT, tags=("openai",))},
    "/v1/messages": {"post": _op(
        "Anthropic messages (JSON, or text/event-stream with stream: true); ?beta=true accepted",
        {"200": {"description": "A message, or server-sent message events",
                 "content": {"application/json": {"schema": {"type": "object"}},
                             "text/event-stream": {"schema": ANTHROPIC_EVENT}}},
         **_errors(ANTHROPIC_ERROR, 400, 401, 403, 413, 429, 502, 504)},
        body={"$ref": "#/components/schemas/MessagesRequest"}, security=CLIENT, tags=("anthropic",))},
    "/v1/messages/count_tokens": {"post": _op(
        "Estimate a request's input tokens locally",
        {"200": _ok(schema=_obj({"input_tokens": INT}, ("input_tokens",))),
         **_errors(ANTHROPIC_ERROR, 400, 401, 413)},
        body={"$ref": "#/components/schemas/MessagesRequest"}, security=CLIENT, tags=("anthropic",))},
    "/v1/models": {"get": _op(
        "Models: OpenAI's list shape, or Anthropic's when anthropic-version is sent",
        {"200": _ok(), **_errors({"oneOf": [OPENAI_ERROR, ANTHROPIC_ERROR]}, 401)},
        security=CLIENT, tags=("openai", "anthropic"))},
    "/_admin/login": {"post": _op(
        "Log in: a bearer token, or with cookie: true an HttpOnly session cookie",
        {"200": _ok(schema=_obj({"token": STRING, "cookie": BOOL, "expires_at": STRING,
                                 "default_password": BOOL})),
         **_errors(OPENAI_ERROR, 400, 401, 403, 429)},
        body=_obj({"password": STRING, "cookie": BOOL}, ("password",)), security=[], tags=("admin",))},
    "/_admin/session": {"get": _op("Whether the request carries a live admin session",
                                   {"200": _ok(schema=_obj({"authenticated": BOOL, "default_password": BOOL}))},
                                   security=[], tags=("admin",))},
    "/_admin/logout": {"post": _admin_op("End this session", extra=())},
    "/_admin/api-keys": {
        "get": _admin_op("List keys (prefixes only)", extra=()),
        "post": _admin_op("Create a key (shown once)", body=_obj({"name": STRING}), ok="201"),
    },
    "/_admin/api-keys/delete": {"post": _admin_op("Revoke a key by id or prefix",
                                                  body=_obj({"id": INT, "prefix": STRING}), extra=(400, 404))},
    "/_admin/settings": {
        "get": _admin_op("Every runtime setting, with its description", extra=()),
        "post": _admin_op("Set one runtime setting (or an alias such as proxy_enabled)",
                          body=_obj({"key": STRING, "value": SETTING_VALUE}, ("key", "value"))),
    },
    "/_admin/change-password": {"post": _admin_op(
        "Change the admin password (revokes every session; answers a fresh one)",
        body={**_obj({"current_password": STRING, "old_password": {**STRING, "description": CURRENT_PASSWORD_ALIAS},
                      "new_password": STRING}, ("new_password",)),
              "anyOf": [{"required": ["current_password"]}, {"required": ["old_password"]}]})},
    "/_admin/metrics-token": {
        "get": _admin_op("Whether a metrics token is set", extra=()),
        "post": _admin_op("Set a metrics token (random when none is given; shown once)",
                          body=_obj({"token": STRING}), ok="201"),
        "delete": _admin_op("Remove the stored metrics token", extra=()),
    },
    "/_admin/proxy": {"get": _admin_op("Proxy mode, Auto state and this worker's pool", params=PROXY_STATUS)},
    "/_admin/proxy/toggle": {"post": _admin_op("Off → Auto → On → Off", params=PROXY_STATUS)},
    "/_admin/proxy/refresh": {"post": _admin_op("Refresh the proxy pool now", params=PROXY_STATUS)},
    "/_admin/proxy/settings": {"post": _admin_op("Set proxy settings (short or full names; enabled: proxy_enabled)",
                                                 body={"type": "object"}, params=PROXY_STATUS)},
    "/_admin/ui": {"get": _op("The dashboard page", {"200": {"description": "HTML", "content": {"text/html": {}}}},
                              security=[], tags=("dashboard",))},
    "/_admin/ui/": {"get": _op("The dashboard page", {"200": {"description": "HTML", "content": {"text/html": {}}}},
                               security=[], tags=("dashboard",))},
    "/_admin/ui/models": {"get": _admin_op("Model ids and names for the settings form", extra=())},
    "/_admin/ui/static/{filename}": {"get": _op(
        "The dashboard's scripts, styles and images",
        {"200": {"description": "The file"}, "404": {"description": "No such file"}},
        security=[], params=[{"name": "filename", "in": "path", "required": True, "schema": STRING}],
        tags=("dashboard",))},
    "/_stats": {"get": _admin_op("Totals, errors, latency, tokens, per-model numbers, recent requests",
                                 params=STATS_FILTERS)},
    "/_stats/timeseries": {"get": _admin_op("Per-bucket requests, errors, latency and tokens", params=[
        *STATS_FILTERS, _query("minutes", INT), _query("bucket", INT, "seconds")])},
    "/_stats/requests": {"get": _admin_op("One page of the request log, newest first", params=[
        *STATS_FILTERS, _query("limit", INT), _query("offset", INT), _query("bodies", BOOL)])},
    "/_stats/requests/{request_id}": {"get": _admin_op(
        "One request with its messages, output and attempts", extra=(404,),
        params=[{"name": "request_id", "in": "path", "required": True, "schema": INT}])},
    "/_stats/clear": {"post": _admin_op("Clear the request log", extra=())},
    "/metrics": {"get": _op("Prometheus metrics (text exposition format)",
                            {"200": {"description": "Metrics", "content": {"text/plain": {"schema": STRING}}},
                             **_errors(OPENAI_ERROR, 401)},
                            security=[{"metricsBearer": []}, *ADMIN], tags=("metrics",))},
}

def _client_limits(paths: dict[str, dict]) -> dict[str, dict]:
    """Every operation may answer 431 (head too large), and one that takes a body 408 (body too slow)."""
    for path, ops in paths.items():
        shape = ANTHROPIC_ERROR if path.startswith("/v1/messages") else OPENAI_ERROR
        if path == "/v1/models":
            shape = {"oneOf": [OPENAI_ERROR, ANTHROPIC_ERROR]}  # Anthropic's with anthropic-version
        for op in ops.values():
            statuses = (408, 431) if "requestBody" in op else (431,)
            for status, response in _errors(shape, *statuses).items():
                op["responses"].setdefault(status, response)
    return paths


_client_limits(PATHS)

MODEL = {"type": "string", "minLength": 1, "pattern": r"\S", "description": "A model id, alias or tier:model"}
PART = {"type": "object", "required": ["type"], "properties": {"type": STRING}}
CHAT_MESSAGE = {"type": "object", "required": ["role"],
                "properties": {"role": {"enum": list(openai_proto.ROLES)},
                               "content": {"oneOf": [STRING, {"type": "array", "items": PART}, {"type": "null"}]}}}
ANTHROPIC_MESSAGE = {"type": "object", "required": ["role", "content"],
                     "properties": {"role": {"enum": list(anthropic_proto.ROLES)},
                                    "content": {"oneOf": [STRING, {"type": "array", "items": PART}]}}}
POSITIVE = {"type": "integer", "minimum": 1}

SPEC = {
    "openapi": "3.1.0",
    "info": {
        "title": "zengate",
        "version": __version__,
        "description": "OpenAI Chat Completions and Anthropic Messages in front of OpenCode Zen, with an admin "
                       "API. Errors come in the shape of the API called: OpenAIError for /v1/chat/completions, "
                       "the admin and stats APIs; AnthropicError for /v1/messages*.",
    },
    "paths": PATHS,
    "components": {
        "securitySchemes": {
            "zenKey": {"type": "http", "scheme": "bearer", "description": "An sk-zen key (when require_auth is on)"},
            "zenApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            "adminBearer": {"type": "http", "scheme": "bearer", "description": "A token from POST /_admin/login"},
            "adminCookie": {"type": "apiKey", "in": "cookie", "name": "zengate_admin",
                            "description": "State-changing calls also need the header X-Zengate-CSRF: 1. Any "
                                           "state-changing admin call (cookie or bearer, the login too) is refused "
                                           "with a 403 when Sec-Fetch-Site is cross-site or same-site, or (without "
                                           "Sec-Fetch-Site) when Origin is not the gateway's own"},
            "metricsBearer": {"type": "http", "scheme": "bearer", "description": "The metrics token"},
        },
        "schemas": {
            "OpenAIError": _obj({"error": _obj({"message": STRING, "type": STRING,
                                                "param": {"type": ["string", "null"]},
                                                "code": {"type": ["string", "null"]}}, ("message", "type"))},
                                ("error",)),
            "AnthropicError": _obj({"type": {"const": "error"},
                                    "error": _obj({"type": STRING, "message": STRING}, ("type", "message"))},
                                   ("type", "error")),
            "ChatCompletionRequest": {
                **_obj({"model": MODEL,
                        "messages": {"type": "array", "items": CHAT_MESSAGE, "minItems": 1, "maxItems": 10_000},
                        "stream": BOOL, "tools": {"type": "array", "maxItems": 512},
                        "max_tokens": POSITIVE, "temperature": {"type": "number"}}, ("model", "messages")),
                "description": "Limits (settings): max_body_bytes, max_json_depth, max_messages, max_tools.",
                "examples": [{"model": "big-pickle", "messages": [{"role": "user", "content": "say hi"}]}],
            },
            "MessagesRequest": {
                **_obj({"model": MODEL, "max_tokens": POSITIVE,
                        "messages": {"type": "array", "items": ANTHROPIC_MESSAGE, "minItems": 1,
                                     "maxItems": 10_000},
                        "system": {"oneOf": [STRING, {"type": "array"}]}, "stream": BOOL,
                        "tools": {"type": "array", "maxItems": 512}}, ("model", "messages")),
                "description": "max_tokens is required on /v1/messages, not on count_tokens. Limits as above.",
                "examples": [{"model": "claude-sonnet-5", "max_tokens": 64,
                              "messages": [{"role": "user", "content": "say hi"}]}],
            },
        },
    },
}


@bp.get("/openapi.json")
def openapi():
    return jsonify(SPEC)
