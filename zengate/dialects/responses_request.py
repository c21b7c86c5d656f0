"""OpenAI Responses requests to and from the internal form.

:func:`validate_request` checks a client's request (400 naming the field); :func:`parse_request`
reads it into the form; :func:`render_request` writes a form as a request for a Responses upstream.

**Input items in the form.** ``instructions`` and the ``developer``/``system`` messages before the
first user or assistant item are the form's ``system``, plain text blocks (which of them were a
message, with its ``role`` and id, waits in ``x_extras["responses"]["x_system"]``, so each goes
back as it came); later ones stay in place as ``role: system`` messages. User and assistant
messages are text, image and document blocks; ``function_call`` and ``custom_tool_call`` are
``tool_use`` blocks (a custom call's input is ``{"input": text}`` with ``x_kind: "custom"``; a
namespaced call is named ``<namespace>__<name>``); their outputs are ``tool_result`` blocks; a
``reasoning`` item is a thinking block whose text is its summary and whose signature is its
``encrypted_content`` (``x_origin: "responses"``; one the gateway wrapped for another upstream is
unwrapped). Consecutive same-role turns are merged, as Anthropic requires. An item's own fields
(ids, ``status``, ``phase``, a call's raw ``arguments``) wait in its blocks' ``x_item``; items the
form has no word for (``tool_search_call``, ``additional_tools``, ``compaction``,
``item_reference``…) wait in the next block's ``x_before`` (at the end, in ``x_extras``), so a
Responses upstream gets them where they were; other upstreams never see
them. ``previous_response_id`` is refused: the gateway stores no responses.
"""

from __future__ import annotations

import json
from typing import Any

from .anthropic.shapes import GATEWAY_SIGNATURE, IMAGE_MEDIA_TYPES
from .base import Context, Target
from .errors import ProtocolError
from .responses_items import (
    BOOKKEEPING,
    DIALECT_NAME,
    ToolIndex,
    custom_input_text,
    form_tool_choice,
    form_tools,
    namespaced_name,
    parallel_tool_calls,
    responses_signature,
    responses_tool_choice,
    responses_tools,
    text_config,
    thinking_origin,
)
from .translate_common import (
    ToolNames,
    clamp_max_tokens,
    data_url,
    dump_json,
    effort_for_thinking,
    openai_user,
    parse_arguments,
    parse_data_url,
    text_of_blocks,
)

ROLES = ("user", "assistant", "system", "developer")
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
SUMMARIES = ("auto", "concise", "detailed")
VERBOSITIES = ("low", "medium", "high")
IMAGE_DETAILS = ("low", "high", "auto", "original")
TEXT_PARTS = ("input_text", "output_text", "text")
ENCRYPTED_REASONING = "reasoning.encrypted_content"
TOOL_ERROR_PREFIX = "[tool error] "
STATELESS = ("this gateway stores no responses: send the whole conversation in input, "
             "with store: false (as Codex does over HTTP)")

#: The request fields the form says itself; any other field is kept in ``x_extras["responses"]``
#: and given back only to a Responses upstream.
FORM_FIELDS = frozenset({"model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls",
                         "max_output_tokens", "temperature", "top_p", "reasoning", "text", "prompt_cache_key",
                         "stream"})

# --- validation -------------------------------------------------------------------------------------


def _fail(field: str, message: str) -> ProtocolError:
    return ProtocolError(400, f"{field}: {message}", field)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _require_str(obj: dict, key: str, where: str, *, empty: bool = False) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or (not empty and not value):
        raise _fail(f"{where}.{key}", "required, a string" if empty else "required, a non-empty string")
    return value


def _optional(obj: dict, key: str, where: str, kinds: tuple[type, ...], what: str) -> None:
    value = obj.get(key)
    if value is not None and (not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)):
        raise _fail(f"{where}{key}", f"must be {what}")


def _one_of(obj: dict, key: str, where: str, allowed: tuple[str, ...]) -> None:
    value = obj.get(key)
    if value is not None and value not in allowed:
        raise _fail(f"{where}{key}", f"must be one of {', '.join(allowed)}, got {value!r}")


