"""Hosted tools an upstream of another API cannot run: sent without them, and a log line says so.

A Responses client's ``web_search`` / ``tool_search`` and an Anthropic client's server tools
(``web_search_20250305``) are run by the upstream itself; another API has no word for them. The
request still goes (the model answers without the tool), and the log names the request, the
upstream and the tools, so an operator can see why a search never happened.
"""

from __future__ import annotations

import logging

import pytest

HOSTED_RESPONSES = [{"type": "web_search"}, {"type": "tool_search"},
                    {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]
HOSTED_ANTHROPIC = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
                    {"name": "lookup", "input_schema": {"type": "object", "properties": {}}}]


@pytest.fixture
def protocols(client, admin_headers):
    value = {"m-openai": "openai", "m-anthropic": "anthropic", "m-responses": "responses"}
    r = client.post("/_admin/settings", json={"key": "model_protocols", "value": value}, headers=admin_headers)
    assert r.status_code == 200, r.get_json()


def unserved_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "zengate.exchange.serve" and "cannot run the hosted tools" in r.getMessage()]


@pytest.mark.parametrize("model", ["m-openai", "m-anthropic"])
def test_a_responses_clients_hosted_tools_are_logged_when_dropped(client, upstream, protocols, caplog, model):
    caplog.set_level(logging.INFO, logger="zengate.exchange.serve")
    r = client.post("/v1/responses", json={"model": model, "input": "find it", "tools": HOSTED_RESPONSES})
    assert r.status_code == 200, r.get_json()
    sent = upstream.requests[-1].body
    names = [t.get("name") or t.get("function", {}).get("name") for t in sent["tools"]]
    assert names == ["lookup"]  # the function tool went; the hosted ones could not
    [line] = unserved_lines(caplog)
    assert f"{model} on " in line and "web_search, tool_search" in line
    assert line.startswith("request req_")


def test_a_responses_upstream_runs_them_and_nothing_is_logged(client, upstream, protocols, caplog):
    caplog.set_level(logging.INFO, logger="zengate.exchange.serve")
    r = client.post("/v1/responses", json={"model": "m-responses", "input": "find it", "tools": HOSTED_RESPONSES})
    assert r.status_code == 200, r.get_json()
    assert [t["type"] for t in upstream.requests[-1].body["tools"]] == ["web_search", "tool_search", "function"]
    assert unserved_lines(caplog) == []


def test_an_anthropic_clients_server_tools_are_logged_when_dropped(client, upstream, protocols, caplog):
    caplog.set_level(logging.INFO, logger="zengate.exchange.serve")
    body = {"model": "m-openai", "max_tokens": 64, "messages": [{"role": "user", "content": "find it"}],
            "tools": HOSTED_ANTHROPIC}
    r = client.post("/v1/messages", json=body)
    assert r.status_code == 200, r.get_json()
    assert [t["function"]["name"] for t in upstream.requests[-1].body["tools"]] == ["lookup"]
    [line] = unserved_lines(caplog)
    assert "m-openai on " in line and "web_search_20250305" in line

    caplog.clear()
    r = client.post("/v1/messages", json={**body, "model": "m-anthropic"})
    assert r.status_code == 200, r.get_json()
    assert upstream.requests[-1].body["tools"] == HOSTED_ANTHROPIC  # passthrough: the upstream runs them
    assert unserved_lines(caplog) == []
