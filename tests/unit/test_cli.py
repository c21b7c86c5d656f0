"""``python -m zengate`` verbs against a temporary database."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENGATE_", "DATABASE_URL", "PORT"))}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"

    def call(*args: str, stdin: str | None = None, extra_env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "zengate", *args], cwd=ROOT, env={**env, **(extra_env or {})},
                              input=stdin, capture_output=True, text=True, timeout=60)

    return call


def test_version_and_migrate(run):
    assert run("version").stdout.startswith("zengate ")
    result = run("migrate")
    assert result.returncode == 0 and "001_initial" in result.stdout


def test_keys_create_list_revoke(run):
    created = run("keys", "create", "--name", "laptop")
    assert created.returncode == 0
    key = created.stdout.strip()
    assert key.startswith("sk-zen-") and "shown only once" in created.stderr
    listed = run("keys", "list").stdout
    assert "laptop" in listed and key[:13] in listed and key not in listed and "yes" in listed
    assert run("keys", "revoke", key).returncode == 0
    assert " no " in run("keys", "list").stdout
    missing = run("keys", "revoke", "sk-zen-nothere")
    assert missing.returncode == 1 and "no key matches" in missing.stderr


def test_admin_set_password(run):
    short = run("admin", "set-password", stdin="short\n")
    assert short.returncode == 1 and "at least 8" in short.stderr
    ok = run("admin", "set-password", stdin="a-long-enough-password\n")
    assert ok.returncode == 0 and "a-long-enough-password" not in ok.stdout + ok.stderr


def test_preflight_reports_the_first_start_state_for_the_master(run):
    """The master judges the report against its listeners (tests/e2e/test_listeners_e2e.py)."""
    def report(result):
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    first = report(run("preflight"))
    assert first == {"admin_password": {"default": True, "stored_earlier": False, "variable_ignored": False},
                     "require_auth": False}
    assert report(run("preflight"))["admin_password"]["stored_earlier"] is True
    short = run("preflight", extra_env={"ZENGATE_ADMIN_PASSWORD": "short"})
    assert short.returncode == 3 and "at least 8 characters (it has 5)" in short.stderr and short.stdout == ""
    # the variable replaces the stored default; later it is ignored, and the stderr line names the command
    replaced = report(run("preflight", extra_env={"ZENGATE_ADMIN_PASSWORD": "x" * 12}))
    assert replaced["admin_password"]["default"] is False
    ignored = run("preflight", extra_env={"ZENGATE_ADMIN_PASSWORD": "y" * 12})
    assert report(ignored)["admin_password"] == {"default": False, "stored_earlier": True, "variable_ignored": True}
    assert "python -m zengate admin set-password" in ignored.stderr and "y" * 12 not in ignored.stderr


# --------------------------------------------------------------------------- python -m zengate claude

HEALTH = {"status": "ok", "version": "test", "database": "ok", "request_log": {}}


class _Stub(BaseHTTPRequestHandler):
    """Answers GET /healthz like zengate (or with what ``server.answer`` says); 404 JSON elsewhere."""

    def do_GET(self):
        status, body = self.server.answer if self.path == "/healthz" else (404, {"error": "not found"})
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_args):
        pass


@pytest.fixture
def stub():
    """A loopback HTTP server standing in for a gateway's /healthz; yields (server, url)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    server.answer = (200, HEALTH)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


FAKE_CLI = """#!{python}
import json, os, sys
with open(os.environ["FAKE_CLI_OUT"], "w") as out:
    json.dump({{"argv": sys.argv[1:], "env": dict(os.environ), "cwd": os.getcwd()}}, out)
"""


