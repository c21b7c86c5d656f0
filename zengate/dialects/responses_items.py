"""The OpenAI Responses API's shapes as the internal form sees them: tools, items, usage, errors.

Shared by the request converters (``responses_request``), the answer and stream converters
(``responses``, ``responses_stream``): how a Responses tool is written in the form and back, how
a call comes back in the client's spelling (namespaced, custom), the ``response`` object a client
is given, usage both ways and what a failure is called.

**Tools in the form.** A ``function`` tool is a form tool (``name``, ``description``,
``input_schema``), its own other fields (``strict``, ``defer_loading``…) kept in ``x_item``. A
``custom`` tool (free-form text input, like Codex's ``apply_patch``) is a form tool with
``x_kind: "custom"``, its ``format`` under ``x_format`` and an input schema of one string property
``input`` (described with the grammar, so a function-calling upstream knows what to write): its
calls carry ``{"input": text}``. A ``namespace`` tool is flattened: each of its tools is a form tool
named ``<namespace>__<name>`` (legal wherever a tool name is), with ``x_namespace: {"name",
"description", "tool"}``; a call of that name goes back to the client as a ``function_call`` (or
``custom_tool_call``) with ``namespace`` and the inner name, and a Responses upstream is given the
namespace again. Hosted tools (``web_search``, ``tool_search``, ``file_search``, ``mcp``…) only a
Responses upstream can serve: they wait in ``x_extras["responses"]["x_tools"]`` with their places
in the list.
"""

from __future__ import annotations

import time
from typing import Any

from ..exchange.form import is_server_tool
from .anthropic.shapes import is_gateway_signature, unwrapped_signature
from .base import Context
from .translate_common import ToolNames, dump_json, is_context_length_error, new_id

DIALECT_NAME = "responses"
NAMESPACE_SEPARATOR = "__"
CUSTOM_INPUT = "input"  # the one property of a custom tool's input in the form

#: ``x_extras["responses"]`` keys that are this dialect's bookkeeping, not request fields.
BOOKKEEPING = frozenset({"x_tools", "x_input_tail", "x_reasoning", "x_text", "x_system"})

FUNCTION_FIELDS = frozenset({"type", "name", "description", "parameters"})
CUSTOM_FIELDS = frozenset({"type", "name", "description", "format"})

# --- tools ----------------------------------------------------------------------------------------


def namespaced_name(namespace: str, name: str) -> str:
    """The form's name for the tool ``name`` of ``namespace``."""
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}"


def custom_input_schema(fmt: Any) -> dict:
    """The input schema a custom tool has in the form: one string property ``input``."""
    description = "The tool's whole input, as free-form text."
    if isinstance(fmt, dict) and fmt.get("type") == "grammar" and isinstance(fmt.get("definition"), str):
        syntax = fmt.get("syntax") if isinstance(fmt.get("syntax"), str) else ""
        description += f" It must follow this {syntax} grammar:\n{fmt['definition']}"
    return {"type": "object", "properties": {CUSTOM_INPUT: {"type": "string", "description": description}},
            "required": [CUSTOM_INPUT], "additionalProperties": False}


def _own(tool: dict, known: frozenset) -> dict | None:
    own = {key: value for key, value in tool.items() if key not in known}
    return own or None


def form_tool(tool: dict, namespace: dict | None = None) -> dict:
    """A (validated) ``function`` or ``custom`` tool as a form tool; ``namespace`` for one inside a
    namespace (``{"name", "description"}``)."""
    name = tool["name"]
    out: dict[str, Any] = {"name": namespaced_name(namespace["name"], name) if namespace else name}
    if isinstance(tool.get("description"), str) and tool["description"]:
        out["description"] = tool["description"]
    if tool.get("type") == "custom":
        out["input_schema"] = custom_input_schema(tool.get("format"))
        out["x_kind"] = "custom"
        if isinstance(tool.get("format"), dict):
            out["x_format"] = tool["format"]
        own = _own(tool, CUSTOM_FIELDS)
    else:
        schema = tool.get("parameters")
        # a new top level over the client's nested schema (as the other converters do)
        schema = dict(schema) if isinstance(schema, dict) else {"type": "object", "properties": {}}
        schema.setdefault("type", "object")
        out["input_schema"] = schema
        own = _own(tool, FUNCTION_FIELDS)
        if "parameters" in tool and tool["parameters"] is None:
            own = {**(own or {}), "parameters": None}  # said so: no parameters (absent: an empty object)
    if own:
        out["x_item"] = own
    if namespace:
        out["x_namespace"] = {**namespace, "tool": name}
    return out


