"""Quota savers: the housekeeping calls agents make besides the conversation, answered by the gateway.

A free tier counts requests, and coding agents spend many on chores: Claude Code's quota probe
(``max_tokens: 1``), session titles and prompt suggestions, older Claude Code's topic detection
and command-prefix check, opencode's title, Gemini CLI's router, next-speaker and loop checks.
:func:`recognise` knows each by its shape on the internal form (the client's fixed prompt, or
for clients whose recordings are scrambled its shape: no tools, the client's User-Agent, the
JSON schema it asks for) and gives the answer the client gets instead of an upstream call.

Every local answer is what the client would do anyway when the call failed, so nothing the user
relies on is decided here: no title change, no suggestion, "none" for a command prefix (the
user is asked), the model the user chose, "the user speaks next", "no loop". A structured answer
is checked against the schema the request asked for; when it does not fit, nothing is answered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: Each kind of chore, and what the gateway answers to it (the settings check and the docs say it).
KINDS = {
    "quota_probe": "Claude Code's quota probe (max_tokens 1, 'quota'): a one-token answer",
    "title": "session titles (Claude Code, opencode): a title made from the user's first words",
    "topic": "older Claude Code's new-topic check: not a new topic",
    "suggestion": "Claude Code's prompt suggestion: no suggestion",
    "command_prefix": "older Claude Code's Bash command-prefix check: none (the user is asked)",
    "next_speaker": "Gemini CLI's next-speaker check: the user speaks next",
    "router": "Gemini CLI's model router: the model the user chose (pro)",
    "loop_check": "Gemini CLI's loop detection: no loop",
}
ALL = "all"


@dataclass(frozen=True)
class Chore:
    """A recognised housekeeping call: its kind, the answer's text and the stop reason it ends with."""

    kind: str
    text: str
    what: str  # which client's which chore, for people (no content of the request)
    stop_reason: str = "end_turn"


# --- the setting ---------------------------------------------------------------------------------

def check_setting(value: Any) -> str | None:
    """What is wrong with a ``quota_savers`` setting (``{kind or "all": bool}``), or None."""
    if not isinstance(value, dict):
        return "must be an object of switches, e.g. {\"all\": true} or {\"title\": true}"
    for name, on in value.items():
        if name != ALL and name not in KINDS:
            return f"{name}: unknown kind; known: {ALL}, {', '.join(KINDS)}"
        if not isinstance(on, bool):
            return f"{name}: must be true or false"
    return None


def switched_on(setting: Mapping[str, bool] | None, kind: str) -> bool:
    """Whether ``kind`` is answered locally: its own switch, else the ``all`` switch; off by default."""
    if not setting:
        return False
    return setting[kind] is True if kind in setting else setting.get(ALL) is True


def worth_a_look(body: Mapping[str, Any]) -> bool:
    """A cheap test on the client's body before it is parsed: every chore but Claude Code's prompt
    suggestion comes without tools, and that one is known by its last Anthropic message."""
    if not body.get("tools"):
        return True
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return False
    return any(text.startswith(SUGGESTION_MARK) for text in _texts(messages[-1].get("content")))


# --- the markers (the real clients' own prompts) -------------------------------------------------

QUOTA_PROBE_TEXT = "quota"  # Claude Code 2.x: {"role": "user", "content": "quota"}, max_tokens 1
CLAUDE_TITLE_MARKS = (
    # Claude Code 2.1.3xx (generate_session_title)
    "You are naming a coding session so the user can pick it out of a long list of sessions.",
    # Claude Code 2.1.1xx
    "Generate a concise, sentence-case title (3-7 words) that captures the main topic or goal of this coding "
    "session.",
)
TOPIC_MARK = "Analyze if this message indicates a new conversation topic."  # Claude Code 1.x
SUGGESTION_MARK = "[SUGGESTION MODE:"  # Claude Code 2.x, a fork of the conversation (with its tools)
POLICY_MARKS = ("<policy_spec>", "command_injection_detected")  # Claude Code 1.x-2.0 prefix check
OPENCODE_TITLE_MARK = "Generate a title for this conversation:"
OPENCODE_TITLE_SYSTEM = "You are a title generator."
NEXT_SPEAKER_MARK = "Analyze *only* the content and structure of your immediately preceding response"
ROUTER_MARK = "You are a specialized Task Routing AI."
LOOP_MARK = "You are a diagnostic agent that determines whether a conversational AI assistant is stuck in an " \
    "unproductive loop."

ROUTER_FIELDS = ({"reasoning", "model_choice"}, {"complexity_reasoning", "complexity_score"})
LOOP_FIELDS = {"unproductive_state_analysis", "unproductive_state_confidence"}
NEXT_SPEAKER_FIELDS = {"reasoning", "next_speaker"}


# --- recognising -----------------------------------------------------------------------------------

def recognise(form: dict, headers: Mapping[str, str]) -> Chore | None:
    """The chore ``form`` (a request in the internal form) is, with its local answer; None for
    anything else. ``headers`` are the client's (its User-Agent tells the client)."""
    agent = _header(headers, "user-agent")
    for check in _CHECKS:
        chore = check(form, agent)
        if chore is not None:
            return chore
    return None


