"""The real Gemini CLI (``gemini -p``) through the real gateway (gunicorn, gevent) to the local
upstream: a plain turn, its router's JSON-schema call, a ``run_shell_command`` round trip, how it
meets a daily and a per-minute limit, and ``python -m zengate gemini``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fake_upstream import error, openai_text, openai_tool_calls
from tests.support.gemini_cli import SETTINGS, gemini_binary, run_gemini
from tests.support.npm_cli import CliUnavailable

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MODEL = "gemini-2.5-flash"
MARKER = "zengate-shell-ok"


@pytest.fixture(scope="module")
def gemini() -> str:
    try:
        return gemini_binary()
    except CliUnavailable as exc:
        pytest.skip(str(exc))


def statuses_since(gw, mark: int) -> list[str]:
    """Every status the gateway's workers answered with since ``mark`` characters of its log."""
    return [status for seen in gw.answered(mark).values() for status in seen]


def test_a_turn_reaches_the_upstream_with_the_clis_prompt_and_tools(gemini, gw, up, tmp_path):
    up.script("big-pickle", openai_text("Hello from upstream", usage=(20, 4)))
    run = run_gemini(gemini, "say hi", base_url=gw.url, key="sk-zen-x", folder=tmp_path, args=("-m", MODEL))
    assert run.ok, run.describe()
    assert run.response == "Hello from upstream"
    assert run.roles() == {"main": MODEL}
    [sent] = up.requests
    assert sent.model == "big-pickle" and sent.body["stream"] is True
    system, *rest = sent.body["messages"]
    assert system["role"] == "system" and "Gemini CLI" in system["content"]
    assert rest[-1]["role"] == "user" and rest[-1]["content"].endswith("say hi")
    tools = {t["function"]["name"]: t["function"] for t in sent.body["tools"]}
    assert {"read_file", "glob", "grep_search"} <= set(tools)
    schema = tools["read_file"]["parameters"]
    assert schema["type"] == "object" and "$schema" not in schema  # the CLI's JSON Schema, cleaned for the upstream


def test_the_routers_json_schema_call_picks_the_model(gemini, gw, up, tmp_path):
    up.script("big-pickle",
              openai_text('{"complexity_reasoning": "A greeting.", "complexity_score": 5}'),  # the router
              openai_text("Hello from upstream"))  # the turn
    run = run_gemini(gemini, "say hi", base_url=gw.url, key="sk-zen-x", folder=tmp_path)
    assert run.ok, run.describe()
    assert "ClassifierStrategy failed" not in run.stderr, run.stderr[-3000:]
    roles = run.roles()
    assert set(roles) == {"utility_router", "main"}
    assert "flash" in roles["main"] and "pro" not in roles["main"]  # a score of 5 routes to a flash model
    router, turn = up.requests
    assert not router.body.get("stream") and turn.body["stream"] is True
    schema = router.body["response_format"]["json_schema"]["schema"]
    assert router.body["response_format"]["type"] == "json_schema"
    assert schema["type"] == "object" and schema["required"] == ["complexity_reasoning", "complexity_score"]
    assert {name: p["type"] for name, p in schema["properties"].items()} == {
        "complexity_reasoning": "string", "complexity_score": "integer"}  # Gemini's OBJECT/STRING/INTEGER


def test_run_shell_command_round_trip(gemini, gw, up, tmp_path):
    up.script("big-pickle",
              openai_tool_calls([("run_shell_command", {"command": f"echo {MARKER}", "description": "marker"},
                                  "call_sh1")]),
              openai_text("The command printed the marker."))
    run = run_gemini(gemini, "print the marker", base_url=gw.url, key="sk-zen-x", folder=tmp_path,
                     args=("-m", MODEL, "--yolo"))
    assert run.ok, run.describe()
    assert run.response == "The command printed the marker."
    assert run.tool_calls()["run_shell_command"]["success"] == 1
    call, answer = up.requests
    assert "run_shell_command" in {t["function"]["name"] for t in call.body["tools"]}
    assistant, result = answer.body["messages"][-2:]
    assert assistant["tool_calls"][0]["id"] == "call_sh1"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"])["command"] == f"echo {MARKER}"
    assert result["role"] == "tool" and result["tool_call_id"] == "call_sh1"
    assert f"Output: {MARKER}" in result["content"]  # the command really ran, and its output came back