def form_tools(tools: list, extras: dict) -> list[dict]:
    """A request's (validated) tools as form tools; hosted ones go to ``extras["x_tools"]``."""
    out: list[dict] = []
    hosted: list[list] = []
    for position, tool in enumerate(tools):
        kind = tool.get("type")
        if kind in ("function", "custom"):
            out.append(form_tool(tool))
        elif kind == "namespace":
            namespace = {"name": tool["name"], "description": tool.get("description") or ""}
            out.extend(form_tool(inner, namespace) for inner in tool.get("tools") or [])
        else:
            hosted.append([position, tool])
    if hosted:
        extras["x_tools"] = hosted
    return out


def _strict(tool: dict) -> bool:
    """A function tool's ``strict`` for a Responses upstream: the API's default is true, which holds
    most schemas invalid, so a tool that did not say is sent as not strict."""
    own = tool.get("x_item") or {}
    if isinstance(own.get("strict"), bool):
        return own["strict"]
    return tool.get("strict") is True or tool.get("x_strict") is True


def _responses_tool(tool: dict, name: str) -> dict:
    own = tool.get("x_item") or {}
    out: dict[str, Any]
    if tool.get("x_kind") == "custom":
        out = {"type": "custom", "name": name}
        if tool.get("description"):
            out["description"] = tool["description"]
        if isinstance(tool.get("x_format"), dict):
            out["format"] = tool["x_format"]
        out.update(own)
        return out
    out = {"type": "function", "name": name}
    if tool.get("description"):
        out["description"] = tool["description"]
    out["parameters"] = None if "parameters" in own and own["parameters"] is None else tool.get("input_schema")
    out.update({key: value for key, value in own.items() if key != "parameters"})
    out["strict"] = _strict(tool)
    return out


def responses_tools(form: dict, names: ToolNames | None = None) -> list[dict]:
    """The form's tools as a Responses ``tools`` list: namespaces gathered again, hosted tools put back
    in their places. ``names`` (an upstream's) makes other names legal; without it, the client's."""
    out: list[dict] = []
    open_namespace: dict | None = None
    for tool in form.get("tools") or []:
        if not isinstance(tool, dict) or tool.get("x_additional") or not isinstance(tool.get("name"), str):
            continue
        if is_server_tool(tool):
            continue  # nothing a Responses upstream runs
        namespace = tool.get("x_namespace")
        if isinstance(namespace, dict):
            if open_namespace is None or open_namespace["name"] != namespace["name"]:
                open_namespace = {"type": "namespace", "name": namespace["name"],
                                  "description": namespace.get("description") or "", "tools": []}
                out.append(open_namespace)
            open_namespace["tools"].append(_responses_tool(tool, namespace["tool"]))
            continue
        open_namespace = None
        out.append(_responses_tool(tool, names.name_out(tool["name"]) if names else tool["name"]))
    hosted = ((form.get("x_extras") or {}).get(DIALECT_NAME) or {}).get("x_tools") or []
    for position, tool in hosted:
        out.insert(min(position, len(out)), tool)
    return out


def form_tool_choice(choice: Any, parallel: Any, extras: dict) -> dict | None:
    """A (validated) ``tool_choice`` and ``parallel_tool_calls`` as the form's ``tool_choice``; a choice
    the form cannot say (allowed_tools, a hosted tool) goes to ``extras`` and the form gets its mode."""
    out: dict | None = None
    if isinstance(choice, str):
        out = {"type": {"auto": "auto", "none": "none", "required": "any"}[choice]}
    elif isinstance(choice, dict):
        kind = choice["type"]
        if kind in ("function", "custom"):
            out = {"type": "tool", "name": choice["name"]}
        else:
            extras["tool_choice"] = choice
            out = {"type": "any" if choice.get("mode") == "required" else "auto"}
    if parallel is False and (out is None or out["type"] != "none"):
        out = {**(out or {"type": "auto"}), "disable_parallel_tool_use": True}
    return out


