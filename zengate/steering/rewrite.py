"""Rewriting rules: text replaced, prepended or appended in the system prompt, the user's messages or the
model's answers (the ``rewrite_rules`` setting and the models file's ``rewrite_rules:`` section).

A rule is data, by id, applied in the order the rules are written::

    {"where": "system" | "user" | "assistant", "action": "replace" | "prepend" | "append",
     "match": "literal" | "regex", "pattern": "...",   # replace only (no pattern: the whole system prompt)
     "text": "..." | "file": "/abs/path",               # what goes in (a file: read once, cached by mtime)
     "models": ["claude-*", ...], "keys": ["sk-zen-abcdef", ...]}   # optional scopes (fnmatch, key prefix)

At each place the replacements run first, in order, then the prepended and appended text is added
(in rule order), so no rule rewrites text another rule added. ``user`` rules rewrite the text of
every user turn, not only the latest, so the same conversation always goes up the same way and the
upstream's prompt cache keeps its prefix; tool results are not the user's words and stay as they
are. ``assistant`` rules rewrite the answer (:class:`OutputRewriter`), streamed or whole.

Everything here is pure except reading a rule's ``file`` (:func:`file_text`).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..exchange.form import FormEvent

log = logging.getLogger(__name__)

WHERE = ("system", "user", "assistant")
ACTIONS = ("replace", "prepend", "append")
MATCHES = ("literal", "regex")
FIELDS = ("where", "action", "match", "pattern", "text", "file", "models", "keys")
MAX_PATTERN_CHARS = 2000
MAX_TEXT_CHARS = 1_000_000  # a text, or a file's
MAX_RULES = 200

#: Called with (guard, action, why) when rules fired: the request's record notes it.
Note = Callable[[str, str, str], None]


@dataclass(frozen=True)
class Rule:
    """One rewriting rule, checked and compiled."""

    id: str
    where: str
    action: str
    pattern: str | None = None  # None: the whole text (a system prompt replaced whole)
    regex: re.Pattern[str] | None = None  # the compiled pattern when match is regex
    text: str | None = None
    file: str | None = None
    models: tuple[str, ...] = ()  # fnmatch patterns; empty: every model
    keys: tuple[str, ...] = ()  # key prefixes as the dashboard shows them; empty: every request

    def applies(self, models: Iterable[str], key: str | None) -> bool:
        """Whether the rule is for a request for any of ``models`` carrying ``key`` (its shown prefix)."""
        if self.keys and key not in self.keys:
            return False
        return not self.models or any(fnmatch.fnmatchcase(m, p) for m in models for p in self.models)

    def replacement(self) -> str | None:
        """The rule's text (a file's as it is now); None when its file can no longer be read."""
        return self.text if self.file is None else file_text(self.file)


class _Active:
    """A rule with its text resolved for one request (a file is read, or stat-ed, once per request)."""

    __slots__ = ("count", "new", "repl", "rule")

    def __init__(self, rule: Rule, new: str):
        self.rule, self.new, self.count = rule, new, 0
        # a regex rule's own text may name groups (\1, \g<name>); a file's text goes in as it is
        self.repl: Any = new if rule.file is None else (lambda _match: new)

    def replace(self, text: str) -> str:
        """``text`` with every match replaced (counted)."""
        rule = self.rule
        if rule.regex is not None:
            text, count = rule.regex.subn(self.repl, text)
        else:
            count = text.count(rule.pattern or "")
            if count:
                text = text.replace(rule.pattern or "", self.new)
        self.count += count
        return text



def text_blocks(content: list) -> list[int]:
    """The indices of the text blocks in a message's content."""
    return [i for i, b in enumerate(content) if isinstance(b, dict) and b.get("type") == "text"
            and isinstance(b.get("text"), str)]

def _resolve(rules: Iterable[Rule]) -> list[_Active]:
    """The rules whose text is there (a file that could never be read is skipped)."""
    out = []
    for rule in rules:
        new = rule.replacement()
        if new is not None:
            out.append(_Active(rule, new))
    return out


# --- files -----------------------------------------------------------------------------------------

_FILES: dict[str, tuple[int, int, str]] = {}  # path → (mtime_ns, size, text)
_FILES_WARNED: set[str] = set()


def read_file(path: str) -> str:
    """A rule's file as text, cached by its mtime and size; OSError or ValueError (not UTF-8, too large)."""
    stat = os.stat(path)
    cached = _FILES.get(path)
    if cached is not None and cached[:2] == (stat.st_mtime_ns, stat.st_size):
        return cached[2]
    if stat.st_size > MAX_TEXT_CHARS * 4:
        raise ValueError(f"larger than {MAX_TEXT_CHARS} characters")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"larger than {MAX_TEXT_CHARS} characters")
    _FILES[path] = (stat.st_mtime_ns, stat.st_size, text)
    return text


