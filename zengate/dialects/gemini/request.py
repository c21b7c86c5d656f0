"""Gemini API requests (``generateContent``) into the internal form.

What Gemini CLI and Google's SDKs send: ``contents`` (turns of ``parts``), ``systemInstruction``,
``tools`` (``functionDeclarations``), ``toolConfig`` and ``generationConfig``; field names in
camelCase or snake_case (the Python SDK sends some of each). The model and whether to stream
are in the URL, not the body: the view puts them in as ``model`` and ``stream`` first.

Function calls keep their ``id`` (or get one, when an older client sent none, and the answers
that name the function are matched to the calls in order) and their ``thoughtSignature`` (kept
on the block, for a Gemini client's next turn). Fields the form has no word for wait in
``x_extras["gemini"]``; tools other than functions (Google Search, code execution…), which only
Google runs, go there too.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from ..anthropic.shapes import IMAGE_MEDIA_TYPES
from ..errors import ProtocolError

NAME = "gemini"

#: Request fields the form says itself; others are kept in ``x_extras["gemini"]``.
FORM_FIELDS = frozenset({"model", "stream", "contents", "system_instruction", "tools", "tool_config",
                         "generation_config"})
#: ``generationConfig`` fields the form says itself.
GENERATION_FIELDS = frozenset({"temperature", "top_p", "top_k", "max_output_tokens", "stop_sequences",
                               "candidate_count", "response_mime_type", "response_schema",
                               "response_json_schema", "thinking_config"})
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


def snake_keys(obj: Any) -> dict:
    """A dict's keys in snake_case (``maxOutputTokens`` and ``max_output_tokens`` alike); one level."""
    return {_snake(key): value for key, value in obj.items()} if isinstance(obj, dict) else {}


def _fail(field: str, message: str) -> ProtocolError:
    return ProtocolError(400, f"{field}: {message}", field)


# --- parts ------------------------------------------------------------------------------------

def _media_block(data: dict, where: str, *, inline: bool) -> dict:
    """``inlineData`` (base64) or ``fileData`` (a URI) as an image or document block."""
    media_type = data.get("mime_type")
    if not isinstance(media_type, str) or not media_type:
        raise _fail(f"{where}.mimeType", "required, a MIME type such as image/png")
    if inline:
        payload = data.get("data")
        if not isinstance(payload, str):
            raise _fail(f"{where}.data", "required, base64 text")
        source = {"type": "base64", "media_type": media_type, "data": payload}
    else:
        uri = data.get("file_uri")
        if not isinstance(uri, str) or not uri:
            raise _fail(f"{where}.fileUri", "required, the file's URI")
        source = {"type": "url", "url": uri}
    if media_type in IMAGE_MEDIA_TYPES:
        return {"type": "image", "source": source}
    if media_type == "application/pdf":
        return {"type": "document", "source": source}
    if media_type.startswith("text/") and inline:
        return {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                               "data": _decoded_text(source["data"], where)}}
    raise _fail(f"{where}.mimeType", f"{media_type} is not supported here: send images "
                f"({', '.join(sorted(IMAGE_MEDIA_TYPES))}), PDF or text")


def _decoded_text(data: str, where: str) -> str:
    try:
        return base64.b64decode(data, validate=False).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        raise _fail(f"{where}.data", "is not valid base64") from None


class _Calls:
    """The function calls of the conversation so far, to give each answer the id of its call."""

    def __init__(self) -> None:
        self.count = 0
        self.open: dict[str, list[str]] = {}  # function name → ids of calls not answered yet, in order

    def called(self, name: str, given: Any) -> str:
        self.count += 1
        call_id = given if isinstance(given, str) and given else f"call_gemini_{self.count}"
        self.open.setdefault(name, []).append(call_id)
        return call_id

    def answered(self, name: str, given: Any) -> str:
        waiting = self.open.get(name, [])
        if isinstance(given, str) and given:
            if given in waiting:
                waiting.remove(given)
            return given
        if waiting:
            return waiting.pop(0)
        self.count += 1
        return f"call_gemini_{self.count}"  # an answer to no call we saw: the upstream judges it


