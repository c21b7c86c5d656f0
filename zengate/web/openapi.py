"""``GET /openapi.json``: an OpenAPI 3.1 description of every endpoint, kept as a static dict.

``tests/unit/test_openapi.py`` checks that its paths and methods are exactly the app's
``url_map``, so a route added without describing it here fails the suite.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from .. import __version__
from ..dialects import anthropic as anthropic_proto
from ..dialects import openai as openai_proto
from ..dialects import responses_request as responses_proto

bp = Blueprint("openapi", __name__)

OPENAI_ERROR = {"$ref": "#/components/schemas/OpenAIError"}
ANTHROPIC_ERROR = {"$ref": "#/components/schemas/AnthropicError"}
GEMINI_ERROR = {"$ref": "#/components/schemas/GeminiError"}
ADMIN = [{"adminBearer": []}, {"adminCookie": []}]
CLIENT = [{"zenKey": []}, {"zenApiKey": []}, {}]  # an sk-zen key, required only when require_auth is on
GEMINI_CLIENT = [{"googApiKey": []}, {"googKeyQuery": []}, {"zenKey": []}, {}]


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
    405: "Method not allowed.",
    408: "The request body did not arrive within ZENGATE_CLIENT_TIMEOUT seconds.",
    413: "Body over max_body_bytes.",
    426: "A WebSocket upgrade, which this gateway does not serve: use plain HTTP.",
    429: "Rate limited; see Retry-After.",
    431: "Request line and headers over ZENGATE_MAX_HEADER_BYTES together.",
    502: "The upstream could not be reached.",
    503: "The database is unavailable while an API key must be checked; see Retry-After.",
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
GEMINI_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"enum": ["v1", "v1beta"]}}


KEY_ID = {"name": "key_id", "in": "path", "required": True, "schema": INT}
CAPTURE_FILE = {"name": "name", "in": "path", "required": True, "schema": STRING,
                "description": "A file's name as GET /_admin/capture lists it"}
KEY_LIMITS = {
    "rpm": {"type": ["integer", "null"], "minimum": 1, "description": "Requests per minute (sliding)"},
    "requests_per_day": {"type": ["integer", "null"], "minimum": 1, "description": "Requests per UTC day"},
    "tokens_per_day": {"type": ["integer", "null"], "minimum": 1,
                       "description": "Input plus output tokens per UTC day"},
    "models": {"type": ["array", "null"], "items": STRING, "maxItems": 100,
               "description": "Models the key may use (names, or patterns with *); null: every model"},
    "expires_at": {"type": ["string", "null"], "format": "date-time", "description": "When the key stops working"},
    "note": {"type": ["string", "null"], "maxLength": 2000},
}

STATS_FILTERS = [
    _query("model", STRING), _query("status", STRING, "429, 4xx, 5xx, errors or a status"),
    _query("key", STRING, "key prefix"), _query("since", {"type": "string", "format": "date-time"}),
    _query("until", {"type": "string", "format": "date-time"}),
]
LOG_FILTERS = [
    *STATS_FILTERS, _query("upstream_model", STRING, "the model that answered"),
    _query("key_name", STRING, "a stored key's name (case-insensitive)"),
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
RESPONSES_EVENT = _obj({"event": STRING, "data": {
    "type": "string", "contentMediaType": "application/json",
    "contentSchema": _obj({"type": STRING, "sequence_number": INT}, ("type",)),
    "description": "The event as JSON, its type repeated in the event line: response.created and "
                   "response.in_progress first, then each output item (response.output_item.added, its deltas, "
                   "response.output_item.done with the whole item), and last response.completed (or "
                   "response.incomplete) with the whole response; a failure after the first event ends the "
                   "stream with response.failed. sequence_number counts from 0"}},
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
    "/v1/responses": {
        "post": _op(
            "OpenAI Responses (JSON, or text/event-stream with stream: true). Stateless: the whole history in "
            "input; previous_response_id, conversation and background: true are refused with a 400",
            {"200": {"description": "A response, or server-sent response events",
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Response"}},
                                 "text/event-stream": {"schema": RESPONSES_EVENT}}},
             **_errors(OPENAI_ERROR, 400, 401, 403, 413, 429, 502, 503, 504)},
            body={"$ref": "#/components/schemas/ResponsesRequest"}, security=CLIENT, tags=("responses",)),
        "get": _op("A WebSocket upgrade is refused with a 426 (use POST); without one, a 405",
                   _errors(OPENAI_ERROR, 405, 426), security=[], tags=("responses",)),
    },
    "/v1/responses/input_tokens": {"post": _op(
        "Estimate a Responses request's input tokens locally (nothing is sent upstream)",
        {"200": _ok(schema=_obj({"object": {"const": "response.input_tokens"}, "input_tokens": INT},
                                ("object", "input_tokens"))),
         **_errors(OPENAI_ERROR, 400, 401, 413, 503)},
        body={"$ref": "#/components/schemas/ResponsesInputTokensRequest"}, security=CLIENT, tags=("responses",))},
    "/v1/models": {"get": _op(
        "Models: OpenAI's list shape, or Anthropic's when anthropic-version is sent",
        {"200": _ok(), **_errors({"oneOf": [OPENAI_ERROR, ANTHROPIC_ERROR]}, 401)},
        security=CLIENT, tags=("openai", "anthropic"))},
    "/{version}/models/{target}": {"post": _op(
        "Gemini API: {model}:generateContent (JSON), {model}:streamGenerateContent (text/event-stream with "
        "alt=sse, else one streamed JSON array) or {model}:countTokens",
        {"200": {"description": "A GenerateContentResponse, their stream, or {totalTokens}",
                 "content": {"application/json": {"schema": {"type": ["object", "array"]}},
                             "text/event-stream": {"schema": _obj({"data": STRING}, ("data",))}}},
         **_errors(GEMINI_ERROR, 400, 401, 403, 404, 413, 429, 502, 504)},
        body={"$ref": "#/components/schemas/GenerateContentRequest"}, security=GEMINI_CLIENT,
        params=[GEMINI_VERSION, {"name": "target", "in": "path", "required": True,
                                 "schema": {"type": "string", "pattern": "^[^/]+:[A-Za-z]+$"}},
                _query("alt", {"enum": ["sse", "json"]}, "sse for server-sent events"),
                _query("key", STRING, "an sk-zen key, as Google's clients send theirs")], tags=("gemini",))},
    "/v1beta/models": {"get": _op(
        "Gemini API: the models, in Google's shape (GET /v1/models answers so for a Gemini client)",
        {"200": _ok(), **_errors(GEMINI_ERROR, 401)}, security=GEMINI_CLIENT,
        params=[_query("key", STRING)], tags=("gemini",))},
    "/{version}/models/{model}": {"get": _op(
        "Gemini API: one model", {"200": _ok(), **_errors(GEMINI_ERROR, 401, 404)}, security=GEMINI_CLIENT,
        params=[GEMINI_VERSION, {"name": "model", "in": "path", "required": True, "schema": STRING},
                _query("key", STRING)], tags=("gemini",))},
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
        "get": _admin_op("List keys (prefixes only), with limits and usage today and this month", extra=()),
        "post": _admin_op("Create a key (shown once), with limits", body=_obj({"name": STRING, **KEY_LIMITS}),
                          ok="201"),
    },
    "/_admin/api-keys/{key_id}": {"patch": _admin_op(
        "Change a key's name, note or limits (null clears a limit)", body=_obj({"name": STRING, **KEY_LIMITS}),
        params=[KEY_ID], extra=(400, 404))},
    "/_admin/api-keys/{key_id}/usage": {"get": _admin_op(
        "A key's usage today, this month and by UTC day",
        params=[KEY_ID, _query("days", {"type": "integer", "minimum": 1, "maximum": 366, "default": 30},
                               "How many days, up to today")], extra=(400, 404))},
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
    "/_admin/models": {"get": _admin_op(
        "Every model the gateway serves: tier, protocol, limits, live, fallbacks, aliases, family map, traffic",
        params=[_query("minutes", {"type": "integer", "minimum": 1, "default": 1440}, "the traffic's window")])},
    "/_admin/models/test": {"post": _admin_op(
        "Send one short request to a model through the gateway's routing: its answer, who answered, latency",
        body=_obj({"model": {"type": "string", "minLength": 1, "maxLength": 200}}, ("model",)))},
    "/_admin/capture": {
        "get": _admin_op("Wire capture: whether it is on, its files (every worker's) with their sizes", extra=()),
        "delete": _admin_op("Delete every wire-capture file", extra=()),
    },
    "/_admin/capture/{name}": {
        "get": _op("Download one wire-capture file (JSON lines, secrets masked)",
                   {"200": {"description": "The file", "content": {"application/x-ndjson": {}}},
                    **_errors(OPENAI_ERROR, 401, 403, 404)}, security=ADMIN, params=[CAPTURE_FILE], tags=("admin",)),
        "delete": _admin_op("Delete one wire-capture file", params=[CAPTURE_FILE], extra=(404,)),
    },
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
        *LOG_FILTERS, _query("limit", INT), _query("offset", INT), _query("bodies", BOOL)])},
    "/_stats/requests/export": {"get": _op(
        "The filtered request log as a streamed download, newest first (JSON Lines or CSV)",
        {"200": {"description": "The rows, one per line (CSV: a header row first)",
                 "content": {"application/x-ndjson": {}, "text/csv": {}}},
         **_errors(OPENAI_ERROR, 400, 401, 403)}, security=ADMIN, tags=("admin",), params=[
            *LOG_FILTERS, _query("format", {"type": "string", "enum": ["jsonl", "csv"], "default": "jsonl"}),
            _query("bodies", BOOL, "include input_messages and output_content (default false)")])},
    "/_stats/requests/{request_id}": {"get": _admin_op(
        "One request with its messages, output, attempts and what the guards did", extra=(404,),
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
        if path.startswith(("/v1beta/", "/{version}/")):
            shape = GEMINI_ERROR
        if path == "/v1/models":
            shape = {"oneOf": [OPENAI_ERROR, ANTHROPIC_ERROR]}  # Anthropic's with anthropic-version
        for op in ops.values():
            statuses = (408, 431) if "requestBody" in op else (431,)
            for status, response in _errors(shape, *statuses).items():
                op["responses"].setdefault(status, response)
    return paths


_client_limits(PATHS)
for _path in ("/{version}/models/{target}", "/{version}/models/{model}"):  # a version that is not the API's:
    for _op_spec in PATHS[_path].values():                                # no such path, the gateway's 404
        _op_spec["responses"]["404"] = {"description": "Not found (Google's shape; OpenAI's for another version)",
                                        **_json({"oneOf": [GEMINI_ERROR, OPENAI_ERROR]})}

MODEL = {"type": "string", "minLength": 1, "pattern": r"\S", "description": "A model id, alias or tier:model"}
PART = {"type": "object", "required": ["type"], "properties": {"type": STRING}}
CHAT_MESSAGE = {"type": "object", "required": ["role"],
                "properties": {"role": {"enum": list(openai_proto.ROLES)},
                               "content": {"oneOf": [STRING, {"type": "array", "items": PART}, {"type": "null"}]}}}
ANTHROPIC_MESSAGE = {"type": "object", "required": ["role", "content"],
                     "properties": {"role": {"enum": list(anthropic_proto.ROLES)},
                                    "content": {"oneOf": [STRING, {"type": "array", "items": PART}]}}}
POSITIVE = {"type": "integer", "minimum": 1}
NULLABLE_STRING = {"type": ["string", "null"]}
NAME = {"type": "string", "minLength": 1}


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}



def _other(kinds: tuple[str, ...], what: str) -> dict:
    """An object of any ``type`` but ``kinds``: what the gateway keeps for a Responses upstream only."""
    return {**_obj({"type": {"type": "string", "minLength": 1, "not": {"enum": list(kinds)}}}, ("type",)),
            "description": what}


# --- OpenAI Responses: what validate_request (dialects/responses_request.py) accepts -------------------
RS_FUNCTION = _obj({"type": {"const": "function"}, "name": NAME, "description": STRING,
                    "parameters": _nullable({"type": "object"}), "strict": BOOL}, ("type", "name"))
RS_CUSTOM = _obj({"type": {"const": "custom"}, "name": NAME, "description": STRING,
                  "format": _nullable({"anyOf": [
                      _obj({"type": {"const": "text"}}, ("type",)),
                      _obj({"type": {"const": "grammar"}, "definition": NAME, "syntax": {"enum": ["lark", "regex"]}},
                           ("type", "definition"))]})},
                 ("type", "name"))
RS_TOOL = {"anyOf": [
    RS_FUNCTION, RS_CUSTOM,
    _obj({"type": {"const": "namespace"}, "name": NAME, "description": STRING,
          "tools": {"type": "array", "items": {"anyOf": [RS_FUNCTION, RS_CUSTOM]}}}, ("type", "name", "tools")),
    _other(("function", "custom", "namespace"),
           "A hosted tool (web_search, file_search…): run only by a Responses upstream; the others never see it"),
]}
RS_TEXT_PART = _obj({"type": {"enum": list(responses_proto.TEXT_PARTS)}, "text": STRING}, ("type", "text"))
RS_IMAGE_PART = {
    **_obj({"type": {"const": "input_image"}, "image_url": {**NAME, "description": "A data: URL or an http(s) URL"},
            "file_id": NAME, "detail": {"enum": list(responses_proto.IMAGE_DETAILS)}}, ("type",)),
    "anyOf": [{"required": ["image_url"]}, {"required": ["file_id"]}],
}
RS_FILE_PART = {
    **_obj({"type": {"const": "input_file"}, "file_data": {**NAME, "description": "A PDF as a base64 data: URL"},
            "file_url": NAME, "file_id": NAME, "filename": STRING}, ("type",)),
    "anyOf": [{"required": ["file_data"]}, {"required": ["file_url"]}, {"required": ["file_id"]}],
}
RS_REFUSAL_PART = {**_obj({"type": {"const": "refusal"}, "refusal": STRING}, ("type", "refusal")),
                   "description": "In assistant messages only"}
FILES_BY_ID = " A file_id (an image's or a file's) is refused with a 400: the gateway stores no files."
RS_CONTENT = {"anyOf": [STRING, {"type": "array", "items": {
    "anyOf": [RS_TEXT_PART, RS_REFUSAL_PART, RS_IMAGE_PART, RS_FILE_PART]}}], "description": FILES_BY_ID.strip()}
RS_OUTPUT = {"anyOf": [STRING, {"type": "array", "items": {"anyOf": [RS_TEXT_PART, RS_IMAGE_PART, RS_FILE_PART]}}],
             "description": "What the call gave, as text or parts." + FILES_BY_ID}
RS_ITEM = {"anyOf": [
    {**_obj({"type": {"const": "message"}, "role": {"enum": list(responses_proto.ROLES)}, "content": RS_CONTENT},
            ("role", "content")),
     "description": "A message (type may be left out). system and developer messages before the first "
                    "user or assistant item are instructions"},
    _obj({"type": {"const": "function_call"}, "call_id": NAME, "name": NAME, "namespace": STRING,
          "arguments": {**STRING, "description": "JSON text"}}, ("type", "call_id", "name", "arguments")),
    _obj({"type": {"const": "custom_tool_call"}, "call_id": NAME, "name": NAME, "namespace": STRING,
          "input": STRING}, ("type", "call_id", "name", "input")),
    _obj({"type": {"enum": ["function_call_output", "custom_tool_call_output"]}, "call_id": NAME,
          "output": RS_OUTPUT}, ("type", "call_id", "output")),
    {**_obj({"type": {"const": "reasoning"},
             "summary": _nullable({"type": "array", "items": _obj({"type": STRING, "text": STRING}, ("text",))}),
             "content": _nullable({"type": "array", "items": _obj({"type": STRING, "text": STRING}, ("text",))}),
             "encrypted_content": NULLABLE_STRING}, ("type",)),
     "description": "Reasoning from an earlier answer: its encrypted_content reaches only the upstream API "
                    "that made it"},
    {**_obj({"type": {"const": "additional_tools"}, "tools": {"type": "array", "items": RS_TOOL}},
            ("type", "tools")),
     "description": "Tools added mid-conversation (Codex): offered from there on"},
    _other(("message", "function_call", "custom_tool_call", "function_call_output", "custom_tool_call_output",
            "reasoning", "additional_tools"),
           "Any other item (item_reference, compaction, a hosted tool's call…): given to a Responses upstream "
           "where it was, left out for the others"),
]}
RS_REQUEST_PROPERTIES = {
    "model": MODEL,
    "input": {"anyOf": [{"type": "string", "pattern": r"\S"}, {"type": "array", "items": RS_ITEM}],
              "description": "The whole conversation: a user message as a string, or input items. At least one "
                             "non-empty user or assistant item (or a prompt)."},
    "instructions": NULLABLE_STRING,
    "tools": {"type": "array", "items": RS_TOOL, "maxItems": 512},
    "tool_choice": {"anyOf": [{"enum": ["auto", "none", "required", None]},
                              _obj({"type": {"enum": ["function", "custom"]}, "name": NAME}, ("type", "name")),
                              _other(("function", "custom"), "allowed_tools, a hosted tool's type…")]},
    "parallel_tool_calls": _nullable(BOOL),
    "max_output_tokens": _nullable(POSITIVE),
    "temperature": _nullable({"type": "number", "minimum": 0, "maximum": 2}),
    "top_p": _nullable({"type": "number", "minimum": 0, "maximum": 1}),
    "reasoning": _nullable(_obj({"effort": _nullable({"enum": list(responses_proto.EFFORTS)}),
                                 "summary": _nullable({"enum": list(responses_proto.SUMMARIES)})})),
    "text": _nullable(_obj({"verbosity": _nullable({"enum": list(responses_proto.VERBOSITIES)}),
                            "format": _nullable({"anyOf": [
                                _obj({"type": {"enum": ["text", "json_object"]}}, ("type",)),
                                _obj({"type": {"const": "json_schema"}, "name": NAME, "schema": {"type": "object"},
                                      "strict": BOOL}, ("type", "name", "schema"))]})})),
    "stream": _nullable(BOOL),
    "store": {**_nullable(BOOL), "description": "Accepted; nothing is kept by the gateway either way"},
    "include": _nullable({"type": "array", "items": STRING}),
    "prompt_cache_key": _nullable(STRING),
    "metadata": _nullable({"type": "object"}),
    "prompt": {"type": ["object", "null"], "description": "A stored prompt: only a Responses upstream can use it"},
    "previous_response_id": {"type": "null", "description": "Refused with a 400 when set: the gateway stores "
                                                            "no responses; send the whole history in input"},
    "conversation": {"type": "null", "description": "Refused with a 400 when set, as previous_response_id"},
    "background": {"enum": [False, None], "description": "true is refused with a 400: stream the answer instead"},
}
RS_OUTPUT_ITEM = {"anyOf": [
    _obj({"type": {"const": "message"}, "id": STRING, "role": {"const": "assistant"}, "status": STRING,
          "content": {"type": "array", "items": _obj({"type": STRING, "text": STRING}, ("type",))}},
         ("type", "role", "content")),
    _obj({"type": {"const": "function_call"}, "id": STRING, "call_id": STRING, "name": STRING,
          "arguments": STRING, "namespace": STRING, "status": STRING}, ("type", "call_id", "name", "arguments")),
    _obj({"type": {"const": "custom_tool_call"}, "id": STRING, "call_id": STRING, "name": STRING, "input": STRING,
          "namespace": STRING, "status": STRING}, ("type", "call_id", "name", "input")),
    _obj({"type": {"const": "reasoning"}, "id": STRING, "encrypted_content": STRING,
          "summary": {"type": "array", "items": _obj({"type": STRING, "text": STRING}, ("type", "text"))}},
         ("type", "summary")),
    _other(("message", "function_call", "custom_tool_call", "reasoning"),
           "A Responses upstream's other items (a hosted tool's call…), passed on"),
]}
RS_USAGE = {**_obj({"input_tokens": INT, "output_tokens": INT, "total_tokens": INT,
                    "input_tokens_details": _obj({"cached_tokens": INT}),
                    "output_tokens_details": _obj({"reasoning_tokens": INT})},
                   ("input_tokens", "output_tokens", "total_tokens")),
            "description": "total_tokens is always there: Codex fails a turn whose usage lacks it"}
RS_RESPONSE = {
    **_obj({"id": STRING, "object": {"const": "response"}, "created_at": {"type": "number"},
            "status": {"enum": ["completed", "incomplete", "failed", "in_progress", "queued", "cancelled"]},
            "model": {**STRING, "description": "The model the client asked for"},
            "output": {"type": "array", "items": RS_OUTPUT_ITEM},
            "usage": _nullable(RS_USAGE),
            "error": _nullable(_obj({"code": NULLABLE_STRING, "message": STRING}, ("message",))),
            "incomplete_details": _nullable(_obj({"reason": STRING})),
            "previous_response_id": {"type": "null"}},
           ("id", "object", "created_at", "status", "model", "output")),
    "description": "status incomplete (with incomplete_details.reason max_output_tokens or content_filter) when "
                   "the answer stopped at its token limit or was refused",
}

SPEC = {
    "openapi": "3.1.0",
    "info": {
        "title": "zengate",
        "version": __version__,
        "description": "OpenAI Chat Completions, OpenAI Responses and Anthropic Messages in front of OpenCode "
                       "Zen, with an admin API. Errors come in the shape of the API called: OpenAIError for "
                       "/v1/chat/completions, /v1/responses*, the admin and stats APIs; AnthropicError for "
                       "/v1/messages*.",
    },
    "paths": PATHS,
    "components": {
        "securitySchemes": {
            "zenKey": {"type": "http", "scheme": "bearer", "description": "An sk-zen key (when require_auth is on)"},
            "zenApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            "googApiKey": {"type": "apiKey", "in": "header", "name": "x-goog-api-key"},
            "googKeyQuery": {"type": "apiKey", "in": "query", "name": "key"},
            "adminBearer": {"type": "http", "scheme": "bearer", "description": "A token from POST /_admin/login"},
            "adminCookie": {"type": "apiKey", "in": "cookie", "name": "zengate_admin",
                            "description": "State-changing calls also need the header X-Zengate-CSRF: 1. Any "
                                           "state-changing admin call (cookie or bearer, the login too) is refused "
                                           "with a 403 when Sec-Fetch-Site is cross-site or same-site, or (without "
                                           "Sec-Fetch-Site) when Origin is not the gateway's own"},
            "metricsBearer": {"type": "http", "scheme": "bearer", "description": "The metrics token"},
        },
        "schemas": {
            "GeminiError": _obj({"error": _obj({"code": INT, "message": STRING, "status": STRING,
                                                "details": {"type": "array"}}, ("code", "message", "status"))},
                                ("error",)),
            "GenerateContentRequest": {"type": "object", "properties": {
                "contents": {"type": "array", "items": _obj({"role": STRING, "parts": {"type": "array"}})},
                "systemInstruction": {"type": ["object", "string"]}, "tools": {"type": "array"},
                "toolConfig": {"type": "object"}, "generationConfig": {"type": "object"}}},
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
            "ResponsesRequest": {
                **_obj(RS_REQUEST_PROPERTIES, ("model",)),
                "anyOf": [{"required": ["input"]},
                          {"required": ["prompt"], "properties": {"prompt": {"type": "object"}}}],
                "description": "Fields not listed here are kept and given to a Responses upstream only. "
                               "Limits (settings): max_body_bytes, max_json_depth, max_tools.",
                "examples": [{"model": "gpt-5-nano", "input": "say hi"},
                             {"model": "big-pickle", "instructions": "Answer briefly.", "stream": True,
                              "input": [{"role": "user", "content": "weather in Paris?"}],
                              "tools": [{"type": "function", "name": "get_weather",
                                         "parameters": {"type": "object",
                                                        "properties": {"city": {"type": "string"}}}}]}],
            },
            "ResponsesInputTokensRequest": {
                **_obj(RS_REQUEST_PROPERTIES),
                "description": "A Responses request whose model and input may be left out; estimated locally.",
                "examples": [{"model": "gpt-5-nano", "input": "say hi"}],
            },
            "Response": RS_RESPONSE,
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
