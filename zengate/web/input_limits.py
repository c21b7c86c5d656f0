"""Input limits beyond the body size: JSON nesting depth, number of messages, number of tools.

``read_json_body`` applies them to every client-API body, so each blueprint renders the 400 in its
client's own error shape. The limits are runtime settings (``max_json_depth``, ``max_messages``,
``max_tools``).
"""

from __future__ import annotations

from typing import Any

from flask import Request
from werkzeug.exceptions import BadRequest

from .errors import ApiError

#: The largest id a database row can have (64-bit): a larger number would overflow the driver.
MAX_ROW_ID = 2**63 - 1


def depth_error(limit: int) -> ApiError:
    return ApiError(400, f"request body nests arrays and objects too deeply: the limit is {limit} levels "
                    "(max_json_depth)", kind="input")


def too_deep(data: bytes, value: Any, limit: int) -> bool:
    """Whether ``value`` (parsed from ``data``) nests containers more than ``limit`` deep.

    Level by level, looking only for containers: a Claude Code body (116 KB, ~1,300 values in
    ~220 containers) takes ~100 µs. Parsed JSON holds plain dicts and lists, hence ``type() is``.
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return False  # not enough brackets to get there (the common case for small bodies)
    level, depth = [value], 1
    while level:
        if depth > limit:
            return True
        deeper = []
        for node in level:
            for child in (node.values() if type(node) is dict else node):
                kind = type(child)
                if kind is dict or kind is list:
                    deeper.append(child)
        level, depth = deeper, depth + 1
    return False


def check(settings, data: bytes, body: Any) -> None:
    """400 naming the limit when the parsed body is too deep or has too many messages or tools."""
    if not isinstance(body, (dict, list)):
        return
    depth = settings.get("max_json_depth")
    if too_deep(data, body, depth):
        raise depth_error(depth)
    if not isinstance(body, dict):
        return
    for field, setting in (("messages", "max_messages"), ("input", "max_messages"), ("tools", "max_tools")):
        items, limit = body.get(field), settings.get(setting)
        if isinstance(items, list) and len(items) > limit:
            raise ApiError(400, f"{field}: {len(items)} given; at most {limit} are accepted ({setting})",
                           param=field, kind="input")


class SafeRequest(Request):
    """Flask's request, but a body nested too deeply for the standard JSON parser is bad input.

    ``request.get_json()`` (the admin API) uses the standard library, which raises ``RecursionError``
    on a deep body; Flask only turns ``ValueError`` into a 400 (or ``None`` with ``silent=True``).
    """

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        try:
            return super().get_json(force=force, silent=silent, cache=cache)
        except RecursionError:
            if silent:
                return None
            raise BadRequest("request body nests arrays and objects too deeply") from None