def responses_tool_choice(form: dict, names: ToolNames | None = None) -> Any:
    """The form's ``tool_choice`` in Responses spelling (``auto`` when it says nothing)."""
    extras = (form.get("x_extras") or {}).get(DIALECT_NAME) or {}
    if "tool_choice" in extras:
        return extras["tool_choice"]
    choice = form.get("tool_choice")
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "tool" and isinstance(choice.get("name"), str):
        tool = ToolIndex(form).get(choice["name"])
        if tool is not None:
            kind_, _, inner = tool
            return {"type": "custom" if kind_ == "custom" else "function", "name": inner}
        return {"type": "function", "name": names.name_out(choice["name"]) if names else choice["name"]}
    return {"any": "required", "none": "none"}.get(kind or "", "auto")


def parallel_tool_calls(form: dict) -> bool:
    choice = form.get("tool_choice")
    return not (isinstance(choice, dict) and choice.get("disable_parallel_tool_use") is True)


class ToolIndex:
    """What a form tool name is in Responses terms: ``(kind, namespace, name)`` for the client's tools
    that are custom or namespaced (plain functions are not listed: their name is the form's)."""

    __slots__ = ("_tools",)

    def __init__(self, form: dict | None):
        self._tools: dict[str, tuple[str, str | None, str]] = {}
        for tool in (form or {}).get("tools") or []:
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                continue
            kind = "custom" if tool.get("x_kind") == "custom" else "function"
            namespace = tool.get("x_namespace")
            if isinstance(namespace, dict):
                self._tools[tool["name"]] = (kind, namespace.get("name"), namespace.get("tool") or tool["name"])
            elif kind == "custom":
                self._tools[tool["name"]] = (kind, None, tool["name"])

    def get(self, name: str) -> tuple[str, str | None, str] | None:
        return self._tools.get(name)

    def call_of(self, block: dict) -> tuple[str, str | None, str]:
        """``(kind, namespace, name)`` of a form tool_use block, as the client's tools spell it."""
        name = block.get("name") if isinstance(block.get("name"), str) else ""
        known = self._tools.get(name)
        if known is not None:
            return known
        kind = "custom" if block.get("x_kind") == "custom" else "function"
        namespace = block.get("x_namespace")
        if isinstance(namespace, dict) and namespace.get("name") and namespace.get("tool"):
            return kind, namespace["name"], namespace["tool"]
        return kind, None, name


def client_request(context: Context) -> dict | None:
    """The client's request in the form, when the exchange gave it to the context (``Context.request``,
    see the report on base.py); the answer's echo fields and the calls' spelling come from it."""
    request = getattr(context, "request", None)
    return request if isinstance(request, dict) else None


# --- custom tool input -------------------------------------------------------------------------------

def custom_input_text(value: Any) -> str:
    """The free-form text of a custom call's form input (``{"input": text}``; other shapes as JSON)."""
    if isinstance(value, dict):
        inner = value.get(CUSTOM_INPUT)
        if isinstance(inner, str) and len(value) == 1:
            return inner
        strings = [v for v in value.values() if isinstance(v, str)]
        if len(value) == 1 and strings:
            return strings[0]
        return dump_json(value)
    return value if isinstance(value, str) else dump_json(value)


# --- thinking signatures -------------------------------------------------------------------------------

def client_encrypted(signature: Any, origin: Any) -> str | None:
    """The ``encrypted_content`` a Responses client is given for a thinking block's signature.

    A Responses upstream's own goes as it is. One another dialect's upstream made (Anthropic's
    signature) is wrapped as ``zengate:<dialect>:<signature>``, which the client sends back and
    :func:`thinking_origin` unwraps, so it can reach that dialect's upstream again; the gateway's own
    ``zengate:v1`` (reasoning text nobody signed) gives none.
    """
    if not isinstance(signature, str) or not signature or is_gateway_signature(signature):
        return None
    if origin == DIALECT_NAME:
        return signature
    return f"zengate:{origin or 'anthropic'}:{signature}"


def thinking_origin(encrypted: Any) -> tuple[str, str | None]:
    """``(signature, x_origin)`` of an ``encrypted_content`` a client sent back (see :func:`client_encrypted`)."""
    if not isinstance(encrypted, str) or not encrypted:
        return "", None
    signature, origin = unwrapped_signature(encrypted)
    if origin is None:
        return encrypted, DIALECT_NAME
    if origin == "gateway":
        return encrypted, None
    return signature, origin


def responses_signature(block: dict) -> str | None:
    """The ``encrypted_content`` of a form thinking block for a Responses upstream: only what such an
    upstream made (``x_origin == "responses"``)."""
    signature = block.get("signature")
    if block.get("x_origin") == DIALECT_NAME and isinstance(signature, str) and signature \
            and not is_gateway_signature(signature):
        return signature
    return None


