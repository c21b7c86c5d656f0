"""Property tests (hypothesis) of the Anthropic <-> OpenAI translators (issue #9, hardening).

Requests: any valid Anthropic Messages request translates to a valid OpenAI Chat Completions
request, any valid OpenAI request to a valid Anthropic one (checked by the structural checkers
below), without raising. Round trip Anthropic -> OpenAI -> Anthropic preserves, for a well-formed
conversation (every tool_use answered in the next user turn, the last assistant turn excepted):

- the system text (all system pieces, blank ones left out, joined with blank lines);
- per turn (consecutive same-role turns merged, empty turns dropped): the non-blank text pieces
  joined with blank lines, the images, the tool_use blocks (id, name, input - illegal ids and names
  come back through the first translation's :class:`ToolNames`, as answers do), and the
  tool_result blocks (id; the text, with ``[tool error] `` for ``is_error`` and ``(no output)``
  for an empty result);
- tools (name, description, schema), tool_choice (unless ``none``), max_tokens, top_p,
  stop_sequences (the first four), metadata.user_id (up to 64 characters), stream, and
  temperature when thinking is off.

Not preserved: thinking blocks (dropped upstream), the order of text and tool results inside a
user turn (results first), the thinking budget (it goes through reasoning_effort).

Streams: any sequence of upstream chunks/events gives a well-formed event sequence for the client
(see :func:`check_anthropic_events` and :func:`check_openai_chunks`), never an exception; garbage
gives at most an error event.
"""

from __future__ import annotations

import itertools
import json
import re
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.pairs import (
    StreamToAnthropic,
    StreamToOpenAI,
    request_to_anthropic,
    request_to_openai,
    response_from_anthropic,
    response_from_openai,
)
from zengate.dialects.anthropic import GATEWAY_SIGNATURE, IMAGE_MEDIA_TYPES, validate_messages_request
from zengate.dialects.errors import ProtocolError
from zengate.dialects.openai import validate_chat_request
from zengate.dialects.openai.request import EMPTY_TOOL_RESULT, STOP_LIMIT, TOOL_ERROR_PREFIX
from zengate.dialects.translate_common import ToolNames, join_text, reasoning_of

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEW = settings(SETTINGS, max_examples=100)

OPENAI_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
LEGAL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

# --- value strategies -------------------------------------------------------------------------------

# Text with the characters that matter: blanks, newlines, quotes, braces, non-ASCII.
text = st.text(alphabet=st.sampled_from(list("ab xyz\n\t{}\":,\\é中🙂")), max_size=12)
word = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=12)
# Tool names and ids as clients really spell them: legal ones and ones each side must rewrite.
tool_name = st.one_of(word, st.sampled_from(["mcp__server__tool", "a.b", "name with spaces", "x" * 70,
                                             "Bash", "Read", "résumé"]))
tool_id = st.one_of(word.map(lambda w: "toolu_" + w), st.sampled_from(["functions.Bash:0", "call:1", "i" * 45]),
                    word)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                        st.floats(allow_nan=False, allow_infinity=False, width=32), text)
json_value = st.recursive(json_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                st.dictionaries(word, inner, max_size=3)),
                          max_leaves=8)
json_object = st.dictionaries(word, json_value, max_size=4)
schema = st.fixed_dictionaries(
    {"type": st.just("object"),
     "properties": st.dictionaries(word, st.sampled_from([{"type": "string"}, {"type": "integer"},
                                                          {"type": "array", "items": {"type": "string"}}]),
                                   max_size=3)},
    optional={"required": st.lists(word, max_size=2), "additionalProperties": st.booleans()})

# --- Anthropic requests ------------------------------------------------------------------------------

