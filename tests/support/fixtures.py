"""The requests real clients sent, recorded in ``../shared/fixtures/clients`` (beside the checkout)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "clients"
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"client fixtures not found at {FIXTURES}")


def fixture_requests(paths: str | tuple[str, ...], prefixes: tuple[str, ...] = ("",)) -> list[tuple[str, dict]]:
    """``(file#n, body)`` of every recorded request to ``paths`` in files named with ``prefixes``."""
    if not FIXTURES.is_dir():
        return []
    paths = (paths,) if isinstance(paths, str) else paths
    found = []
    for file in sorted(FIXTURES.glob("*.json")):
        if not file.name.startswith(prefixes):
            continue
        for n, request in enumerate(json.loads(file.read_text())["requests"]):
            if request["path"] in paths and isinstance(request.get("body"), dict):
                found.append((f"{file.stem}#{n}", request["body"]))
    return found


def fixture_body(file: str, n: int) -> dict:
    """The body of request ``n`` in ``file`` (the test skips where the fixtures are absent)."""
    if not FIXTURES.is_dir():
        pytest.skip(f"client fixtures not found at {FIXTURES}")
    return json.loads((FIXTURES / file).read_text())["requests"][n]["body"]
