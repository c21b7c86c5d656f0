"""Anthropic Messages requests to and from the internal form.

The form has this API's shape, so a client's request is the form once validated; what rendering
for an Anthropic-protocol upstream adds is that API's rules: a ``max_tokens`` within the model's
limit, tool names and ids its pattern allows, thinking only where it accepts it, temperature in
0..1, and no thinking block whose signature this upstream did not make.
"""

from __future__ import annotations

from typing import Any

from ...exchange.form import without_extensions
from ..base import Context, Target
from ..errors import ProtocolError
from ..translate_common import clamp_max_tokens, clean_stop_sequences, thinking_for_effort
from .shapes import GATEWAY_SIGNATURE_PREFIX, is_gateway_signature, unwrapped_signature, validate_messages_request

DEFAULT_MAX_TOKENS = 4096  # when the client set no limit (the API requires one)


def parse_request(body: dict) -> dict:
    """An Anthropic client's request as the internal form: the body itself, validated.

    Thinking blocks whose signature the gateway wrapped for another dialect's upstream
    (``zengate:<dialect>:…``) get that signature back with ``x_origin``; the body is copied only
    when there is one.
    """
    validate_messages_request(body)
    messages = _unwrapped(body["messages"])
    form = body if messages is None else {**body, "messages": messages}
    native = native_output_format(body)
    if native is not None:  # for upstreams of the other APIs: their response_format, text.format
        form = {**form, "x_output_format": {"type": "json_schema", "name": "output", "schema": native["schema"]}}
    return form


def native_output_format(body: dict) -> dict | None:
    """Structured output as this API asks for it: ``output_config.format`` (or the older beta's
    ``output_format``) when it is a JSON schema; None otherwise."""
    config = body.get("output_config")
    for fmt in ((config or {}).get("format") if isinstance(config, dict) else None, body.get("output_format")):
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
            return fmt
    return None


def _unwrapped(messages: list) -> list | None:
    if not any(message["role"] == "assistant" and type(message["content"]) is list
               and any(_wrapped(block) for block in message["content"]) for message in messages):
        return None
    out = []
    for message in messages:
        content = message["content"]
        if message["role"] == "assistant" and type(content) is list and any(_wrapped(b) for b in content):
            message = {**message, "content": [_unwrap(b) if _wrapped(b) else b for b in content]}
        out.append(message)
    return out


def _wrapped(block: dict) -> bool:
    signature = block.get("signature")
    return (block.get("type") == "thinking" and is_gateway_signature(signature)
            and ":" in signature[len(GATEWAY_SIGNATURE_PREFIX):])


def _unwrap(block: dict) -> dict:
    signature, origin = unwrapped_signature(block["signature"])
    return {**block, "signature": signature, "x_origin": origin}


# --- to an Anthropic-protocol upstream -----------------------------------------------------------

OUTPUT_TOOL = "structured_output"
OUTPUT_TOOL_DESCRIPTION = ("Give your whole answer as this tool's input: it must match the input schema exactly. "
                           "Call it once; write nothing else.")
#: Said in the system prompt when the request has tools of its own, so the output tool is offered, not forced.
OUTPUT_TOOL_INSTRUCTION = (f"When you give your final answer, call the {OUTPUT_TOOL} tool with it instead of "
                           "writing it as text: its input is the answer, matching its schema.")


def render_request(form: dict, target: Target, context: Context) -> dict:
    """The form as an Anthropic Messages request for ``target`` (tool names recorded in ``context``).

    Raises :class:`ProtocolError` for what this API cannot take (more than one answer).
    """
    n = form.get("x_n")
    if n is not None and n != 1:
        raise ProtocolError(400, "n: only n=1 is supported", "n")
    names = context.names
    out = without_extensions(form)
    out["model"] = target.upstream_model
    max_tokens = clamp_max_tokens(form.get("max_tokens"), target.max_output_tokens, DEFAULT_MAX_TOKENS)
    out["max_tokens"] = max_tokens
    out["messages"] = messages = _messages(form["messages"], names)
    if not messages:
        raise ProtocolError(400, "messages: at least one non-empty user or assistant message is required",
                            "messages")
    tools = form.get("tools")
    choice = form.get("tool_choice")
    extra: list[dict] = []  # the structured-output tool, for a client of another API that asked for it
    if form.get("x_output_format") and native_output_format(form) is None:
        choice, extra = _offer_output_tool(out, form, context)
    if tools:
        out["tools"] = [_tool(tool, names) for tool in tools] + extra
        if isinstance(choice, dict) and choice.get("type") == "tool" and choice["name"] != OUTPUT_TOOL:
            choice = {**choice, "name": names.name_out(choice["name"])}
        if choice is not None:
            out["tool_choice"] = choice
    elif extra:
        out["tools"], out["tool_choice"] = extra, choice
    else:
        out.pop("tools", None)
        out.pop("tool_choice", None)
        choice = None
    thinking = form.get("thinking") or thinking_for_effort(form.get("x_effort"), max_tokens)
    if thinking and thinking.get("type") != "disabled" and _thinking_allowed(messages, choice):
        out["thinking"] = thinking
        out.pop("temperature", None)
        out.pop("top_p", None)
    else:
        out.pop("thinking", None)
        if out.get("temperature") is not None:
            out["temperature"] = min(max(float(out["temperature"]), 0.0), 1.0)  # OpenAI 0..2, Anthropic 0..1
    stop = clean_stop_sequences(form.get("stop_sequences"))
    if stop:
        out["stop_sequences"] = stop
    else:
        out.pop("stop_sequences", None)
    if target.stream:
        out["stream"] = True
    else:
        out.pop("stream", None)
    return out


