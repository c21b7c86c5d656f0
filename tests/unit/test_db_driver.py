"""peewee without psycopg2 on SQLite, and with the same driver state as a plain import on PostgreSQL.

zengate/store/__init__.py imports peewee with psycopg2 hidden (about 7 MB less per worker);
``db.load_psycopg2`` must then leave peewee exactly as its own import would have. Each case runs
in a fresh interpreter, since the outcome depends on what was imported first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Prints a description of peewee's module names and of Psycopg2Adapter's attributes, plus whether
# psycopg2 adapts uuid.UUID: everything peewee's import-time driver block can set.
SNAPSHOT = r"""
import json, re, sys, types, uuid
import peewee

def describe(value):
    if isinstance(value, types.ModuleType):
        return "module " + value.__name__
    if isinstance(value, (type(None), bool, int, float, str)):
        return repr(value)
    if isinstance(value, (tuple, frozenset)) and all(isinstance(v, (int, str)) for v in value):
        return repr(sorted(value, key=repr))
    text = f"{type(value).__name__} {getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', '?')}"
    return re.sub(" at 0x[0-9a-f]+", "", text)

adapter = {k: describe(v) for k, v in vars(peewee.Psycopg2Adapter).items() if not k.startswith("__")}
names = {k: describe(v) for k, v in vars(peewee).items() if not k.startswith("__")}
import psycopg2.extensions as ext
print(json.dumps({"names": names, "adapter": adapter,
                  "uuid": (uuid.UUID, ext.ISQLQuote) in ext.adapters}))
"""


def _run(code: str, database_url: str, **extra_env: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("ZENGATE_")}
    env.update(extra_env)
    if database_url:
        env["DATABASE_URL"] = database_url
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("explicit_url", [False, True])
def test_sqlite_process_never_loads_psycopg2(explicit_url, tmp_path):
    # zengate.web.admin.stats first: the one module outside the store that uses peewee
    code = "import sys, zengate.web.admin.stats, zengate.store.db, zengate.store.models, app; " \
           "print(sorted(m for m in sys.modules if m.startswith('psycopg2')))"
    url = f"sqlite:///{tmp_path}/zengate.db" if explicit_url else ""
    env = {"ZENGATE_DATA_DIR": str(tmp_path), "ZENGATE_UPSTREAM_URL": "http://127.0.0.1:9"}
    # as in production, the migrations ran before (gunicorn's preflight child): playhouse.migrate
    # imports psycopg2 by itself
    _run("import zengate.cli, sys; sys.exit(zengate.cli.main(['migrate']))", url, **env)
    assert (tmp_path / "zengate.db").exists()
    assert _run(code, url, **env) == "[]"


def test_gunicorn_master_imports_no_peewee():
    """gunicorn.conf.py runs in the master, before gevent patches threading in the workers: peewee's
    thread-local connection state must not be created there."""
    code = "import runpy, sys; runpy.run_path('gunicorn.conf.py'); print('peewee' in sys.modules)"
    assert _run(code, "") == "False"


def test_postgres_configured_process_imports_peewee_as_usual():
    code = "import sys, zengate, peewee; print(peewee.psycopg2 is not None and 'psycopg2' in sys.modules)"
    assert _run(code, "postgresql://nobody@127.0.0.1:1/none") == "True"


def test_load_psycopg2_leaves_peewee_as_its_own_import_does():
    plain = json.loads(_run(SNAPSHOT, ""))  # peewee imported first: it loads psycopg2 itself
    late = json.loads(_run("import zengate.store.db as db; db.load_psycopg2()\n" + SNAPSHOT, ""))
    assert plain["uuid"] is True
    assert late == plain
    before = json.loads(_run("import zengate.store.db\n" + SNAPSHOT, ""))  # no load_psycopg2
    assert before["names"]["psycopg2"] == "None"  # the test can fail: without load_psycopg2 they differ
    assert before != plain


def test_open_database_on_postgres_after_a_hidden_import(pg_url):
    """A process whose peewee came without psycopg2 (no DATABASE_URL) still runs a pooled PostgreSQL
    database: queries, a transaction, and a connection that goes back to the pool and is reused
    (which needs the driver's transaction states)."""
    code = f"""
from zengate.store import db  # first, as in the gateway
import peewee
assert peewee.psycopg2 is None  # the hidden import, so open_database must hand the driver over
handle = db.open_database({pg_url!r})
assert db.is_postgres()
assert handle.execute_sql("select 1").fetchone() == (1,)
with handle.atomic():
    handle.execute_sql("select 2")
handle.close()
print(handle.execute_sql("select 3").fetchone())
handle.close_all()
"""
    assert _run(code, "") == "(3,)"