image_source = st.one_of(
    st.builds(lambda mt: {"type": "base64", "media_type": mt, "data": PNG}, st.sampled_from(IMAGE_MEDIA_TYPES)),
    st.builds(lambda w: {"type": "url", "url": f"https://example.com/{w}.png"}, word),
)
text_block = st.builds(lambda t: {"type": "text", "text": t}, text)
image_block = st.builds(lambda s: {"type": "image", "source": s}, image_source)
pdf_block = st.just({"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                                    "data": "JVBERi0xLjQK"}, "title": "a.pdf"})
thinking_block = st.builds(lambda t: {"type": "thinking", "thinking": t, "signature": "sig"}, text)


def tool_result_block(call_id: str) -> st.SearchStrategy[dict]:
    content = st.one_of(st.none(), text, st.lists(st.one_of(text_block, text_block, image_block), max_size=3))

    def build(c: Any, err: bool | None) -> dict:
        block = {"type": "tool_result", "tool_use_id": call_id}
        if c is not None:
            block["content"] = c
        if err is not None:
            block["is_error"] = err
        return block

    return st.builds(build, content, st.one_of(st.none(), st.booleans()))


@st.composite
def anthropic_conversation(draw, well_formed: bool = True) -> list[dict]:
    """User/assistant turns; with ``well_formed`` every tool_use is answered in the next user turn."""
    messages: list[dict] = []
    pending: list[str] = []
    n_turns = draw(st.integers(1, 6))
    role = "user" if well_formed or draw(st.booleans()) else "assistant"
    used_ids: set[str] = set()
    for _ in range(n_turns):
        if role == "user":
            blocks: list[dict] = [draw(tool_result_block(i)) for i in pending]
            pending = []
            if not well_formed and draw(st.integers(0, 4)) == 0:
                blocks.append(draw(tool_result_block(draw(tool_id))))  # an orphan result
            blocks += draw(st.lists(st.one_of(text_block, text_block, image_block, pdf_block), max_size=3))
            if not blocks or (not well_formed and draw(st.booleans())):
                blocks = blocks or [draw(text_block)]
            if well_formed:
                blocks = draw(st.permutations(blocks))
            if all(b["type"] == "text" for b in blocks) and draw(st.booleans()):
                content: Any = "".join(b["text"] for b in blocks)
            else:
                content = blocks
            messages.append({"role": "user", "content": content})
            role = "assistant"
        else:
            blocks = draw(st.lists(st.one_of(text_block, thinking_block), max_size=2))
            for _ in range(draw(st.integers(0, 3))):
                call_id = draw(tool_id.filter(lambda i: i not in used_ids))
                used_ids.add(call_id)
                blocks.append({"type": "tool_use", "id": call_id, "name": draw(tool_name), "input": draw(json_object)})
                if well_formed or draw(st.booleans()):
                    pending.append(call_id)
            if blocks and all(b["type"] == "text" for b in blocks) and draw(st.booleans()):
                messages.append({"role": "assistant", "content": "".join(b["text"] for b in blocks)})
            else:
                messages.append({"role": "assistant", "content": blocks})
            role = "user"
        if not well_formed and draw(st.integers(0, 5)) == 0:
            messages.append({"role": "system", "content": draw(st.one_of(text, st.lists(text_block, max_size=2)))})
    if well_formed and not any(_has_text(m) for m in messages if m["role"] == "user"):
        messages.insert(0, {"role": "user", "content": "hello"})
    return messages


def _has_text(message: dict) -> bool:
    content = message["content"]
    if isinstance(content, str):
        return bool(content.strip())
    return any(b["type"] == "text" and b["text"].strip() for b in content)


@st.composite
def anthropic_request(draw, well_formed: bool = True) -> dict:
    body: dict[str, Any] = {"model": draw(st.sampled_from(["claude-sonnet-4-5", "claude-opus-4", "big-pickle"])),
                            "max_tokens": draw(st.integers(1, 200_000)),
                            "messages": draw(anthropic_conversation(well_formed))}
    if draw(st.booleans()):
        body["system"] = draw(st.one_of(text, st.lists(text_block, max_size=3)))
    names = draw(st.lists(tool_name, max_size=4, unique=True))
    if names:
        tools = []
        for name in names:
            tool: dict[str, Any] = {"name": name, "input_schema": draw(schema)}
            if draw(st.booleans()):
                tool["description"] = draw(text)
            tools.append(tool)
        if draw(st.booleans()):
            tools.append({"type": "web_search_20250305", "name": "web_search", "max_uses": 3})
        body["tools"] = tools
        choice = draw(st.one_of(st.none(), st.sampled_from([{"type": "auto"}, {"type": "any"}, {"type": "none"}]),
                                st.builds(lambda n: {"type": "tool", "name": n}, st.sampled_from(names))))
        if choice is not None:
            if draw(st.booleans()):
                choice["disable_parallel_tool_use"] = draw(st.booleans())
            body["tool_choice"] = choice
    optional = {
        "temperature": st.floats(0, 1),
        "top_p": st.floats(0, 1),
        "top_k": st.integers(0, 100),
        "stop_sequences": st.lists(text, max_size=6),
        "metadata": st.one_of(st.just({}), st.builds(lambda u: {"user_id": u}, st.one_of(word, st.just("u" * 80)))),
        "stream": st.booleans(),
        "thinking": st.one_of(st.builds(lambda b: {"type": "enabled", "budget_tokens": b}, st.integers(1024, 40000)),
                              st.just({"type": "disabled"}), st.just({"type": "adaptive"})),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            body[key] = draw(strategy)
    validate_messages_request(body)  # the strategy only makes valid requests
    return body


# --- OpenAI requests -----------------------------------------------------------------------------------

openai_text_part = st.builds(lambda t: {"type": "text", "text": t}, text)
openai_image_part = st.one_of(
    st.builds(lambda mt: {"type": "image_url", "image_url": {"url": f"data:{mt};base64,{PNG}"}},
              st.sampled_from(IMAGE_MEDIA_TYPES)),
    st.builds(lambda w: {"type": "image_url", "image_url": {"url": f"https://example.com/{w}.jpg",
                                                            "detail": "auto"}}, word),
)
openai_content = st.one_of(text, st.lists(openai_text_part, min_size=1, max_size=3))


@st.composite
def openai_request(draw) -> dict:
    """Conversations that follow OpenAI's rules (each call answered by the tool messages after it)."""
    messages: list[dict] = []
    if draw(st.booleans()):
        messages.append({"role": draw(st.sampled_from(["system", "developer"])), "content": draw(openai_content)})
    used: set[str] = set()
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["user", "user", "assistant", "tools", "system"]))
        if kind == "user":
            content = draw(st.one_of(text, st.lists(st.one_of(openai_text_part, openai_image_part), min_size=1,
                                                    max_size=3)))
            messages.append({"role": "user", "content": content})
        elif kind == "system":
            messages.append({"role": draw(st.sampled_from(["system", "developer"])), "content": draw(openai_content)})
        elif kind == "assistant":
            message: dict[str, Any] = {"role": "assistant",
                                       "content": draw(st.one_of(st.none(), text,
                                                                 st.lists(openai_text_part, max_size=2)))}
            if draw(st.booleans()):
                message["content"] = [{"type": "refusal", "refusal": draw(text)}]
            messages.append(message)
        else:
            calls = []
            for _ in range(draw(st.integers(1, 3))):
                call_id = draw(tool_id.filter(lambda i: i not in used))
                used.add(call_id)
                arguments = draw(st.one_of(json_object.map(json.dumps), st.just(""), st.just("{bad")))
                calls.append({"id": call_id, "type": "function",
                              "function": {"name": draw(tool_name), "arguments": arguments}})
            messages.append({"role": "assistant", "content": draw(st.one_of(st.none(), text)), "tool_calls": calls})
            for call in draw(st.permutations(calls)):
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": draw(openai_content)})
    if not any(m["role"] in ("user", "assistant") and _openai_has_text(m) for m in messages):
        messages.append({"role": "user", "content": "hello"})
    body: dict[str, Any] = {"model": "big-pickle", "messages": messages}
    names = draw(st.lists(tool_name, max_size=3, unique=True))
    if names:
        body["tools"] = [{"type": "function", "function": {"name": n, **draw(st.fixed_dictionaries(
            {}, optional={"description": text, "parameters": schema, "strict": st.booleans()}))}} for n in names]
        if draw(st.booleans()):
            body["tool_choice"] = draw(st.one_of(
                st.sampled_from(["auto", "required", "none"]),
                st.builds(lambda n: {"type": "function", "function": {"name": n}}, st.sampled_from(names))))
        if draw(st.booleans()):
            body["parallel_tool_calls"] = draw(st.booleans())
    optional = {
        "max_tokens": st.integers(1, 100_000),
        "max_completion_tokens": st.integers(1, 100_000),
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "n": st.just(1),
        "stop": st.one_of(text, st.lists(text, max_size=4)),
        "user": word,
        "stream": st.booleans(),
        "reasoning_effort": st.sampled_from(["minimal", "low", "medium", "high", "none"]),
        "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"},
                                            {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}]),
        "seed": st.integers(0, 1000),
        "presence_penalty": st.floats(-2, 2),
        "frequency_penalty": st.floats(-2, 2),
        "logit_bias": st.just({}),
        "metadata": st.just({"a": "b"}),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            body[key] = draw(strategy)
    if body.get("stream") and draw(st.booleans()):
        body["stream_options"] = {"include_usage": draw(st.booleans())}
    validate_chat_request(body)
    return body