def _offer_output_tool(out: dict, form: dict, context: Context) -> tuple[Any, list[dict]]:
    """Structured output through a tool (see :func:`output_tool`): forced when the request has no
    tools of its own; offered beside them, with a line in the system prompt, when it has (the
    model must stay free to call them first). Returns the tool choice to send and the tool."""
    tools = form.get("tools") or []
    if any(isinstance(t, dict) and t.get("name") == OUTPUT_TOOL for t in tools):
        return form.get("tool_choice"), []  # the client's own tool of that name wins; nothing is enforced
    tool, context.output_wrapped = output_tool(form["x_output_format"])
    context.output_tool = OUTPUT_TOOL
    if not tools:
        return {"type": "tool", "name": OUTPUT_TOOL}, [tool]
    system = out.get("system")
    if isinstance(system, list):
        out["system"] = [*system, {"type": "text", "text": OUTPUT_TOOL_INSTRUCTION}]
    else:
        out["system"] = f"{system}\n\n{OUTPUT_TOOL_INSTRUCTION}" if isinstance(system, str) and system.strip() \
            else OUTPUT_TOOL_INSTRUCTION
    return form.get("tool_choice"), [tool]


def output_tool(output_format: dict) -> tuple[dict, bool]:
    """Structured output for an upstream of this API, which has no ``response_format``: a tool the
    request forces, whose input schema is the client's (any object for ``json_object``), and whether
    the answer is wrapped in it as ``value`` (a tool's input must be an object; a schema of an array
    or a string is not). Its input comes back to the client as the answer's text (answer.py, stream.py)."""
    schema = output_format.get("schema") if output_format.get("type") == "json_schema" else None
    if not isinstance(schema, dict) or not schema:
        schema, wrapped = {"type": "object"}, False
    elif schema.get("type", "object") == "object":
        schema, wrapped = {**schema, "type": "object"}, False
    else:
        schema, wrapped = {"type": "object", "properties": {"value": schema}, "required": ["value"]}, True
    return {"name": OUTPUT_TOOL, "description": OUTPUT_TOOL_DESCRIPTION, "input_schema": schema}, wrapped


def _messages(messages: list, names) -> list[dict]:
    """Tool ids and names as this API allows them; thinking this upstream did not sign left out (an
    assistant turn left empty goes too); the form's own keys dropped from blocks."""
    out = []
    for message in messages:
        content = message["content"]
        if type(content) is list:
            blocks = [b for b in (_block(block, names) for block in content) if b is not None]
            if not blocks and message["role"] == "assistant":
                continue
            message = {**message, "content": blocks}
        out.append(message)
    return out


def _block(block: dict, names) -> dict | None:
    kind = block.get("type")
    if kind == "thinking" and (block.get("x_origin") not in (None, "anthropic")
                               or is_gateway_signature(block.get("signature"))):
        return None  # signed by another upstream, or by the gateway: this one would refuse it
    if kind == "tool_use":
        block = {**block, "id": names.id_out(block["id"]), "name": names.name_out(block["name"])}
    elif kind == "tool_result":
        block = {**block, "tool_use_id": names.id_out(block["tool_use_id"])}
    if any(key.startswith("x_") for key in block):
        block = {key: value for key, value in block.items() if not key.startswith("x_")}
    return block


def _tool(tool: dict, names) -> dict:
    if tool.get("type") not in (None, "custom") or "input_schema" not in tool:
        return tool  # a server tool (web_search_20250305, …): Anthropic's own, passed as it is
    out = {key: value for key, value in tool.items() if not key.startswith("x_")}
    out["name"] = names.name_out(tool["name"])
    return out


def _thinking_allowed(messages: list[dict], choice: Any) -> bool:
    """Whether Anthropic will accept ``thinking`` for this conversation.

    It refuses thinking when a tool is forced, and when the turn being continued (an assistant
    prefill, or a last user turn answering tool calls) lacks the assistant's signed thinking
    block - which a client of another API cannot send back. Then the request goes without thinking.
    """
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        return False
    last = messages[-1]
    if last["role"] == "assistant":
        return False
    content = last["content"]
    return not (type(content) is list and any(b.get("type") == "tool_result" for b in content))


def passthrough_body(body: dict, target: Target) -> dict:
    """The client's own request for an upstream of the same API: the model mapped, and the thinking
    blocks the gateway made (or wrapped for another upstream) left out of the history."""
    from .shapes import without_gateway_thinking

    upstream = {**body, "model": target.upstream_model, "stream": target.stream}
    messages = without_gateway_thinking(body["messages"])
    if messages is not None:
        upstream["messages"] = messages
    return upstream
