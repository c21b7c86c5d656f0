"""How many upstream calls the quota savers save: every recorded client session, and a few synthetic ones.

    .venv/bin/python bench/tools/housekeeping.py [--prompts 5] [--turns 3]

Runs each model call of each recorded session in ``tests/fixtures/clients/`` through
``zengate.steering.housekeeping.recognise`` (parsed by the client's dialect, with the client's
headers, as the gateway does) and prints per session: the model calls (token counts and model
lists are left out: the gateway already answers those itself), the calls a quota saver answers,
and the share saved. No server, no network: the same pure functions the gateway calls.

The recordings are single short sessions with prompts scrambled, so three **synthetic** sessions
follow, built from the clients' real housekeeping prompts (Claude Code 2.1.330, Gemini CLI 0.61.0,
opencode 1.18) around their recorded agent turns: ``--prompts`` user prompts of ``--turns`` agent
turns each. What each client sends besides its turns is an assumption the output states: Claude
Code one quota probe and one session title per session and a prompt suggestion after each prompt
(interactive, suggestions on); opencode one title per session; Gemini CLI the router before each
prompt and the next-speaker check after it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from zengate.dialects import registry  # noqa: E402
from zengate.steering import housekeeping  # noqa: E402

CLIENTS = ROOT / "tests" / "fixtures" / "clients"
LOCAL_PATHS = ("count_tokens", "input_tokens", ":countTokens")

#: A call: the client dialect's name, its body, its headers.
Call = tuple[str, dict, dict]


def recorded_sessions() -> Iterator[tuple[str, list[Call]]]:
    """Each recording's model calls (what would go upstream without the quota savers)."""
    for path in sorted(CLIENTS.glob("*.json")):
        calls = []
        for r in json.loads(path.read_text())["requests"]:
            dialect = registry.for_path(r["path"])
            if r["method"] != "POST" or dialect is None or any(p in r["path"] for p in LOCAL_PATHS):
                continue
            body = dict(r["body"])
            if dialect.name == "gemini":  # the model is in the path
                body["model"] = r["path"].split("/models/")[1].split(":")[0]
            calls.append((dialect.name, body, dict(r["headers"])))
        if calls:
            yield path.stem, calls


def _recorded_turn(file: str, n: int) -> tuple[dict, dict]:
    r = json.loads((CLIENTS / file).read_text())["requests"][n]
    return r["body"], dict(r["headers"])


def synthetic_claude_code(prompts: int, turns: int) -> list[Call]:
    turn, headers = _recorded_turn("cc_tool_bash.json", 1)
    quota = {"model": "claude-haiku-4-5", "max_tokens": 1, "messages": [{"role": "user", "content": "quota"}]}
    title = {"model": "claude-haiku-4-5", "max_tokens": 32000, "system": [
        {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
        {"type": "text", "text": housekeeping.CLAUDE_TITLE_MARKS[0] + " The title is a name for what the session "
         "is about.\n\nReturn JSON with a single \"title\" field."}],
        "messages": [{"role": "user", "content": "<session>\nfix the flaky wire test\n</session>\n\nWrite the "
                      "title in the predominant language of the session."}],
        "output_config": {"format": {"type": "json_schema", "schema": {
            "type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"],
            "additionalProperties": False}}}}
    suggestion = {**turn, "messages": [*turn["messages"], {"role": "user", "content": [{"type": "text", "text":
                  "[SUGGESTION MODE: Suggest what the user might naturally type next into Claude Code.]\n\n"
                  "Reply with ONLY the suggestion, no quotes or explanation."}]}]}
    calls: list[Call] = [("anthropic", quota, headers), ("anthropic", title, headers)]
    for _ in range(prompts):
        calls += [("anthropic", turn, headers)] * turns + [("anthropic", suggestion, headers)]
    return calls


def synthetic_opencode(prompts: int, turns: int) -> list[Call]:
    title, title_headers = _recorded_turn("oc_basic_say_hi.json", 0)
    turn, headers = _recorded_turn("oc_tool_read.json", 1)
    return [("openai", title, title_headers)] + [("openai", turn, headers)] * (prompts * turns)


def synthetic_gemini_cli(prompts: int, turns: int) -> list[Call]:
    router, router_headers = _recorded_turn("gm_basic_say_hi.json", 0)
    turn, headers = _recorded_turn("gm_tool_read_file.json", 1)
    router = {**router, "model": "gemini-3.5-flash-lite"}
    turn = {**turn, "model": "gemini-3.8-flash"}
    speaker = {"model": "gemini-3.5-flash-lite", "contents": [
        *turn["contents"], {"role": "model", "parts": [{"text": "Done."}]},
        {"role": "user", "parts": [{"text": housekeeping.NEXT_SPEAKER_MARK + " (your last turn in the conversation "
                                    "history)."}]}], "generationConfig": {
        "responseMimeType": "application/json", "responseJsonSchema": {"type": "object", "properties": {
            "reasoning": {"type": "string"}, "next_speaker": {"type": "string", "enum": ["user", "model"]}},
            "required": ["reasoning", "next_speaker"]}}}
    calls: list[Call] = []
    for _ in range(prompts):
        calls += [("gemini", router, router_headers)] + [("gemini", turn, headers)] * turns + [
            ("gemini", speaker, router_headers)]
    return calls


def saved(calls: list[Call]) -> tuple[int, dict[str, int]]:
    """How many of ``calls`` a quota saver answers, and by kind."""
    kinds: dict[str, int] = {}
    for name, body, headers in calls:
        if not housekeeping.worth_a_look(body):
            continue
        chore = housekeeping.recognise(registry.CLIENT_DIALECTS[name].parse_request(body), headers)
        if chore is not None:
            kinds[chore.kind] = kinds.get(chore.kind, 0) + 1
    return sum(kinds.values()), kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=5, help="user prompts in a synthetic session")
    parser.add_argument("--turns", type=int, default=3, help="agent turns per prompt in a synthetic session")
    args = parser.parse_args()
    rows = [(name, calls) for name, calls in recorded_sessions()]
    rows += [(f"synthetic: claude code ({args.prompts}x{args.turns})", synthetic_claude_code(args.prompts, args.turns)),
             (f"synthetic: opencode ({args.prompts}x{args.turns})", synthetic_opencode(args.prompts, args.turns)),
             (f"synthetic: gemini cli ({args.prompts}x{args.turns})", synthetic_gemini_cli(args.prompts, args.turns))]
    width = max(len(name) for name, _ in rows)
    print(f"{'session':<{width}}  calls  local  saved  kinds")
    total = local = 0
    for name, calls in rows:
        count, kinds = saved(calls)
        total, local = total + len(calls), local + count
        shown = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "-"
        print(f"{name:<{width}}  {len(calls):>5}  {count:>5}  {100 * count / len(calls):>4.0f}%  {shown}")
    print(f"{'all':<{width}}  {total:>5}  {local:>5}  {100 * local / total:>4.0f}%")


if __name__ == "__main__":
    main()