def cli_runner(tmp_path: Path, verb: str):
    """Run ``python -m zengate VERB`` in a fresh folder with a fake ``VERB`` binary on PATH and a fresh HOME.

    Returns ``call(*args, env={...})`` → (CompletedProcess, what the fake binary saw or None).
    """
    bin_dir, home, project = tmp_path / "bin", tmp_path / "home", tmp_path / "project"
    for folder in (bin_dir, home, project):
        folder.mkdir()
    fake = bin_dir / verb
    fake.write_text(FAKE_CLI.format(python=sys.executable))
    fake.chmod(0o755)
    seen = tmp_path / f"{verb}-saw.json"
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("ZENGATE_", "ANTHROPIC_", "CLAUDE_", "CODEX_", "OPENAI_", "PORT", "HTTP_PROXY",
                                 "HTTPS_PROXY", "http_proxy", "https_proxy"))}
    base.update({"HOME": str(home), "PATH": f"{bin_dir}{os.pathsep}{base.get('PATH', '')}",
                 "PYTHONPATH": str(ROOT), "FAKE_CLI_OUT": str(seen)})

    def call(*args: str, env: dict | None = None):
        seen.unlink(missing_ok=True)
        done = subprocess.run([sys.executable, "-m", "zengate", verb, *args], cwd=project,
                              env={**base, **(env or {})}, capture_output=True, text=True, timeout=60)
        return done, (json.loads(seen.read_text()) if seen.exists() else None)

    call.home, call.project = home, project
    return call


@pytest.fixture
def claude_run(tmp_path):
    """``python -m zengate claude`` with a fake ``claude``: see :func:`cli_runner`."""
    return cli_runner(tmp_path, "claude")


def test_claude_url_precedence_is_said_on_stderr(claude_run, stub):
    _, url = stub
    port = url.rsplit(":", 1)[1]
    dead = f"http://127.0.0.1:{closed_port()}"
    cases = [
        (["--url", url + "/v1/"], {"ZENGATE_URL": dead, "ZENGATE_BIND": f"127.0.0.1:{closed_port()}"},
         url, "(from --url)"),
        ([], {"ZENGATE_URL": url, "PORT": str(closed_port()), "ZENGATE_BIND": f"127.0.0.1:{closed_port()}"},
         url, "(from ZENGATE_URL)"),
        ([], {"PORT": port, "ZENGATE_BIND": f"127.0.0.1:{closed_port()}"}, url, "(from PORT"),
        ([], {"ZENGATE_BIND": f"0.0.0.0:{port}"}, url, "(from ZENGATE_BIND"),
    ]
    for args, env, expected, source in cases:
        done, saw = claude_run(*args, "-p", "hi", env=env)
        assert done.returncode == 0, done.stderr
        first = done.stderr.splitlines()[0]  # the one line that says which URL and why
        assert first.startswith(f"zengate: Claude Code will use the gateway at {expected} {source}"), first
        assert saw["env"]["ANTHROPIC_BASE_URL"] == expected
        assert saw["argv"] == ["-p", "hi"]  # our options are not passed on


def test_claude_default_address_and_bind_forms():
    from zengate.launch.claude import claude_state_file
    from zengate.launch.common import LaunchError, gateway_address, url_for_bind

    default = gateway_address(None, {})
    assert default.url == "http://127.0.0.1:8462" and "none of --url, ZENGATE_URL, PORT, ZENGATE_BIND" in default.source
    assert gateway_address(None, {"PORT": "9000", "ZENGATE_BIND": "10.0.0.1:1"}).url == "http://127.0.0.1:9000"
    assert gateway_address(" http://gw.example:8462/ ", {}).url == "http://gw.example:8462"
    assert url_for_bind("[::]:8462") == "http://127.0.0.1:8462"
    assert url_for_bind("[::1]:8462") == "http://[::1]:8462"
    assert url_for_bind("10.1.2.3:80") == "http://10.1.2.3:80"
    assert claude_state_file({}, Path("/home/me")) == Path("/home/me/.claude.json")
    assert claude_state_file({"CLAUDE_CONFIG_DIR": "/etc/cc"}, Path("/home/me")) == Path("/etc/cc/.claude.json")
    with pytest.raises(LaunchError, match="unix socket"):
        url_for_bind("unix:/run/zengate.sock")
    with pytest.raises(LaunchError, match="not an http"):
        gateway_address("127.0.0.1:8462", {})


def test_claude_never_shows_a_password_in_the_url(claude_run):
    dead = f"http://me:s3cret-pw@127.0.0.1:{closed_port()}"
    done, saw = claude_run("--url", dead)
    assert done.returncode == 1 and saw is None
    assert "s3cret-pw" not in done.stderr and "me:***@127.0.0.1" in done.stderr


