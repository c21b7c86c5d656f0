"""Every routing decision, as pure function calls."""

from __future__ import annotations

import pytest

from zengate.config import Config, numbered_keys
from zengate.exchange.catalog import ModelCatalog, parse_models_file
from zengate.exchange.routing import (
    Cooldowns,
    Features,
    Router,
    RoutingError,
    RoutingSettings,
    conversation_key,
    features,
    key_order,
    parse_retry_after,
)

MODELS_FILE = """
backends:
  zai:
    base_url: https://api.z.ai/api/coding/paas/v4/
    protocol: openai
    key_env: ZAI_KEY
  direct:
    base_url: http://127.0.0.1:9/v1
    protocol: anthropic
models:
  glm-4.6:
    backend: zai
    max_output: 8000
    fallbacks: [big-pickle]
  big-pickle:
    fallbacks: [glm-4.7-free, "go:glm-5"]
aliases:
  fast: gpt-5-nano
  house: "zai:glm-4.6"
auto:
  free:
    tools: [kimi-k2.5-free, big-pickle]
"""


def router(env=None, models=MODELS_FILE, **config) -> Router:
    cfg = Config(upstream_url="http://zen/v1", go_upstream_url="http://go/v1", **config)
    return Router(cfg, ModelCatalog(parse_models_file(models)), environ=env or {"ZAI_KEY": "zk"})


def first(plan, cooldowns=None, conversation="c", **kw):
    return next(plan.routes(cooldowns or Cooldowns(), conversation, **kw))


def test_tiers_send_free_models_to_zen_and_paid_go_models_to_go():
    r = router(go_api_key="gk")
    zen = first(r.plan("big-pickle", RoutingSettings()))
    assert (zen.base_url, zen.key, zen.tier, zen.url()) == ("http://zen/v1", "public", "zen", "http://zen/v1/chat/completions")
    go = first(r.plan("glm-5", RoutingSettings()))
    assert (go.base_url, go.key, go.tier) == ("http://go/v1", "gk", "go")
    anthropic_go = first(r.plan("minimax-m2.5", RoutingSettings()))
    assert anthropic_go.url() == "http://go/v1/messages"


def test_paid_go_model_without_go_key_is_a_clear_4xx():
    with pytest.raises(RoutingError) as exc:
        router().plan("glm-5", RoutingSettings())
    assert exc.value.status == 403 and "OPENCODE_GO_API_KEY" in exc.value.message


GO_MODELS = {"glm-5": "openai", "glm-5.1": "openai", "kimi-k2.5": "openai", "mimo-v2-pro": "openai",
             "mimo-v2-omni": "openai", "minimax-m2.5": "anthropic", "minimax-m2.7": "anthropic"}
FREE_MODELS = {"big-pickle": "openai", "gpt-5-nano": "responses", "minimax-m2.5-free": "anthropic",
               "mimo-v2-pro-free": "openai", "mimo-v2-omni-free": "openai", "nemotron-3-super-free": "openai"}


def offline_router(**config) -> Router:
    """A router whose catalog never got a live model list (an offline start, an outage)."""
    cfg = Config(upstream_url="http://zen/v1", go_upstream_url="http://go/v1", **config)
    return Router(cfg, ModelCatalog(), environ={})


@pytest.mark.parametrize(("model", "protocol"), GO_MODELS.items())
def test_without_live_lists_the_go_models_go_to_the_go_tier(model, protocol):
    route = first(offline_router(go_api_key="gk").plan(model, RoutingSettings()))
    assert (route.tier, route.base_url, route.key, route.protocol, route.upstream_model) == (
        "go", "http://go/v1", "gk", protocol, model)
    assert route.url() == "http://go/v1/" + ("messages" if protocol == "anthropic" else "chat/completions")
    with pytest.raises(RoutingError) as exc:  # never the free tier's key instead
        offline_router().plan(model, RoutingSettings())
    assert exc.value.status == 403 and "OPENCODE_GO_API_KEY" in exc.value.message and model in exc.value.message


def test_glm_5_1_is_a_go_model_offline_and_minimax_m2_7_speaks_anthropic():
    route = first(offline_router(go_api_key="gk").plan("glm-5.1", RoutingSettings()))
    assert (route.tier, route.url(), route.max_output) == ("go", "http://go/v1/chat/completions", 131_072)
    minimax = first(offline_router(go_api_key="gk").plan("minimax-m2.7", RoutingSettings()))
    assert (minimax.tier, minimax.protocol, minimax.url()) == ("go", "anthropic", "http://go/v1/messages")


@pytest.mark.parametrize(("model", "protocol"), FREE_MODELS.items())
def test_without_live_lists_the_free_models_go_to_the_zen_tier(model, protocol):
    router_ = offline_router(go_api_key="gk")
    route = first(router_.plan(model, RoutingSettings()))
    assert (route.tier, route.base_url, route.key, route.protocol) == ("zen", "http://zen/v1", "public", protocol)
    assert router_.catalog.info(model).free is True
    assert first(offline_router().plan(model, RoutingSettings())).tier == "zen"  # no Go key needed