def _quota_probe(form: dict, _agent: str) -> Chore | None:
    messages = form.get("messages") or []
    if form.get("max_tokens") != 1 or form.get("tools") or len(messages) != 1 or messages[0].get("role") != "user":
        return None
    if [t.strip() for t in _texts(messages[0].get("content"))] != [QUOTA_PROBE_TEXT]:
        return None
    return Chore("quota_probe", "OK", "Claude Code quota probe", stop_reason="max_tokens")


def _claude_title(form: dict, _agent: str) -> Chore | None:
    system = _system_text(form)
    if form.get("tools") or not any(mark in system for mark in CLAUDE_TITLE_MARKS):
        return None
    title = title_from(_session_text(_user_texts(form)), fallback="Coding session")
    return _structured(form, "title", {"title": title}, "Claude Code session title")


def _topic(form: dict, _agent: str) -> Chore | None:
    if form.get("tools") or TOPIC_MARK not in _system_text(form):
        return None
    return _structured(form, "topic", {"isNewTopic": False, "title": None}, "Claude Code topic check")


def _suggestion(form: dict, agent: str) -> Chore | None:
    last = (form.get("messages") or [{}])[-1]
    if last.get("role") != "user" or not any(t.startswith(SUGGESTION_MARK) for t in _texts(last.get("content"))):
        return None
    if not (agent.startswith("claude-cli/") or "Claude Code" in _system_text(form)):
        return None  # someone else's message that happens to start so
    return Chore("suggestion", "", "Claude Code prompt suggestion")


def _command_prefix(form: dict, _agent: str) -> Chore | None:
    if form.get("tools"):
        return None
    text = _system_text(form) + "\n" + "\n".join(_user_texts(form))
    if not all(mark in text for mark in POLICY_MARKS) or not re.search(r"^Command: \S", text, flags=re.M):
        return None  # the policy alone (someone asking about it) is not the check
    return Chore("command_prefix", "none", "Claude Code command-prefix check")


def _opencode_title(form: dict, agent: str) -> Chore | None:
    if form.get("tools") or not (agent.startswith("opencode/") or
                                 _system_text(form).lstrip().startswith(OPENCODE_TITLE_SYSTEM)):
        return None
    texts = _user_texts(form)
    if not texts or not texts[0].lstrip().startswith(OPENCODE_TITLE_MARK):
        return None
    rest = texts[0].lstrip()[len(OPENCODE_TITLE_MARK):]
    subject = next((t for t in [rest, *texts[1:]] if t.strip()), "")
    return _plain_or_structured(form, "title", title_from(subject, fallback="New conversation"), "opencode title")


def _next_speaker(form: dict, _agent: str) -> Chore | None:
    last = (form.get("messages") or [{}])[-1]
    if form.get("tools") or last.get("role") != "user":
        return None
    if not any(t.lstrip().startswith(NEXT_SPEAKER_MARK) for t in _texts(last.get("content"))):
        return None
    answer = {"reasoning": "The gateway answered this check: the user speaks next.", "next_speaker": "user"}
    return _structured(form, "next_speaker", answer, "Gemini CLI next-speaker check")


def _router(form: dict, agent: str) -> Chore | None:
    if form.get("tools") or not (agent.startswith("GeminiCLI") or ROUTER_MARK in _system_text(form)):
        return None
    fields = set(_properties(_schema(form)))
    if fields == ROUTER_FIELDS[0]:
        answer: dict[str, Any] = {"reasoning": "The gateway answered: the model the user chose.", "model_choice": "pro"}
    elif fields == ROUTER_FIELDS[1]:
        answer = {"complexity_reasoning": "The gateway answered: the model the user chose.", "complexity_score": 100}
    else:
        return None
    return _structured(form, "router", answer, "Gemini CLI model router")


def _loop_check(form: dict, agent: str) -> Chore | None:
    if form.get("tools"):
        return None
    system = _system_text(form)
    fields = set(_properties(_schema(form)))
    if not (LOOP_MARK in system or (agent.startswith("GeminiCLI") and fields == LOOP_FIELDS)):
        return None
    answer = {"unproductive_state_analysis": "The gateway answered this check: no loop.",
              "unproductive_state_confidence": 0}
    return _structured(form, "loop_check", answer, "Gemini CLI loop detection")


_CHECKS: tuple[Callable[[dict, str], Chore | None], ...] = (
    _quota_probe, _suggestion, _claude_title, _topic, _command_prefix, _opencode_title, _next_speaker, _router,
    _loop_check)


# --- answers ---------------------------------------------------------------------------------------

#: Words a title leads without (what the user asks for, not what the session is about) and ends without.
_ASKING = re.compile(r"^(?:(?:please|can you|could you|help me|help with|look into|let'?s|i want to|we need to|"
                     r"fix|add|check|investigate|implement|evaluate|debug|refactor|update|make|write|create|the|a|an)\b[\s,]*)+",
                     re.I)