def test_claude_says_when_the_gateway_is_not_there(claude_run, stub):
    dead = f"http://127.0.0.1:{closed_port()}"
    done, saw = claude_run("-p", "hi", env={"ZENGATE_URL": dead})
    assert done.returncode == 1 and saw is None  # claude never started
    assert f"no gateway answers at {dead} (connection refused)" in done.stderr
    assert "python -m zengate serve" in done.stderr and "--url URL" in done.stderr and "ZENGATE_URL" in done.stderr

    server, url = stub
    server.answer = (404, {"detail": "not here"})  # something else listens there
    done, saw = claude_run("--url", url)
    assert done.returncode == 1 and saw is None
    assert f"{url}/healthz answered HTTP 404, but not as a zengate gateway does" in done.stderr

    server.answer = (503, {**HEALTH, "status": "degraded", "database": "unavailable"})  # still serves /v1
    done, saw = claude_run("--url", url)
    assert done.returncode == 0 and saw["env"]["ANTHROPIC_BASE_URL"] == url


def test_claude_environment_and_key(claude_run, stub):
    _, url = stub
    (claude_run.home / ".claude.json").write_text(json.dumps({"theme": "dark"}))
    done, saw = claude_run("--url", url, env={"ANTHROPIC_API_KEY": "sk-ant-real", "ZENGATE_API_KEY": "sk-zen-mine"})
    assert done.returncode == 0, done.stderr
    env = saw["env"]
    assert env["ANTHROPIC_AUTH_TOKEN"] == "sk-zen-mine" and "ANTHROPIC_API_KEY" not in env
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert "sk-zen-mine" not in done.stderr
    state = json.loads((claude_run.home / ".claude.json").read_text())
    assert state == {"theme": "dark", "hasCompletedOnboarding": True}  # no trust written without the flag
    done, saw = claude_run("--url", url, "--key", "sk-zen-flag", "--", "--model", "x",
                           env={"ZENGATE_API_KEY": "sk-zen-mine"})
    assert saw["env"]["ANTHROPIC_AUTH_TOKEN"] == "sk-zen-flag" and saw["argv"] == ["--model", "x"]
    done, saw = claude_run("--url", url)
    assert saw["env"]["ANTHROPIC_AUTH_TOKEN"] == "sk-zen-local"


def test_claude_trusts_only_this_folder_and_keeps_the_rest(claude_run, stub):
    _, url = stub
    before = {"theme": "dark", "numStartups": 7, "hasCompletedOnboarding": True,
              "projects": {"/elsewhere": {"allowedTools": ["Bash"], "hasTrustDialogAccepted": False}}}
    (claude_run.home / ".claude.json").write_text(json.dumps(before))
    done, saw = claude_run("--trust-this-folder", "--url", url, "-p", "hi")
    assert done.returncode == 0, done.stderr
    assert saw["argv"] == ["-p", "hi"] and saw["cwd"] == str(claude_run.project)
    state = json.loads((claude_run.home / ".claude.json").read_text())
    folder = str(claude_run.project)
    assert f"marked {folder} as trusted" in done.stderr
    assert set(state["projects"]) == {"/elsewhere", folder}
    assert state["projects"]["/elsewhere"] == before["projects"]["/elsewhere"]  # another folder untouched
    assert state["projects"][folder]["hasTrustDialogAccepted"] is True
    assert {k: v for k, v in state.items() if k != "projects"} == {k: v for k, v in before.items() if k != "projects"}

    # an existing entry for this folder keeps its own fields
    state["projects"][folder] = {"allowedTools": ["Read"], "hasTrustDialogAccepted": False}
    (claude_run.home / ".claude.json").write_text(json.dumps(state))
    claude_run("--trust-this-folder", "--url", url)
    entry = json.loads((claude_run.home / ".claude.json").read_text())["projects"][folder]
    assert entry == {"allowedTools": ["Read"], "hasTrustDialogAccepted": True}


def test_claude_state_follows_claude_config_dir(claude_run, stub, tmp_path):
    _, url = stub
    config_dir = tmp_path / "claude-config"
    done, _ = claude_run("--trust-this-folder", "--url", url, env={"CLAUDE_CONFIG_DIR": str(config_dir)})
    assert done.returncode == 0, done.stderr
    state = json.loads((config_dir / ".claude.json").read_text())
    assert state["hasCompletedOnboarding"] is True and str(claude_run.project) in state["projects"]
    assert not (claude_run.home / ".claude.json").exists()


def test_claude_never_clobbers_an_unreadable_state_file(claude_run, stub):
    _, url = stub
    (claude_run.home / ".claude.json").write_text("{not json")
    done, saw = claude_run("--trust-this-folder", "--url", url)
    assert done.returncode == 0 and saw is not None
    assert (claude_run.home / ".claude.json").read_text() == "{not json"
    assert "could not read" in done.stderr


