"""One error type for every API surface, and the one decision of which API's shape an error takes.

Each client blueprint renders :class:`ApiError` in its own API's shape; what answers outside a
blueprint (the app's own handlers, gunicorn's refusals in the worker) asks :func:`error_body`,
which decides by the path (and an ``anthropic-version`` header) alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import jsonify, request
from werkzeug.exceptions import HTTPException

from ..dialects import anthropic as anthropic_dialect
from ..dialects import openai as openai_dialect
from ..dialects import registry
from ..dialects.errors import ProtocolError
from ..runtime.logs import redact
from ..upstream.client import UpstreamError

DB_RETRY_AFTER = 5  # seconds a client is asked to wait when the database is unavailable

FREE_TIER_HINT = (
    "OpenCode Zen reserves its free models for its own client. Use a paid Zen model with your own "
    "key (OPENCODE_API_KEY) or the Go tier (OPENCODE_GO_API_KEY) instead."
)


@dataclass
class ApiError(Exception):
    status: int
    message: str
    type: str | None = None  # left None: chosen by status in the client's format
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    kind: str = "gateway"  # gateway | upstream | auth | input
    quota: str | None = None  # for a 429, the quota reached, by id ("KeyRequestsPerDay"), for APIs that say it

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


def from_protocol(err: ProtocolError) -> ApiError:
    return ApiError(err.status, err.message, param=err.param, kind="input")


def is_free_tier_refusal(err: UpstreamError) -> bool:
    text = f"{err.error_type or ''} {err.message}".lower()
    return err.status == 403 and ("freetier" in text.replace(" ", "").replace("_", "") or "free tier" in text)


def from_upstream(err: UpstreamError) -> ApiError:
    """The error a client sees for a failed upstream call: status and message kept (secrets the
    upstream echoes, such as our own key in "Incorrect API key provided: …", masked)."""
    message = redact(err.message)
    if is_free_tier_refusal(err):
        message = f"{message.rstrip('.')}. {FREE_TIER_HINT}"
    headers = {"Retry-After": err.retry_after} if err.retry_after else {}
    kind = "upstream" if err.kind == "http" else f"upstream_{err.kind}"
    upstream_type = err.error_type if isinstance(err.error_type, str) else None
    return ApiError(err.status, message, type=upstream_type if err.kind == "http" else None,
                    headers=headers, kind=kind)


def to_api_error(exc: Exception) -> ApiError:
    """Any error a client-API view can raise, as the one error type the blueprints render."""
    from ..exchange.routing import RoutingError

    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ProtocolError):
        return from_protocol(exc)
    if isinstance(exc, RoutingError):
        return ApiError(exc.status, exc.message, kind="routing")
    if isinstance(exc, HTTPException):  # a 408 for a body that came too slowly (client_limits)
        return ApiError(exc.code or 400, exc.description or exc.name, kind="input")
    return from_upstream(exc)


def error_body(path: str, status: int, message: str, *, anthropic_version: bool = False) -> dict:
    """An error body in the shape of the API ``path`` belongs to (its dialect's), else Anthropic's for a
    request carrying ``anthropic-version`` (``/v1/models`` serves both), else OpenAI's, which the
    gateway's own APIs use."""
    dialect = registry.for_path(path)
    if dialect is not None:
        return dialect.error_body(status, message)
    if anthropic_version:
        return anthropic_dialect.error_body(status, message)
    return openai_dialect.error_body(status, message)


def error_response(status: int, message: str):
    """The Flask answer for an error outside a blueprint's own handler, in the path's shape."""
    body = error_body(request.path, status, message, anthropic_version=bool(request.headers.get("anthropic-version")))
    return jsonify(body), status