@pytest.mark.parametrize("model", [*GO_MODELS, *FREE_MODELS])
def test_no_fallbacks_are_built_in(model):
    plan = offline_router(go_api_key="gk").plan(model, RoutingSettings())
    assert [c.model_id for c in plan.candidates] == [model]


def test_backend_prefix_and_direct():
    r = router()
    route = first(r.plan("zai:glm-4.6", RoutingSettings()))
    assert (route.base_url, route.key, route.upstream_model, route.max_output) == (
        "https://api.z.ai/api/coding/paas/v4", "zk", "glm-4.6", 8000)
    by_file = first(r.plan("glm-4.6", RoutingSettings()))
    assert by_file.tier == "zai"
    direct = first(r.plan("direct:some-model", RoutingSettings()))
    assert (direct.base_url, direct.protocol, direct.upstream_model) == ("http://127.0.0.1:9/v1", "anthropic",
                                                                          "some-model")
    assert first(r.plan("zen:gpt-5-nano", RoutingSettings())).tier == "zen"
    with pytest.raises(RoutingError) as exc:
        router(models="").plan("direct:x", RoutingSettings())
    assert "direct" in exc.value.message
    # an unknown prefix is part of the model name (OpenRouter ids contain colons)
    assert first(r.plan("qwen/qwen3:free", RoutingSettings())).upstream_model == "qwen/qwen3:free"


def test_fallback_chain_from_file_and_setting():
    r = router(go_api_key="gk")
    plan = r.plan("big-pickle", RoutingSettings())
    assert [(c.model_id, c.backend.name) for c in plan.candidates] == [
        ("big-pickle", "zen"), ("glm-4.7-free", "zen"), ("glm-5", "go")]
    plan = r.plan("big-pickle", RoutingSettings(fallbacks={"big-pickle": ["gpt-5-nano"]}))
    assert [c.model_id for c in plan.candidates] == ["big-pickle", "gpt-5-nano"]
    # unreachable fallbacks (Go without a key) are skipped, not fatal
    assert [c.model_id for c in router().plan("big-pickle", RoutingSettings()).candidates] == [
        "big-pickle", "glm-4.7-free"]


def test_claude_names_map_by_family_and_aliases():
    r = router()
    settings = RoutingSettings(model_map={"opus": "kimi-k2.5-free", "haiku": "zai:glm-4.6", "default": "big-pickle"})
    assert first(r.plan("claude-opus-4-8", settings)).upstream_model == "kimi-k2.5-free"
    assert first(r.plan("opus[1m]", settings)).upstream_model == "kimi-k2.5-free"
    haiku = first(r.plan("claude-haiku-4-5-20251001", settings))
    assert (haiku.tier, haiku.upstream_model, haiku.client_model) == ("zai", "glm-4.6", "claude-haiku-4-5-20251001")
    assert first(r.plan("claude-sonnet-5", settings)).upstream_model == "big-pickle"
    assert first(r.plan("fast", settings)).upstream_model == "gpt-5-nano"


def test_an_alias_naming_a_backend_goes_to_that_backend():
    route = first(router().plan("house", RoutingSettings()))
    assert (route.tier, route.upstream_model, route.client_model) == ("zai", "glm-4.6", "house")
    assert route.url() == "https://api.z.ai/api/coding/paas/v4/chat/completions"


def test_protocol_override_and_model_overrides():
    r = router()
    settings = RoutingSettings(model_protocols={"big-pickle": "anthropic"},
                               model_overrides={"big-pickle": {"max_output": 1234}})
    route = first(r.plan("big-pickle", settings))
    assert route.protocol == "anthropic" and route.max_output == 1234


@pytest.mark.parametrize(("feats", "expected", "situation"), [
    (Features(), "big-pickle", "default"),
    (Features(tools=True), "kimi-k2.5-free", "tools"),
    (Features(tools=True, reasoning=True), "mimo-v2-pro-free", "reasoning"),
    (Features(tokens=200_000, reasoning=True), "mimo-v2-pro-free", "long_context"),
    (Features(images=True, tokens=200_000), "gpt-5-nano", "images"),
])
def test_free_auto_picks_by_request(feats, expected, situation):
    plan = router().plan("free-auto", RoutingSettings(), request_features=feats)
    assert (plan.candidates[0].model_id, plan.chosen_by) == (expected, situation)
    assert first(plan).client_model == "free-auto"


def test_auto_skips_models_cooling_down_and_honours_settings():
    r = router()
    cooldowns = Cooldowns()
    route = first(r.plan("kimi-k2.5-free", RoutingSettings()))
    cooldowns.note(route, 429, "60", now=0)
    plan = r.plan("free-auto", RoutingSettings(), request_features=Features(tools=True), cooldowns=cooldowns, now=1)
    assert plan.candidates[0].model_id == "big-pickle"
    custom = RoutingSettings(auto_routes={"free": {"default": ["grok-code"]}})
    assert r.plan("free-auto", custom).candidates[0].model_id == "grok-code"
    assert router(go_api_key="g").plan("go-auto", RoutingSettings()).candidates[0].model_id == "glm-5.1"


