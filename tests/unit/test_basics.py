"""Configuration, ids and routing decisions."""

from __future__ import annotations

import importlib.util

import pytest
from flask import Flask

from zengate import ids
from zengate.config import Config, is_loopback_bind
from zengate.exchange import routing
from zengate.exchange.catalog import ModelCatalog


def test_config_defaults(monkeypatch):
    for name in ("ZENGATE_UPSTREAM_URL", "ZENGATE_BIND", "PORT", "OPENCODE_API_KEY", "DATABASE_URL",
                 "ZENGATE_DATA_DIR", "ZENGATE_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    config = Config.from_env()
    assert config.upstream_url == "https://opencode.ai/zen/v1"
    assert config.go_upstream_url == "https://opencode.ai/zen/go/v1"
    assert config.api_key == "public"
    assert config.bind == "127.0.0.1:8462" and config.bind_is_loopback
    assert config.database_url == "sqlite:///data/zengate.db"
    assert config.workers == 2


def test_port_wins_over_bind(monkeypatch):
    monkeypatch.setenv("PORT", "5000")
    monkeypatch.setenv("ZENGATE_BIND", "127.0.0.1:9")
    monkeypatch.setenv("ZENGATE_UPSTREAM_URL", "http://x/v1/")
    config = Config.from_env()
    assert config.bind == "0.0.0.0:5000" and not config.bind_is_loopback
    assert config.upstream_url == "http://x/v1"


@pytest.mark.parametrize(("bind", "loopback"), [
    ("127.0.0.1:8462", True), ("localhost:1", True), ("[::1]:80", True), ("unix:/tmp/s", True),
    ("0.0.0.0:80", False), ("192.168.1.2:80", False), ("[::]:80", False),
])
def test_loopback_detection(bind, loopback):
    assert is_loopback_bind(bind) is loopback


def test_opencode_ids_have_opencodes_format():
    session = ids.opencode_id("ses")
    assert session.startswith("ses_") and len(session) == 4 + 12 + 14
    assert ids.is_opencode_id(session, "ses") and not ids.is_opencode_id(session, "msg")
    many = [ids.opencode_id("msg") for _ in range(200)]
    assert len(set(many)) == 200
    assert many == sorted(many, key=lambda s: s[4:16])  # ascending time-and-counter part


@pytest.mark.parametrize(("model", "family"), [
    ("claude-opus-4-8", "opus"), ("claude-sonnet-5", "sonnet"), ("claude-haiku-4-5-20251001", "haiku"),
    ("claude-3-5-sonnet-latest", "sonnet"), ("claude-custom-thing", "default"), ("opus[1m]", "opus"),
    ("big-pickle", None), ("gpt-5-nano", None),
])
def test_claude_family(model, family):
    assert routing.claude_family(model) == family
    assert routing.model_family(model) == family


@pytest.mark.parametrize("model", ["gemini-2.5-pro", "gemini-3.5-flash-lite", "models/gemini-2.5-flash",
                                   "GEMINI-EXP", "google/gemini-3-pro"])
def test_gemini_names_are_one_family(model):
    assert routing.model_family(model) == "gemini" and routing.claude_family(model) is None


def test_resolve_maps_claude_names_and_keeps_known_ones():
    config = Config(upstream_url="http://u/v1", api_key="public")

    def resolve(model, model_map=None, protocol_overrides=None):
        plan = routing.Router(config, ModelCatalog(), environ={}).plan(model, routing.RoutingSettings(
            model_map=model_map or {}, model_protocols=protocol_overrides or {}))
        return next(plan.routes(routing.Cooldowns(), ""))

    model_map = {"opus": "kimi-k2.5-free", "default": "big-pickle"}
    route = resolve("claude-opus-4-8", model_map=model_map)
    assert (route.client_model, route.upstream_model, route.url()) == (
        "claude-opus-4-8", "kimi-k2.5-free", "http://u/v1/chat/completions")
    assert resolve("claude-sonnet-5", model_map=model_map).upstream_model == "big-pickle"
    assert resolve("gpt-5-nano", model_map=model_map).upstream_model == "gpt-5-nano"
    assert resolve("gemini-2.5-pro", model_map={**model_map, "gemini": "glm-5-free"}).upstream_model == "glm-5-free"
    assert resolve("gemini-2.5-pro", model_map=model_map).upstream_model == "big-pickle"  # no gemini entry: default
    anthropic = resolve("minimax-m2.5-free")
    assert anthropic.protocol == "anthropic" and anthropic.url() == "http://u/v1/messages"
    forced = resolve("big-pickle", protocol_overrides={"big-pickle": "anthropic"})
    assert forced.protocol == "anthropic"


def test_base62_maps_bytes_evenly_and_drops_the_uneven_ones(monkeypatch):
    draws = iter([bytes([0, 61, 62, 123, 247, 248, 255, 10]), bytes([250, 1, 2, 3])])
    monkeypatch.setattr(ids.secrets, "token_bytes", lambda n: next(draws))
    # 0→'0', 61→'z', 62→'0' (62 % 62), 123→'z', 247→'z'; 248 and 255 dropped; then a second draw
    assert ids._base62(8) == "0z0zzA12"


def test_gateway_flask_checks_each_function_once_and_still_runs_async_views(monkeypatch):
    from zengate.web import GatewayFlask

    app = GatewayFlask(__name__)
    checks = []
    original = Flask.ensure_sync
    monkeypatch.setattr(Flask, "ensure_sync", lambda self, func: checks.append(func) or original(self, func))

    @app.get("/sync")
    def sync_view():
        return "sync"

    @app.get("/async")
    async def async_view():
        return "async"

    client = app.test_client()
    for _ in range(3):
        assert client.get("/sync").text == "sync"
    assert checks == [sync_view]
    if importlib.util.find_spec("asgiref"):
        assert client.get("/async").text == "async"
    else:
        with pytest.raises(RuntimeError, match="async"):
            app.ensure_sync(async_view)
