"""A setting changed through one worker applies to the next lookup on every worker of the instance
(zengate/runtime/generation.py), however long their caches would otherwise keep the old values.

Two ``Settings`` on one database stand for two workers; the generation file is shared as the
workers share it under gunicorn, and a second process bumps it to show that it is shared memory.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from zengate.config import Config
from zengate.runtime.generation import Generation
from zengate.settings import Settings
from zengate.store.db import UNAVAILABLE, database
from zengate.store.migrate import prepare_database


@pytest.fixture
def db(database_url):
    prepare_database(Config(database_url=database_url))
    yield database_url
    database.close()


@pytest.fixture
def workers(db, tmp_path):
    path = tmp_path / "zengate-settings.generation"
    return Settings(cache_seconds=3600, generation=Generation(path)), Settings(
        cache_seconds=3600, generation=Generation(path))


def test_a_change_through_one_worker_is_seen_by_the_other_at_once(workers):
    one, other = workers
    assert other.get("require_auth") is False  # loaded: cached for an hour
    one.set("require_auth", True)
    assert other.get("require_auth") is True
    one.set("max_attempts", 7)
    assert other.get("max_attempts") == 7


def test_without_a_change_lookups_do_not_query(workers, monkeypatch):
    _, other = workers
    other.get("require_auth")
    loads = []
    real = Settings._load
    monkeypatch.setattr(Settings, "_load", lambda self: (loads.append(1), real(self)))
    for _ in range(100):
        other.get("require_auth")
    assert loads == []


def test_without_a_shared_generation_the_cache_keeps_its_values(db):
    """The control: the same two workers without the shared number keep the old value."""
    one, other = Settings(cache_seconds=3600), Settings(cache_seconds=3600)
    assert other.get("require_auth") is False
    one.set("require_auth", True)
    assert other.get("require_auth") is False


def test_the_number_is_shared_between_processes(tmp_path):
    path = tmp_path / "zengate-settings.generation"
    here = Generation(path)
    before = here.read()
    code = ("import sys; from pathlib import Path; from zengate.runtime.generation import Generation; "
            "print(Generation(Path(sys.argv[1])).bump())")
    out = subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True, text=True)
    assert here.read() == int(out.stdout) != before
    assert Generation(path).read() == here.read()  # opened later: the value is kept, not reset
    assert (path.stat().st_mode & 0o777) == 0o600


def test_a_failed_reload_is_not_retried_on_every_lookup(workers, monkeypatch):
    """The database is down and another worker changed a setting: one try, then the retry delay."""
    one, other = workers
    other.get("require_auth")
    one.set("require_auth", True)
    tries = []

    def down(self):
        tries.append(1)
        raise UNAVAILABLE[0]("database is locked")
    monkeypatch.setattr(Settings, "_load", down)
    for _ in range(50):
        assert other.get("require_auth") is False  # the last known value
    assert tries == [1]


def test_for_instance_uses_the_runtime_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert Generation.for_instance("settings").path == tmp_path / "shared" / "zengate-settings.generation"
    assert ((tmp_path / "shared").stat().st_mode & 0o777) == 0o700
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    assert Generation.for_instance("settings").path is None
