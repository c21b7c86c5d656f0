"""The requests real clients sent, recorded in ``tests/fixtures/clients`` (its README says where from).

The recordings are part of the repository, so a test that needs one fails, naming the missing
path, instead of skipping: a clone that lost them must not pass with those tests quietly gone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "clients"
README = FIXTURES / "README.md"

#: Marks a test that reads the recordings: it fails (never skips) when the directory is missing.
#: The helpers below fail by themselves, so a test using them needs no mark; the fixture it names
#: is ``recorded_clients`` in tests/conftest.py.
needs_fixtures = pytest.mark.usefixtures("recorded_clients")


def require_fixtures() -> Path:
    """The recordings' directory; fails the calling test (or collection) when it is missing."""
    if not FIXTURES.is_dir():
        pytest.fail(f"the recorded client requests are missing: no directory {FIXTURES} "
                    "(they belong to the repository: see tests/fixtures/clients/README.md)", pytrace=False)
    return FIXTURES


def fixture_path(name: str) -> Path:
    """The path of the recording ``name``; fails the calling test when the file is missing."""
    path = require_fixtures() / name
    if not path.is_file():
        pytest.fail(f"recorded client fixture not found: {path}", pytrace=False)
    return path


def load_fixture(name: str) -> dict:
    """The whole recording ``name`` (``scenario``, ``client``, ``requests``)."""
    return json.loads(fixture_path(name).read_text())


def fixture_requests(paths: str | tuple[str, ...], prefixes: tuple[str, ...] = ("",)) -> list[tuple[str, dict]]:
    """``(file#n, body)`` of every recorded request to ``paths`` in files named with ``prefixes``.

    Meant for ``parametrize`` at collection: a selection that matches nothing fails the collection,
    so a parametrised test can never pass with zero cases.
    """
    paths = (paths,) if isinstance(paths, str) else paths
    found = []
    for file in sorted(require_fixtures().glob("*.json")):
        if not file.name.startswith(prefixes):
            continue
        for n, request in enumerate(json.loads(file.read_text())["requests"]):
            if request["path"] in paths and isinstance(request.get("body"), dict):
                found.append((f"{file.stem}#{n}", request["body"]))
    if not found:
        files = ", ".join(f"{prefix}*.json" for prefix in prefixes)
        pytest.fail(f"no recorded request to {', '.join(paths)} in {files} under {FIXTURES}", pytrace=False)
    return found


def fixture_body(file: str, n: int) -> dict:
    """The body of request ``n`` in the recording ``file``; fails the test when the file is missing."""
    return load_fixture(file)["requests"][n]["body"]