def _check_part(part: Any, where: str, role: str) -> None:
    if not isinstance(part, dict):
        raise _fail(where, "must be an object")
    kind = part.get("type")
    if kind in TEXT_PARTS:
        _require_str(part, "text", where, empty=True)
    elif kind == "refusal":
        if role != "assistant":
            raise _fail(f"{where}.type", "refusal parts may only appear in assistant messages")
        _require_str(part, "refusal", where, empty=True)
    elif kind == "input_image":
        if not any(isinstance(part.get(key), str) and part[key] for key in ("image_url", "file_id")):
            raise _fail(f"{where}.image_url", "required, a data: URL or an http(s) URL")
        _one_of(part, "detail", f"{where}.", IMAGE_DETAILS)
    elif kind == "input_file":
        if not any(isinstance(part.get(key), str) and part[key] for key in ("file_data", "file_url", "file_id")):
            raise _fail(f"{where}.file_data", "required (or file_url), the file's content")
        _optional(part, "filename", f"{where}.", (str,), "a string")
    else:
        raise _fail(f"{where}.type", f"unknown content part type {kind!r}")


def _check_parts(content: Any, where: str, role: str, what: str) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _fail(where, f"required, a string or an array of {what}")
    for j, part in enumerate(content):
        _check_part(part, f"{where}.{j}", role)


def _check_message(item: dict, where: str) -> None:
    role = item.get("role")
    if role not in ROLES:
        raise _fail(f"{where}.role", f"must be one of {', '.join(ROLES)}, got {role!r}")
    _check_parts(item.get("content"), f"{where}.content", role, "content parts")


def _check_call(item: dict, where: str) -> None:
    _require_str(item, "call_id", where)
    _require_str(item, "name", where)
    _optional(item, "namespace", f"{where}.", (str,), "a string")
    if item["type"] == "function_call":
        _require_str(item, "arguments", where, empty=True)
    else:
        _require_str(item, "input", where, empty=True)


def _check_output(item: dict, where: str) -> None:
    _require_str(item, "call_id", where)
    _check_parts(item.get("output"), f"{where}.output", "user", "input_text, input_image or input_file parts")


def _check_reasoning(item: dict, where: str) -> None:
    for key, part_type in (("summary", "summary_text"), ("content", "reasoning_text")):
        parts = item.get(key)
        if parts is None:
            continue
        if not isinstance(parts, list):
            raise _fail(f"{where}.{key}", f"must be an array of {part_type} parts")
        for j, part in enumerate(parts):
            if not isinstance(part, dict) or not isinstance(part.get("text"), str):
                raise _fail(f"{where}.{key}.{j}.text", "required, a string")
    _optional(item, "encrypted_content", f"{where}.", (str,), "a string")


def _check_additional_tools(item: dict, where: str) -> None:
    _check_tools(item.get("tools"), f"{where}.tools", required=True)


_ITEM_CHECKS = {
    "message": _check_message,
    "function_call": _check_call,
    "custom_tool_call": _check_call,
    "function_call_output": _check_output,
    "custom_tool_call_output": _check_output,
    "reasoning": _check_reasoning,
    "additional_tools": _check_additional_tools,
}


def _item_type(item: dict) -> str | None:
    kind = item.get("type")
    return "message" if kind is None and "role" in item else kind


def _check_input(value: Any, required: bool) -> None:
    if value is None:
        if required:
            raise _fail("input", "required, a string or an array of input items")
        return
    if isinstance(value, str):
        return
    if not isinstance(value, list):
        raise _fail("input", "must be a string or an array of input items")
    for i, item in enumerate(value):
        where = f"input.{i}"
        if not isinstance(item, dict):
            raise _fail(where, "must be an object")
        kind = _item_type(item)
        if not isinstance(kind, str) or not kind:
            raise _fail(f"{where}.type", "required, a string")
        check = _ITEM_CHECKS.get(kind)
        if check is not None:
            check(item, where)


def _check_tool(tool: Any, where: str, *, inner: bool = False) -> None:
    if not isinstance(tool, dict):
        raise _fail(where, "must be an object")
    kind = tool.get("type")
    if not isinstance(kind, str) or not kind:
        raise _fail(f"{where}.type", "required, a string")
    if inner and kind not in ("function", "custom"):
        raise _fail(f"{where}.type", f"a namespace holds function and custom tools, got {kind!r}")
    if kind in ("function", "custom"):
        _require_str(tool, "name", where)
        _optional(tool, "description", f"{where}.", (str,), "a string")
    if kind == "function":
        _optional(tool, "parameters", f"{where}.", (dict,), "a JSON schema object")
        _optional(tool, "strict", f"{where}.", (bool,), "true or false")
    elif kind == "custom":
        fmt = tool.get("format")
        if fmt is not None:
            if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "grammar"):
                raise _fail(f"{where}.format.type", "must be text or grammar")
            if fmt["type"] == "grammar":
                _require_str(fmt, "definition", f"{where}.format")
                _one_of(fmt, "syntax", f"{where}.format.", ("lark", "regex"))
    elif kind == "namespace":
        _require_str(tool, "name", where)
        _optional(tool, "description", f"{where}.", (str,), "a string")
        inner_tools = tool.get("tools")
        if not isinstance(inner_tools, list):
            raise _fail(f"{where}.tools", "required, an array of function and custom tools")
        for j, inner_tool in enumerate(inner_tools):
            _check_tool(inner_tool, f"{where}.tools.{j}", inner=True)


