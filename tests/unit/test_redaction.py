"""zengate.store.redaction: key-like strings masked in stored bodies; prose and code left alone."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.fixtures import fixture_requests
from tests.support.sinks import RowSink
from zengate.exchange.records import RequestRecord
from zengate.runtime import logs
from zengate.store import redaction
from zengate.store.redaction import MASK, redact_secrets, redact_stored
from zengate.store.requestlog import _db_row
from zengate.upstream.client import UpstreamError
from zengate.web.errors import from_upstream

ZEN = "sk-zen-" + "Q2xhdWRlSXNHcmVhdDEyMzQ1Njc4OTBhYmNkZWZnaGlqa2w"
OPENAI = "sk-proj-" + "4fGh7Kq9Zx2Lm8Np3Rt6Vw1Yb5Cd0Ef"
ANTHROPIC = "sk-ant-api03-" + "x9Yh2Kd8Lm4Np6Qr1St3Uv5Wx7Za0Bc"
AWS = "AKIA" + "IOSFODNN7EXAMPLE"
GITHUB = "ghp_" + "1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVwXyZ"
GITHUB_PAT = "github_pat_" + "11ABCDEFG0123456789_abcdefghijKLMNOP"
SLACK = "xoxb-" + "1234567890-abcdefghij"
GOOGLE = "AIza" + "SyD3f8Gk2Lm9Np4Qr7St1Uv6Wx0Yz5Ab-Cd"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
GENERATED = "a8Fk29Lq7Zp03Xn5Vb"


@pytest.mark.parametrize("text, secret", [
    (f"my key is {ZEN}, use it", ZEN),
    (f"OPENAI_API_KEY={OPENAI}", OPENAI),
    (f"export ANTHROPIC_API_KEY='{ANTHROPIC}'", ANTHROPIC),
    (f"aws_access_key_id = {AWS}", AWS),
    (f"git clone https://{GITHUB}@github.com/x/y", GITHUB),
    (f"token: {GITHUB_PAT}", GITHUB_PAT),
    (f"slack {SLACK}", SLACK),
    (f"maps key {GOOGLE}", GOOGLE),
    (f"curl -H 'Authorization: Bearer {JWT}' https://api", JWT),
    (f"api_key={GENERATED}", GENERATED),
    (f'{{"password": "{GENERATED}"}}', GENERATED),
    (f"client_secret: {GENERATED}", GENERATED),
    (f"postgres://app:{GENERATED}@db:5432/x", GENERATED),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----", "MIIEpAIBAAKCAQEA7"),
])
def test_key_like_strings_are_masked(text: str, secret: str) -> None:
    out = redact_secrets(text)
    assert secret not in out and MASK in out
    # inside a serialised body (quotes escaped) too
    stored = redact_stored([{"role": "user", "content": text}])
    assert secret not in stored and MASK in stored


PROSE_AND_CODE = [
    "The bearer of bad news arrived at the task-management meeting.",
    "Set max_tokens to 1024 and the temperature to 0.7; tokens are counted per request.",
    "password = get_password()\napi_key = os.environ['OPENAI_API_KEY']\ntoken: str = request.token",
    'def login(password: str, token: str | None = None) -> bool:\n    return check(password, token)',
    "Use `Authorization: Bearer YOUR_TOKEN_HERE` and `x-api-key: <your key>`.",
    "See https://example.com/docs/api-keys and user@example.com for details.",
    "The secret: keep it simple. Password requirements: at least twelve characters.",
    "sk-learn is a typo of scikit-learn; the risk-assessment-for-everyone-framework is long.",
    "AKIA is how AWS access key ids start; ghp_ is GitHub's prefix.",
    "git commit -m 'fix: token refresh'  # sha 3f2a9c1e7b4d",
    'const config = { apiKey: process.env.API_KEY, secret: loadSecret("prod") };',
    "Kubernetes secretKeyRef: name: db-credentials, key: password-v2",
    "in 2024-01-15T10:30:00Z the build 1234567890 passed; uuid 550e8400-e29b-41d4-a716-446655440000",
    "Les mots de passe: « motdepasse » n'est pas sûr. 密码不应该写在代码里。",
]


@pytest.mark.parametrize("text", PROSE_AND_CODE)
def test_prose_and_code_pass_unchanged(text: str) -> None:
    assert redact_secrets(text) == text
    body = [{"role": "user", "content": text}, {"role": "assistant", "content": [{"type": "text", "text": text}]}]
    assert json.loads(redact_stored(body)) == body


def test_the_gateways_own_secrets_are_masked_raw_and_json_escaped() -> None:
    secret = 'up-key"with\\quote-and-more'
    logs.register_secret(secret)
    try:
        assert redact_secrets(f"key {secret} here") == f"key {MASK} here"
        stored = redact_stored({"content": f"key {secret} here"})
        assert secret not in json.loads(stored)["content"] and MASK in stored
    finally:
        logs._secrets = tuple(s for s in logs._secrets if s != secret)


def test_empty_values_pass() -> None:
    assert redact_secrets("") == ""
    assert redact_stored(None) is None
    assert redact_stored("plain") == "plain"



@pytest.mark.parametrize("redact", [True, False])
def test_the_log_writer_masks_bodies_only_when_the_setting_is_on(redact: bool) -> None:
    sink = RowSink()
    record = RequestRecord("req_1", "POST", "/v1/chat/completions", "openai", sink, redact_secrets=redact)
    record.input_messages = [{"role": "user", "content": f"my key is {OPENAI}"}]
    record.add_output(f"echo {OPENAI}")
    record.finish(200)
    row = sink.rows[0]
    assert row["input_messages"][0]["content"].endswith(OPENAI)  # queued untouched: no work on the request path
    stored = " ".join(str(v) for v in _db_row(row))
    assert (OPENAI in stored) is not redact
    assert (MASK in stored) is redact


def test_upstream_errors_reach_the_client_without_the_gateways_secrets() -> None:
    """An upstream that echoes the key it was sent ("Incorrect API key provided: …") had it passed
    on to the client verbatim."""
    secret = "zen-upstream-key-for-this-test-1"
    logs.register_secret(secret)
    try:
        err = from_upstream(UpstreamError(401, f"Incorrect API key provided: {secret}", error_type="authentication"))
        assert secret not in err.message and err.message == f"Incorrect API key provided: {MASK}"
        assert err.status == 401
    finally:
        logs._secrets = tuple(s for s in logs._secrets if s != secret)


# --- the gates: what is masked is what the patterns alone mask ---------------------------------------

def masked_by_the_patterns_alone(text: str) -> str:
    """Every pattern run over the whole text, none skipped (what ``redact_secrets`` must equal)."""
    for _, pattern in redaction._TOKENS:
        text = pattern.sub(MASK, text)
    text = redaction._BEARER.sub(lambda m: m.group(1) + MASK, text)
    text = redaction._NAMED.sub(redaction._mask_named, text)
    return redaction._URL_CREDENTIALS.sub(lambda m: m.group(1) + MASK + "@", text)


def _names_admitted() -> set[str]:
    """Every name the named-value pattern admits, in lower case (its alternation expanded)."""
    sep = ("", "_", "-")
    names = {"apikey", "x-api-key", "secret", "token", "password", "passwd", "pwd"}
    names |= {f"{a}{s}{b}" for s in sep for a, b in (("api", "key"), ("client", "secret"), ("auth", "token"),
                                                      ("access", "token"), ("refresh", "token"), ("api", "token"),
                                                      ("private", "key"))}
    names |= {f"access{s}key{t}" for s in sep for t in ("", *(f"{u}id" for u in sep))}
    names |= {f"secret{t}{s}key" for s in sep for t in ("", *(f"{u}access" for u in sep))}
    assert all(redaction._NAMED.fullmatch(f"{name}={GENERATED}") for name in names)
    return names


def test_every_name_starts_with_a_start_letter_and_ends_with_a_hint_within_reach() -> None:
    for name in _names_admitted():
        assert name[0] in redaction._NAME_STARTS, name
        last_hint, hint = max((i, hint) for hint in redaction._NAMED_HINTS if (i := name.rfind(hint)) >= 0)
        assert last_hint <= redaction.NAME_REACH, name
        rest = name[last_hint + len(hint):]
        assert redaction._AFTER_LAST_HINT.match(f"{rest}: {GENERATED.lower()}"), name


def test_real_client_bodies_are_masked_as_the_patterns_alone_mask_them() -> None:
    bodies = fixture_requests(("/v1/messages", "/v1/messages/count_tokens", "/v1/chat/completions"))
    assert len(bodies) >= 30
    for name, body in bodies:
        for part in (body, body.get("messages"), body.get("system"), body.get("tools")):
            if part:
                text = json.dumps(part, ensure_ascii=False)
                assert redact_secrets(text) == masked_by_the_patterns_alone(text), name


SECRETS_AND_LOOKALIKES = (ZEN, OPENAI, ANTHROPIC, AWS, GITHUB, GITHUB_PAT, SLACK, GOOGLE, JWT, GENERATED,
                          "sk-learn", "task-assessment-for-everyone-x1", "ghost_", "xoxb-1", "AKIAshort")
FRAGMENTS = st.sampled_from([
    "api_key", "API-KEY", "apikey", "x-api-key", "Access_Key_Id", "secret_access_key", "client-secret",
    "Secret", "auth_token", "refresh-token", "TOKEN", "password", "Passwd", "pwd", "private_key", "key",
    "monkey", "tokens", "passw", "=", ":", " = ", ": ", '"', "'", '\\"', "\n", " ", "_", "-", "/", "@",
    "://", "postgres://app:", "https://", "Bearer ", "bearer\t", "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----", "a8Fk29Lq7Zp03Xn5Vb", "abcdefghijklmnop", "0123456789",
    "\u017f", "\u0131", "\u0130", "\u212a", "é", "密码", *SECRETS_AND_LOOKALIKES,
])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(FRAGMENTS, max_size=40).map("".join))
def test_generated_text_is_masked_as_the_patterns_alone_mask_it(text: str) -> None:
    assert redact_secrets(text) == masked_by_the_patterns_alone(text)


@pytest.mark.parametrize("text", [
    f"paſsword={GENERATED}",  # the long s: IGNORECASE reads it as "s", str.lower() does not
    f"apİ_key={GENERATED}",  # the dotted capital I: its lower case is two characters long
    f"ſecret_key={GENERATED} and a key",
    f"xx_token={GENERATED}",  # no word boundary before "token": left alone, as by the pattern
    f"my_api_key = {GENERATED}; token: {GENERATED}",
])
def test_letters_that_fold_differently_and_names_inside_words_match_the_pattern(text: str) -> None:
    assert redact_secrets(text) == masked_by_the_patterns_alone(text)