@pytest.fixture
def no_claude(tmp_path, monkeypatch, stub):
    """In-process: no claude or codex anywhere (PATH nor .ci/node), a fake npm that installs the one asked for
    (``npm install -g PACKAGE``), a live /healthz."""
    from zengate import cli
    from zengate.launch import common

    _, url = stub
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'npm-args'}\n"
                   f"case \"$3\" in @openai/codex) name=codex ;; @google/gemini-cli) name=gemini ;;"
                   " *) name=claude ;; esac\n"
                   f"printf '#!/bin/sh\\n' > {bin_dir}/$name && {shutil.which('chmod')} +x {bin_dir}/$name\n")
    npm.chmod(0o755)
    monkeypatch.setattr(common, "ROOT", tmp_path)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("ZENGATE_URL", url)
    execs = []
    monkeypatch.setattr(os, "execvpe", lambda binary, argv, env: execs.append((binary, argv, env)))
    return cli, tmp_path, execs


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_claude_missing_without_a_terminal_says_the_command(no_claude, monkeypatch, capsys):
    cli, tmp_path, execs = no_claude
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # not a terminal: never asks, never installs
    assert cli.main(["claude", "-p", "hi"]) == 127
    err = capsys.readouterr().err
    assert "Claude Code is not installed. Install it with: npm install -g @anthropic-ai/claude-code" in err
    assert "[y/N]" not in err and not (tmp_path / "npm-args").exists() and execs == []


def test_claude_missing_on_a_terminal_asks_then_installs(no_claude, monkeypatch, capsys):
    cli, tmp_path, execs = no_claude
    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    assert cli.main(["claude"]) == 127
    assert "Install it now with npm? [y/N]" in capsys.readouterr().err and not (tmp_path / "npm-args").exists()

    monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
    cli.main(["claude", "-p", "hi"])
    assert (tmp_path / "npm-args").read_text().split() == ["install", "-g", "@anthropic-ai/claude-code"]
    assert [(binary, argv) for binary, argv, _ in execs] == [(str(tmp_path / "bin" / "claude"),
                                                             [str(tmp_path / "bin" / "claude"), "-p", "hi"])]


def test_serve_passes_gunicorn_arguments_on():
    from zengate.cli import build_parser, split_arguments

    assert split_arguments("serve", ["--workers", "4", "-b", "127.0.0.1:9"]) == ([], ["--workers", "4", "-b",
                                                                                      "127.0.0.1:9"])
    assert split_arguments("claude", ["--url=http://x", "--key", "k", "--trust-this-folder", "-p", "--url"]) == (
        ["--url=http://x", "--key", "k", "--trust-this-folder"], ["-p", "--url"])
    assert split_arguments("claude", ["--", "--url", "x"]) == ([], ["--url", "x"])
    assert build_parser().parse_args(["claude", "--url", "http://x"]).url == "http://x"


# --------------------------------------------------------------------------- python -m zengate codex


@pytest.fixture
def codex_run(tmp_path):
    """``python -m zengate codex`` with a fake ``codex``: see :func:`cli_runner`."""
    return cli_runner(tmp_path, "codex")


def overrides(argv: list[str]) -> tuple[dict, list[str]]:
    """The ``-c key=value`` pairs heading a codex argv (values read as TOML, as Codex reads them), and the rest."""
    import tomllib

    found: dict = {}
    i = 0
    while i + 1 < len(argv) and argv[i] == "-c":
        key, _, value = argv[i + 1].partition("=")
        found[key] = tomllib.loads(f"v = {value}")["v"]
        i += 2
    return found, argv[i:]


