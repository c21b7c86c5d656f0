"""requirements.txt pins the whole runtime install: each distribution a pinned one needs is pinned
too, and what is installed is what is pinned, so a fresh install is the one the tests ran on."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"


def pins() -> dict[str, str]:
    """Canonical name → pinned version, from requirements.txt's ``name==version`` lines."""
    out = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"requirements.txt: {line!r} is not pinned with =="
            out[canonicalize_name(name)] = version.strip()
    return out


def test_every_distribution_a_pinned_one_needs_is_pinned():
    pinned = pins()
    missing = set()
    for name in pinned:
        for spec in metadata.distribution(name).requires or []:
            needed = Requirement(spec)
            if needed.marker is not None and not needed.marker.evaluate({"extra": ""}):
                continue  # an extra nobody asked for, or another platform's
            if canonicalize_name(needed.name) not in pinned:
                missing.add(f"{needed.name} (needed by {name})")
    assert not missing, f"pin these in requirements.txt: {sorted(missing)}"


def test_the_installed_versions_are_the_pinned_ones():
    wrong = {name: (version, metadata.version(name)) for name, version in pins().items()
             if metadata.version(name) != version}
    assert not wrong, f"pinned → installed: {wrong}"
