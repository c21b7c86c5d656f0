"""Tool-call arguments as open models break them, mended when the mending is unambiguous.

What gets mended: trailing commas, single-quoted strings, raw newlines or tabs inside strings,
Python's ``True``/``False``/``None``, a code fence around the JSON, and an object cut off at a
boundary (after a whole value, outside any list: only closing braces are missing). What does
not: an object cut inside a string, a number or a list, or after a key (the rest cannot be known),
and anything whose result is not an object that the tool's schema accepts (its required fields
there, its fields of the right type).
"""

from __future__ import annotations

import json
import re
from typing import Any

FENCE = re.compile(r"^```(?:json|JSON)?\s*\n?(.*?)\n?```$", re.DOTALL)
PYTHON_LITERALS = {"True": "true", "False": "false", "None": "null"}
JSON_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "number": (int, float),
                                           "boolean": (bool,), "array": (list,), "object": (dict,),
                                           "null": (type(None),)}


def repair_arguments(raw: str, schema: Any) -> tuple[dict, list[str]] | None:
    """``raw`` arguments mended into an object ``schema`` accepts, with what was mended; None when
    they cannot be mended unambiguously (or needed no mending: check with ``json.loads`` first)."""
    text = raw.strip()
    fixes: list[str] = []
    fenced = FENCE.match(text)
    if fenced:
        text, _ = fenced.group(1).strip(), fixes.append("a code fence around the JSON")
    normalised = _normalise(text, fixes)
    if normalised is None:
        return None
    try:
        value = json.loads(normalised, strict=False)  # strict=False: raw control characters in strings
    except ValueError:
        return None
    if re.search(r'"(?:[^"\\]|\\.)*[\n\t\r](?:[^"\\]|\\.)*"', normalised):
        fixes.append("raw line breaks or tabs inside a string")
    if not fixes or not isinstance(value, dict) or schema_problem(value, schema) is not None:
        return None
    return value, fixes


def _normalise(text: str, fixes: list[str]) -> str | None:
    """One pass over ``text`` outside and inside strings: single quotes to double, trailing commas
    dropped, Python literals to JSON's, missing closing brackets added; None when it is ambiguous."""
    out: list[str] = []
    stack: list[str] = []
    quote = ""  # the quote of the string we are in, if any
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if quote:
            if ch == "\\" and i + 1 < n:
                escaped = text[i + 1]
                out.append("'" if quote == "'" and escaped == "'" else ch + escaped)
                i += 2
                continue
            if ch == quote:
                quote = ""
                out.append('"')
            elif ch == '"':  # a double quote inside a single-quoted string
                out.append('\\"')
            else:
                out.append(ch)
            i += 1
            continue
        if ch in "\"'":
            if ch == "'":
                _note(fixes, "single-quoted strings")
            quote = ch
            out.append('"')
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
            out.append(ch)
        elif ch in "}]":
            if not stack or stack.pop() != ch:
                return None
            _drop_trailing_comma(out, fixes)
            out.append(ch)
        elif ch.isalpha() or ch == "_":
            word = re.match(r"\w+", text[i:]).group(0)
            if word in PYTHON_LITERALS:
                _note(fixes, "Python's True, False or None")
            out.append(PYTHON_LITERALS.get(word, word))
            i += len(word)
            continue
        else:
            out.append(ch)
        i += 1
    if quote:
        return None  # cut inside a string: its end cannot be known
    if stack:
        tail = "".join(out).rstrip().removesuffix(",").rstrip()
        ends_whole = tail.endswith(('"', "}", "]", "true", "false", "null"))
        dangling_key = stack[-1] == "}" and re.search(r'[{,]\s*"(?:[^"\\]|\\.)*"$', tail)
        if not ends_whole or dangling_key or "]" in stack:
            return None  # cut in a number, after a key, or in a list: the rest cannot be known
        _note(fixes, "an object cut off before its closing brackets")
        out = [tail, *reversed(stack)]
    return "".join(out)


def _drop_trailing_comma(out: list[str], fixes: list[str]) -> None:
    j = len(out) - 1
    while j >= 0 and out[j].isspace():
        j -= 1
    if j >= 0 and out[j] == ",":
        del out[j]
        _note(fixes, "trailing commas")


def _note(fixes: list[str], fix: str) -> None:
    if fix not in fixes:
        fixes.append(fix)


def schema_problem(value: dict, schema: Any) -> str | None:
    """What keeps ``value`` from being a tool's input under its JSON Schema (its top level: the
    required fields, and each field's declared type), or None."""
    if not isinstance(schema, dict):
        return None
    for name in schema.get("required") or ():
        if name not in value:
            return f"{name} is required"
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    for name, field in value.items():
        declared = (properties.get(name) or {}).get("type") if isinstance(properties.get(name), dict) else None
        kinds = declared if isinstance(declared, list) else [declared] if isinstance(declared, str) else []
        allowed = tuple(t for k in kinds for t in JSON_TYPES.get(k, ()))
        if allowed and (not isinstance(field, allowed) or (isinstance(field, bool) and bool not in allowed)):
            return f"{name} must be {' or '.join(kinds)}"
    if schema.get("additionalProperties") is False and set(value) - set(properties):
        return f"unknown fields {sorted(set(value) - set(properties))}"
    return None


def tool_named(name: str, offered: dict[str, Any]) -> str | None:
    """The offered tool a call means when its name differs only in case (and only one such tool exists)."""
    if name in offered:
        return name
    matches = [n for n in offered if n.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None