def _tool_result(response: dict, call_id: str, where: str) -> dict:
    """A ``functionResponse`` as a tool_result block: its ``output`` text, or the response as JSON."""
    body = response.get("response")
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise _fail(f"{where}.response", "must be an object")
    error = "error" in body and "output" not in body
    value = body.get("error" if error else "output", body)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id, "content": text}
    if error:
        block["is_error"] = True
    return block


def _part_blocks(part: Any, where: str, role: str, calls: _Calls) -> list[dict]:
    if not isinstance(part, dict):
        raise _fail(where, "each part must be an object")
    fields = snake_keys(part)
    signature = fields.get("thought_signature")
    if "text" in fields:
        text = fields["text"]
        if not isinstance(text, str):
            raise _fail(f"{where}.text", "must be a string")
        if fields.get("thought") is True:
            block = {"type": "thinking", "thinking": text, "signature": signature or "", "x_origin": NAME}
            return [block] if role == "assistant" else []  # thoughts are the model's only
        if not text:
            return []
        block = {"type": "text", "text": text}
        if isinstance(signature, str) and signature:
            block["x_item"] = {"thought_signature": signature}
        return [block]
    if "inline_data" in fields:
        return [_media_block(snake_keys(fields["inline_data"]), f"{where}.inlineData", inline=True)]
    if "file_data" in fields:
        return [_media_block(snake_keys(fields["file_data"]), f"{where}.fileData", inline=False)]
    if "function_call" in fields:
        call = snake_keys(fields["function_call"])
        name = call.get("name")
        if not isinstance(name, str) or not name:
            raise _fail(f"{where}.functionCall.name", "required, a non-empty string")
        args = call.get("args")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise _fail(f"{where}.functionCall.args", "must be an object")
        block = {"type": "tool_use", "id": calls.called(name, call.get("id")), "name": name, "input": args}
        if isinstance(signature, str) and signature:
            block["x_item"] = {"thought_signature": signature}
        return [block]
    if "function_response" in fields:
        response = snake_keys(fields["function_response"])
        name = response.get("name")
        if not isinstance(name, str) or not name:
            raise _fail(f"{where}.functionResponse.name", "required, a non-empty string")
        return [_tool_result(response, calls.answered(name, response.get("id")), f"{where}.functionResponse")]
    if fields.keys() & {"executable_code", "code_execution_result"}:
        raise _fail(where, "code execution parts are run by Google only; this gateway cannot carry them")
    if fields.keys() <= {"thought", "thought_signature", "video_metadata", "part_metadata", "media_resolution"}:
        return []  # nothing to say: a bare signature or metadata
    raise _fail(where, f"unknown part with {', '.join(sorted(fields))}")


def _turns(contents: Any) -> list[dict]:
    """``contents`` as the form's alternating messages (consecutive same-role turns merged, a user
    turn's tool results first)."""
    if not isinstance(contents, list) or not contents:
        raise _fail("contents", "required, a non-empty list of turns")
    calls = _Calls()
    merged: list[dict] = []
    for i, content in enumerate(contents):
        where = f"contents.{i}"
        if not isinstance(content, dict):
            raise _fail(where, "each turn must be an object with parts")
        role = content.get("role") or "user"
        if role not in ("user", "model", "function"):
            raise _fail(f"{where}.role", f"must be user or model, got {role!r}")
        role = "assistant" if role == "model" else "user"
        parts = content.get("parts")
        if not isinstance(parts, list):
            raise _fail(f"{where}.parts", "required, a list of parts")
        blocks = [b for j, part in enumerate(parts) for b in _part_blocks(part, f"{where}.parts.{j}", role, calls)]
        if not blocks:
            continue
        if merged and merged[-1]["role"] == role:
            merged[-1]["content"].extend(blocks)
        else:
            merged.append({"role": role, "content": blocks})
    for message in merged:
        if message["role"] == "user":
            content = message["content"]
            message["content"] = ([b for b in content if b["type"] == "tool_result"]
                                  + [b for b in content if b["type"] != "tool_result"])
    if not merged:
        raise _fail("contents", "at least one turn with text, media or a function call is required")
    return merged


