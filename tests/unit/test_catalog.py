"""The built-in model knowledge and the models file's anthropic_betas section (zengate.exchange.catalog)."""

from __future__ import annotations

import pytest

from zengate.exchange.catalog import (
    ANTHROPIC_BETAS,
    BUILTIN,
    DEFAULT_AUTO,
    ModelCatalog,
    ModelsFileError,
    describe,
    parse_models_file,
)

GO = ("glm-5", "glm-5.1", "kimi-k2.5", "mimo-v2-pro", "mimo-v2-omni", "minimax-m2.5", "minimax-m2.7")
FREE = ("big-pickle", "gpt-5-nano", "minimax-m2.5-free", "mimo-v2-pro-free", "mimo-v2-omni-free",
        "nemotron-3-super-free")


def test_builtin_knows_the_go_tier_and_the_free_models():
    by_id = {m.id: m for m in BUILTIN}
    assert len(by_id) == len(BUILTIN), "a model listed twice"
    assert set(by_id) == {*GO, *FREE}
    for model_id in GO:
        info = by_id[model_id]
        assert (info.tier, info.free) == ("go", False), model_id
        assert info.protocol == ("anthropic" if model_id.startswith("minimax-") else "openai"), model_id
    for model_id in FREE:
        assert (by_id[model_id].tier, by_id[model_id].free) == ("zen", True), model_id
    for info in BUILTIN:
        assert info.context and info.max_output and info.max_output < info.context, info.id
        assert info.fallbacks == (), f"{info.id}: no fallbacks are built in"


def test_default_auto_names_only_builtin_models_of_its_tier():
    by_id = {m.id: m for m in BUILTIN}
    for tier, lists in DEFAULT_AUTO.items():
        for situation, models in lists.items():
            for model_id in models:
                assert model_id in by_id, f"{tier}.{situation}: {model_id} is not in BUILTIN"
                assert by_id[model_id].tier == ("zen" if tier == "free" else "go"), f"{tier}.{situation}: {model_id}"
                assert by_id[model_id].free is (tier == "free")


def test_builtin_knowledge_wins_over_the_live_lists_and_guesses_stay_guesses():
    catalog = ModelCatalog()
    assert catalog.info("glm-5.1").tier == "go"  # offline: no live list at all
    # Zen's own (paid) list names glm-5.1 too: it is still the Go tier's model here
    assert catalog.refresh(lambda: {"data": [{"id": "glm-5.1"}, {"id": "big-pickle"}]})
    assert (catalog.info("glm-5.1").tier, catalog.info("glm-5.1").free) == ("go", False)
    # a free model stays on Zen even when only the Go tier's list (fetched first) names it
    assert catalog.refresh(lambda: {"data": [{"id": "new-thing-free"}, {"id": "new-paid-thing"}]}, "go")
    assert (catalog.info("new-thing-free").tier, catalog.info("new-thing-free").free) == ("zen", True)
    assert (catalog.info("new-paid-thing").tier, catalog.info("new-paid-thing").free) == ("go", False)
    guess = describe("some-new-model-free")
    assert (guess.tier, guess.free, guess.protocol) == ("zen", True, "openai")
    assert describe("minimax-m9").protocol == "anthropic"


def test_offline_model_list_is_the_builtin_free_models():
    listed = {e["id"]: e for e in ModelCatalog().entries()}
    assert set(listed) == set(FREE)
    assert all(e["free"] and e["source"] == "builtin" and e["tier"] == "zen" for e in listed.values())
    assert listed["mimo-v2-pro-free"]["context"] == 1_048_576


# --- anthropic_betas ---------------------------------------------------------------------------------

def test_models_file_adds_anthropic_betas():
    parsed = parse_models_file("anthropic_betas: [my-beta-2026-01-01, context-1m-2025-08-07, my-beta-2026-01-01]")
    assert parsed.anthropic_betas == ("my-beta-2026-01-01", "context-1m-2025-08-07")
    catalog = ModelCatalog(parsed)
    assert catalog.anthropic_betas == ANTHROPIC_BETAS | {"my-beta-2026-01-01"}
    assert ModelCatalog().anthropic_betas == ANTHROPIC_BETAS
    assert parse_models_file("anthropic_betas:").anthropic_betas == ()
    assert parse_models_file('{"anthropic_betas": []}').anthropic_betas == ()


@pytest.mark.parametrize(("text", "needle"), [
    ("anthropic_betas: interleaved-thinking-2025-05-14", "anthropic_betas: must be a list"),
    ("anthropic_betas: {a: b}", "anthropic_betas: must be a list"),
    ("anthropic_betas: ['a,b']", "anthropic_betas.0: 'a,b' is not an anthropic-beta name"),
    ("anthropic_betas: [ok-2025, 'two words']", "anthropic_betas.1: 'two words'"),
    ("anthropic_betas: ['']", "anthropic_betas.0: ''"),
    ("anthropic_betas: [12]", "anthropic_betas.0: 12"),
    ("anthropic_betas: [[x]]", "anthropic_betas.0: ['x']"),
    ("anthropic-betas: [x]", "known: backends, models, auto, aliases, anthropic_betas"),
    ("models: [1]", "mapping"),
    ("nonsense: {}", "unknown sections"),
    ("backends: {zen: {base_url: x}}", "built in"),
    ("backends: {b: {}}", "base_url"),
    ("backends: {b: {base_url: x, protocol: grpc}}", "protocol"),
    ("models: {m: {backend: nowhere}}", "no backend"),
    ("models: {m: {max_output: -1}}", "positive"),
    ("models: {m: {colour: red}}", "unknown keys"),
    ("auto: {free: {sometimes: [a]}}", "unknown"),
    ("{{{", "not valid"),
])
def test_models_file_errors_name_the_problem(text, needle):
    with pytest.raises(ModelsFileError) as exc:
        parse_models_file(text)
    assert needle in str(exc.value)


def test_builtin_betas_are_plain_names():
    for name in ANTHROPIC_BETAS:
        assert parse_models_file(f"anthropic_betas: [{name}]").anthropic_betas == (name,)