def test_a_daily_key_limit_stops_the_cli_at_once(gemini, gw, up, tmp_path):
    gw.set_setting("require_auth", True)
    key = gw.admin("POST", "/_admin/api-keys", json={"name": "gemini-day", "requests_per_day": 1}).json()["key"]
    first = run_gemini(gemini, "say hi", base_url=gw.url, key=key, folder=tmp_path / "a", args=("-m", MODEL))
    assert first.ok, first.describe()
    mark = len(gw.log())
    second = run_gemini(gemini, "say hi", base_url=gw.url, key=key, folder=tmp_path / "b", args=("-m", MODEL))
    assert second.exit_code != 0 and not second.ok
    assert "daily quota" in second.stdout + second.stderr, second.describe()
    assert statuses_since(gw, mark) == ["429"]  # refused once, not retried


def test_a_rate_limited_turn_is_retried_and_answers(gemini, gw, up, tmp_path):
    up.script("big-pickle", error(429, "Rate limit exceeded", headers={"retry-after": "1"}),
              openai_text("after the wait"))
    run = run_gemini(gemini, "say hi", base_url=gw.url, key="sk-zen-x", folder=tmp_path, args=("-m", MODEL))
    assert run.ok, run.describe()
    assert run.response == "after the wait" and len(up.requests) == 2


def launch(gw, tmp_path: Path, *args: str, settings: dict | None = None, key: str = "sk-zen-x"):
    """``python -m zengate gemini ARGS`` with a temporary HOME (holding ``settings``), from the folder ``work``."""
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    work.mkdir(exist_ok=True)
    if settings is not None:
        (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "TMPDIR": str(tmp_path),
           "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8", "NO_COLOR": "1", "ZENGATE_URL": gw.url,
           "ZENGATE_API_KEY": key}
    done = subprocess.run([sys.executable, "-m", "zengate", "gemini", *args], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    return done, home / ".gemini" / "settings.json"


def test_python_m_zengate_gemini_runs_the_cli_against_the_gateway(gemini, gw, up, tmp_path):
    gw.set_setting("require_auth", True)
    key = gw.admin("POST", "/_admin/api-keys", json={"name": "launcher"}).json()["key"]
    quiet = {"privacy": {"usageStatisticsEnabled": False}, "general": SETTINGS["general"]}  # no Google traffic
    done, settings = launch(gw, tmp_path, "--trust-this-folder", "-p", "say hi", "-m", MODEL,
                            "--output-format", "json", settings=quiet, key=key)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout[done.stdout.index("{"):])["response"] == "Hello from upstream"
    assert f"zengate: Gemini CLI will use the gateway at {gw.url} (from ZENGATE_URL)" in done.stderr
    assert "selected 'gemini-api-key' sign-in for Gemini CLI" in done.stderr
    assert json.loads(settings.read_text()) == {**quiet, "security": {"auth": {"selectedType": "gemini-api-key"}}}
    assert up.requests[-1].model == "big-pickle"  # the key (from ZENGATE_API_KEY) was accepted


def test_python_m_zengate_gemini_replaces_a_google_sign_in_only_when_asked(gemini, gw, up, tmp_path):
    google = {"security": {"auth": {"selectedType": "oauth-personal"}}, "privacy": {"usageStatisticsEnabled": False}}
    done, settings = launch(gw, tmp_path, "--trust-this-folder", "-p", "say hi", settings=google)
    assert done.returncode == 2 and up.requests == []
    assert "signs in with 'oauth-personal'" in done.stderr and "--switch-auth" in done.stderr
    assert json.loads(settings.read_text()) == google  # untouched
    done, _ = launch(gw, tmp_path, "--trust-this-folder", "--switch-auth", "-p", "say hi", "-m", MODEL)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Hello from upstream" in done.stdout  # the answer came from the gateway's upstream
    assert "switched Gemini CLI from 'oauth-personal' to 'gemini-api-key'" in done.stderr
    assert json.loads(settings.read_text())["security"]["auth"]["selectedType"] == "gemini-api-key"
    assert len(up.requests) == 1
