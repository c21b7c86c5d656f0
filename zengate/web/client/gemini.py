"""The Gemini API surface: ``POST /{v1,v1beta}/models/{model}:generateContent``,
``:streamGenerateContent`` (SSE with ``alt=sse``, else one streamed JSON array), ``:countTokens``,
and ``GET /v1beta/models[/{model}]`` (``GET /v1/models`` answers in this shape for a Gemini client).

Keys come as ``x-goog-api-key``, ``?key=`` or a bearer token. Any model name goes: Gemini names
map through ``model_map``'s ``gemini`` family, other names route as on every surface.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from ...dialects import gemini
from ...dialects.gemini.request import parse_request
from ...dialects.tokens import estimate_anthropic_tokens
from ..errors import ApiError
from .common import authenticate, begin, install_error_handler, listed_models, read_json_body, respond, serve

bp = Blueprint("gemini", __name__)

install_error_handler(bp, lambda err: gemini.error_body(err.status, err.message, param=err.param,
                                                     retry_after=err.headers.get("Retry-After"), quota=err.quota))

METHODS = ("generateContent", "streamGenerateContent", "countTokens")


def _model_and_method(target: str) -> tuple[str, str]:
    model, _, method = target.rpartition(":")
    model = model.removeprefix("models/")
    if not model or method not in METHODS:
        raise ApiError(404, f"no such method: POST .../models/{target}; use {model or '<model>'}:"
                       f"{', :'.join(METHODS)}", kind="input")
    return model, method


@bp.post("/<any(v1, v1beta):version>/models/<path:target>")
def call(version: str, target: str):
    model, method = _model_and_method(target)
    gw, record = begin("gemini")
    record.route = f"/{version}/models/{{model}}:{method}"  # a bounded metrics label; the log keeps the path
    authenticate(gw, record, query_key=request.args.get("key"))
    body = read_json_body(gw)
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", param="body", kind="input")
    if method == "countTokens":
        inner = body.get("generateContentRequest") or body.get("generate_content_request") or body
        if not isinstance(inner, dict):
            raise ApiError(400, "generateContentRequest: must be an object", param="generateContentRequest",
                           kind="input")
        return jsonify({"totalTokens": estimate_anthropic_tokens(parse_request({**inner, "model": model}))})
    stream = method == "streamGenerateContent"
    body = {**body, "model": model, "stream": stream, **({"alt": "sse"} if request.args.get("alt") == "sse" else {})}
    record.model, record.stream, record.input_messages = model, stream, body.get("contents")
    response = respond(serve(gw, body, record, gemini.DIALECT), record)
    if stream and body.get("alt") != "sse":
        response.mimetype = "application/json"  # Google's streamed JSON array
    return response


def model_entry(entry: dict) -> dict:
    """A catalog entry as a Gemini ``Model``."""
    out = {"name": f"models/{entry['id']}", "baseModelId": entry["id"], "version": "001",
           "displayName": entry.get("name") or entry["id"], "description": f"{entry['id']} through zengate",
           "supportedGenerationMethods": list(METHODS)}
    if entry.get("context"):
        out["inputTokenLimit"] = entry["context"]
    if entry.get("max_output"):
        out["outputTokenLimit"] = entry["max_output"]
    return out


def models_list(entries: list[dict]) -> dict:
    return {"models": [model_entry(e) for e in entries]}


@bp.get("/v1beta/models")
def list_models():
    return jsonify(models_list(_entries(request.path)))


@bp.get("/<any(v1, v1beta):version>/models/<path:model>")
def get_model(version: str, model: str):
    name = model.removeprefix("models/")
    for entry in _entries(f"/{version}/models/{{model}}"):
        if entry["id"] == name:
            return jsonify(model_entry(entry))
    raise ApiError(404, f"models/{name} is not found; GET /{version}/models lists the models served",
                   kind="input")


def _entries(route: str) -> list[dict]:
    gw, record = begin("gemini")
    record.route = route
    authenticate(gw, record, query_key=request.args.get("key"))
    return listed_models(gw)


def is_gemini_client() -> bool:
    """A ``GET /v1/models`` from a Gemini client (its key header, ``?key=``, or Google's client header)."""
    return bool(request.headers.get("x-goog-api-key") or request.args.get("key")
                or request.headers.get("x-goog-api-client"))
