"""The database layer: peewee models, migrations, the request log and its spill files.

peewee imports psycopg2 when it is itself imported, and psycopg2 maps about 7 MB of shared
libraries (its own libcrypto, libssl, libkrb5, libldap…) into every worker even when the database
is SQLite. So unless ``DATABASE_URL`` names PostgreSQL, the store imports peewee first with
psycopg2 hidden; should a PostgreSQL database be opened in that process after all (tests do),
``db.load_psycopg2`` hands peewee the driver then. Modules outside ``zengate.store`` take peewee
from ``zengate.store.db``, so that this runs first. (The gunicorn master imports neither: peewee
must be imported after gevent's patching; see gunicorn.conf.py.)
"""

import os
import sys

if ("peewee" not in sys.modules and "psycopg2" not in sys.modules
        and not os.environ.get("DATABASE_URL", "").startswith("postgres")):
    sys.modules["psycopg2"] = None  # type: ignore[assignment]  # so `import psycopg2` raises ImportError
    try:
        import peewee  # noqa: F401
    finally:
        del sys.modules["psycopg2"]