_LOOSE_END = re.compile(r"(?:\s+(?:a|an|the|in|of|on|to|for|and|or|with|from|at|by|into|so|that|please))+$", re.I)


def title_from(text: str, *, fallback: str, words: int = 5, limit: int = 50) -> str:
    """A short title from the user's own words: the first line that says something, without the
    request's leading verbs, its first ``words`` words, no article or preposition at its end, at
    most ``limit`` characters, the first letter in capitals."""
    text = re.sub(r"<system-reminder>.*?</system-reminder>", " ", text, flags=re.S)
    text = re.sub(r"</?[A-Za-z][\w-]*>", " ", text)
    line = next((ln.strip(" \t\"'`") for ln in text.splitlines() if ln.strip(" \t\"'`")), "")
    line = (_ASKING.sub("", line) or line).replace("`", "")
    title = _LOOSE_END.sub("", " ".join(line.split()[:words]))
    if len(title) > limit:
        title = title[:limit].rsplit(" ", 1)[0] if " " in title[:limit] else title[:limit]
    title = title.rstrip(" .,:;!?")
    if not title:
        return fallback
    first = title.split(" ", 1)[0]
    return title if any(c in first for c in "_./()") else title[:1].upper() + title[1:]  # identifiers as written


def _session_text(texts: list[str]) -> str:
    """What Claude Code put inside ``<session>…</session>`` (or the user's first text)."""
    for text in texts:
        found = re.search(r"<session>(.*?)(?:</session>|\Z)", text, flags=re.S)
        if found:
            return found.group(1)
    return texts[0] if texts else ""


def _structured(form: dict, kind: str, answer: dict, what: str) -> Chore | None:
    """``answer`` as JSON text, or None when the schema the request asked for does not take it."""
    schema = _schema(form)
    if schema is not None and not fits(answer, schema):
        return None
    return Chore(kind, _after_prefill(form, json.dumps(answer, ensure_ascii=False)), what)


def _plain_or_structured(form: dict, kind: str, title: str, what: str) -> Chore | None:
    if _schema(form) is None and not _wants_json(form):
        return Chore(kind, title, what)
    return _structured(form, kind, {"title": title}, what)


def _after_prefill(form: dict, text: str) -> str:
    """An answer continues the assistant's prefill (older Claude Code sent ``{``): the rest of it."""
    last = (form.get("messages") or [{}])[-1]
    if last.get("role") == "assistant":
        prefill = "".join(_texts(last.get("content")))
        if prefill and text.startswith(prefill):
            return text[len(prefill):]
    return text


def fits(value: Any, schema: Any) -> bool:
    """Whether ``value`` is valid under ``schema`` — the small part of JSON Schema a chore's answer
    needs (type, properties, required, additionalProperties, enum); anything else passes."""
    if not isinstance(schema, dict):
        return True
    if "enum" in schema and value not in schema["enum"]:
        return False
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds] if kinds else []
    if kinds and not any(_is_type(value, str(k).lower()) for k in kinds):
        return False
    if isinstance(value, dict):
        properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        if any(name not in value for name in schema.get("required") or []):
            return False
        if properties and any(name not in properties for name in value):
            return False  # a chore's answer never adds fields the schema does not name
        return all(fits(item, properties.get(name)) for name, item in value.items())
    return True


_JSON_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "boolean": (bool,), "object": (dict,),
                                            "array": (list,), "null": (type(None),)}


def _is_type(value: Any, kind: str) -> bool:
    if kind in ("integer", "number"):
        wanted = (int,) if kind == "integer" else (int, float)
        return isinstance(value, wanted) and not isinstance(value, bool)
    types = _JSON_TYPES.get(kind)
    return types is None or isinstance(value, types)


# --- reading the form ------------------------------------------------------------------------------

def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [b["text"] for b in content if isinstance(b, dict) and b.get("type") == "text"
                and isinstance(b.get("text"), str)]
    return []


def _system_text(form: dict) -> str:
    parts = _texts(form.get("system"))
    for message in form.get("messages") or []:
        if message.get("role") == "system":
            parts += _texts(message.get("content"))
    return "\n".join(parts)


def _user_texts(form: dict) -> list[str]:
    return [t for m in form.get("messages") or [] if m.get("role") == "user" for t in _texts(m.get("content"))]


def _schema(form: dict) -> dict | None:
    """The JSON schema the request wants its answer in: ``x_output_format`` (OpenAI, Responses,
    Gemini clients) or Anthropic's ``output_config.format`` (or the older ``output_format``)."""
    for fmt in (form.get("x_output_format"), (form.get("output_config") or {}).get("format"),
                form.get("output_format")):
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
            return fmt["schema"]
    return None


def _wants_json(form: dict) -> bool:
    fmt = form.get("x_output_format")
    return isinstance(fmt, dict) and fmt.get("type") == "json_object"


def _properties(schema: dict | None) -> dict:
    props = (schema or {}).get("properties")
    return props if isinstance(props, dict) else {}


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:  # a plain dict (tests, the measurement tool) is not case-insensitive
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value if isinstance(value, str) else ""