def file_text(path: str) -> str | None:
    """A rule's file for a request: its text, the last text read when it cannot be read now, or None."""
    try:
        text = read_file(path)
    except (OSError, ValueError) as exc:
        if path not in _FILES_WARNED:
            _FILES_WARNED.add(path)
            log.warning("rewrite_rules: cannot read %s (%s); %s", path, getattr(exc, "strerror", None) or exc,
                        "using the text read before" if path in _FILES else "the rule is skipped")
        cached = _FILES.get(path)
        return cached[2] if cached is not None else None
    _FILES_WARNED.discard(path)
    return text


# --- checking and compiling ------------------------------------------------------------------------

class RuleError(ValueError):
    """A rule that cannot be used; the message names the rule."""


def _names(rule_id: str, value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise RuleError(f"{rule_id}: {field} must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


def compile_rule(rule_id: str, spec: Any) -> Rule:
    """One rule of the setting (or the models file), checked; :class:`RuleError` says what is wrong."""
    if not isinstance(spec, dict):
        raise RuleError(f"{rule_id}: must be an object with where, action and text or file")
    unknown = sorted(set(spec) - set(FIELDS))
    if unknown:
        raise RuleError(f"{rule_id}: unknown fields {unknown}; known: {', '.join(FIELDS)}")
    where, action = spec.get("where"), spec.get("action")
    if where not in WHERE:
        raise RuleError(f"{rule_id}: where must be one of {', '.join(WHERE)}")
    if action not in ACTIONS:
        raise RuleError(f"{rule_id}: action must be one of {', '.join(ACTIONS)}")
    match = spec.get("match", "literal")
    if match not in MATCHES:
        raise RuleError(f"{rule_id}: match must be literal or regex")
    pattern = spec.get("pattern")
    if action == "replace":
        if pattern is None and where != "system":
            raise RuleError(f"{rule_id}: a replace rule needs a pattern (only a system prompt is replaced whole)")
        if pattern is not None and (not isinstance(pattern, str) or not pattern
                                    or len(pattern) > MAX_PATTERN_CHARS):
            raise RuleError(f"{rule_id}: pattern must be 1 to {MAX_PATTERN_CHARS} characters")
        if pattern is None and "match" in spec:
            raise RuleError(f"{rule_id}: match needs a pattern")
    elif pattern is not None or "match" in spec:
        raise RuleError(f"{rule_id}: pattern and match are for replace rules; {action} adds its text as it is")
    text, path = spec.get("text"), spec.get("file")
    if (text is None) == (path is None):
        raise RuleError(f"{rule_id}: give either text or file")
    if text is not None and (not isinstance(text, str) or len(text) > MAX_TEXT_CHARS):
        raise RuleError(f"{rule_id}: text must be a string of at most {MAX_TEXT_CHARS} characters")
    if text == "" and action != "replace":
        raise RuleError(f"{rule_id}: text must not be empty")
    if path is not None:
        if not isinstance(path, str) or not os.path.isabs(path):
            raise RuleError(f"{rule_id}: file must be an absolute path")
        try:
            read_file(path)
        except OSError as exc:
            if path not in _FILES:  # a file read before and gone since keeps its last text (file_text)
                raise RuleError(f"{rule_id}: file {path} cannot be read ({exc.strerror or exc})") from None
        except ValueError as exc:
            raise RuleError(f"{rule_id}: file {path} is not usable ({exc})") from None
    regex = None
    if match == "regex" and pattern is not None:
        try:
            regex = re.compile(pattern)
            if text is not None:
                regex.sub(text, "")  # a replacement naming a group the pattern lacks fails here
        except re.error as exc:
            raise RuleError(f"{rule_id}: pattern or text is not a valid regular expression replacement "
                            f"({exc})") from None
    return Rule(rule_id, where, action, pattern, regex, text, path, _names(rule_id, spec.get("models"), "models"),
                _names(rule_id, spec.get("keys"), "keys"))


def compile_rules(value: Mapping[str, Any]) -> tuple[Rule, ...]:
    """Every rule of a ``rewrite_rules`` value, in order; :class:`RuleError` for the first bad one."""
    if not isinstance(value, Mapping):
        raise RuleError("must be an object of rules by id")
    if len(value) > MAX_RULES:
        raise RuleError(f"at most {MAX_RULES} rules")
    return tuple(compile_rule(str(rule_id), spec) for rule_id, spec in value.items())


def check_setting(value: Any) -> str | None:
    """What is wrong with a ``rewrite_rules`` value, or None."""
    try:
        compile_rules(value)
    except RuleError as exc:
        return str(exc)
    return None


_COMPILED: dict[int, tuple[Mapping[str, Any], tuple[Rule, ...]]] = {}


def _compiled(value: Mapping[str, Any]) -> tuple[Rule, ...]:
    """``value``'s rules, compiled once per value object (settings replace theirs when they reload)."""
    cached = _COMPILED.get(id(value))
    if cached is not None and cached[0] is value:
        return cached[1]
    try:
        rules = compile_rules(value)
    except RuleError as exc:  # checked when set: only a file that went away since
        log.warning("rewrite_rules: %s; no rules apply until it is fixed", exc)
        rules = ()
    if len(_COMPILED) > 16:
        _COMPILED.clear()
    _COMPILED[id(value)] = (value, rules)
    return rules


def rules_for(setting: Mapping[str, Any] | None, from_file: Mapping[str, Any] | None, *,
              models: Iterable[str], key: str | None) -> tuple[Rule, ...]:
    """The rules for a request: the models file's then the setting's (a setting rule replaces the
    file's of the same id), those whose models and keys take the request."""
    if not setting and not from_file:
        return ()
    merged: dict[str, Rule] = {}
    for value in (from_file, setting):
        if value:
            merged.update((rule.id, rule) for rule in _compiled(value))
    names = tuple(dict.fromkeys(models))
    return tuple(rule for rule in merged.values() if rule.applies(names, key))


# --- the request -----------------------------------------------------------------------------------

@dataclass
class _Place:
    """The rules of one place (system, user, assistant) resolved for a request: replacements in order,
    the text prepend and append rules add (each joined in rule order), and which rules fired."""

    replacers: list[_Active]
    before: str
    after: str
    before_ids: tuple[str, ...]
    after_ids: tuple[str, ...]

    @classmethod
    def of(cls, rules: Iterable[Rule]) -> _Place:
        active = _resolve(rules)
        prepends = [a for a in active if a.rule.action == "prepend" and a.new]
        appends = [a for a in active if a.rule.action == "append" and a.new]
        return cls([a for a in active if a.rule.action == "replace" and a.rule.pattern is not None],
                   "".join(a.new for a in prepends), "".join(a.new for a in appends),
                   tuple(a.rule.id for a in prepends), tuple(a.rule.id for a in appends))

    def replaced(self, text: str) -> str:
        for active in self.replacers:
            text = active.replace(text)
        return text

    def content(self, content: Any, edges: bool = True) -> Any:
        """A message's content (text, or blocks of which only text blocks are read) rewritten, the
        same object when nothing changed; with ``edges`` the prepended and appended text go into
        its first and last text blocks."""
        before, after = (self.before, self.after) if edges else ("", "")
        if isinstance(content, str):
            new = before + self.replaced(content) + after
            return content if new == content else new
        if not isinstance(content, list):
            return content
        texts = text_blocks(content)
        if not texts:
            return content
        out, changed = list(content), False
        for i in texts:
            new = self.replaced(content[i]["text"])
            if i == texts[0]:
                new = before + new
            if i == texts[-1]:
                new += after
            if new != content[i]["text"]:
                out[i], changed = {**content[i], "text": new}, True
        return out if changed else content

    def fired(self, edges: bool) -> list[str]:
        ids = [a.rule.id for a in self.replacers if a.count]
        return [*self.before_ids, *ids, *self.after_ids] if edges else ids


def _whole(system: Any, text: str) -> Any:
    """``text`` as the whole system prompt, in its shape: a block keeps the last block's cache_control."""
    if not isinstance(system, list):
        return text
    cached = [b["cache_control"] for b in system if isinstance(b, dict) and "cache_control" in b]
    return [{"type": "text", "text": text, **({"cache_control": cached[-1]} if cached else {})}]


def _rewrite_system(form: dict, rules: Sequence[Rule], fired: list[str]) -> Any:
    """The form's system prompt rewritten (the same object when nothing changed)."""
    system = form.get("system")
    for active in _resolve(r for r in rules if r.action == "replace" and r.pattern is None):
        fired.append(active.rule.id)
        system = _whole(system, active.new)
    place = _Place.of(rules)
    if system is None or system == "" or system == []:
        new = place.before + place.after
        fired.extend(place.fired(True))
        return new if new else system
    new = place.content(system)
    fired.extend(place.fired(new is not system))
    return new


def rewrite_request(form: dict, rules: Sequence[Rule]) -> tuple[dict | None, tuple[str, ...]]:
    """The request form with the ``system`` and ``user`` rules applied (a new dict; ``form``, which is
    shared, is left as it is), or None when nothing changed; and the ids of the rules that fired.

    System rules rewrite the system prompt (replacements also a conversation's system messages);
    user rules the text of every user turn alike. Tool results are left as they are.
    """
    fired: list[str] = []
    system_rules = [r for r in rules if r.where == "system"]
    changes: dict[str, Any] = {}
    if system_rules:
        system = _rewrite_system(form, system_rules, fired)
        if system is not form.get("system"):
            changes["system"] = system
    users = _Place.of(r for r in rules if r.where == "user")
    mid = _Place.of(r for r in system_rules if r.action == "replace" and r.pattern is not None)
    messages = form.get("messages")
    if (users.replacers or users.before or users.after or mid.replacers) and isinstance(messages, list):
        out, edged = [], False
        for message in messages:
            role = message.get("role") if isinstance(message, dict) else None
            place = users if role == "user" else mid if role == "system" else None
            content = message.get("content") if place is not None else None
            new = place.content(content, edges=role == "user") if place is not None else content
            if new is not content:
                out.append({**message, "content": new})
                edged |= role == "user"
            else:
                out.append(message)
        fired.extend((*users.fired(edged), *mid.fired(False)))
        if any(new is not old for new, old in zip(out, messages, strict=True)):
            changes["messages"] = out
    order = {rule.id: i for i, rule in enumerate(rules)}
    ids = tuple(sorted(dict.fromkeys(fired), key=order.__getitem__))
    return ({**form, **changes} if changes else None), ids


# --- the answer ------------------------------------------------------------------------------------

class _Literal:
    """One literal replacement over a text arriving in pieces: holds back only an end of the text that
    may begin a match (at most the pattern's length less one)."""

    def __init__(self, active: _Active):
        self.active, self.pattern, self.new = active, active.rule.pattern or "", active.new
        self.tail = ""

    def feed(self, text: str) -> str:
        raw = self.tail + text
        cut = max(0, len(raw) - len(self.pattern) + 1)  # a match starting before this ends inside ``raw``
        out, pos = [], 0
        while True:
            at = raw.find(self.pattern, pos)
            if at < 0 or at >= cut:
                break
            out += (raw[pos:at], self.new)
            pos = at + len(self.pattern)
            self.active.count += 1
        end = max(cut, pos)
        first = self.pattern[0]
        while True:  # no match can start where the rest is not the start of one
            end = raw.find(first, end)
            if end < 0 or self.pattern.startswith(raw[end:]):
                break
            end += 1
        end = len(raw) if end < 0 else end
        out.append(raw[pos:end])
        self.tail = raw[end:]
        return "".join(out)

    def finish(self) -> str:
        raw, self.tail = self.tail, ""
        return self.active.replace(raw)


class _Whole:
    """One regex replacement: the text is held to the end of its block, then replaced."""

    def __init__(self, active: _Active):
        self.active = active
        self.parts: list[str] = []

    def feed(self, text: str) -> str:
        self.parts.append(text)
        return ""

    def finish(self) -> str:
        text, self.parts = "".join(self.parts), []
        return self.active.replace(text)


class _Pipeline:
    """A text block's replacements in order, each fed what the one before let through."""

    def __init__(self, replacers: Sequence[_Active]):
        self.stages = [_Whole(a) if a.rule.regex is not None else _Literal(a) for a in replacers]

    def feed(self, text: str) -> str:
        for stage in self.stages:
            text = stage.feed(text)
        return text

    def finish(self) -> str:
        text = ""
        for stage in self.stages:
            text = stage.feed(text) + stage.finish()
        return text


def _text_delta(index: int, text: str) -> FormEvent:
    return ("content_block_delta", {"type": "content_block_delta", "index": index,
                                    "delta": {"type": "text_delta", "text": text}})


class OutputRewriter:
    """An answer guard applying the ``assistant`` rules to the model's text: a stream's text deltas
    (:meth:`feed`) or a whole answer (:meth:`answer`).

    Replacements rewrite every text block; prepended text goes at the start of the first text
    block, appended text at the end of the last one when the answer ends with text, else in a text
    block of its own after the others; an answer with no text (tool calls only) gets neither. In a
    stream a literal replacement holds back only as much text as a match could span, a regex its
    text block to the block's end, and an appending rule a text block's end until the next event;
    events are never reordered.
    """

    def __init__(self, rules: Sequence[Rule], note: Note):
        self.place = _Place.of(rules)
        self.order = {rule.id: i for i, rule in enumerate(rules)}
        self.note = note
        self.prepended = self.appended = False
        self.open: tuple[int, _Pipeline] | None = None  # the text block open, and its replacements
        self.held_stop: FormEvent | None = None  # a text block's stop, until it is known whether text follows
        self.seen_text = False
        self.next_index = 0
        self.noted: set[str] = set()

    # --- streams ---------------------------------------------------------------------------------

    def feed(self, events: Iterable[FormEvent]) -> list[FormEvent]:
        """The events to send on for these, their text rewritten."""
        out: list[FormEvent] = []
        for name, data in events:
            if self.held_stop is not None:
                if name in ("message_delta", "message_stop"):
                    out.append(_text_delta(self.held_stop[1]["index"], self._append()))
                out.append(self.held_stop)
                self.held_stop = None
            index = data.get("index") if isinstance(data.get("index"), int) else None
            if index is not None:
                self.next_index = max(self.next_index, index + 1)
            if name == "content_block_start" and (data.get("content_block") or {}).get("type") == "text":
                self.open, self.seen_text = (index, _Pipeline(self.place.replacers)), True
                out.append((name, data))
                if self.place.before and not self.prepended:
                    self.prepended = True
                    out.append(_text_delta(index, self.place.before))
                continue
            if self.open is not None and index == self.open[0]:
                delta = data.get("delta") or {}
                if name == "content_block_delta" and delta.get("type") == "text_delta":
                    text = self.open[1].feed(delta.get("text") or "")
                    if text:
                        out.append((name, {**data, "delta": {**delta, "text": text}}))
                    continue
                if name == "content_block_stop":
                    out.extend(self._flush())
                    if self.place.after and not self.appended:
                        self.held_stop = (name, data)
                    else:
                        out.append((name, data))
                    continue
            if name == "error":
                out.extend(self._flush())
            elif name == "message_delta" and self.place.after and self.seen_text and not self.appended:
                out.extend(self._appended_block())  # the answer ended with something else than text
            if name in ("message_delta", "error"):
                self._report()
            out.append((name, data))
        return out

    def _flush(self) -> list[FormEvent]:
        """The open text block's held-back text, replaced."""
        if self.open is None:
            return []
        index, pipeline = self.open
        self.open = None
        text = pipeline.finish()
        return [_text_delta(index, text)] if text else []

    def _append(self) -> str:
        self.appended = True
        return self.place.after

    def _appended_block(self) -> list[FormEvent]:
        index = self.next_index
        self.next_index += 1
        return [("content_block_start", {"type": "content_block_start", "index": index,
                                         "content_block": {"type": "text", "text": ""}}),
                _text_delta(index, self._append()),
                ("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _report(self) -> None:
        """Note the rules that fired since the last note."""
        place = self.place
        ids = [*(place.before_ids if self.prepended else ()), *place.fired(False),
               *(place.after_ids if self.appended else ())]
        new = sorted((rule_id for rule_id in set(ids) if rule_id not in self.noted), key=self.order.__getitem__)
        if new:
            self.noted.update(new)
            self.note("rewrite", "fired", "answer: " + ", ".join(new))

    # --- whole answers ---------------------------------------------------------------------------

    def answer(self, answer: dict) -> dict:
        """A whole answer in the form with its text rewritten (the same dict when nothing changed)."""
        content = answer.get("content")
        if not isinstance(content, list) or not (texts := text_blocks(content)):
            return answer
        out = list(self.place.content(content, edges=False))
        changed = out != content
        if self.place.before:
            first = out[texts[0]]
            out[texts[0]], self.prepended, changed = {**first, "text": self.place.before + first["text"]}, True, True
        if self.place.after:
            self.appended = changed = True
            if texts[-1] == len(out) - 1:
                out[-1] = {**out[-1], "text": out[-1]["text"] + self.place.after}
            else:
                out.append({"type": "text", "text": self.place.after})
        self._report()
        return {**answer, "content": out} if changed else answer


def output_guard(rules: Sequence[Rule], note: Note) -> Callable[[dict], OutputRewriter] | None:
    """What makes an attempt's :class:`OutputRewriter` for the ``assistant`` rules among ``rules``; None: none."""
    mine = tuple(r for r in rules if r.where == "assistant")
    if not mine:
        return None
    return lambda _form: OutputRewriter(mine, note)
