"""What schemathesis found against the real gateway (tests/e2e/test_schemathesis_e2e.py), kept as
plain regression tests: each was a 500 or a spec mismatch."""

from __future__ import annotations

import pytest

from tests.support.gateway import ADMIN_PASSWORD
from zengate.web.client.common import header_value


def test_huge_request_id_is_404_not_an_overflow(client, admin_headers):
    r = client.get(f"/_stats/requests/{2**70}", headers=admin_headers)
    assert r.status_code == 404 and r.get_json()["error"]["type"] == "not_found_error"


@pytest.mark.parametrize("key_id", [2**70, -(2**70)])
def test_revoking_a_huge_key_id_is_404_not_an_overflow(client, admin_headers, key_id):
    r = client.post("/_admin/api-keys/delete", json={"id": key_id}, headers=admin_headers)
    assert r.status_code == 404 and r.get_json()["error"]["message"] == "no such key"


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
@pytest.mark.parametrize("block", [{"type": {}}, {"type": []},
                                   {"type": "tool_result", "tool_use_id": "t", "content": [{"type": {}}]}])
def test_unhashable_block_types_are_a_400(client, path, block):
    body = {"model": "claude-sonnet-5", "max_tokens": 5, "messages": [{"role": "user", "content": [block]}]}
    r = client.post(path, json=body)
    assert r.status_code == 400, r.get_data(as_text=True)
    assert r.get_json()["type"] == "error" and "type" in r.get_json()["error"]["message"]


@pytest.mark.parametrize(("raw", "sent"), [
    ("big-pickle", "big-pickle"),
    ("a\x00b\nc", "a%00b%0Ac"),
    ("mod\u00e8le", "mod%C3%A8le"),
    ("\ud932x", "\\ud932x"),
])
def test_model_header_is_always_a_valid_header_value(raw, sent):
    value = header_value(raw)
    assert value == sent and value.isascii() and value.isprintable()


def test_a_model_name_with_control_characters_still_answers(client):
    body = {"model": "big\x00pickle\u00e8", "messages": [{"role": "user", "content": "hi"}]}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["x-zengate-model"].isprintable()


def test_nul_characters_are_refused_not_a_database_error(make_app, pg_url):
    """PostgreSQL refuses NUL in text: a key name, a revoke prefix or a stats filter with one was a 500."""
    client = make_app(database_url=pg_url).test_client()
    token = client.post("/_admin/login", json={"password": ADMIN_PASSWORD}).get_json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/_admin/api-keys", json={"name": "a\x00"}, headers=headers).status_code == 400
    assert client.post("/_admin/api-keys/delete", json={"prefix": "\x00"}, headers=headers).status_code == 404
    for query in ("key=%00", "model=%00"):
        r = client.get(f"/_stats/requests?{query}", headers=headers)
        assert r.status_code == 400 and "NUL" in r.get_json()["error"]["message"]