def _openai_has_text(message: dict) -> bool:
    if message.get("tool_calls"):
        return True
    content = message.get("content")
    if isinstance(content, str):
        return bool(content.strip())
    if isinstance(content, list):
        return any(p.get("type") == "image_url" or (p.get("text") or p.get("refusal") or "").strip()
                   for p in content)
    return False


# --- structural checkers ------------------------------------------------------------------------------


def check_openai_request(req: dict) -> None:
    """What OpenAI accepts: the checks zengate's translator promises (raises AssertionError)."""
    validate_chat_request(req)
    assert isinstance(req["model"], str) and req["model"]
    messages = req["messages"]
    assert any(m["role"] != "system" for m in messages)
    pending: list[str] = []
    for i, m in enumerate(messages):
        role = m["role"]
        assert role in ("system", "user", "assistant", "tool"), m
        if role != "tool":
            assert not pending, f"calls {pending} not answered before message {i}"
        if role == "system":
            assert isinstance(m["content"], str) and m["content"].strip()
        elif role == "user":
            content = m["content"]
            if isinstance(content, str):
                assert content.strip()
            else:
                assert content and all(p["type"] in ("text", "image_url", "file") for p in content)
                for p in content:
                    if p["type"] == "image_url":
                        assert isinstance(p["image_url"]["url"], str) and p["image_url"]["url"]
                    elif p["type"] == "text":
                        assert isinstance(p["text"], str)
        elif role == "assistant":
            calls = m.get("tool_calls") or []
            assert m["content"] is None or isinstance(m["content"], str)
            assert calls or (m["content"] or "").strip(), "an empty assistant message"
            ids = [c["id"] for c in calls]
            assert len(set(ids)) == len(ids)
            for c in calls:
                assert LEGAL_ID.match(c["id"]), c["id"]
                assert c["type"] == "function"
                assert OPENAI_NAME.match(c["function"]["name"]), c["function"]["name"]
                assert isinstance(json.loads(c["function"]["arguments"]), dict)
            if calls and i + 1 < len(messages):
                pending = list(ids)
        else:
            assert m["tool_call_id"] in pending, f"tool message {i} answers no pending call"
            pending.remove(m["tool_call_id"])
            assert isinstance(m["content"], str) and m["content"].strip()
    assert isinstance(req["max_tokens"], int) and req["max_tokens"] >= 1
    names = []
    for tool in req.get("tools", []):
        assert tool["type"] == "function" and OPENAI_NAME.match(tool["function"]["name"])
        assert isinstance(tool["function"]["parameters"], dict)
        names.append(tool["function"]["name"])
    assert len(set(names)) == len(names)
    choice = req.get("tool_choice")
    assert choice is None or choice in ("auto", "required", "none") or choice["function"]["name"] in names
    assert "tool_choice" not in req or names
    assert "parallel_tool_calls" not in req or names
    assert len(req.get("stop", [])) <= STOP_LIMIT and all(isinstance(s, str) and s for s in req.get("stop", []))
    assert "user" not in req or 0 < len(req["user"]) <= 64
    assert ("stream_options" in req) == bool(req.get("stream"))


def check_anthropic_request(req: dict) -> None:
    """What Anthropic accepts: alternation, tool pairing, thinking rules (raises AssertionError)."""
    validate_messages_request(req)
    messages = req["messages"]
    for a, b in itertools.pairwise(messages):
        assert a["role"] != b["role"], "roles must alternate"
    all_ids: list[str] = []
    for i, m in enumerate(messages):
        assert m["role"] in ("user", "assistant")
        content = m["content"]
        assert isinstance(content, list) and content, "no empty turns"
        kinds = [b["type"] for b in content]
        if m["role"] == "user":
            n_results = kinds.count("tool_result")
            assert kinds[:n_results] == ["tool_result"] * n_results, "tool results come first"
            results = [b["tool_use_id"] for b in content if b["type"] == "tool_result"]
            previous = messages[i - 1]["content"] if i else []
            uses = [b["id"] for b in previous if b["type"] == "tool_use"]
            assert sorted(results) == sorted(uses), (results, uses)
        else:
            assert set(kinds) <= {"text", "tool_use"}
            uses = [b["id"] for b in content if b["type"] == "tool_use"]
            all_ids += uses
            for b in content:
                if b["type"] == "tool_use":
                    assert OPENAI_NAME.match(b["name"]) and LEGAL_ID.match(b["id"])
            if uses and i + 1 < len(messages):
                assert messages[i + 1]["role"] == "user"
        for b in content:
            if b["type"] == "text":
                assert b["text"].strip(), "no blank text blocks"
    assert len(set(all_ids)) == len(all_ids)
    if req.get("thinking"):
        assert "temperature" not in req and "top_p" not in req
        assert 1024 <= req["thinking"]["budget_tokens"] < req["max_tokens"]
        assert req.get("tool_choice", {}).get("type") not in ("any", "tool")
    if "temperature" in req:
        assert 0 <= req["temperature"] <= 1
    names = [t["name"] for t in req.get("tools", [])]
    assert len(set(names)) == len(names) and all(OPENAI_NAME.match(n) for n in names)
    if req.get("tool_choice", {}).get("type") == "tool":
        assert req["tool_choice"]["name"] in names
    assert all(isinstance(s, str) and s for s in req.get("stop_sequences", []))


# --- request properties ----------------------------------------------------------------------------


@SETTINGS
@given(anthropic_request(well_formed=False), st.booleans())
def test_any_valid_anthropic_request_gives_a_valid_openai_request(body: dict, reasoning_as_content: bool) -> None:
    try:
        out, _names = request_to_openai(body, upstream_model="up", reasoning_as_content=reasoning_as_content)
    except ProtocolError as exc:  # the one documented refusal of a valid request
        assert exc.status == 400 and "all messages are empty" in exc.message
        return
    check_openai_request(out)


