"""``GET /v1/models``: OpenAI's list shape, or Anthropic's when the request says ``anthropic-version``."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, jsonify, request

from ...dialects import anthropic as anthropic_proto
from ...dialects import gemini as gemini_dialect
from ...dialects import openai as openai_proto
from ..errors import ApiError
from . import gemini
from .common import authenticate, begin, listed_models

bp = Blueprint("models", __name__)


def _anthropic_client() -> bool:
    return bool(request.headers.get("anthropic-version"))


@bp.errorhandler(ApiError)
def _api_error(err: ApiError):
    if gemini.is_gemini_client():
        body = gemini_dialect.error_body(err.status, err.message)
    elif _anthropic_client():
        body = anthropic_proto.error_body(err.status, err.message)
    else:
        body = openai_proto.error_body(err.status, err.message, type=err.type)
    return jsonify(body), err.status, err.headers


def openai_shape(entries: list[dict]) -> dict:
    return {
        "object": "list",
        "data": [
            {"id": e["id"], "object": "model", "created": e["created"], "owned_by": e["owned_by"],
             "name": e["name"], "free": e["free"], "protocol": e["protocol"]}
            for e in entries
        ],
    }


def anthropic_shape(entries: list[dict]) -> dict:
    data = [
        {
            "type": "model",
            "id": e["id"],
            "display_name": e["name"],
            "created_at": dt.datetime.fromtimestamp(e["created"], dt.UTC).isoformat().replace("+00:00", "Z"),
            "free": e["free"],
        }
        for e in entries
    ]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


@bp.get("/v1/models")
def list_models():
    if gemini.is_gemini_client():  # Google's SDK lists v1 models here too
        return gemini.list_models()
    gw, record = begin("anthropic" if _anthropic_client() else "openai")
    authenticate(gw, record)
    entries = listed_models(gw)
    return jsonify(anthropic_shape(entries) if _anthropic_client() else openai_shape(entries))
