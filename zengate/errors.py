"""One error type for every API surface; each blueprint renders it in its client's shape."""

from __future__ import annotations

from dataclasses import dataclass, field

from werkzeug.exceptions import HTTPException

from .logs import redact
from .protocols.errors import ProtocolError
from .upstream.client import UpstreamError

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
    from .routing import RoutingError

    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ProtocolError):
        return from_protocol(exc)
    if isinstance(exc, RoutingError):
        return ApiError(exc.status, exc.message, kind="routing")
    if isinstance(exc, HTTPException):  # a 408 for a body that came too slowly (client_limits)
        return ApiError(exc.code or 400, exc.description or exc.name, kind="input")
    return from_upstream(exc)