def test_codex_gets_the_gateway_as_its_provider(codex_run, stub):
    _, url = stub
    dead = f"http://127.0.0.1:{closed_port()}"
    done, saw = codex_run("--url", url + "/v1/", "exec", "say hi", env={"ZENGATE_URL": dead,
                                                                        "ZENGATE_API_KEY": "sk-zen-mine"})
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0] == f"zengate: Codex will use the gateway at {url} (from --url)"
    settings, rest = overrides(saw["argv"])
    assert settings == {
        "model_provider": "zengate",
        "model": "gpt-5-nano",
        "model_providers.zengate.name": "zengate",
        "model_providers.zengate.base_url": f"{url}/v1",  # Codex posts to {base_url}/responses
        "model_providers.zengate.env_key": "ZENGATE_API_KEY",
        "model_providers.zengate.wire_api": "responses",
        "analytics.enabled": False,  # the user's config says nothing about analytics
    }
    assert rest == ["exec", "say hi"] and saw["cwd"] == str(codex_run.project)
    assert saw["env"]["ZENGATE_API_KEY"] == "sk-zen-mine"
    assert "sk-zen-mine" not in done.stderr + json.dumps(saw["argv"])  # the key travels in the environment only
    assert not (codex_run.home / ".codex").exists()  # nothing written

    done, saw = codex_run(env={"ZENGATE_URL": url})
    assert done.stderr.splitlines()[0] == f"zengate: Codex will use the gateway at {url} (from ZENGATE_URL)"
    assert overrides(saw["argv"])[1] == []  # no arguments: the interactive Codex


def test_codex_key_and_model(codex_run, stub):
    _, url = stub
    done, saw = codex_run("--url", url, "--key", "sk-zen-flag", "--model", "big-pickle", "--", "--model", "x",
                          env={"ZENGATE_API_KEY": "sk-zen-mine"})
    assert done.returncode == 0, done.stderr
    settings, rest = overrides(saw["argv"])
    assert saw["env"]["ZENGATE_API_KEY"] == "sk-zen-flag" and "sk-zen-flag" not in done.stderr
    assert settings["model"] == "big-pickle" and rest == ["--model", "x"]  # Codex's own --model, passed on
    done, saw = codex_run("--url", url, "exec", "hi")
    assert saw["env"]["ZENGATE_API_KEY"] == "sk-zen-local"  # any key does while require_auth is off


def test_codex_reads_the_users_config_and_never_writes_it(codex_run, stub, tmp_path):
    _, url = stub
    config = codex_run.home / ".codex" / "config.toml"
    config.parent.mkdir()
    text = 'model = "gpt-6.1-sol"\n\n[analytics]\nenabled = true\n'
    config.write_text(text)
    done, saw = codex_run("--url", url)
    assert done.returncode == 0, done.stderr
    assert "analytics.enabled" not in overrides(saw["argv"])[0]  # their choice stands
    assert config.read_text() == text

    # CODEX_HOME moves the file; one Codex cannot read is left to Codex to report
    elsewhere = tmp_path / "codex-home"
    elsewhere.mkdir()
    (elsewhere / "config.toml").write_text("[analytics]\nenabled = false\n")
    done, saw = codex_run("--url", url, env={"CODEX_HOME": str(elsewhere)})
    assert "analytics.enabled" not in overrides(saw["argv"])[0]
    config.write_text("[analytics\nnot toml")
    done, saw = codex_run("--url", url)
    assert done.returncode == 0 and overrides(saw["argv"])[0]["analytics.enabled"] is False
    assert config.read_text() == "[analytics\nnot toml"


def test_codex_says_when_the_gateway_is_not_there(codex_run, stub):
    dead = f"http://127.0.0.1:{closed_port()}"
    done, saw = codex_run("exec", "hi", env={"ZENGATE_URL": dead})
    assert done.returncode == 1 and saw is None  # codex never started
    assert done.stderr.splitlines()[0] == f"zengate: Codex will use the gateway at {dead} (from ZENGATE_URL)"
    assert f"no gateway answers at {dead} (connection refused)" in done.stderr
    assert "python -m zengate serve" in done.stderr and "--url URL" in done.stderr

    server, url = stub
    server.answer = (404, {"detail": "not here"})
    done, saw = codex_run("--url", url)
    assert done.returncode == 1 and saw is None
    assert f"{url}/healthz answered HTTP 404, but not as a zengate gateway does" in done.stderr

    done, saw = codex_run(env={"ZENGATE_BIND": "unix:/run/zengate.sock"})
    assert done.returncode == 2 and saw is None
    assert "ZENGATE_BIND is a unix socket (unix:/run/zengate.sock)" in done.stderr and "--url" in done.stderr


