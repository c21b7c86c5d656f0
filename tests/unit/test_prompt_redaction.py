"""Prompt redaction (zengate/steering/redact.py, setting ``prompt_redaction``): each kind of key masked by
name, near misses left alone, real client requests untouched, every place of a request walked
without changing the shared form, and through the app for Anthropic and OpenAI clients, streamed and
not: what the upstream got, what the log row says (never the secret), the switch off, bad input."""

from __future__ import annotations

import copy
import json
from collections import Counter

import pytest

from tests.support.fake_upstream import anthropic_text, openai_text
from tests.support.fixtures import load_fixture
from zengate.dialects.registry import CLIENT_DIALECTS
from zengate.runtime import logs
from zengate.steering.redact import redact_request, redact_text, summary
from zengate.store.redaction import redact_secrets

# Built from pieces, so that no scanner takes this file for a leak.
ALNUM = "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
SECRETS = {
    "openai-key": "sk-" + "proj-" + ALNUM + "_x9",
    "anthropic-key": "sk-" + "ant-api03-" + ALNUM + "-AA",
    "zengate-key": "sk-" + "zen-" + ALNUM[:24],
    "google-api-key": "AI" + "za" + ALNUM + "Q9z",
    "github-token": "gh" + "p_" + ALNUM + "1234",
    "aws-access-key": "AK" + "IA" + "IOSFODNN7EXAMPL3",
    "slack-token": "xo" + "xb-" + "1234567890-" + ALNUM[:12],
    "stripe-key": "sk" + "_live_" + ALNUM[:24],
    "jwt": "ey" + "JhbGciOiJIUzI1NiJ9." + "ey" + "JzdWIiOiIxMjM0NTY3ODkwIn0."
           + "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "pem-private-key": "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MZ\n"
                       "-----END RSA PRIVATE KEY-----",
}
BEARER = "Authorization: Bearer " + "tok_" + ALNUM


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_each_kind_is_masked_by_name_in_running_text(kind):
    found: Counter[str] = Counter()
    text = f"please use {SECRETS[kind]} for the deploy"
    assert redact_text(text, found) == f"please use [redacted:{kind}] for the deploy"
    assert found == Counter({kind: 1})


def test_a_bearer_token_keeps_its_word_and_a_bearer_key_is_named_for_the_key():
    found: Counter[str] = Counter()
    assert redact_text(BEARER, found) == "Authorization: Bearer [redacted:bearer-token]"
    assert redact_text("Authorization: Bearer " + SECRETS["openai-key"], found) == \
        "Authorization: Bearer [redacted:openai-key]"
    assert found == Counter({"bearer-token": 1, "openai-key": 1})


@pytest.mark.parametrize("kind", ["openai-key", "anthropic-key", "zengate-key", "google-api-key", "github-token",
                                  "aws-access-key", "slack-token", "pem-private-key"])
def test_the_stored_body_redaction_masks_the_same_keys(kind):
    """The patterns are the stored-body redaction's (zengate/store/redaction.py), named."""
    assert SECRETS[kind] not in redact_secrets(f"use {SECRETS[kind]} now")


NEAR_MISSES = [
    "skeleton keys and sk-learn are not keys; neither is a task-0123456789abcdefghij0123 or risk-20240101-abcdefghijk",
    "sk-1234 is too short; sk-abcdefghijklmnopqrstuvwxyz has no digit",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b (HEAD -> main)\nAuthor: A <a@b.c>\n"
    "    Merge 9fceb02d0ae598e95dc970b74767f19372d61af8 into e83c5163316f89bfbde7d9ab23ca2e25604af290",
    "Authorization: Bearer YOUR_TOKEN_HERE and Bearer ${TOKEN}",
    "AKIA alone, ghp_short, xoxb-1, AIzaShort, eyJhbGciOiJIUzI1NiJ9 without its other parts",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----",
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 and desk-lamp-2000-deluxe-edition",
]


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_stay_as_they_are(text):
    found: Counter[str] = Counter()
    assert redact_text(text, found) is text and not found


def test_the_gateways_registered_secrets_are_masked(monkeypatch):
    monkeypatch.setattr(logs, "_secrets", ("upstream-key-0123456789",))
    found: Counter[str] = Counter()
    assert redact_text("key upstream-key-0123456789 here", found) == "key [redacted:gateway-secret] here"


@pytest.mark.parametrize("name, dialect", [("cc_tool_bash.json", "anthropic"), ("cc_basic_say_hi.json", "anthropic"),
                                           ("oc_tool_read.json", "openai"), ("cx_tool_exec_command.json", "responses"),
                                           ("gm_tool_read_file.json", "gemini")])
def test_real_client_requests_hold_nothing_to_mask(name, dialect):
    for request in load_fixture(name)["requests"]:
        body = request.get("body")
        if not isinstance(body, dict) or request["method"] != "POST" or "count" in request["path"].lower():
            continue
        form = CLIENT_DIALECTS[dialect].parse_request({**body, "model": body.get("model", "gemini-2.5-flash")})
        assert redact_request(form) == (None, Counter())


def claude_code_form_with_secrets() -> dict:
    """Claude Code's recorded tool round trip, with keys where a session would leak them."""
    body = [r["body"] for r in load_fixture("cc_tool_bash.json")["requests"] if isinstance(r.get("body"), dict)][-1]
    form = CLIENT_DIALECTS["anthropic"].parse_request(body)
    form["system"][-1]["text"] += f"\nOPENAI_API_KEY={SECRETS['openai-key']}"
    user, _system, assistant, results = form["messages"]
    user["content"][-1]["text"] = f"deploy with {SECRETS['aws-access-key']}"
    assistant["content"].insert(0, {"type": "thinking", "thinking": SECRETS["github-token"], "signature": "sig"})
    call = next(b for b in assistant["content"] if b["type"] == "tool_use")
    call["input"] = {"command": f"curl -H 'x-api-key: {SECRETS['anthropic-key']}' https://x", "timeout": 5}
    results["content"][0]["content"] = [{"type": "text", "text": SECRETS["pem-private-key"]}]
    return form