@SETTINGS
@given(openai_request())
def test_any_valid_openai_request_gives_a_valid_anthropic_request(body: dict) -> None:
    out, _names = request_to_anthropic(body, upstream_model="up")
    check_anthropic_request(out)


def _tool_result_text(block: dict) -> str:
    content = block.get("content")
    if isinstance(content, list):
        content = join_text([b["text"] for b in content if b["type"] == "text"], "\n")
    text = content if isinstance(content, str) and content.strip() else ""
    if not text:
        has_images = isinstance(block.get("content"), list) and any(b["type"] == "image" for b in block["content"])
        text = "(the result's images follow in the next message)" if has_images else EMPTY_TOOL_RESULT
    return TOOL_ERROR_PREFIX + text if block.get("is_error") else text


def _digest(body: dict, names: ToolNames | None = None) -> dict:
    """What the round trip keeps of a request (see the module docstring); ``names`` maps the
    round-tripped tool ids and names back to the client's."""
    id_of = names.id_in if names else (lambda wire: wire)
    name_of = names.name_in if names else (lambda wire: wire)
    system: list[str] = []
    turns: list[dict] = []

    def system_text(content: Any) -> str:
        if isinstance(content, str):
            return content
        return join_text([b["text"] for b in content])

    if body.get("system") is not None:
        system.append(system_text(body["system"]))
    for m in body["messages"]:
        if m["role"] == "system":
            system.append(system_text(m["content"]))
            continue
        content = m["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        texts = [b["text"] for b in blocks if b["type"] == "text" and b["text"].strip()]
        media = [b.get("source") for b in blocks if b["type"] in ("image", "document")]
        for b in blocks:  # images inside tool results move out, into the user's content
            if b["type"] == "tool_result" and isinstance(b.get("content"), list):
                media = [p["source"] for p in b["content"] if p["type"] == "image"] + media
        uses = [(id_of(b["id"]), name_of(b["name"]), b["input"]) for b in blocks if b["type"] == "tool_use"]
        results = [(id_of(b["tool_use_id"]), _tool_result_text(b)) for b in blocks
                   if b["type"] == "tool_result"]
        if not (texts or media or uses or results):
            continue
        if turns and turns[-1]["role"] == m["role"]:
            turn = turns[-1]
        else:
            turn = {"role": m["role"], "texts": [], "media": [], "uses": [], "results": []}
            turns.append(turn)
        turn["texts"] += texts
        turn["media"] += media
        turn["uses"] += uses
        turn["results"] += results
    for turn in turns:
        turn["text"] = join_text(turn.pop("texts"))
        # a user turn's media may follow its text on one side and precede it on the other
        turn["media"] = sorted(turn["media"], key=json.dumps)
    return {"system": join_text(system), "turns": turns}


@SETTINGS
@given(anthropic_request(well_formed=True))
def test_round_trip_anthropic_openai_anthropic_keeps_the_conversation(body: dict) -> None:
    openai_req, names = request_to_openai(body, upstream_model="big-pickle")
    check_openai_request(openai_req)
    back, _ = request_to_anthropic(openai_req, upstream_model="claude")
    assert _digest(back, names) == _digest(body)

    tools = [t for t in body.get("tools", []) if t.get("type") is None]
    assert [(names.name_in(t["name"]), t.get("description") or None, t["input_schema"])
            for t in back.get("tools", [])] == [(t["name"], t.get("description") or None, t["input_schema"])
                                                for t in tools]
    choice = body.get("tool_choice")
    if tools and choice and choice["type"] != "none":
        got = dict(back["tool_choice"])
        if got["type"] == "tool":
            got["name"] = names.name_in(got["name"])
        want = {k: v for k, v in choice.items() if k != "disable_parallel_tool_use" or v}
        assert got == want
    assert back["max_tokens"] == body["max_tokens"]
    assert back.get("stop_sequences", []) == [s for s in body.get("stop_sequences", []) if s][:STOP_LIMIT]
    user_id = (body.get("metadata") or {}).get("user_id")
    if user_id and len(user_id) <= 64:
        assert back["metadata"] == {"user_id": user_id}
    assert back.get("stream", False) == body.get("stream", False)
    if "thinking" not in back:
        for key in ("temperature", "top_p"):
            if body.get(key) is not None:
                assert back[key] == body[key]


# --- stream: OpenAI chunks -> Anthropic events ----------------------------------------------------------


def check_anthropic_events(events: list[tuple[str, dict]], *, finished: bool) -> dict:
    """The event grammar an Anthropic client relies on; returns what the events carried.

    message_start first (once); blocks indexed 0, 1, 2... each started, then its deltas (of the
    block's own kind; a thinking block's last one its ``signature_delta``, the gateway's signature,
    as Anthropic's own streams end a thinking block), then stopped, before the next one starts; one
    message_delta with a stop_reason then message_stop, last. Or an ``error`` event, last, after a
    proper prefix.
    """
    seen: dict[str, Any] = {"text": "", "thinking": "", "tools": [], "stop_reason": None, "error": None}
    assert all(name == data.get("type") for name, data in events), "event name and data.type agree"
    names = [name for name, _ in events]
    if names and names[-1] == "error":
        assert names.count("error") == 1
        err = events[-1][1]
        assert err["type"] == "error" and isinstance(err["error"]["message"], str) and err["error"]["type"]
        seen["error"] = err["error"]
        events = events[:-1]
        names = names[:-1]
    else:
        assert "error" not in names
    if not events:
        assert seen["error"] is not None or not finished
        return seen
    assert names[0] == "message_start" and names.count("message_start") == 1
    start = events[0][1]["message"]
    assert start["role"] == "assistant" and start["content"] == [] and isinstance(start["id"], str)
    open_index: int | None = None
    open_kind = None
    signed = False
    next_index = 0
    ended = False
    for n, (name, data) in enumerate(events[1:], 1):
        assert not ended or (name == "message_stop" and n == len(events) - 1), f"{name} after message_delta"
        if name == "content_block_start":
            assert open_index is None, "a block started while another is open"
            assert data["index"] == next_index
            open_index, next_index, signed = data["index"], next_index + 1, False
            block = data["content_block"]
            open_kind = block["type"]
            assert open_kind in ("text", "thinking", "tool_use")
            if open_kind == "tool_use":
                assert isinstance(block["id"], str) and LEGAL_ID.match(block["id"])
                assert isinstance(block["name"], str) and block["input"] == {}
                seen["tools"].append({"id": block["id"], "name": block["name"], "json": ""})
        elif name == "content_block_delta":
            assert open_index is not None and data["index"] == open_index, "a delta for a closed block"
            delta = data["delta"]
            assert not signed, "a delta after the thinking block's signature"
            expected = {"text": "text_delta", "thinking": "thinking_delta", "tool_use": "input_json_delta"}[open_kind]
            if open_kind == "thinking" and delta["type"] == "signature_delta":
                assert delta["signature"] == GATEWAY_SIGNATURE
                signed = True
                continue
            assert delta["type"] == expected
            if expected == "text_delta":
                assert isinstance(delta["text"], str)
                seen["text"] += delta["text"]
            elif expected == "thinking_delta":
                seen["thinking"] += delta["thinking"]
            else:
                assert isinstance(delta["partial_json"], str)
                seen["tools"][-1]["json"] += delta["partial_json"]
        elif name == "content_block_stop":
            assert data["index"] == open_index, "stop of a block that is not open"
            assert signed or open_kind != "thinking", "a thinking block stopped without its signature_delta"
            open_index = None
        elif name == "message_delta":
            assert open_index is None, "message_delta with a block open"
            assert data["delta"]["stop_reason"] in ("end_turn", "max_tokens", "tool_use", "refusal", "stop_sequence")
            assert all(isinstance(v, int) and v >= 0 for v in data["usage"].values())
            seen["stop_reason"] = data["delta"]["stop_reason"]
            ended = True
        elif name == "message_stop":
            assert ended, "message_stop without message_delta"
        else:
            assert name == "ping"
    if seen["error"] is None and finished:
        assert names[-2:] == ["message_delta", "message_stop"]
        assert names.count("message_delta") == 1 and names.count("message_stop") == 1
        assert (seen["stop_reason"] == "tool_use") == bool(seen["tools"])
    return seen


@st.composite
def openai_stream(draw) -> tuple[list[Any], dict]:
    """Upstream chunks (dicts; "DONE" marks ``[DONE]``), and what they carry.

    Content, reasoning and tool-call fragments over several indexes interleave; ids and names come
    with a call's first fragment (sometimes repeated later, sometimes no id at all); chunks may
    lack choices or have empty ones; finish_reason and usage may share a chunk or not; the stream
    may end early; Zen's cost frame follows ``[DONE]``.
    """
    calls = draw(st.lists(st.tuples(tool_id, word, json_object), max_size=3))
    pieces: list[tuple] = []
    for k, (_id, _name, args) in enumerate(calls):
        raw = json.dumps(args, ensure_ascii=False)
        cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=4)))
        parts = [raw[a:b] for a, b in itertools.pairwise([0, *cuts, len(raw)])]
        pieces += [("tool", k, j, part) for j, part in enumerate(parts)]
    n_text = draw(st.integers(0, 5))
    pieces += [("content", draw(text)) for _ in range(n_text)]
    pieces += [("reasoning", draw(text), draw(st.sampled_from(["reasoning_content", "reasoning"])))
               for _ in range(draw(st.integers(0, 3)))]
    # any interleaving that keeps each call's fragments in order
    shuffled = draw(st.permutations(pieces))
    per_call = {k: iter(sorted((p for p in pieces if p[0] == "tool" and p[1] == k), key=lambda p: p[2]))
                for k in range(len(calls))}
    pieces = [next(per_call[p[1]]) if p[0] == "tool" else p for p in shuffled]

    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "up"}
    chunks: list[Any] = []
    if draw(st.booleans()):
        chunks.append({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                            "finish_reason": None}]})
    want = {"text": "", "thinking": "", "calls": {k: "" for k in range(len(calls))}, "names": {}}
    started: set[int] = set()
    reuse_index_zero = draw(st.integers(0, 5)) == 0
    for piece in pieces:
        if piece[0] == "content":
            delta: dict[str, Any] = {"content": piece[1]}
            want["text"] += piece[1]
        elif piece[0] == "reasoning":
            delta = {piece[2]: piece[1]}
            want["thinking"] += piece[1]
        else:
            _, k, _, part = piece
            call_id, name, _ = calls[k]
            fragment: dict[str, Any] = {"index": 0 if reuse_index_zero else k, "function": {"arguments": part}}
            if k not in started or draw(st.integers(0, 4)) == 0:  # first fragment, or a duplicate
                if reuse_index_zero or draw(st.integers(0, 4)) > 0:
                    fragment["id"] = call_id
                fragment["type"] = "function"
                fragment["function"]["name"] = name
            started.add(k)
            want["calls"][k] += part
            want["names"][k] = name
            delta = {"tool_calls": [fragment]}
        if draw(st.integers(0, 6)) == 0:
            delta["role"] = "assistant"
        chunks.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        if draw(st.integers(0, 8)) == 0:
            chunks.append(draw(st.sampled_from([{**base, "choices": []}, {**base},
                                                {**base, "choices": [{"index": 0, "delta": {}}]},
                                                {**base, "choices": [{"index": 0}]},
                                                {**base, "choices": [{"index": 1, "delta": {"content": "n=2"}}]}])))
    finish = draw(st.sampled_from(["stop", "length", "tool_calls", "content_filter", None]))
    usage = {"prompt_tokens": draw(st.integers(0, 999)), "completion_tokens": draw(st.integers(0, 999)),
             "total_tokens": 0}
    layout = draw(st.sampled_from(["together", "separate", "no_usage", "usage_first"]))
    if finish is not None:
        if layout == "together":
            chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}], "usage": usage})
        elif layout == "usage_first":
            chunks.append({**base, "choices": [], "usage": usage})
            chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        else:
            chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
            if layout == "separate":
                chunks.append({**base, "choices": [], "usage": usage})
    ending = draw(st.sampled_from(["done", "done", "eof", "cut"]))
    if ending == "cut" and chunks:
        chunks = chunks[:draw(st.integers(0, len(chunks)))]
        want["cut"] = True
    elif ending == "done":
        chunks += ["DONE", {"cost": "0.0012"}]
    want["finish"] = finish
    want["reuse_index_zero"] = reuse_index_zero
    return chunks, want