def test_codex_print_config_is_a_profile_and_runs_nothing(codex_run):
    import tomllib

    dead = f"http://127.0.0.1:{closed_port()}"  # printing needs no running gateway
    done, saw = codex_run("--print-config", "--model", "gpt-5-nano", env={"ZENGATE_URL": dead + "/v1"})
    assert done.returncode == 0 and saw is None, done.stderr
    assert done.stdout.isascii()
    assert tomllib.loads(done.stdout) == {
        "model": "gpt-5-nano", "model_provider": "zengate",
        "model_providers": {"zengate": {"name": "zengate", "base_url": f"{dead}/v1", "env_key": "ZENGATE_API_KEY",
                                        "wire_api": "responses"}}}
    profile = codex_run.home / ".codex" / "zengate.config.toml"
    assert f"save this as {profile} and run `codex --profile zengate` with ZENGATE_API_KEY set" in done.stderr
    assert not (codex_run.home / ".codex").exists()  # printed, not written
    done, saw = codex_run("--print-config", "exec", "hi", env={"ZENGATE_URL": dead})
    assert done.returncode == 2 and saw is None and "--print-config runs nothing" in done.stderr


def test_codex_missing_says_the_command_or_installs_it(no_claude, monkeypatch, capsys):
    cli, tmp_path, execs = no_claude
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # not a terminal: never asks, never installs
    assert cli.main(["codex", "exec", "hi"]) == 127
    err = capsys.readouterr().err
    assert "zengate: Codex will use the gateway at" in err
    assert "Codex is not installed. Install it with: npm install -g @openai/codex" in err
    assert "[y/N]" not in err and not (tmp_path / "npm-args").exists() and execs == []

    monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
    cli.main(["codex", "--key", "sk-zen-k", "exec", "hi"])
    assert (tmp_path / "npm-args").read_text().split() == ["install", "-g", "@openai/codex"]
    binary = str(tmp_path / "bin" / "codex")
    assert [(b, argv[0], overrides(argv[1:])[1]) for b, argv, _ in execs] == [(binary, binary, ["exec", "hi"])]
    assert execs[0][2]["ZENGATE_API_KEY"] == "sk-zen-k"


def test_codex_passes_its_arguments_on():
    from zengate.cli import build_parser, split_arguments

    assert split_arguments("codex", ["--url", "http://x", "--model=m", "--key", "k", "exec", "--model", "y"]) == (
        ["--url", "http://x", "--model=m", "--key", "k"], ["exec", "--model", "y"])
    assert split_arguments("codex", ["--print-config", "-m", "z"]) == (["--print-config"], ["-m", "z"])
    assert build_parser().parse_args(["codex"]).model == "gpt-5-nano"


def test_gemini_sign_in_is_selected_in_its_settings_and_replaced_only_when_asked(tmp_path):
    from zengate.launch.common import LaunchError
    from zengate.launch.gemini import gemini_settings_file, select_api_key_auth

    path = gemini_settings_file({}, tmp_path)
    assert path == tmp_path / ".gemini" / "settings.json"
    assert gemini_settings_file({"GEMINI_CLI_HOME": "/elsewhere"}, tmp_path) == Path("/elsewhere/.gemini/settings.json")
    assert select_api_key_auth(path, switch=False) == f"selected 'gemini-api-key' sign-in for Gemini CLI in {path}"
    assert json.loads(path.read_text()) == {"security": {"auth": {"selectedType": "gemini-api-key"}}}
    assert select_api_key_auth(path, switch=False) is None  # already so: nothing written

    mine = {"theme": "Dracula", "security": {"auth": {"selectedType": "oauth-personal"}, "folderTrust": {}}}
    path.write_text(json.dumps(mine))
    path.chmod(0o600)
    with pytest.raises(LaunchError, match=r"signs in with 'oauth-personal'.*--switch-auth"):
        select_api_key_auth(path, switch=False)
    assert json.loads(path.read_text()) == mine
    assert select_api_key_auth(path, switch=True) == (
        f"switched Gemini CLI from 'oauth-personal' to 'gemini-api-key' in {path}")
    assert json.loads(path.read_text()) == {"theme": "Dracula", "security": {
        "auth": {"selectedType": "gemini-api-key"}, "folderTrust": {}}}
    assert path.stat().st_mode & 0o777 == 0o600 and [p.name for p in path.parent.iterdir()] == ["settings.json"]

    for text, says in (('{"theme": "x", // mine\n}', "as plain JSON"), ("[1]", "does not hold a JSON object"),
                       ('{"security": {"auth": "api"}}', '"security.auth" is not an object')):
        path.write_text(text)
        with pytest.raises(LaunchError, match=re.escape(says)):
            select_api_key_auth(path, switch=True)
        assert path.read_text() == text  # never clobbered


