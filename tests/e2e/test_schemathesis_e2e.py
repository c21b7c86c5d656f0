"""Schemathesis over the real gateway: every operation of /openapi.json, bounded and reproducible.

Checks on every response: no 5xx (``not_a_server_error``), the body matches what the spec says for
that status (``response_schema_conformance``, so the spec must describe the error bodies too), and
every 4xx/5xx is JSON in the shape of the API that was called (``errors_in_the_api_shape``).

Authentication: ``/v1`` calls carry a fresh ``sk-zen`` key with ``require_auth`` on, everything else
the admin bearer token. Operations that would wreck the run get safe handling: ``/_admin/logout``
ends a throwaway session, ``/_admin/proxy/toggle`` is switched back to ``off`` after each call, and
the login (whose wrong passwords lock the address out) is fuzzed last, in its own test.
Geonode is pointed at the local upstream, so nothing leaves loopback.

Nothing lands in the checkout: hypothesis runs with ``database=None`` and keeps its caches where
tests/conftest.py points it (a temporary directory); schemathesis's pytest integration writes no
``.schemathesis/`` (only its CLI's engine keeps a cache and crash files there).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import ADMIN_PASSWORD, GatewayProcess
from zengate.web.openapi import SPEC

pytestmark = pytest.mark.e2e

#: Examples per operation; ZENGATE_SCHEMATHESIS_EXAMPLES=200 for a deeper run by hand.
MAX_EXAMPLES = int(os.environ.get("ZENGATE_SCHEMATHESIS_EXAMPLES", "15"))
HYPOTHESIS = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
LOGIN = "/_admin/login"


@pytest.fixture(scope="module")
def gateway_process(tmp_path_factory, e2e_upstream: FakeUpstream) -> Iterator[GatewayProcess]:
    """The conftest's gateway, with Geonode (proxy refresh) on the local upstream as well."""
    gw = GatewayProcess(tmp_path_factory.mktemp("gw"), e2e_upstream.url,
                        env={"ZENGATE_SETTINGS_TTL": "0", "ZENGATE_GEONODE_URL": e2e_upstream.url + "/geonode"})
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture
def live(gw: GatewayProcess) -> GatewayProcess:
    """The gateway with ``require_auth`` on (``/v1`` calls then need the key)."""
    gw.set_setting("require_auth", True)
    return gw


@pytest.fixture
def zen_key(gw: GatewayProcess) -> str:
    """A fresh sk-zen key per test, so a fuzzed revoke cannot lock the next operation out."""
    r = gw.admin("POST", "/_admin/api-keys", json={"name": "schemathesis"})
    assert r.status_code == 201, r.text
    return r.json()["key"]


# The static document /openapi.json serves (test_live_document_is_the_one_fuzzed checks they agree):
# loaded at collection time, so each operation is its own test item.
schema = schemathesis.openapi.from_dict(SPEC)
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True)


def _is_openai_error(body: object) -> bool:
    err = body.get("error") if isinstance(body, dict) else None
    return (isinstance(err, dict) and isinstance(err.get("message"), str) and isinstance(err.get("type"), str)
            and "type" not in body)


def _is_gemini_error(body: object) -> bool:
    err = body.get("error") if isinstance(body, dict) else None
    return (isinstance(err, dict) and isinstance(err.get("code"), int) and isinstance(err.get("message"), str)
            and isinstance(err.get("status"), str) and isinstance(err.get("details"), list))


def _is_anthropic_error(body: object) -> bool:
    err = body.get("error") if isinstance(body, dict) else None
    return (isinstance(body, dict) and body.get("type") == "error" and isinstance(err, dict)
            and isinstance(err.get("type"), str) and isinstance(err.get("message"), str))


def expected_shape(path: str, headers: dict | None) -> str:
    """Which error shape a path answers in: Google's on the Gemini API's paths, Anthropic's on
    /v1/messages* (or with anthropic-version), else OpenAI's."""
    if path.startswith(("/v1beta/", "/v1/models/")):  # the path as sent: a made-up version is no Gemini path
        return "gemini"
    lowered = {k.lower() for k in (headers or {})}
    return "anthropic" if path.startswith("/v1/messages") or "anthropic-version" in lowered else "openai"


@schemathesis.check
def errors_in_the_api_shape(ctx, response, case) -> bool | None:
    """Every 4xx/5xx is JSON in the error shape of the API that was called."""
    if response.status_code < 400:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"{response.status_code} is not JSON: {response.content[:200]!r}") from None
    shape = expected_shape(case.formatted_path, case.headers)
    ok = {"anthropic": _is_anthropic_error, "gemini": _is_gemini_error, "openai": _is_openai_error}[shape](body)
    assert ok, f"{response.status_code} is not in the {shape} error shape: {body!r}"
    return True


CHECKS = [not_a_server_error, response_schema_conformance, errors_in_the_api_shape]


def _headers(gw: GatewayProcess, path: str, zen_key: str) -> dict[str, str]:
    if path.startswith(("/v1", "/{version}/")):
        return {"Authorization": f"Bearer {zen_key}"}
    return gw.admin_headers()


def _throwaway_session(gw: GatewayProcess) -> dict[str, str]:
    r = requests.post(gw.url + LOGIN, json={"password": ADMIN_PASSWORD}, timeout=10)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_live_document_is_the_one_fuzzed(gw: GatewayProcess) -> None:
    r = requests.get(gw.url + "/openapi.json", timeout=10)
    assert r.status_code == 200 and r.json() == json.loads(json.dumps(SPEC))


@schema.exclude(path=LOGIN).parametrize()
@HYPOTHESIS
def test_every_operation(case, live: GatewayProcess, zen_key: str) -> None:
    path = case.operation.path
    gw = live
    headers = _throwaway_session(gw) if path == "/_admin/logout" else _headers(gw, path, zen_key)
    try:
        response = case.call(base_url=gw.url, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS, headers=headers)
    finally:
        if path == "/_admin/proxy/toggle":
            gw.admin("POST", "/_admin/proxy/settings", json={"mode": "off"})


@schema.include(path=LOGIN).parametrize()
@HYPOTHESIS
def test_login_last(case, gw: GatewayProcess) -> None:
    """Wrong passwords lock the address out of the login: fuzzed after everything that logs in."""
    response = case.call(base_url=gw.url, timeout=30)
    case.validate_response(response, checks=CHECKS)