def run_to_anthropic(chunks: list[Any]) -> tuple[list[tuple[str, dict]], StreamToAnthropic, bool]:
    """Feed ``chunks`` as the stream adapter does; ``finished`` says whether the upstream ended it."""
    translator = StreamToAnthropic(client_model="claude-sonnet-4-5", names=ToolNames(), input_tokens_estimate=7)
    events: list[tuple[str, dict]] = list(translator.start())
    ended = False
    for chunk in chunks:
        if chunk == "DONE":
            events += translator.finish()
            ended = True
        else:
            events += translator.feed(chunk)
    if not ended:
        events += translator.finish()  # EOF
    return events, translator, True


@SETTINGS
@given(openai_stream())
def test_openai_chunks_give_a_well_formed_anthropic_stream(stream: tuple[list[Any], dict]) -> None:
    chunks, want = stream
    events, translator, _ = run_to_anthropic(chunks)
    seen = check_anthropic_events(events, finished=True)
    assert translator.done
    if seen["error"] is not None:
        # only a stream that never said how it finished ends in an error
        assert want["finish"] is None or want.get("cut")
        return
    assert want["finish"] is not None
    nospace = re.compile(r"\s+")
    assert nospace.sub("", seen["text"]) == nospace.sub("", want["text"])
    assert translator.text == want["text"] or want.get("cut")
    assert seen["thinking"] == want["thinking"] or want.get("cut")
    if not want.get("cut") and not want["reuse_index_zero"]:
        named = [k for k in want["calls"] if k in want["names"]]
        assert len(seen["tools"]) == len(named)
        got = sorted(json.dumps([t["name"], json.loads(t["json"] or "{}")]) for t in seen["tools"])
        assert got == sorted(json.dumps([want["names"][k], json.loads(want["calls"][k])]) for k in named)
        if want["text"].strip() and not want["thinking"] and not want["calls"]:
            assert seen["text"] == want["text"]  # only text: every character, blanks included


