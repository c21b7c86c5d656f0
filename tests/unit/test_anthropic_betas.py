"""anthropic-beta values on their way to an Anthropic-protocol upstream (zengate.dialects.anthropic.headers)."""

from __future__ import annotations

import logging

import pytest
from werkzeug.datastructures import Headers

from tests.support.fixtures import load_fixture
from zengate.dialects.anthropic import headers as beta_headers
from zengate.dialects.anthropic.headers import filter_betas
from zengate.dialects.anthropic.headers import passed_headers as _passed_headers
from zengate.exchange.catalog import ANTHROPIC_BETAS, ModelCatalog, parse_models_file


def allowed_headers(headers, betas=ANTHROPIC_BETAS):
    return _passed_headers(headers, betas)


# What Claude Code 2.1.197 sends (tests/fixtures/clients/cc_interactive_tmux.json), and what goes on.
CLAUDE_CODE = ("claude-code-20250219,context-1m-2025-08-07,interleaved-thinking-2025-05-14,"
               "redact-thinking-2026-02-12,thinking-token-count-2026-05-13,context-management-2025-06-27,"
               "prompt-caching-scope-2026-01-05,mid-conversation-system-2026-04-07,effort-2025-11-24")
CLAUDE_CODE_FILTERED = ("claude-code-20250219,context-1m-2025-08-07,interleaved-thinking-2025-05-14,"
                        "context-management-2025-06-27,mid-conversation-system-2026-04-07,effort-2025-11-24")


@pytest.fixture(autouse=True)
def fresh_worker(monkeypatch):
    """Each test starts as a new worker would: nothing cached, nothing logged yet."""
    monkeypatch.setattr(beta_headers, "_filtered", {})
    monkeypatch.setattr(beta_headers, "_logged", set())


def dropped_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "zengate.dialects.anthropic.headers"]


def test_known_betas_pass_in_order_and_unknown_ones_are_dropped():
    assert filter_betas(CLAUDE_CODE, ANTHROPIC_BETAS) == CLAUDE_CODE_FILTERED
    assert filter_betas(" interleaved-thinking-2025-05-14 , nope-1,,context-1m-2025-08-07,"
                        "interleaved-thinking-2025-05-14", ANTHROPIC_BETAS) == \
        "interleaved-thinking-2025-05-14,context-1m-2025-08-07"
    assert filter_betas("nope-1,nope-2", ANTHROPIC_BETAS) == ""
    assert filter_betas("Interleaved-Thinking-2025-05-14", ANTHROPIC_BETAS) == ""  # names are exact


def test_a_header_left_empty_is_not_sent():
    assert allowed_headers(Headers([("anthropic-beta", "nope-2026-01-01")])) == {}
    assert allowed_headers(Headers([("anthropic-beta", " , ")])) == {}
    assert allowed_headers(Headers([("x-other", "1")])) == {}
    assert allowed_headers(Headers([("Anthropic-Beta", CLAUDE_CODE), ("x-api-key", "sk-zen-secret")])) == {
        "anthropic-beta": CLAUDE_CODE_FILTERED}


def test_the_models_file_extends_the_list():
    catalog = ModelCatalog(parse_models_file("anthropic_betas: [redact-thinking-2026-02-12]"))
    headers = Headers([("anthropic-beta", CLAUDE_CODE)])
    assert allowed_headers(headers, catalog.anthropic_betas)["anthropic-beta"] == (
        "claude-code-20250219,context-1m-2025-08-07,interleaved-thinking-2025-05-14,redact-thinking-2026-02-12,"
        "context-management-2025-06-27,mid-conversation-system-2026-04-07,effort-2025-11-24")
    assert allowed_headers(headers)["anthropic-beta"] == CLAUDE_CODE_FILTERED  # another catalog, its own answer


def test_recorded_claude_code_requests_lose_only_unknown_betas():
    for name in ("cc_basic_say_hi.json", "cc_interactive_tmux.json", "cc_model_haiku.json"):
        for request in load_fixture(name)["requests"]:
            value = dict((k.lower(), v) for k, v in request["headers"]).get("anthropic-beta")
            if not value:
                continue
            sent = filter_betas(value, ANTHROPIC_BETAS).split(",")
            assert sent and set(sent) <= ANTHROPIC_BETAS
            assert sent == [b for b in value.split(",") if b in ANTHROPIC_BETAS]
            assert "interleaved-thinking-2025-05-14" in sent and "thinking-token-count-2026-05-13" not in sent


def test_each_distinct_value_is_worked_out_once(monkeypatch):
    splits = []
    real = beta_headers.filter_betas

    class Counting(str):
        def split(self, sep=None, maxsplit=-1):
            splits.append(1)
            return str.split(self, sep, maxsplit)

    first = real(Counting(CLAUDE_CODE), ANTHROPIC_BETAS)
    for _ in range(5):
        assert real(Counting(CLAUDE_CODE), ANTHROPIC_BETAS) == first
    assert len(splits) == 1
    monkeypatch.setattr(beta_headers, "_FILTER_CACHE_MAX", 4)
    for i in range(50):  # ever new values: the cache stays bounded
        real(f"interleaved-thinking-2025-05-14,x-{i}", ANTHROPIC_BETAS)
    assert len(beta_headers._filtered) <= 4


def test_a_dropped_beta_is_logged_once_per_worker(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="zengate.dialects.anthropic.headers")
    for _ in range(3):
        allowed_headers(Headers([("anthropic-beta", CLAUDE_CODE)]))
        allowed_headers(Headers([("anthropic-beta", "thinking-token-count-2026-05-13,effort-2025-11-24")]))
    lines = dropped_lines(caplog)
    assert len(lines) == 3, lines
    for beta in ("redact-thinking-2026-02-12", "thinking-token-count-2026-05-13", "prompt-caching-scope-2026-01-05"):
        assert sum(beta in line for line in lines) == 1
    assert all("anthropic_betas" in line and "ZENGATE_MODELS_FILE" in line for line in lines)

    caplog.clear()
    monkeypatch.setattr(beta_headers, "_LOG_ONCE_MAX", 5)
    for i in range(40):  # a client inventing names grows neither memory nor the log
        filter_betas(f"made-up-{i}", ANTHROPIC_BETAS)
    assert len(beta_headers._logged) <= 6
    lines = dropped_lines(caplog)
    assert len(lines) <= 3 and "no more are logged" in lines[-1]
