"""``python -m zengate`` verbs against a temporary database."""

from __future__ import annotations

import os
import subprocess
import sys
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


def test_preflight_refuses_public_bind_with_default_password(run):
    refused = run("preflight", extra_env={"PORT": "8000"})
    assert refused.returncode == 3 and "refusing to listen on 0.0.0.0:8000" in refused.stderr
    assert run("preflight").returncode == 0  # loopback is fine
    assert run("preflight", extra_env={"PORT": "8000", "ZENGATE_ADMIN_PASSWORD": "x" * 12}).returncode == 3  # first
    # password was already stored as the default; setting one through the CLI lifts the refusal
    assert run("admin", "set-password", "--password", "y" * 12).returncode == 0
    assert run("preflight", extra_env={"PORT": "8000"}).returncode == 0


def test_claude_environment_points_at_the_gateway(tmp_path):
    import json

    from zengate.cli import claude_environment
    from zengate.config import Config

    (tmp_path / ".claude.json").write_text(json.dumps({"theme": "dark"}))
    env = claude_environment(Config(bind="0.0.0.0:9000"), tmp_path,
                             {"ANTHROPIC_API_KEY": "sk-ant-real", "ZENGATE_API_KEY": "sk-zen-mine", "PATH": "/bin"})
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9000"
    assert env["ANTHROPIC_AUTH_TOKEN"] == "sk-zen-mine" and "ANTHROPIC_API_KEY" not in env
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1" and env["PATH"] == "/bin"
    assert json.loads((tmp_path / ".claude.json").read_text()) == {"theme": "dark", "hasCompletedOnboarding": True}
    env = claude_environment(Config(bind="127.0.0.1:8462"), tmp_path / "fresh", {})
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:8462" and env["ANTHROPIC_AUTH_TOKEN"] == "sk-zen-local"
