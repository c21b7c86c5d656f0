"""The real gunicorn master judges the addresses it opened, however the bind was given.

The default admin password is refused beyond loopback (exit 3, a message naming the remedy); a
gateway listening beyond loopback serves /v1 only with an sk-zen key unless the operator opened
it with ZENGATE_ALLOW_PUBLIC_WITHOUT_KEYS (a warning at start, a flag for the dashboard).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from tests.support.gateway import ROOT, GatewayProcess, free_port

pytestmark = pytest.mark.e2e

CHAT = {"model": "big-pickle", "messages": [{"role": "user", "content": "hi"}]}


def _chat(gw: GatewayProcess, **headers) -> requests.Response:
    return requests.post(gw.url + "/v1/chat/completions", json=CHAT, headers=headers, timeout=30)


def _refused(gw: GatewayProcess) -> str:
    with pytest.raises(RuntimeError) as exc:
        gw.start(timeout=30)
    assert gw.process.returncode == 3
    gw.stop()
    return str(exc.value)


@pytest.mark.parametrize("how", ["GUNICORN_CMD_ARGS", "PORT", "ZENGATE_BIND"])
def test_default_password_is_refused_however_the_public_bind_was_given(tmp_path, up, how):
    gw = GatewayProcess(tmp_path, up.url, env={"ZENGATE_ADMIN_PASSWORD": ""})
    port = gw.port
    if how == "GUNICORN_CMD_ARGS":  # gunicorn's own variable wins over ZENGATE_BIND (still 127.0.0.1)
        gw.env["GUNICORN_CMD_ARGS"] = f"--bind 0.0.0.0:{port}"
    elif how == "PORT":
        gw.env["PORT"] = str(port)
    else:
        gw.env["ZENGATE_BIND"] = f"0.0.0.0:{port}"
    log = _refused(gw)
    assert f"refusing to listen on 0.0.0.0:{port}: the admin password is still the default 'admin'" in log
    assert "Set ZENGATE_ADMIN_PASSWORD" in log
    # The next start finds the default's hash stored: the command is the first remedy named, and the
    # variable, set now, replaces the stored default instead of being ignored.
    assert "Run `python -m zengate admin set-password`" in _refused(gw)
    gw.env["ZENGATE_ADMIN_PASSWORD"] = "now-a-real-password"
    gw.start()
    try:
        assert requests.post(gw.url + "/_admin/login", json={"password": "admin"}, timeout=10).status_code == 401
        r = requests.post(gw.url + "/_admin/login", json={"password": "now-a-real-password"}, timeout=10)
        assert r.status_code == 200 and r.json()["default_password"] is False
    finally:
        assert gw.stop() == 0


def test_bind_on_the_command_line_is_judged_too(tmp_path, up):
    gw = GatewayProcess(tmp_path, up.url, env={"ZENGATE_ADMIN_PASSWORD": ""})
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-b", f"[::]:{port}", "app:app"],
        cwd=ROOT, env=gw.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr[-2000:]
    assert f"refusing to listen on [::]:{port}" in result.stderr


def test_a_short_first_password_is_refused(tmp_path, up):
    gw = GatewayProcess(tmp_path, up.url, env={"ZENGATE_ADMIN_PASSWORD": "short"})
    log = _refused(gw)
    assert "ZENGATE_ADMIN_PASSWORD must have at least 8 characters (it has 5)" in log
    assert "short" not in log.replace("(it has 5)", "")


def test_beyond_loopback_v1_needs_a_key(tmp_path, up):
    gw = GatewayProcess(tmp_path, up.url)
    gw.env["PORT"] = str(gw.port)  # the PaaS way: 0.0.0.0:$PORT
    gw.start()
    try:
        assert f"listening beyond loopback (0.0.0.0:{gw.port}): /v1 calls need an sk-zen key" in gw.log()
        r = _chat(gw)
        assert r.status_code == 401 and r.json()["error"]["message"].startswith("this gateway requires an API key")
        assert not [req for req in up.requests if req.path.endswith("/chat/completions")]  # never went upstream
        key = gw.admin("POST", "/_admin/api-keys", json={"name": "paas"}).json()["key"]
        r = _chat(gw, Authorization=f"Bearer {key}")
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
        access = gw.admin("GET", "/_admin/session").json()["access"]
        assert access["listening"] == [f"0.0.0.0:{gw.port}"] and access["keys_required"] is True
        assert access["open_without_keys"] is False
    finally:
        assert gw.stop() == 0


def test_opened_on_purpose_serves_without_keys_and_says_so(tmp_path, up):
    gw = GatewayProcess(tmp_path, up.url, env={"ZENGATE_ALLOW_PUBLIC_WITHOUT_KEYS": "1"})
    gw.env["ZENGATE_BIND"] = f"0.0.0.0:{gw.port}"
    gw.start()
    try:
        warning = next(line for line in gw.log().splitlines() if "WITHOUT requiring API keys" in line)
        assert "WARNING" in warning and "(ZENGATE_ALLOW_PUBLIC_WITHOUT_KEYS is set)" in warning
        r = _chat(gw)
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
        access = gw.admin("GET", "/_admin/session").json()["access"]
        assert access["open_without_keys"] is True and access["keys_required"] is False
    finally:
        assert gw.stop() == 0


def test_loopback_is_unchanged(tmp_path, up):
    gw = GatewayProcess(tmp_path, up.url, env={"ZENGATE_ADMIN_PASSWORD": ""}).start()
    try:
        assert "listening beyond loopback" not in gw.log()
        r = _chat(gw)
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
        r = requests.post(gw.url + "/_admin/login", json={"password": "admin"}, timeout=10)
        assert r.status_code == 200 and r.json()["default_password"] is True
        assert r.json()["access"]["beyond_loopback"] is False
    finally:
        assert gw.stop() == 0