def _system(instruction: Any) -> str | None:
    """``systemInstruction``: a Content (whatever its role) or, from some clients, a plain string."""
    if instruction is None:
        return None
    if isinstance(instruction, str):
        return instruction or None
    parts = instruction.get("parts") if isinstance(instruction, dict) else None
    if not isinstance(parts, list):
        raise _fail("systemInstruction.parts", "required, a list of text parts")
    texts = []
    for j, part in enumerate(parts):
        text = snake_keys(part).get("text")
        if not isinstance(text, str):
            raise _fail(f"systemInstruction.parts.{j}.text", "the system instruction takes text parts only")
        texts.append(text)
    joined = "\n".join(t for t in texts if t)
    return joined or None


# --- tools ------------------------------------------------------------------------------------

GEMINI_TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}
#: Schema keywords as the Python SDK may spell them, in JSON Schema's spelling (None: dropped).
SCHEMA_KEYWORDS = {"any_of": "anyOf", "max_items": "maxItems", "min_items": "minItems", "max_length": "maxLength",
                   "min_length": "minLength", "max_properties": "maxProperties", "min_properties": "minProperties",
                   "property_ordering": None, "propertyOrdering": None}
_SUBSCHEMAS = ("items", "anyOf", "oneOf", "allOf", "not", "additionalProperties")