def _check_tools(tools: Any, where: str = "tools", *, required: bool = False) -> None:
    if tools is None and not required:
        return
    if not isinstance(tools, list):
        raise _fail(where, "must be an array of tools")
    for i, tool in enumerate(tools):
        _check_tool(tool, f"{where}.{i}")


def _check_tool_choice(choice: Any) -> None:
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise _fail("tool_choice", f"must be auto, none, required or an object, got {choice!r}")
        return
    if not isinstance(choice, dict) or not isinstance(choice.get("type"), str) or not choice["type"]:
        raise _fail("tool_choice.type", "required, a string")
    if choice["type"] in ("function", "custom"):
        _require_str(choice, "name", "tool_choice")


def _check_options(body: dict) -> None:
    for key, kinds, what in (("instructions", (str,), "a string"), ("stream", (bool,), "true or false"),
                             ("store", (bool,), "true or false"), ("parallel_tool_calls", (bool,), "true or false"),
                             ("prompt_cache_key", (str,), "a string"), ("metadata", (dict,), "an object"),
                             ("client_metadata", (dict,), "an object"), ("include", (list,), "an array")):
        _optional(body, key, "", kinds, what)
    if any(not isinstance(value, str) for value in body.get("include") or ()):
        raise _fail("include", "must be an array of strings")
    max_output = body.get("max_output_tokens")
    if isinstance(max_output, float) and max_output.is_integer():
        max_output = int(max_output)  # JSON says 1651.0 is the integer 1651
    if max_output is not None and (not isinstance(max_output, int) or isinstance(max_output, bool) or max_output < 1):
        raise _fail("max_output_tokens", "must be a positive integer")
    for key, high in (("temperature", 2), ("top_p", 1)):
        value = body.get(key)
        if value is not None and (not _is_number(value) or not 0 <= value <= high):
            raise _fail(key, f"must be a number from 0 to {high}")
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise _fail("reasoning", "must be an object")
        _one_of(reasoning, "effort", "reasoning.", EFFORTS)
        _one_of(reasoning, "summary", "reasoning.", SUMMARIES)
        _one_of(reasoning, "generate_summary", "reasoning.", SUMMARIES)
    text = body.get("text")
    if text is not None:
        if not isinstance(text, dict):
            raise _fail("text", "must be an object")
        _one_of(text, "verbosity", "text.", VERBOSITIES)
        fmt = text.get("format")
        if fmt is not None:
            if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_schema", "json_object"):
                raise _fail("text.format.type", "must be text, json_schema or json_object")
            if fmt["type"] == "json_schema":
                _require_str(fmt, "name", "text.format")
                if not isinstance(fmt.get("schema"), dict):
                    raise _fail("text.format.schema", "required, a JSON schema object")
                _optional(fmt, "strict", "text.format.", (bool,), "true or false")


def validate_request(body: Any, *, count: bool = False) -> None:
    """Raise :class:`ProtocolError` (400, the message starting with the field's path) for a bad request.

    ``count`` checks a ``/responses/input_tokens`` body, where ``model`` and ``input`` may be absent.
    Structure and the values the conversion relies on are checked, not every limit of the API.
    """
    if not isinstance(body, dict):
        raise ProtocolError(400, "request body must be a JSON object", None)
    model = body.get("model")
    if model is None and not count:
        raise _fail("model", "required, a non-empty string")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise _fail("model", "must be a non-empty string")
    for key in ("previous_response_id", "conversation"):
        if body.get(key) is not None:
            raise _fail(key, STATELESS)
    if body.get("background") is True:
        raise _fail("background", "background responses are not supported by this gateway: stream the answer")
    _check_input(body.get("input"), required=not count and body.get("prompt") is None)
    _check_tools(body.get("tools"))
    _check_tool_choice(body.get("tool_choice"))
    _check_options(body)


# --- from a client's request -----------------------------------------------------------------------------

