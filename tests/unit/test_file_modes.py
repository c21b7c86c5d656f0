"""File modes: what the gateway writes to disk (conversations, key hashes, proxy credentials) is its owner's.

Under a usual umask (022) a fresh start creates the data directory 0700 and the SQLite database,
WAL and SHM files 0600; the spill directory is 0700 down to its last level. A directory the operator
made keeps its mode; database files open to others are tightened at start, and that is logged.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
import requests

from tests.support.gateway import ADMIN_PASSWORD, GatewayProcess
from zengate.store import db as db_mod
from zengate.store.spill import SpillStore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(data: Path) -> dict[str, int]:
    """The modes of the data directory and the database's files (WAL and SHM must exist)."""
    names = ("zengate.db", "zengate.db-wal", "zengate.db-shm")
    assert all((data / name).exists() for name in names), sorted(os.listdir(data))
    return {".": mode(data), **{name: mode(data / name) for name in names}}


FRESH = {".": 0o700, "zengate.db": 0o600, "zengate.db-wal": 0o600, "zengate.db-shm": 0o600}


def write_and_hold(app) -> None:
    """One write from this thread, whose connection stays open: the WAL and SHM files stay there.

    (A request's connection is closed at its end; the last one to close removes them.)
    """
    app.extensions["zengate"].settings.set("log_bodies", False)


@pytest.fixture
def umask_022():
    """The usual umask, whatever the test runner's is (the modes asked for are then not its doing)."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_fresh_start_keeps_the_data_to_its_owner(make_app, tmp_path, umask_022):
    data = tmp_path / "new" / "data"
    before = mode(tmp_path)
    app = make_app(data_dir=data, database_url=f"sqlite:///{data / 'zengate.db'}")
    client = app.test_client()
    r = client.post("/_admin/login", json={"password": ADMIN_PASSWORD})
    assert r.status_code == 200 and r.get_json()["token"]
    write_and_hold(app)
    assert modes(data) == FRESH
    assert mode(tmp_path / "new") == 0o700  # every directory the gateway made, not only the last
    assert mode(tmp_path) == before  # one that was there already: untouched


def test_an_operators_directory_is_left_alone_but_open_database_files_are_tightened(make_app, tmp_path, umask_022,
                                                                                     caplog):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    url = f"sqlite:///{data / 'zengate.db'}"
    write_and_hold(make_app(data_dir=data, database_url=url))
    for name in ("zengate.db", "zengate.db-wal", "zengate.db-shm"):  # as an older version left them
        os.chmod(data / name, 0o644)
    os.chmod(data / "zengate.db-shm", 0o664)
    with caplog.at_level(logging.WARNING, logger="zengate.store.db"):
        app = make_app(data_dir=data, database_url=url)
    write_and_hold(app)
    assert modes(data) == {**FRESH, ".": 0o755}  # the directory is the operator's: not changed behind their back
    lines = [r.getMessage() for r in caplog.records if r.name == "zengate.store.db"]
    assert len(lines) == 1 and "made the database files private" in lines[0]
    assert all(str(data / name) in lines[0] for name in ("zengate.db", "zengate.db-wal", "zengate.db-shm"))
    assert app.test_client().post("/_admin/login", json={"password": ADMIN_PASSWORD}).status_code == 200

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="zengate.store.db"):
        make_app(data_dir=data, database_url=url)
    assert [r for r in caplog.records if r.name == "zengate.store.db"] == []  # nothing to say the next time


def test_private_directory_makes_each_missing_level_0700(tmp_path, umask_022):
    target = tmp_path / "a" / "b" / "c"
    assert db_mod.private_directory(target) == [tmp_path / "a", tmp_path / "a" / "b", target]
    assert [mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", target)] == [0o700] * 3
    assert db_mod.private_directory(target) == []  # there already: nothing made, nothing changed
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        db_mod.private_directory(tmp_path / "file")


def test_the_spill_directory_is_private_down_to_its_last_level(tmp_path, umask_022):
    directory = tmp_path / "data" / "request-log-spill" / "sqlite-abc"
    store = SpillStore(directory)
    assert store.append([b'{"request_id": "r1"}\n'])
    store.close()
    for path in (tmp_path / "data", tmp_path / "data" / "request-log-spill", directory):
        assert mode(path) == 0o700, path
    assert {mode(path) for path in directory.iterdir()} == {0o600}


def test_files_of_another_owner_are_not_touched(tmp_path, monkeypatch):
    path = tmp_path / "zengate.db"
    path.write_bytes(b"")
    os.chmod(path, 0o644)
    monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 1)
    assert db_mod.private_database_files(path) == [] and mode(path) == 0o644


@pytest.mark.e2e
def test_the_real_gateway_keeps_its_files_private(tmp_path, upstream, umask_022):
    """gunicorn as production starts it (its master and two workers): the modes after it served a request."""
    gw = GatewayProcess(tmp_path, upstream.url, env={"ZENGATE_SETTINGS_TTL": "0"})
    data = tmp_path / "data"
    assert not data.exists()
    gw.start()
    try:
        r = requests.post(gw.url + "/v1/chat/completions", timeout=30,
                          json={"model": "big-pickle", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
        gw.wait_for(lambda: gw.admin("GET", "/_stats/requests?limit=5&bodies=0").json()["requests"])  # written
        assert modes(data) == FRESH
        spill = data / "request-log-spill"
        assert not spill.exists() or all(mode(p) == 0o700 for p in (spill, *spill.iterdir()) if p.is_dir())
    finally:
        gw.stop()