def test_request_features_from_every_api():
    from zengate.dialects import registry

    openai_body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}],
        "tools": [{"type": "function", "function": {"name": "f"}}], "reasoning_effort": "high"}
    oa = features(registry.get("openai").parse_request(openai_body))
    assert (oa.images, oa.tools, oa.reasoning) == (True, True, True)
    anthropic_body = {"model": "m", "messages": [{"role": "user", "content": "x" * 1000}],
                      "thinking": {"type": "adaptive"}, "max_tokens": 5}
    an = features(registry.get("anthropic").parse_request(anthropic_body))
    assert (an.images, an.tools, an.reasoning) == (False, False, True) and an.tokens > 200
    responses_body = {"model": "m", "input": "x" * 1000, "reasoning": {"effort": "low"}}
    rs = features(registry.get("responses").parse_request(responses_body))
    assert (rs.images, rs.tools, rs.reasoning) == (False, False, True) and rs.tokens > 200


def test_keys_rotate_with_cooldowns_and_conversations_stick():
    env = {"OPENCODE_API_KEY_1": "k1", "OPENCODE_API_KEY_2": "k2", "OPENCODE_API_KEY_3": "k3"}
    cfg = Config(upstream_url="http://zen/v1", extra_api_keys=numbered_keys("OPENCODE_API_KEY", env))
    assert cfg.api_keys == ("k1", "k2", "k3")  # numbered keys replace the anonymous one
    r = Router(cfg, ModelCatalog(), environ={})
    plan = r.plan("big-pickle", RoutingSettings())
    cooldowns = Cooldowns()
    mine = [route.key for route in plan.routes(cooldowns, "conversation-A", now=0)]
    assert sorted(mine) == ["k1", "k2", "k3"]
    assert [first(plan, cooldowns, "conversation-A", now=0).key for _ in range(5)] == [mine[0]] * 5  # sticky
    spread = {first(plan, cooldowns, f"conv-{i}", now=0).key for i in range(30)}
    assert spread == {"k1", "k2", "k3"}  # different conversations use different keys
    # a 429 on the conversation's key moves it to the next key until retry-after passes
    cooldowns.note(first(plan, cooldowns, "conversation-A", now=0), 429, "10", now=0)
    assert first(plan, cooldowns, "conversation-A", now=5).key == mine[1]
    assert first(plan, cooldowns, "conversation-A", now=11).key == mine[0]
    # a 401 rests the key for every model
    cooldowns.note(first(plan, cooldowns, "conversation-A", now=11), 401, None, now=11)
    other = r.plan("gpt-5-nano", RoutingSettings())
    assert first(other, cooldowns, "conversation-A", now=12).key == mine[1]


def test_everything_cooling_down_still_tries_the_first_route():
    r = router()
    plan = r.plan("gpt-5-nano", RoutingSettings())
    cooldowns = Cooldowns()
    cooldowns.note(first(plan), 429, "30", now=0)
    routes = list(plan.routes(cooldowns, "c", now=1))
    assert [x.upstream_model for x in routes] == ["gpt-5-nano"]  # never a 429 invented locally


def test_max_attempts_bounds_the_plan():
    env = {f"OPENCODE_API_KEY_{i}": f"k{i}" for i in range(1, 6)}
    r = Router(Config(extra_api_keys=numbered_keys("OPENCODE_API_KEY", env)), ModelCatalog(), environ={})
    assert len(list(r.plan("big-pickle", RoutingSettings()).routes(Cooldowns(), "c", max_attempts=3))) == 3


def test_helpers():
    assert parse_retry_after("3") == 3.0 and parse_retry_after("x") is None and parse_retry_after(None) is None
    assert key_order(1, "a") == [0] and sorted(key_order(4, "a")) == [0, 1, 2, 3]
    assert conversation_key({}, {"x-session-affinity": "ses_1"}) == "ses_1"
    cc = {"metadata": {"user_id": '{"device_id":"d","session_id":"abc"}'}, "messages": []}
    assert conversation_key(cc, {}) == "abc"
    a = conversation_key({"messages": [{"role": "user", "content": "hi"}], "system": "s"}, {})
    b = conversation_key({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}],
                          "system": "s"}, {})
    assert a == b  # later turns keep the conversation's identity


def test_models_file_as_json_and_catalog_listing():
    parsed = parse_models_file('{"models": {"my-model": {"backend": "zen", "protocol": "anthropic"}}}')
    catalog = ModelCatalog(parsed)
    ids = {e["id"]: e for e in catalog.entries()}
    assert ids["my-model"]["protocol"] == "anthropic" and ids["my-model"]["source"] == "config"
    assert catalog.refresh(lambda: {"data": [{"id": "glm-5"}]}, "go")
    assert catalog.info("glm-5").tier == "go"
    assert catalog.refresh(lambda: {"data": [{"id": "new-thing-free"}, {"id": "big-pickle"}]})
    assert catalog.info("new-thing-free").free is True
    assert {"new-thing-free", "glm-5", "my-model"} <= {e["id"] for e in catalog.entries()}