def _image_block(part: dict, where: str, *, nested: bool = False) -> dict:
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        raise _fail(f"{where}.file_id", "images by file id cannot be used here (the gateway stores no files): "
                                        "send a data: URL or an https URL")
    if url.startswith("data:"):
        parsed = parse_data_url(url)
        if parsed is None:
            raise _fail(f"{where}.image_url", "data URLs must be base64 encoded")
        if parsed[0] not in IMAGE_MEDIA_TYPES:
            raise _fail(f"{where}.image_url", f"image type must be one of {', '.join(IMAGE_MEDIA_TYPES)}")
        block: dict[str, Any] = {"type": "image",
                                 "source": {"type": "base64", "media_type": parsed[0], "data": parsed[1]}}
    elif url.startswith(("http://", "https://")):
        block = {"type": "image", "source": {"type": "url", "url": url}}
    else:
        raise _fail(f"{where}.image_url", "must be a data: URL or an http(s) URL")
    if isinstance(part.get("detail"), str) and part["detail"] != "auto" and not nested:
        block["x_item"] = {"detail": part["detail"]}  # (not inside a tool result: renderers strip no deeper)
    return block


def _file_block(part: dict, where: str) -> dict:
    filename = part.get("filename") if isinstance(part.get("filename"), str) and part["filename"] else None
    block: dict[str, Any] = {"type": "document"}
    if isinstance(part.get("file_data"), str) and part["file_data"]:
        parsed = parse_data_url(part["file_data"])
        if parsed is None and (filename or "").lower().endswith(".pdf"):
            parsed = ("application/pdf", part["file_data"])  # bare base64, named as a PDF
        if parsed is None or parsed[0] != "application/pdf":
            raise _fail(f"{where}.file_data", "only PDF files are supported (a base64 data:application/pdf URL)")
        block["source"] = {"type": "base64", "media_type": "application/pdf", "data": parsed[1]}
    elif isinstance(part.get("file_url"), str) and part["file_url"]:
        block["source"] = {"type": "url", "url": part["file_url"]}
    else:
        raise _fail(f"{where}.file_id", "files by id cannot be used here (the gateway stores no files): "
                                        "send file_data or a file_url")
    if filename:
        block["title"] = filename
    return block