@SETTINGS
@given(openai_stream())
def test_openai_stream_interrupted_by_a_transport_failure(stream: tuple[list[Any], dict]) -> None:
    chunks, _ = stream
    translator = StreamToAnthropic(client_model="m", names=ToolNames())
    events: list[tuple[str, dict]] = []
    for chunk in chunks[: len(chunks) // 2]:
        if chunk != "DONE":
            events += translator.feed(chunk)
    events += translator.fail(502, "connection reset")
    events += translator.finish()
    check_anthropic_events(events, finished=True)
    assert events[-1][0] in ("error", "message_stop")


# --- stream: Anthropic events -> OpenAI chunks -----------------------------------------------------------


def check_openai_chunks(items: list[Any], *, include_usage: bool) -> dict:
    """The chunk grammar an OpenAI client relies on; returns what the chunks carried.

    A role chunk first; every chunk a ``chat.completion.chunk`` with one id; at most one choice
    (index 0) with a delta; tool calls numbered 0, 1, 2... in order of first appearance, id, type and
    name in the first fragment; exactly one finish_reason, after all content; then the usage chunk
    (when asked) and ``[DONE]``, last. Or one error chunk, last, and no ``[DONE]``.
    """
    seen: dict[str, Any] = {"text": "", "reasoning": "", "calls": [], "finish": None, "error": None}
    if items and isinstance(items[-1], dict) and "error" in items[-1]:
        err = items[-1]["error"]
        assert isinstance(err["message"], str) and isinstance(err["type"], str)
        seen["error"] = err
        items = items[:-1]
        assert "[DONE]" not in items
    elif items:
        assert items[-1] == "[DONE]" and items.count("[DONE]") == 1
        items = items[:-1]
    ids = set()
    finishes = 0
    for n, chunk in enumerate(items):
        assert isinstance(chunk, dict) and "error" not in chunk
        assert chunk["object"] == "chat.completion.chunk" and isinstance(chunk["created"], int)
        ids.add(chunk["id"])
        choices = chunk["choices"]
        if not choices:
            assert include_usage and "usage" in chunk and n == len(items) - 1
            assert all(isinstance(v, int) and v >= 0 for k, v in chunk["usage"].items() if k.endswith("tokens"))
            continue
        assert len(choices) == 1 and choices[0]["index"] == 0
        delta = choices[0]["delta"]
        if n == 0:
            assert delta == {"role": "assistant", "content": ""}
        if choices[0]["finish_reason"] is not None:
            finishes += 1
            assert delta == {}
            seen["finish"] = choices[0]["finish_reason"]
            continue
        assert finishes == 0, "content after finish_reason"
        if "content" in delta and n:
            seen["text"] += delta["content"]
        if "reasoning_content" in delta:
            seen["reasoning"] += delta["reasoning_content"]
        for call in delta.get("tool_calls", []):
            index = call["index"]
            if index == len(seen["calls"]):
                assert isinstance(call["id"], str) and call["id"] and call["type"] == "function"
                assert isinstance(call["function"]["name"], str)
                seen["calls"].append({"id": call["id"], "name": call["function"]["name"], "arguments": ""})
            else:
                assert 0 <= index < len(seen["calls"]) and "id" not in call
            seen["calls"][index]["arguments"] += call["function"]["arguments"]
    assert len(ids) <= 1 and all(isinstance(i, str) for i in ids)
    if seen["error"] is None and items:
        assert finishes == 1
        assert (seen["finish"] == "tool_calls") == bool(seen["calls"])
    else:
        assert finishes <= 1
    return seen


@st.composite
def anthropic_stream(draw) -> tuple[list[tuple[str, Any]], dict]:
    """Anthropic events: message_start, text/thinking/tool_use blocks, pings, message_delta,
    message_stop - with blocks sometimes left unstopped, events missing, errors and early ends."""
    events: list[tuple[str, Any]] = []
    want: dict[str, Any] = {"text": "", "thinking": "", "calls": []}
    if draw(st.integers(0, 9)):
        events.append(("message_start", {"type": "message_start", "message": {
            "id": "msg_" + draw(word), "type": "message", "role": "assistant", "content": [], "model": "x",
            "usage": {"input_tokens": draw(st.integers(0, 99)), "output_tokens": 1}}}))
    for index in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["text", "thinking", "tool_use"]))
        if kind == "text":
            first = draw(st.one_of(st.just(""), text))
            events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {"type": "text", "text": first}}))
            want["text"] += first
            for piece in draw(st.lists(text, max_size=3)):
                events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                       "delta": {"type": "text_delta", "text": piece}}))
                want["text"] += piece
        elif kind == "thinking":
            events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {"type": "thinking", "thinking": ""}}))
            for piece in draw(st.lists(text, max_size=3)):
                events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                       "delta": {"type": "thinking_delta", "thinking": piece}}))
                want["thinking"] += piece
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                   "delta": {"type": "signature_delta", "signature": "c2ln"}}))
        else:
            initial = draw(json_object) if draw(st.integers(0, 4)) == 0 else {}
            raw = "" if initial else json.dumps(draw(json_object))  # the whole input in the start, or deltas
            cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=3)))
            parts = [raw[a:b] for a, b in itertools.pairwise([0, *cuts, len(raw)])] if raw else []
            name = draw(tool_name)
            events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {"type": "tool_use", "id": draw(tool_id),
                                                                     "name": name, "input": initial}}))
            for part in parts:
                events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                       "delta": {"type": "input_json_delta", "partial_json": part}}))
            want["calls"].append({"name": name, "arguments": (json.dumps(initial, separators=(",", ":"),
                                                                         ensure_ascii=False) if initial else "")
                                  + "".join(parts)})
        if draw(st.integers(0, 5)):
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        if draw(st.integers(0, 5)) == 0:
            events.append(("ping", {"type": "ping"}))
    stop = draw(st.sampled_from(["end_turn", "max_tokens", "tool_use", "stop_sequence", "refusal", None]))
    ending = draw(st.sampled_from(["full", "full", "full", "no_stop", "no_delta", "stop_only", "error", "cut"]))
    if ending == "stop_only":  # message_stop without a message_delta before it
        events.append(("message_stop", {"type": "message_stop"}))
    elif ending in ("full", "no_stop"):
        events.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop,
                                                                            "stop_sequence": None},
                                         "usage": {"output_tokens": draw(st.integers(0, 99))}}))
        if ending == "full":
            events.append(("message_stop", {"type": "message_stop"}))
            if draw(st.booleans()):
                events.append(("message_stop", {"type": "message_stop"}))  # a duplicate: ignored
    elif ending == "error":
        events.insert(draw(st.integers(0, len(events))),
                      ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    elif ending == "cut" and events:
        events = events[:draw(st.integers(0, len(events)))]
    want["ending"] = ending
    return events, want


def run_to_openai(events: list[tuple[str, Any]], include_usage: bool) -> tuple[list[Any], StreamToOpenAI]:
    translator = StreamToOpenAI(client_model="gpt-x", names=ToolNames(), include_usage=include_usage)
    out: list[Any] = []
    for name, data in events:
        out += translator.feed(name, data)
    out += translator.finish()
    return out, translator


@SETTINGS
@given(anthropic_stream(), st.booleans())
def test_anthropic_events_give_well_formed_openai_chunks(stream: tuple[list, dict], include_usage: bool) -> None:
    events, want = stream
    out, translator = run_to_openai(events, include_usage)
    seen = check_openai_chunks(out, include_usage=include_usage)
    assert translator.done
    if want["ending"] in ("full", "no_stop", "stop_only"):
        assert seen["error"] is None
        assert seen["text"] == want["text"] == translator.text
        assert seen["reasoning"] == want["thinking"]
        assert [c["name"] for c in seen["calls"]] == [c["name"] for c in want["calls"]]
        for got, expected in zip(seen["calls"], want["calls"], strict=True):
            assert got["arguments"] == (expected["arguments"] or "{}")
            assert isinstance(json.loads(got["arguments"]), dict)
    elif want["ending"] in ("no_delta", "error"):
        assert seen["error"] is not None


# --- mutated streams: events lost, repeated, reordered, fields spoiled --------------------------------


@st.composite
def mutated(draw, stream: st.SearchStrategy, get_items, set_items) -> Any:
    """A valid stream with a few random mutations (drop, duplicate, swap, spoil a field)."""
    value = draw(stream)
    items = list(get_items(value))
    for _ in range(draw(st.integers(1, 4))):
        if not items:
            break
        i = draw(st.integers(0, len(items) - 1))
        op = draw(st.sampled_from(["drop", "dup", "swap", "spoil"]))
        if op == "drop":
            del items[i]
        elif op == "dup":
            items.insert(i, items[i])
        elif op == "swap":
            j = draw(st.integers(0, len(items) - 1))
            items[i], items[j] = items[j], items[i]
        else:
            items[i] = _spoil(items[i], draw)
    return set_items(value, items)


def _spoil(item: Any, draw) -> Any:
    """``item`` with one value somewhere inside replaced by garbage."""
    if isinstance(item, tuple):
        return (item[0], _spoil(item[1], draw))
    if isinstance(item, dict) and item:
        key = draw(st.sampled_from(sorted(item)))
        copy = dict(item)
        copy[key] = _spoil(item[key], draw) if draw(st.booleans()) else draw(garbage)
        return copy
    if isinstance(item, list) and item:
        i = draw(st.integers(0, len(item) - 1))
        return [*item[:i], _spoil(item[i], draw), *item[i + 1:]]
    return draw(garbage)


@SETTINGS
@given(mutated(openai_stream(), lambda v: v[0], lambda v, items: items))
def test_mutated_openai_chunks_still_give_a_well_formed_anthropic_stream(chunks: list[Any]) -> None:
    events, translator, _ = run_to_anthropic(chunks)
    check_anthropic_events(events, finished=True)
    assert translator.done


@SETTINGS
@given(mutated(anthropic_stream(), lambda v: v[0], lambda v, items: items), st.booleans())
def test_mutated_anthropic_events_still_give_well_formed_openai_chunks(events: list, include_usage: bool) -> None:
    out, translator = run_to_openai(events, include_usage)
    check_openai_chunks(out, include_usage=include_usage)
    assert translator.done


# --- garbage ----------------------------------------------------------------------------------------

KEYS = ["id", "type", "index", "choices", "delta", "content", "reasoning_content", "reasoning", "refusal",
        "tool_calls", "function", "name", "arguments", "finish_reason", "usage", "prompt_tokens",
        "completion_tokens", "error", "message", "code", "status", "content_block", "input", "partial_json",
        "text", "thinking", "stop_reason", "input_tokens", "output_tokens", "reasoning_details", "role"]
VALUES = ["message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta",
          "message_stop", "error", "text", "tool_use", "thinking", "text_delta", "input_json_delta",
          "thinking_delta", "stop", "tool_calls", "reasoning.text", "function", "rate_limit_error", "{", "}", ""]
garbage_scalar = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([10**30, -1.5, 1e308]),
                           st.sampled_from(VALUES), text)