def json_schema(schema: Any) -> Any:
    """A Gemini ``Schema`` (OpenAPI's subset, types in capitals, ``nullable``) as JSON Schema;
    a schema already in JSON Schema comes out the same."""
    if isinstance(schema, list):
        return [json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        key = SCHEMA_KEYWORDS.get(key, key)
        if key is None or (key == "type" and value == "TYPE_UNSPECIFIED"):
            continue
        if key == "type" and isinstance(value, str) and value in GEMINI_TYPES:
            value = value.lower()
        elif key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            value = {name: json_schema(sub) for name, sub in value.items()}
        elif key in _SUBSCHEMAS:
            value = json_schema(value)
        out[key] = value
    if out.pop("nullable", False) is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _tools(tools: Any) -> tuple[list[dict], list[dict]]:
    """The function declarations as form tools, and the other tools (Google's own) as sent."""
    if tools is None:
        return [], []
    if not isinstance(tools, list):
        raise _fail("tools", "must be a list")
    functions, others = [], []
    for i, tool in enumerate(tools):
        fields = snake_keys(tool)
        if not fields:
            raise _fail(f"tools.{i}", "must be an object")
        declarations = fields.pop("function_declarations", None)
        if declarations is not None:
            if not isinstance(declarations, list):
                raise _fail(f"tools.{i}.functionDeclarations", "must be a list")
            functions.extend(_function(d, f"tools.{i}.functionDeclarations.{j}") for j, d in enumerate(declarations))
        if fields:
            others.append(fields)
    return functions, others


def _function(declaration: Any, where: str) -> dict:
    fields = snake_keys(declaration)
    name = fields.get("name")
    if not isinstance(name, str) or not name:
        raise _fail(f"{where}.name", "required, a non-empty string")
    schema = fields.get("parameters_json_schema", fields.get("parameters"))
    if schema is not None and not isinstance(schema, dict):
        raise _fail(f"{where}.parameters", "must be a schema object")
    schema = json_schema(schema) if schema else {"type": "object", "properties": {}}
    schema.setdefault("type", "object")
    tool: dict[str, Any] = {"name": name, "input_schema": schema}
    if isinstance(fields.get("description"), str) and fields["description"]:
        tool["description"] = fields["description"]
    return tool


def _tool_choice(config: Any) -> dict | None:
    calling = snake_keys(snake_keys(config).get("function_calling_config"))
    mode = str(calling.get("mode") or "").upper()
    allowed = calling.get("allowed_function_names")
    if mode == "NONE":
        return {"type": "none"}
    if mode == "ANY":
        if isinstance(allowed, list) and len(allowed) == 1 and isinstance(allowed[0], str):
            return {"type": "tool", "name": allowed[0]}
        return {"type": "any"}
    if mode in ("AUTO", "VALIDATED"):
        return {"type": "auto"}
    return None


# --- generation config ---------------------------------------------------------------------------

def _thinking(config: Any) -> dict[str, Any]:
    """``thinkingConfig`` as the form's ``thinking`` or ``x_effort``."""
    fields = snake_keys(config)
    budget, level = fields.get("thinking_budget"), fields.get("thinking_level")
    if isinstance(level, str) and level:
        return {"x_effort": level.lower()}
    if isinstance(budget, int) and not isinstance(budget, bool):
        if budget == 0:
            return {"thinking": {"type": "disabled"}}
        if budget < 0:  # dynamic: the model decides
            return {"x_effort": "medium"}
        return {"thinking": {"type": "enabled", "budget_tokens": budget}}
    return {}


def _generation(config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``generationConfig`` as form fields, and the fields the form has no word for."""
    if config is None:
        return {}, {}
    if not isinstance(config, dict):
        raise _fail("generationConfig", "must be an object")
    fields = snake_keys(config)
    form: dict[str, Any] = {}
    for name, key in (("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k"),
                      ("max_output_tokens", "max_tokens"), ("candidate_count", "x_n")):
        value = fields.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _fail(f"generationConfig.{name}", "must be a number")
            form[key] = value
    stops = fields.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _fail("generationConfig.stopSequences", "must be a list of strings")
        if [s for s in stops if s]:
            form["stop_sequences"] = [s for s in stops if s]
    schema = fields.get("response_json_schema", fields.get("response_schema"))
    if fields.get("response_mime_type") == "application/json" or schema is not None:
        form["x_output_format"] = ({"type": "json_schema", "name": "output", "schema": json_schema(schema)}
                                   if isinstance(schema, dict) else {"type": "json_object"})
    thinking = snake_keys(fields.get("thinking_config"))
    form.update(_thinking(thinking))
    extras = {name: value for name, value in fields.items() if name not in GENERATION_FIELDS}
    if thinking.get("include_thoughts") is True:
        extras["include_thoughts"] = True  # the answer's thought parts are wanted (gemini/answer.py)
    return form, extras


# --- the request ----------------------------------------------------------------------------------

def parse_request(body: dict) -> dict:
    """A Gemini ``generateContent`` request (with ``model`` and ``stream`` put in by the view) as
    the internal form; :class:`ProtocolError` (400, naming the field) for what is not valid."""
    if not isinstance(body, dict):
        raise _fail("body", "must be a JSON object")
    fields = snake_keys(body)
    model = fields.get("model")
    if not isinstance(model, str) or not model:
        raise _fail("model", "required: the model named in the URL")
    form: dict[str, Any] = {"model": model, "messages": _turns(fields.get("contents"))}
    system = _system(fields.get("system_instruction"))
    if system:
        form["system"] = system
    functions, others = _tools(fields.get("tools"))
    if functions:
        form["tools"] = functions
        choice = _tool_choice(fields.get("tool_config"))
        if choice is not None:
            form["tool_choice"] = choice
    generation, generation_extras = _generation(fields.get("generation_config"))
    form.update(generation)
    if fields.get("stream"):
        form["stream"] = True
    extras = {key: value for key, value in fields.items() if key not in FORM_FIELDS}
    if generation_extras.pop("include_thoughts", False):
        extras["include_thoughts"] = True
    if generation_extras:
        extras["generation_config"] = generation_extras
    if others:
        extras["tools"] = others
    if extras:
        form["x_extras"] = {NAME: extras}
    return form