def _content_blocks(content: Any, where: str, role: str, *, nested: bool = False) -> list[dict]:
    """Form blocks of a message's content or (``nested``) a tool output's parts (blank text gives none)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    blocks = []
    for j, part in enumerate(content):
        kind = part["type"]
        part_where = f"{where}.{j}"
        if kind in TEXT_PARTS or kind == "refusal":
            text = part["refusal"] if kind == "refusal" else part["text"]
            if text.strip():
                blocks.append({"type": "text", "text": text})
        elif role != "user":
            raise _fail(f"{part_where}.type", f"{role} messages may only hold text here")
        elif kind == "input_image":
            blocks.append(_image_block(part, part_where, nested=nested))
        else:
            blocks.append(_file_block(part, part_where))
    return blocks


def _own_fields(item: dict, skip: tuple[str, ...]) -> dict | None:
    own = {key: value for key, value in item.items() if key not in skip}
    return own or None


def _with_item(blocks: list[dict], own: dict | None) -> list[dict]:
    if own:
        for block in blocks:
            block["x_item"] = {**block["x_item"], **own} if "x_item" in block else own
    return blocks


def _tool_output(content: Any, where: str) -> Any:
    return content if isinstance(content, str) else _content_blocks(content, where, "user", nested=True)


class _Reader:
    """Input items in order, into the form's system and turns."""

    def __init__(self) -> None:
        self.system: list[dict] = []
        self.system_items: list[dict | None] = []  # per system block: the message it was, what came before
        self.turns: list[tuple[str, list[dict]]] = []
        self.waiting: list[dict] = []  # items the form cannot say, for the next block's x_before
        self.tools: list[dict] = []  # tools an additional_tools item brought
        self.conversation = False  # a user or assistant item has come: system messages stay in place

    def add(self, role: str, blocks: list[dict]) -> None:
        if not blocks:
            return
        if self.waiting:
            blocks[0]["x_before"], self.waiting = self.waiting, []
        if role == "system" and not self.conversation:
            for block in blocks:  # the system stays plain text blocks: any upstream takes them as they are
                meta = {key: block.pop(f"x_{key}") for key in ("item", "before") if f"x_{key}" in block}
                self.system.append(block)
                self.system_items.append(meta or None)
            return
        self.conversation = self.conversation or role != "system"
        self.turns.append((role, blocks))

    def read(self, item: dict, where: str) -> None:
        kind = _item_type(item)
        if kind == "message":
            role = item["role"]
            own = _own_fields(item, ("type", "role", "content"))
            if role in ("system", "developer"):
                own = {**(own or {}), "role": role}
            blocks = _content_blocks(item["content"], f"{where}.content", role)
            self.add("system" if role in ("system", "developer") else role, _with_item(blocks, own))
        elif kind in ("function_call", "custom_tool_call"):
            self.add("assistant", [self._call(item, kind)])
        elif kind in ("function_call_output", "custom_tool_call_output"):
            block = {"type": "tool_result", "tool_use_id": item["call_id"],
                     "content": _tool_output(item["output"], f"{where}.output")}
            self.add("user", _with_item([block], _own_fields(item, ("type", "call_id", "output"))))
        elif kind == "reasoning":
            self.add("assistant", self._reasoning(item))
        else:
            if kind == "additional_tools":
                extras: dict = {}
                for tool in form_tools(item["tools"], extras):
                    tool["x_additional"] = True
                    self.tools.append(tool)
            self.waiting.append(item)

    @staticmethod
    def _call(item: dict, kind: str) -> dict:
        name = item["name"]
        if isinstance(item.get("namespace"), str) and item["namespace"]:
            name = namespaced_name(item["namespace"], name)
        block: dict[str, Any] = {"type": "tool_use", "id": item["call_id"], "name": name}
        if name != item["name"]:  # the call names its namespace even where the request's tools do not
            block["x_namespace"] = {"name": item["namespace"], "tool": item["name"]}
        if kind == "custom_tool_call":
            block["input"] = {"input": item["input"]}
            block["x_kind"] = "custom"
            own = _own_fields(item, ("type", "call_id", "name", "input", "namespace"))
        else:
            block["input"] = parse_arguments(item["arguments"])
            own = _own_fields(item, ("type", "call_id", "name", "namespace"))
        if own:
            block["x_item"] = own
        return block

    @staticmethod
    def _reasoning(item: dict) -> list[dict]:
        summary = [p["text"] for p in item.get("summary") or () if p["text"]]
        text = "\n\n".join(summary) or "\n\n".join(p["text"] for p in item.get("content") or () if p["text"])
        signature, origin = thinking_origin(item.get("encrypted_content"))
        if not text and not signature:
            return []
        # without a signature the text is the gateway's to give (like a chat upstream's reasoning)
        block: dict[str, Any] = {"type": "thinking", "thinking": text, "signature": signature or GATEWAY_SIGNATURE}
        if origin and signature:
            block["x_origin"] = origin
        own = _own_fields(item, ("type", "summary", "encrypted_content"))
        if len(summary) > 1:
            own = {**(own or {}), "summary": item["summary"]}
        if own:
            block["x_item"] = own
        return [block]


def _merge(turns: list[tuple[str, list[dict]]]) -> list[dict]:
    """Consecutive same-role turns as one message, a user turn's tool results first (as Anthropic wants)."""
    merged: list[dict] = []
    for role, blocks in turns:
        if merged and merged[-1]["role"] == role:
            merged[-1]["content"].extend(blocks)
        else:
            merged.append({"role": role, "content": list(blocks)})
    for message in merged:
        content = message["content"]
        if message["role"] == "user" and any(b["type"] == "tool_result" for b in content):
            message["content"] = ([b for b in content if b["type"] == "tool_result"]
                                  + [b for b in content if b["type"] != "tool_result"])
    return merged


def _named_once(tools: list[dict], added: list[dict]) -> list[dict]:
    """``tools`` and the ``added`` ones (an additional_tools item's) not already there by name; two of the
    request's own tools with one name (a namespace's are ``<namespace>__<name>`` here) are refused."""
    seen: set[str] = set()
    for tool in tools:
        if tool["name"] in seen:
            raise _fail("tools", f"two tools are called {tool['name']!r} (a namespace's tools are called "
                                 "<namespace>__<name> here)")
        seen.add(tool["name"])
    for tool in added:
        if tool["name"] not in seen:
            seen.add(tool["name"])
            tools.append(tool)
    return tools