garbage = st.recursive(garbage_scalar,
                       lambda inner: st.one_of(st.lists(inner, max_size=3),
                                               st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
                       max_leaves=12)
garbage_dict = st.dictionaries(st.sampled_from(KEYS), garbage, max_size=6)


@FEW
@given(st.lists(st.one_of(garbage_dict, garbage_dict, garbage, st.just("DONE")), max_size=12))
def test_garbage_into_the_anthropic_stream_translator_never_raises(chunks: list[Any]) -> None:
    events, translator, _ = run_to_anthropic(chunks)
    check_anthropic_events(events, finished=True)
    assert translator.done
    _ = translator.usage, translator.text


@FEW
@given(st.lists(st.tuples(st.one_of(st.sampled_from(VALUES), st.just("")), st.one_of(garbage_dict, garbage)),
                max_size=12), st.booleans())
def test_garbage_into_the_openai_stream_translator_never_raises(events: list, include_usage: bool) -> None:
    out, translator = run_to_openai(events, include_usage)
    check_openai_chunks(out, include_usage=include_usage)
    assert translator.done
    _ = translator.usage, translator.openai_usage, translator.text


@FEW
@given(garbage_dict)
def test_garbage_answers_translate_or_fail_cleanly(answer: dict) -> None:
    """An answer is translated, or refused as no answer of its API (a 502 the exchange turns into a
    failed attempt) - never an exception of another kind."""
    names = ToolNames()
    try:
        message = response_from_openai(answer, client_model="m", names=names)
        assert message["content"] and message["stop_reason"]
    except ProtocolError as exc:
        assert exc.status == 502 and not isinstance(answer.get("choices"), list)
    try:
        completion = response_from_anthropic(answer, client_model="m", names=names, created=1)
        assert completion["choices"][0]["finish_reason"]
    except ProtocolError as exc:
        assert exc.status == 502 and not isinstance(answer.get("content"), list)
    _ = reasoning_of(answer)


@FEW
@given(garbage_dict, st.sampled_from(["anthropic", "openai"]))
def test_garbage_requests_are_refused_with_a_400(body: dict, direction: str) -> None:
    body = {"model": "m", "max_tokens": 5, **body}
    try:
        if direction == "anthropic":
            request_to_openai(body, upstream_model="up")
        else:
            request_to_anthropic(body, upstream_model="up")
    except ProtocolError as exc:
        assert exc.status == 400


# --- regressions: one focused test per bug the properties found --------------------------------------


def test_calls_followed_only_by_system_messages_get_placeholder_results() -> None:
    """A conversation ending on tool calls *and then* a system message: the calls are not last, so
    OpenAI needs a result for each before the system message (it was sent unanswered)."""
    body = {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}]},
        {"role": "system", "content": "be brief"}]}
    out, _ = request_to_openai(body, upstream_model="up")
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "tool", "system"]
    assert out["messages"][2]["tool_call_id"] == "toolu_1"
    check_openai_request(out)