def test_gemini_environment_points_the_cli_at_the_gateway():
    from zengate.launch.gemini import gemini_environment

    env = gemini_environment("http://127.0.0.1:9", None, {"PATH": "/bin", "ZENGATE_API_KEY": "sk-zen-env"})
    assert env == {"PATH": "/bin", "ZENGATE_API_KEY": "sk-zen-env", "GOOGLE_GEMINI_BASE_URL": "http://127.0.0.1:9",
                   "GEMINI_API_KEY": "sk-zen-env"}
    env = gemini_environment("http://g", "sk-zen-k", {"GEMINI_API_KEY": "AIza-google", "GOOGLE_GEMINI_BASE_URL": "x"},
                             trust=True)
    assert (env["GEMINI_API_KEY"], env["GOOGLE_GEMINI_BASE_URL"], env["GEMINI_CLI_TRUST_WORKSPACE"]) == (
        "sk-zen-k", "http://g", "true")  # a Google key in the environment never goes to the gateway
    assert gemini_environment("http://g", None, {})["GEMINI_API_KEY"] == "sk-zen-local"


def test_gemini_passes_its_arguments_on_and_installs_when_missing(no_claude, monkeypatch, capsys):
    from zengate.cli import split_arguments

    assert split_arguments("gemini", ["--url", "http://x", "--switch-auth", "-p", "hi", "--key", "k"]) == (
        ["--url", "http://x", "--switch-auth"], ["-p", "hi", "--key", "k"])
    cli, tmp_path, execs = no_claude
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # not a terminal: never asks, never installs
    assert cli.main(["gemini", "-p", "hi"]) == 127
    assert "Gemini CLI is not installed. Install it with: npm install -g @google/gemini-cli" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
    cli.main(["gemini", "--key", "sk-zen-k", "--trust-this-folder", "-p", "hi"])
    binary = str(tmp_path / "bin" / "gemini")
    [(called, argv, env)] = execs
    assert (called, argv) == (binary, [binary, "-p", "hi"])
    assert (env["GEMINI_API_KEY"], env["GEMINI_CLI_TRUST_WORKSPACE"]) == ("sk-zen-k", "true")
    assert json.loads((tmp_path / ".gemini" / "settings.json").read_text())["security"]["auth"] == {
        "selectedType": "gemini-api-key"}


CLAUDE_CODE = ROOT / ".ci" / "node" / "node_modules" / ".bin" / "claude"


@pytest.mark.skipif(not CLAUDE_CODE.exists(), reason="the pinned Claude Code CLI is not in .ci/node "
                    "(bash .ci/install --dev puts it there)")
def test_real_claude_code_opens_at_the_prompt_only_with_the_trust_flag(tmp_path, stub):
    """The pinned Claude Code CLI, interactive in a pseudo-terminal: the state keys really skip its questions."""
    _, url = stub

    def screen(*flags: str) -> str:
        home, project = tmp_path / f"home{len(flags)}", tmp_path / f"project{len(flags)}"
        home.mkdir()
        project.mkdir()
        env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TERM": "xterm-256color",
               "PYTHONPATH": str(ROOT), "ZENGATE_URL": url}
        pid, fd = pty.fork()
        if pid == 0:  # the child: becomes python -m zengate claude, then claude
            os.chdir(project)
            os.execve(sys.executable, [sys.executable, "-m", "zengate", "claude", *flags], env)
        seen, deadline = "", time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([fd], [], [], 0.5)
                if ready:
                    try:
                        chunk = os.read(fd, 65536)
                    except OSError:
                        break
                    if not chunk:
                        break
                    seen += re.sub(r"\x1b(\[[0-9;?]*[a-zA-Z]|\][^\x07]*\x07|[=>()][0-9A-Za-z]?)|\s", "",
                                   chunk.decode("utf-8", "replace"))
                if "trustthisfolder" in seen or "shift+tab" in seen:
                    break
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(fd)
        return seen

    asked = screen()
    assert "Itrustthisfolder" in asked, asked[-2000:]  # without the flag Claude Code asks
    opened = screen("--trust-this-folder")
    assert "shift+tab" in opened and "trustthisfolder" not in opened, opened[-2000:]  # straight to the prompt
