"""bench/trim.py: long agent sessions in each client's own format, trimmed, counted and checked.

The tool is run in-process (its ``main`` and ``measure``): a short session's output and every check
in it, each client's turns in the shape its recordings have, the issue's target over 50 turns
(about 2 s for the four clients), and a broken trim caught by the checks and named.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from tests.support.fixtures import load_fixture

_PATH = Path(__file__).resolve().parents[2] / "bench" / "trim.py"
_spec = importlib.util.spec_from_file_location("bench_trim", _PATH)
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_trim"] = bench  # its dataclasses look their module up
_spec.loader.exec_module(bench)

CLIENTS = ("claude-code", "opencode", "codex", "gemini-cli")


def summary_rows(out: str) -> dict[str, list[str]]:
    rows = {}
    for line in out.splitlines():
        name = line.split("  ")[0].strip()
        if name in CLIENTS and name not in rows and re.search(r"\d/\d", line):
            rows[name] = re.split(r"\s{2,}", line.strip())
    return rows


def test_a_short_session_prints_every_request_and_each_clients_summary_and_every_check_holds(capsys):
    assert bench.main(["--turns", "12", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("12 turns per session, seed 28, TrimOptions() defaults: keep_turns 4, max_result_chars 2000")
    assert "FAIL" not in out
    for client in CLIENTS:  # per request: 13 rows, nothing old before 8 turns, then old turns in steps of 4
        block = out.split(f"{client} (")[1].split("\n\n")[0].splitlines()[2:]
        assert [int(line.split()[0]) for line in block] == list(range(13))
        assert [int(line.split()[1]) for line in block] == [0] * 8 + [4] * 4 + [8]
        assert all(line.endswith(" 0.0%") for line in block[:8])
        assert all(float(line.split()[-1].rstrip("%")) > 15 for line in block[8:])  # old turns: a share saved
    rows = summary_rows(out.split("client  ")[-2])
    assert set(rows) == set(CLIENTS)
    for row in rows.values():
        requests, before, after, _saved, last, identical, stable, breaks = row[1:]
        assert requests == "13" and identical == "13/13" and stable == "12/12", row
        assert breaks == "2 at 8, 12", row  # only where more turns became old
        assert int(before.replace(",", "")) > int(after.replace(",", "")) > 0
        assert re.fullmatch(r"\d+k → \d+k", last)
    steps = out.split("the steps overlap):\n")[1].splitlines()
    assert steps[0].split() == ["client", "thinking", "tool_results", "repeats", "reminders"]
    assert {line.split()[0] for line in steps[1:5]} == set(CLIENTS)


def test_fifty_turns_send_at_least_30_percent_fewer_input_tokens_for_every_client():
    for client in CLIENTS:
        result = bench.measure(client)
        assert len(result.rows) == 51 and result.ok, client
        assert [n for n, _ in result.breaks] == list(range(8, 51, 4)), client
        assert result.saved >= 0.30, f"{client}: saved {result.saved:.1%}"


def _keys(items: list[dict]) -> set[tuple[str, ...]]:
    return {tuple(sorted(item)) for item in items}


def test_each_client_appends_turns_the_way_its_recordings_do():
    _, requests = bench.session("codex", 6, 28)
    recorded = load_fixture("cx_gpt55_tool_roundtrip_reasoning_applypatch.json")["requests"][2]["body"]["input"]
    items = requests[-1]["input"][len(load_fixture("cx_gpt55_tool_roundtrip_reasoning_applypatch.json")
                                      ["requests"][0]["body"]["input"]):]
    for kind in ("reasoning", "function_call", "function_call_output"):
        assert _keys([i for i in items if i["type"] == kind]) == _keys([i for i in recorded if i["type"] == kind])
    output = next(i["output"] for i in items if i["type"] == "function_call_output")
    assert re.match(r"Chunk ID: [0-9a-f]{6}\nWall time: [\d.]+ seconds\nProcess exited with code \d\n"
                    r"Original token count: \d+\nOutput:\n", output)

    _, requests = bench.session("gemini-cli", 6, 28)
    recorded = load_fixture("gm_tool_read_file.json")["requests"][2]["body"]["contents"]
    contents = requests[-1]["contents"][1:]
    assert [c["role"] for c in contents] == ["model", "user"] * 6
    call = next(p for p in contents[0]["parts"] if "functionCall" in p)
    assert set(call) == set(recorded[1]["parts"][0]) and set(call["functionCall"]) == {"id", "args", "name"}
    response = contents[1]["parts"][0]["functionResponse"]
    assert response["id"] == call["functionCall"]["id"] and set(response["response"]) == {"output"}

    _, requests = bench.session("claude-code", 6, 28)
    messages = requests[-1]["messages"]
    marked = [(i, b) for i, m in enumerate(messages) if isinstance(m["content"], list)
              for b in m["content"] if "cache_control" in b]
    assert [i for i, _ in marked] == [len(messages) - 1]  # the breakpoint on the last message only
    assert [b["type"] for b in messages[2]["content"]][0::2] == ["thinking", "tool_use"]
    assert messages[3]["content"][0]["type"] == "tool_result"

    _, requests = bench.session("opencode", 6, 28)
    tail = requests[-1]["messages"][-2:]
    assert tail[0]["content"] == "" and tail[0]["tool_calls"][0]["id"] == tail[1]["tool_call_id"]
    assert json.loads(tail[0]["tool_calls"][0]["function"]["arguments"])


def test_the_sessions_are_the_same_on_every_run():
    assert bench.session("codex", 10, 7)[1] == bench.session("codex", 10, 7)[1]
    assert bench.session("codex", 10, 7)[1] != bench.session("codex", 10, 8)[1]


@pytest.mark.parametrize("how, says", [
    ("last", "FAIL codex: request 8: the last 4 turns differ after trimming"),
    ("old", "FAIL codex: request 9: turns trimmed in request 8 came out differently"),
])
def test_a_trim_that_breaks_the_rules_is_named_and_exits_1(monkeypatch, capsys, how, says):
    real = bench.trim

    def broken(form, options):
        trimmed, report = real(form, options)
        if trimmed is None:
            return trimmed, report
        messages = [dict(m) for m in trimmed["messages"]]
        at = -1 if how == "last" else 0  # the last message, or the first one differently each request
        messages[at]["content"] = [{"type": "text", "text": f"changed {len(messages)}"}]
        return {**trimmed, "messages": messages}, report

    monkeypatch.setattr(bench, "trim", broken)
    assert bench.main(["--turns", "12", "--client", "codex"]) == 1
    assert says in capsys.readouterr().out


@pytest.mark.parametrize("argv, says", [
    (["--turns", "0"], "--turns must be at least 1"),
    (["--client", "cursor"], "argument --client: invalid choice: 'cursor'"),
])
def test_bad_options_are_refused_with_a_usage_error(capsys, argv, says):
    with pytest.raises(SystemExit) as exit_:
        bench.main(argv)
    assert exit_.value.code == 2 and says in capsys.readouterr().err