# --- usage ---------------------------------------------------------------------------------------------

def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def responses_usage(usage: Any) -> dict:
    """The form's (Anthropic) usage as a Responses ``usage``: input counts cache reads and writes."""
    usage = usage if isinstance(usage, dict) else {}
    cached = _int(usage.get("cache_read_input_tokens"))
    written = _int(usage.get("cache_creation_input_tokens"))
    input_tokens = _int(usage.get("input_tokens")) + cached + written
    output_tokens = _int(usage.get("output_tokens"))
    return {"input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
            "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens}


def form_usage(usage: Any) -> dict:
    """A Responses ``usage`` as the form's: cached and written tokens move out of ``input_tokens``."""
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("input_tokens_details") if isinstance(usage.get("input_tokens_details"), dict) else {}
    total = _int(usage.get("input_tokens"))
    cached = min(_int(details.get("cached_tokens")), total)
    written = min(_int(details.get("cache_write_tokens")), total - cached)
    return {"input_tokens": total - cached - written, "output_tokens": _int(usage.get("output_tokens")),
            "cache_creation_input_tokens": written, "cache_read_input_tokens": cached}


# --- stop reasons ----------------------------------------------------------------------------------------

INCOMPLETE_FOR_STOP = {"max_tokens": "max_output_tokens", "model_context_window_exceeded": "max_output_tokens",
                       "refusal": "content_filter"}
STOP_FOR_INCOMPLETE = {"max_output_tokens": "max_tokens", "content_filter": "refusal"}


def stop_reason_of(status: Any, incomplete: Any, has_tool_use: bool) -> str | None:
    """The form's stop reason for a response's ``status`` and ``incomplete_details``; None when the
    response is incomplete for a reason the form has no word for (an error, then)."""
    if status == "incomplete":
        reason = incomplete.get("reason") if isinstance(incomplete, dict) else None
        return STOP_FOR_INCOMPLETE.get(reason) if isinstance(reason, str) else None
    return "tool_use" if has_tool_use else "end_turn"


# --- errors -----------------------------------------------------------------------------------------------

STATUS_FOR_CODE = {
    "rate_limit_exceeded": 429, "insufficient_quota": 402, "usage_not_included": 402,
    "context_length_exceeded": 400, "invalid_prompt": 400, "server_error": 500, "server_is_overloaded": 529,
    "slow_down": 529, "vector_store_timeout": 504, "bio_policy": 400, "misalignment_policy_violation": 400,
}


def status_for(code: Any, status: Any = None) -> int:
    """The HTTP status a Responses error code (or a numeric ``code``/``status``) stands for."""
    for value in (code, status):
        if isinstance(value, int) and not isinstance(value, bool) and 400 <= value < 600:
            return value
        if isinstance(value, str) and value.isdigit() and 400 <= int(value) < 600:
            return int(value)
    if isinstance(code, str):
        if code in STATUS_FOR_CODE:
            return STATUS_FOR_CODE[code]
        if "rate_limit" in code:
            return 429
        if code.startswith(("invalid", "image", "unsupported", "empty", "failed_to_download")):
            return 400
    return 500


def failure_code(status: int, message: str) -> str:
    """The ``response.error.code`` of a failure: what Codex acts on (``context_length_exceeded`` and
    ``insufficient_quota`` end a turn for good, ``rate_limit_exceeded`` and ``server_error`` are retried)."""
    if is_context_length_error(status, message):
        return "context_length_exceeded"
    if status == 429:
        return "rate_limit_exceeded"
    if status == 402:
        return "insufficient_quota"
    if status >= 500:
        return "server_error"
    return "invalid_prompt"


# --- the response object -----------------------------------------------------------------------------------

def _output_format(output_format: Any) -> dict:
    if isinstance(output_format, dict) and output_format.get("type") == "json_schema":
        out = {"type": "json_schema", "name": output_format.get("name") or "output",
               "schema": output_format.get("schema") or {}}
        for key in ("strict", "description"):
            if output_format.get(key) is not None:
                out[key] = output_format[key]
        return out
    if isinstance(output_format, dict) and output_format.get("type") == "json_object":
        return {"type": "json_object"}
    return {"type": "text"}


def text_config(form: dict) -> dict | None:
    """The Responses ``text`` of a form (format and the client's own ``verbosity``), None for plain."""
    extras = (form.get("x_extras") or {}).get(DIALECT_NAME) or {}
    text = dict(extras.get("x_text") or {})
    if form.get("x_output_format"):
        text["format"] = _output_format(form["x_output_format"])
    return text or None


def instructions_of(form: dict) -> str | None:
    """The system text that came as ``instructions`` (system blocks that were no message)."""
    system = form.get("system")
    if isinstance(system, str):
        return system or None
    blocks = system if isinstance(system, list) else []
    items = ((form.get("x_extras") or {}).get(DIALECT_NAME) or {}).get("x_system")
    items = items if isinstance(items, list) and len(items) == len(blocks) else [None] * len(blocks)
    texts = [b.get("text") for b, meta in zip(blocks, items, strict=True)
             if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
             and not ((meta or {}).get("item") or {}).get("role")]
    return "\n\n".join(texts) if texts else None


def response_echo(context: Context) -> dict:
    """The request fields a ``response`` object repeats, from the client's request in the form (the
    SDK requires ``tools``, ``tool_choice`` and ``parallel_tool_calls``); built once per answer."""
    form = client_request(context) or {}
    extras = (form.get("x_extras") or {}).get(DIALECT_NAME) or {}
    reasoning = {"effort": form.get("x_effort"), "summary": form.get("x_reasoning_summary")}
    text = text_config(form) or {}
    echo: dict[str, Any] = {
        "instructions": instructions_of(form),
        "max_output_tokens": form.get("max_tokens"),
        "parallel_tool_calls": parallel_tool_calls(form),
        "reasoning": reasoning,
        "temperature": form.get("temperature"),
        "text": {"format": text.get("format") or {"type": "text"}, "verbosity": text.get("verbosity") or "medium"},
        "tool_choice": responses_tool_choice(form),
        "tools": responses_tools(form),
        "top_p": form.get("top_p"),
        "metadata": extras.get("metadata") if isinstance(extras.get("metadata"), dict) else {},
    }
    if form.get("x_cache_key"):
        echo["prompt_cache_key"] = form["x_cache_key"]
    for key in ("service_tier", "truncation", "safety_identifier", "user"):
        if extras.get(key) is not None:
            echo[key] = extras[key]
    return echo


def response_object(response_id: str, created_at: int, context: Context, echo: dict, *, status: str,
                    output: list, usage: dict | None = None, error: dict | None = None,
                    incomplete: str | None = None) -> dict:
    """A ``response`` object as the SDK's ``Response`` model validates it."""
    return {
        "id": response_id, "object": "response", "created_at": created_at, "status": status,
        "background": False, "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "model": context.client_model, "output": output, "previous_response_id": None, "store": False,
        "truncation": "disabled", "usage": usage, **echo,
    }


def now() -> int:
    return int(time.time())


def response_id_for(message_id: Any) -> str:
    """A ``resp_`` id for the form answer ``message_id`` (a new one without)."""
    if isinstance(message_id, str) and message_id:
        return "resp_" + message_id.removeprefix("msg_")
    return new_id("resp_")


# --- output items ------------------------------------------------------------------------------------------

def message_item(item_id: str, text: str, status: str = "completed", phase: Any = None) -> dict:
    item: dict[str, Any] = {"id": item_id, "type": "message", "status": status, "role": "assistant",
                            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}
    if phase in ("commentary", "final_answer"):
        item["phase"] = phase
    return item


def reasoning_item(item_id: str, text: str, encrypted: str | None, status: str = "completed") -> dict:
    item: dict[str, Any] = {"id": item_id, "type": "reasoning",
                            "summary": [{"type": "summary_text", "text": text}] if text else []}
    if encrypted:
        item["encrypted_content"] = encrypted
    item["status"] = status
    return item


def call_item(item_id: str, call_id: str, call: tuple[str, str | None, str], payload: str,
              status: str = "completed") -> dict:
    """A ``function_call`` (``payload``: the arguments) or ``custom_tool_call`` (the input) item."""
    kind, namespace, name = call
    if kind == "custom":
        item: dict[str, Any] = {"id": item_id, "type": "custom_tool_call", "status": status, "call_id": call_id,
                                "name": name, "input": payload}
    else:
        item = {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name,
                "arguments": payload}
    if namespace:
        item["namespace"] = namespace
    return item