def parse_request(body: dict, *, count: bool = False) -> dict:
    """A Responses request as the internal form (see the module docstring); ProtocolError 400 naming
    the field for what is invalid, or what the form cannot carry (files by id, images in a system
    message). ``count`` reads an ``input_tokens`` body, which may have no model and no conversation."""
    validate_request(body, count=count)
    extras = {key: value for key, value in body.items() if key not in FORM_FIELDS}
    reader = _Reader()
    if isinstance(body.get("instructions"), str) and body["instructions"].strip():
        reader.add("system", [{"type": "text", "text": body["instructions"]}])
    items = body.get("input")
    if isinstance(items, str):
        reader.add("user", [{"type": "text", "text": items}] if items.strip() else [])
    else:
        for i, item in enumerate(items or ()):
            reader.read(item, f"input.{i}")
    if reader.waiting:
        extras["x_input_tail"] = reader.waiting
    messages = _merge(reader.turns)
    if not count and not any(m["role"] != "system" for m in messages) and body.get("prompt") is None:
        raise _fail("input", "at least one non-empty user or assistant item is required")

    form: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if reader.system:
        form["system"] = reader.system
        if any(reader.system_items):
            extras["x_system"] = reader.system_items
    tools = _named_once(form_tools(body.get("tools") or [], extras), reader.tools)
    if tools:
        form["tools"] = tools
    choice = form_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"), extras)
    if choice is not None and choice["type"] == "tool" and not any(t["name"] == choice["name"] for t in tools):
        inner = [t["name"] for t in tools if (t.get("x_namespace") or {}).get("tool") == choice["name"]]
        if len(inner) == 1:  # a namespace's tool named by its own name
            choice["name"] = inner[0]
    if choice is not None:
        form["tool_choice"] = choice
    if body.get("max_output_tokens") is not None:
        form["max_tokens"] = int(body["max_output_tokens"])
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            form[key] = body[key]
    reasoning = body.get("reasoning") or {}
    if reasoning.get("effort") is not None:
        form["x_effort"] = reasoning["effort"]
    summary = reasoning.get("summary") or reasoning.get("generate_summary")
    if summary is not None:
        form["x_reasoning_summary"] = summary
    rest = {k: v for k, v in reasoning.items() if k not in ("effort", "summary", "generate_summary")}
    if rest:
        extras["x_reasoning"] = rest
    text = body.get("text") or {}
    fmt = text.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        form["x_output_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        form["x_output_format"] = {"type": "json_schema", **{k: v for k, v in fmt.items() if k != "type"}}
    rest = {k: v for k, v in text.items() if k != "format"}
    if rest:
        extras["x_text"] = rest
    if isinstance(body.get("prompt_cache_key"), str) and body["prompt_cache_key"]:
        form["x_cache_key"] = body["prompt_cache_key"]
    if body.get("stream"):
        form["stream"] = True
    if extras:
        form["x_extras"] = {DIALECT_NAME: extras}
    return form


def unserved_tools(form: dict) -> list[str]:
    """The client's hosted tools only a Responses upstream can run (for a log line when another serves)."""
    hosted = ((form.get("x_extras") or {}).get(DIALECT_NAME) or {}).get("x_tools") or []
    return [str(tool.get("type")) for _, tool in hosted]


# --- to a Responses upstream ----------------------------------------------------------------------------

def _text_part(text: str, role: str) -> dict:
    return {"type": "output_text" if role == "assistant" else "input_text", "text": text}


def _image_part(block: dict, where: str) -> dict:
    source = block.get("source") or {}
    detail = (block.get("x_item") or {}).get("detail") or "auto"
    if source.get("type") == "url":
        return {"type": "input_image", "image_url": source["url"], "detail": detail}
    if source.get("type") == "base64":
        return {"type": "input_image", "image_url": data_url(source["media_type"], source["data"]), "detail": detail}
    raise ProtocolError(400, f"{where}.source: images by file id cannot be sent to this model", f"{where}.source")


def _file_part(block: dict, where: str) -> dict:
    source = block.get("source") or {}
    kind = source.get("type")
    filename = block.get("title") if isinstance(block.get("title"), str) and block["title"] else "document.pdf"
    if kind == "base64" and isinstance(source.get("media_type"), str):
        return {"type": "input_file", "filename": filename,
                "file_data": data_url(source["media_type"], source.get("data") or "")}
    if kind == "url":
        return {"type": "input_file", "file_url": source["url"]}
    if kind == "text":
        return {"type": "input_text", "text": source.get("data") or ""}
    if kind == "content":
        return {"type": "input_text", "text": text_of_blocks(source.get("content"))}
    raise ProtocolError(400, f"{where}.source: documents by file id cannot be sent to this model",
                        f"{where}.source")


def _part(block: dict, where: str, role: str) -> dict | None:
    """A Responses content part for a form block of a message (None for blocks left out)."""
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return _text_part(text, role) if isinstance(text, str) and text else None
    if role == "assistant":
        return None
    if kind == "image":
        return _image_part(block, where)
    if kind == "document":
        return _file_part(block, where)
    if kind == "search_result":
        parts = [block.get("title"), block.get("source"), text_of_blocks(block.get("content"))]
        return _text_part("\n".join(p for p in parts if isinstance(p, str) and p), role)
    return None


def _output(block: dict, where: str) -> Any:
    content = block.get("content")
    if isinstance(content, list):
        parts = [p for p in (_part(b, f"{where}.content.{j}", "user") for j, b in enumerate(content)) if p]
        if block.get("is_error"):
            parts.insert(0, {"type": "input_text", "text": TOOL_ERROR_PREFIX.strip()})
        return parts
    text = content if isinstance(content, str) else ""
    return TOOL_ERROR_PREFIX + text if block.get("is_error") else text


class _Writer:
    """Form messages into input items, with the item fields kept in ``x_item`` and ``x_before``."""

    def __init__(self, form: dict, names: ToolNames):
        self.names = names
        self.index = ToolIndex(form)
        self.items: list[dict] = []
        self.custom_calls: set[str] = set()
        self._message: dict | None = None  # the message item the last blocks went into
        self._role = ""
        self._own: Any = None

    def _flush(self) -> None:
        self._message = self._own = None
        self._role = ""

    def before(self, block: dict) -> None:
        """The items the form had no word for that came before ``block``."""
        waiting = block.get("x_before")
        if waiting:
            self._flush()
            self.items.extend(waiting)

    def content(self, role: str, block: dict, where: str) -> None:
        part = _part(block, where, role)
        if part is None:
            return
        own = block.get("x_item") if block.get("type") == "text" or role != "assistant" else None
        own = {k: v for k, v in own.items() if k != "detail"} or None if isinstance(own, dict) else None
        if self._message is None or self._role != role or self._own != own:
            message: dict[str, Any] = {"type": "message", "role": "developer" if role == "system" else role,
                                       "content": []}
            message.update(own or {})  # a system message's own role, its id, phase…
            self.items.append(message)
            self._message, self._role, self._own = message, role, own
        self._message["content"].append(part)

    def block(self, role: str, block: dict, where: str) -> None:
        self.before(block)
        kind = block.get("type")
        if kind == "tool_use":
            self._flush()
            self.items.append(self._call(block))
        elif kind == "tool_result":
            self._flush()
            call_id = self.names.id_out(block["tool_use_id"])
            kind_ = "custom_tool_call_output" if call_id in self.custom_calls else "function_call_output"
            item = {"type": kind_, "call_id": call_id, "output": _output(block, where)}
            item.update(block.get("x_item") or {})
            self.items.append(item)
        elif kind == "thinking":
            encrypted = responses_signature(block)
            if encrypted is None:
                return  # the gateway's, or another upstream's: nothing this upstream can read
            self._flush()
            self.items.append(_reasoning_item(block, encrypted))
        else:
            self.content(role, block, where)

    def _call(self, block: dict) -> dict:
        kind, namespace, name = self.index.call_of(block)
        call_id = self.names.id_out(block["id"])
        own = dict(block.get("x_item") or {})
        item: dict[str, Any]
        if kind == "custom":
            self.custom_calls.add(call_id)
            item = {"type": "custom_tool_call", "call_id": call_id, "name": name,
                    "input": custom_input_text(block.get("input"))}
        else:
            raw = own.pop("arguments", None)
            arguments = raw if isinstance(raw, str) and _same_json(raw, block.get("input")) \
                else dump_json(block.get("input") or {})
            item = {"type": "function_call", "call_id": call_id,
                    "name": name if namespace else self.names.name_out(name), "arguments": arguments}
        if namespace:
            item["namespace"] = namespace
        item.update(own)
        return item


def _same_json(raw: str, value: Any) -> bool:
    try:
        return json.loads(raw) == value
    except ValueError:
        return False


def _reasoning_item(block: dict, encrypted: str) -> dict:
    own = dict(block.get("x_item") or {})
    summary = own.pop("summary", None)
    text = block.get("thinking") if isinstance(block.get("thinking"), str) else ""
    if not (isinstance(summary, list) and "\n\n".join(p.get("text", "") for p in summary) == text):
        summary = [{"type": "summary_text", "text": text}] if text else []
    item: dict[str, Any] = {"type": "reasoning", "summary": summary, "encrypted_content": encrypted}
    item.update(own)
    return item


def _reasoning(form: dict) -> dict | None:
    extras = (form.get("x_extras") or {}).get(DIALECT_NAME) or {}
    reasoning = dict(extras.get("x_reasoning") or {})
    effort = form.get("x_effort") or effort_for_thinking(form.get("thinking"), form.get("output_config"))
    if effort:
        reasoning["effort"] = effort
    summary = form.get("x_reasoning_summary")
    thinking = form.get("thinking")
    if summary is None and isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        summary = "auto"  # a client that asked for thinking wants to read some
    if summary:
        reasoning["summary"] = summary
    return reasoning or None


def render_request(form: dict, target: Target, context: Context) -> dict:
    """The form as a request for a Responses upstream (tool names and ids recorded in ``context``).

    ``store`` is always false (nothing is kept upstream either), reasoning goes back only as the
    encrypted items such an upstream made, and the client's own Responses fields (``x_extras``) are
    merged back. A request that asks for reasoning goes without ``temperature``/``top_p`` (reasoning
    models refuse them); ``stop_sequences`` and ``top_k`` have no Responses word and are left out.
    Raises :class:`ProtocolError` for content this API cannot take, and for ``n`` above 1.
    """
    n = form.get("x_n")
    if n is not None and n != 1:
        raise ProtocolError(400, "n: only n=1 is supported", "n")
    names = context.names
    writer = _Writer(form, names)
    instructions: list[str] = []
    extras = dict((form.get("x_extras") or {}).get(DIALECT_NAME) or {})
    system = form.get("system")
    if isinstance(system, str):
        instructions.append(system)
    blocks = system if isinstance(system, list) else []
    items = extras.get("x_system")
    items = items if isinstance(items, list) and len(items) == len(blocks) else [None] * len(blocks)
    for j, (block, meta) in enumerate(zip(blocks, items, strict=True)):
        if not isinstance(block, dict) or block.get("type") != "text":
            continue
        meta = meta or {}
        writer.before({"x_before": meta.get("before")})
        if (meta.get("item") or {}).get("role"):
            writer.block("system", {**block, "x_item": meta["item"]}, f"system.{j}")
        else:
            instructions.append(block.get("text") or "")
    for i, message in enumerate(form["messages"]):
        role = message["role"]
        content = message["content"]
        writer._flush()
        if isinstance(content, str):
            if content:
                writer.content(role, {"type": "text", "text": content}, f"messages.{i}.content")
            continue
        for j, block in enumerate(content):
            if isinstance(block, dict):
                writer.block(role, block, f"messages.{i}.content.{j}")
    writer.items.extend(extras.get("x_input_tail") or ())

    out: dict[str, Any] = {key: value for key, value in extras.items() if key not in BOOKKEEPING}
    out["model"] = target.upstream_model
    text = "\n\n".join(t for t in instructions if t.strip())
    if text:
        out["instructions"] = text
    out["input"] = writer.items
    tools = responses_tools(form, names)
    if tools:
        out["tools"] = tools
        out["tool_choice"] = responses_tool_choice(form, names)
        out["parallel_tool_calls"] = parallel_tool_calls(form)
    max_tokens = clamp_max_tokens(form.get("max_tokens"), target.max_output_tokens)
    if max_tokens is not None:
        out["max_output_tokens"] = max_tokens
    reasoning = _reasoning(form)
    thinks = bool(reasoning) and (reasoning.get("effort") not in (None, "none") or bool(reasoning.get("summary")))
    for key in ("temperature", "top_p"):
        if form.get(key) is not None and not thinks:  # reasoning models refuse sampling settings
            out[key] = form[key]
    if reasoning:
        out["reasoning"] = reasoning
    if thinks:
        include = [v for v in out.get("include") or () if isinstance(v, str)]
        out["include"] = include if ENCRYPTED_REASONING in include else [*include, ENCRYPTED_REASONING]
    text_cfg = text_config(form)
    if text_cfg:
        out["text"] = text_cfg
    if form.get("x_cache_key"):
        out["prompt_cache_key"] = form["x_cache_key"]
    user = openai_user((form.get("metadata") or {}).get("user_id")) if isinstance(form.get("metadata"), dict) else None
    if user and "user" not in out and "safety_identifier" not in out:
        out["safety_identifier"] = user
    out["store"] = False
    if target.stream:
        out["stream"] = True
    else:
        out.pop("stream", None)
        out.pop("stream_options", None)
    return out


def passthrough_body(body: dict, target: Target) -> dict:
    """The client's own request for a Responses upstream: the model mapped, streaming as asked, and
    ``store: false``: the gateway refuses ``previous_response_id``, so a stored response could only
    keep the conversation on the upstream's side for nothing."""
    upstream = {**body, "model": target.upstream_model, "store": False}
    if target.stream:
        upstream["stream"] = True
    else:
        upstream.pop("stream", None)
    return upstream
