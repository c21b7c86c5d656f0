"""Shared fixtures: the fake upstream, an app on a temporary database, PostgreSQL, e2e gateways.

A run leaves the checkout as it found it: hypothesis keeps its example database and caches in a
temporary directory (unless ``HYPOTHESIS_STORAGE_DIRECTORY`` names one), and apps built here keep
their data directory under the test's ``tmp_path``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.support.fake_upstream import running_upstream
from tests.support.fixtures import load_fixture as load_fixture  # re-exported: e2e modules import it from here
from tests.support.fixtures import require_fixtures
from tests.support.gateway import ADMIN_PASSWORD

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Point hypothesis's storage (``.hypothesis/`` in the working directory) at a temporary one.

    With ``database=None`` hypothesis still caches the constants it reads from the code under test
    and its unicode tables there; the directory goes when the run ends.
    """
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        return  # the person running the tests chose where
    try:
        from hypothesis.configuration import set_hypothesis_home_dir
    except ImportError:
        return  # no hypothesis, nothing of it to keep out of the checkout
    directory = tempfile.mkdtemp(prefix="zengate-hypothesis-")
    set_hypothesis_home_dir(directory)
    config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))


@pytest.fixture
def recorded_clients() -> Path:
    """The recorded client requests (tests/fixtures/clients); the test fails when they are missing."""
    return require_fixtures()


@pytest.fixture
def upstream():
    with running_upstream() as up:
        yield up


class ServerLikeClient(FlaskClient):
    """Flask's test client, closing every answer once its body is read, as a WSGI server does.

    A JSON answer's request record is finished when the server closes the answer
    (``api.common.respond``); a test reading an answer lazily passes ``buffered=False``.
    """

    def open(self, *args, buffered: bool = True, **kwargs):
        return super().open(*args, buffered=buffered, **kwargs)


@pytest.fixture
def make_app(tmp_path, upstream):
    """Build an app on a fresh SQLite file (or ``database_url``) in front of the fake upstream."""
    from zengate.config import Config
    from zengate.web import create_app

    def build(**overrides):
        config = Config(
            upstream_url=overrides.pop("upstream_url", upstream.url),
            database_url=overrides.pop("database_url", f"sqlite:///{tmp_path / 'zengate.db'}"),
            admin_password=overrides.pop("admin_password", ADMIN_PASSWORD),
            settings_ttl=overrides.pop("settings_ttl", 0.0),
            data_dir=overrides.pop("data_dir", tmp_path / "data"),  # a spill never lands in ./data
            **overrides,
        )
        app = create_app(config)
        app.testing = True
        app.test_client_class = ServerLikeClient
        return app

    return build


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def gateway(app):
    return app.extensions["zengate"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin_headers(client):
    r = client.post("/_admin/login", json={"password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.get_json()
    return {"Authorization": f"Bearer {r.get_json()['token']}"}


@pytest.fixture
def setting(client, admin_headers):
    """``setting(key, value)`` stores a setting through the admin API (the test fails if it is refused)."""
    def put(key: str, value) -> None:
        r = client.post("/_admin/settings", json={"key": key, "value": value}, headers=admin_headers)
        assert r.status_code == 200, r.get_json()
    return put


@pytest.fixture
def redis_server(tmp_path):
    """A redis-server of the test's own on a free loopback port (stop and start it to see Redis away)."""
    from tests.support.redis_server import RedisServer

    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


# --- PostgreSQL ------------------------------------------------------------------------

PG_DSN = os.environ.get("ZENGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_admin_connection():
    try:
        import psycopg2
    except ImportError:
        return None
    try:
        conn = psycopg2.connect(PG_DSN, connect_timeout=3)
    except Exception:
        return None
    conn.autocommit = True
    return conn


@pytest.fixture
def pg_url():
    """A fresh, empty PostgreSQL database for one test; skipped when no server is reachable."""
    conn = _pg_admin_connection()
    if conn is None:
        pytest.skip(f"PostgreSQL not reachable at {PG_DSN}")
    name = f"zengate_test_{uuid.uuid4().hex[:12]}"
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    base = PG_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        from zengate.store.db import database

        if database.obj is not None and not database.is_closed():
            database.close()
        if hasattr(database.obj, "close_all"):
            database.obj.close_all()
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@pytest.fixture
def db_path(tmp_path) -> Path:
    """A migrated SQLite database file, bound to the store for the test."""
    from zengate.config import Config
    from zengate.store.db import database
    from zengate.store.migrate import prepare_database

    path = tmp_path / "zengate.db"
    prepare_database(Config(database_url=f"sqlite:///{path}"))
    yield path
    database.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    """Run a store test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_url")