def test_openai_chunks_with_fields_of_the_wrong_type_do_not_raise() -> None:
    """``choices``/``tool_calls`` that are not arrays and a finish_reason that is not a string
    raised TypeError out of the stream translator (a 500 mid-stream)."""
    translator = StreamToAnthropic(client_model="m", names=ToolNames())
    assert translator.feed({"choices": True})[0][0] == "message_start"
    assert translator.feed({"choices": [{"delta": {"tool_calls": 7, "content": "hi"}}]})
    assert translator.feed({"choices": [{"delta": {}, "finish_reason": ["stop"]}]}) == []
    events = translator.feed({"choices": [{"delta": {}, "finish_reason": "stop"}]}) + translator.finish()
    assert [name for name, _ in events][-2:] == ["message_delta", "message_stop"]


def test_answers_with_fields_of_the_wrong_type_do_not_raise() -> None:
    names = ToolNames()
    message = response_from_openai({"choices": [{"message": {"content": "x", "tool_calls": {"a": 1}},
                                                 "finish_reason": ["stop"]}]}, client_model="m", names=names)
    assert message["content"] == [{"type": "text", "text": "x"}] and message["stop_reason"] == "end_turn"
    completion = response_from_anthropic({"content": [{"type": "text"}], "stop_reason": [None]},
                                         client_model="m", names=names, created=1)
    assert completion["choices"][0]["finish_reason"] == "stop"
    with pytest.raises(ProtocolError, match="not an Anthropic message"):  # no content list: no answer at all
        response_from_anthropic({"content": {"type": "text"}}, client_model="m", names=names)


def test_message_stop_without_message_delta_after_tool_calls_finishes_with_tool_calls() -> None:
    translator = StreamToOpenAI(client_model="m", names=ToolNames(), include_usage=False)
    out = translator.feed("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
        "type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}})
    out += translator.feed("message_stop", {"type": "message_stop"})
    finishes = [c["choices"][0]["finish_reason"] for c in out if isinstance(c, dict) and c["choices"]]
    assert [f for f in finishes if f] == ["tool_calls"]


def test_content_after_message_delta_is_not_sent_after_the_finish_reason() -> None:
    translator = StreamToOpenAI(client_model="m", names=ToolNames(), include_usage=False)
    translator.feed("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}})
    late = translator.feed("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                   "delta": {"type": "text_delta", "text": "late"}})
    assert late == [] and translator.text == ""
    assert translator.feed("message_stop", {"type": "message_stop"})[-1] == "[DONE]"


def test_anthropic_events_with_fields_of_the_wrong_type_do_not_raise() -> None:
    """An unhashable block index, error type, tool id or name raised TypeError."""
    translator = StreamToOpenAI(client_model="m", names=ToolNames(), include_usage=False)
    translator.feed("content_block_start", {"type": "content_block_start", "index": [0], "content_block": {
        "type": "tool_use", "id": 5, "name": ["Bash"], "input": {}}})
    translator.feed("content_block_stop", {"type": "content_block_stop", "index": {}})
    out = translator.feed("error", {"type": "error", "error": {"type": ["overloaded_error"], "message": "x"}})
    assert out == [{"error": {"message": "x", "type": "api_error", "param": None, "code": None}}]
    assert ToolNames().id_in(7).startswith("toolu_") and ToolNames().name_in(["x"]) == ""  # type: ignore[arg-type]