def test_every_place_of_a_request_is_masked_but_thinking_and_the_shared_form_is_not_touched():
    form = claude_code_form_with_secrets()
    before = copy.deepcopy(form)
    new, found = redact_request(form)
    assert form == before
    blob = json.dumps(new)
    for kind in ("openai-key", "aws-access-key", "anthropic-key", "pem-private-key"):
        assert SECRETS[kind] not in blob and f"[redacted:{kind}]" in blob
    assert SECRETS["github-token"] in blob  # a thinking block is signed as it is
    assert summary(found) == "4 secrets: anthropic-key, aws-access-key, openai-key, pem-private-key"
    assert new["system"][0] is form["system"][0] and new["messages"][1] is form["messages"][1]
    call = next(b for b in new["messages"][2]["content"] if b["type"] == "tool_use")
    assert call["input"] == {"command": "curl -H 'x-api-key: [redacted:anthropic-key]' https://x", "timeout": 5}


def test_one_secret_reads_in_the_singular():
    assert summary(Counter({"jwt": 1})) == "1 secret: jwt"


# --- through the app -----------------------------------------------------------------------------

ANTHROPIC = {"anthropic-version": "2023-06-01"}


def switch(client, admin_headers, on) -> None:
    r = client.post("/_admin/settings", json={"key": "prompt_redaction", "value": on}, headers=admin_headers)
    assert r.status_code == 200, r.get_json()


def last_row(client, admin_headers) -> dict:
    return client.get("/_stats/requests?limit=1&bodies=0", headers=admin_headers).get_json()["requests"][0]


def sse(data: bytes) -> list[dict]:
    return [json.loads(line[6:]) for line in data.decode().splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"]


@pytest.mark.parametrize("model, reply", [("minimax-m2.5-free", anthropic_text("ok")),
                                          ("big-pickle", openai_text("ok"))])
@pytest.mark.parametrize("stream", [False, True])
def test_an_anthropic_clients_keys_never_reach_either_upstream(client, upstream, admin_headers, model, reply, stream):
    switch(client, admin_headers, True)
    upstream.script(model, reply)
    body = {"model": model, "max_tokens": 50, "stream": stream, "system": f"key: {SECRETS['zengate-key']}",
            "messages": [{"role": "user", "content": f"why does {SECRETS['openai-key']} fail?"},
                         {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read",
                                                            "input": {"file_path": ".env"}}]},
                         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                                       "content": f"STRIPE={SECRETS['stripe-key']}\n{BEARER}"}]}]}
    r = client.post("/v1/messages", json=body, headers=ANTHROPIC)
    assert r.status_code == 200
    text = ("".join(e["delta"].get("text", "") for e in sse(r.get_data()) if e["type"] == "content_block_delta")
            if stream else r.get_json()["content"][0]["text"])
    assert text == "ok"
    sent = json.dumps(upstream.requests[-1].body)
    for kind in ("zengate-key", "openai-key", "stripe-key"):
        assert SECRETS[kind] not in sent and f"[redacted:{kind}]" in sent
    assert "Bearer [redacted:bearer-token]" in sent and ALNUM not in sent
    [note] = last_row(client, admin_headers)["guards"]
    assert note == {"guard": "prompt_redaction", "action": "masked",
                    "why": "4 secrets: bearer-token, openai-key, stripe-key, zengate-key"}


@pytest.mark.parametrize("stream", [False, True])
def test_an_openai_clients_keys_are_masked_and_with_the_switch_off_they_go_as_they_came(
        client, upstream, admin_headers, stream):
    body = {"model": "big-pickle", "stream": stream, "messages": [
        {"role": "system", "content": "You deploy things."},
        {"role": "user", "content": f"my key is {SECRETS['google-api-key']}"}]}
    switch(client, admin_headers, True)
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    reply = ("".join(c["choices"][0]["delta"].get("content") or "" for c in sse(r.get_data()) if c.get("choices"))
             if stream else r.get_json()["choices"][0]["message"]["content"])
    assert reply == "Hello from upstream"
    assert upstream.requests[-1].body["messages"][1]["content"] == "my key is [redacted:google-api-key]"
    assert last_row(client, admin_headers)["guards"][0]["why"] == "1 secret: google-api-key"
    switch(client, admin_headers, False)
    client.post("/v1/chat/completions", json=body)
    assert upstream.requests[-1].body["messages"] == body["messages"]
    assert "guards" not in last_row(client, admin_headers)


def test_nothing_to_mask_leaves_the_body_as_the_client_sent_it(client, upstream, admin_headers):
    switch(client, admin_headers, True)
    body = {"model": "big-pickle", "messages": [{"role": "user", "content": "sk-learn is a library"}]}
    client.post("/v1/chat/completions", json=body)
    assert upstream.requests[-1].body["messages"] == body["messages"]
    assert "guards" not in last_row(client, admin_headers)


@pytest.mark.parametrize("value, says", [("maybe", "prompt_redaction: must be true or false"),
                                         ({"on": True}, "prompt_redaction: must be true or false")])
def test_a_bad_switch_is_refused(client, admin_headers, value, says):
    r = client.post("/_admin/settings", json={"key": "prompt_redaction", "value": value}, headers=admin_headers)
    assert r.status_code == 400 and says in r.get_json()["error"]["message"], r.get_json()
    assert client.get("/_admin/settings", headers=admin_headers).get_json()["settings"]["prompt_redaction"] is False
