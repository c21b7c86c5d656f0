"""The recorded client requests in tests/fixtures/clients: present, described, keyless, and required.

A test that needs a recording fails when it is missing (never skips), and a parametrisation over
recordings that match nothing fails instead of collecting zero cases.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.support import fixtures
from tests.support.fixtures import FIXTURES, README, fixture_body, fixture_requests, load_fixture, require_fixtures

KEY_HEADERS = {"authorization": {"Bearer <API_KEY>"}, "x-api-key": {"<API_KEY>"}, "x-goog-api-key": {"<API_KEY>"}}


def recordings() -> list:
    return sorted(FIXTURES.glob("*.json"))


def test_the_recordings_live_in_the_repository():
    names = {path.name for path in recordings()}
    assert {"cc_basic_say_hi.json", "oc_tool_read.json", "py_openai_stream.json", "cx_basic_say_hi.json",
            "gm_tool_read_file.json", "py_genai_stream.json", "py_openai_responses_stream.json"} <= names
    for path in recordings():
        doc = json.loads(path.read_text())
        assert doc["scenario"] == path.stem and doc["client"], path.name
        assert doc["requests"] and all({"method", "path", "headers"} <= set(r) for r in doc["requests"]), path.name


def test_every_recording_is_described_in_the_readme():
    text = README.read_text()
    for path in recordings():
        assert re.search(rf"^\| `{re.escape(path.name)}` \|", text, re.MULTILINE), f"{path.name} not in {README}"


def test_no_recording_carries_a_key():
    for path in recordings():
        for n, request in enumerate(json.loads(path.read_text())["requests"]):
            headers = request["headers"] if isinstance(request["headers"], list) else request["headers"].items()
            for name, value in headers:
                if name.lower() in KEY_HEADERS:
                    assert value in KEY_HEADERS[name.lower()], f"{path.name}#{n} {name}"


def test_a_missing_recording_fails_the_test_naming_its_path():
    with pytest.raises(pytest.fail.Exception, match=re.escape(str(FIXTURES / "no_such_client.json"))):
        fixture_body("no_such_client.json", 0)
    with pytest.raises(pytest.fail.Exception, match=re.escape(str(FIXTURES / "no_such_client.json"))):
        load_fixture("no_such_client.json")


def test_a_missing_directory_fails_rather_than_skips(monkeypatch, tmp_path):
    gone = tmp_path / "clients"
    monkeypatch.setattr(fixtures, "FIXTURES", gone)
    for call in (require_fixtures, lambda: fixture_body("cc_basic_say_hi.json", 1),
                 lambda: fixture_requests("/v1/messages")):
        with pytest.raises(pytest.fail.Exception, match=re.escape(str(gone))):
            call()


def test_a_selection_matching_no_recording_fails_instead_of_collecting_nothing():
    with pytest.raises(pytest.fail.Exception, match=r"no recorded request to /v1/nowhere in zz_\*\.json"):
        fixture_requests("/v1/nowhere", ("zz_",))


def test_a_selection_returns_the_bodies_by_file_and_index():
    found = dict(fixture_requests("/v1/messages", ("cc_basic_",)))
    assert list(found) == ["cc_basic_say_hi#1"]
    assert found["cc_basic_say_hi#1"] == fixture_body("cc_basic_say_hi.json", 1)
    assert found["cc_basic_say_hi#1"]["stream"] is True
