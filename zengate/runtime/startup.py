"""Start-up: the work gunicorn's master has done in a child process before any worker starts.

The child (``python -m zengate preflight``) migrates the database, checks the models file and
stores the first-start state; it reports what it found of the admin password as one JSON line.
The master then judges that against the addresses it really listens on (``zengate.runtime.exposure``,
at ``when_ready``): it never imports the database layer itself (see docs/architecture.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from .. import auth, ids
from ..config import Config
from ..settings import Settings
from ..store.db import database
from ..store.migrate import prepare_database


class StartupRefused(Exception):
    """Serving would be unsafe or cannot work; the message says why and what to do."""


@dataclass(frozen=True)
class Prepared:
    """What the master needs to judge its listeners."""

    admin_password: auth.AdminPassword
    require_auth: bool


def prepare(config: Config) -> Prepared:
    """Migrate, store first-start state, and return what the master needs to know of it."""
    from ..exchange.catalog import ModelsFileError, load_models_file

    try:
        load_models_file(config.models_file)
    except ModelsFileError as exc:
        raise StartupRefused(str(exc)) from None
    prepare_database(config)
    try:
        settings = Settings()
        settings.ensure("opencode_session", lambda: ids.opencode_id("ses"))
        try:
            password = auth.ensure_admin_password(settings, config.admin_password)
        except auth.PasswordRefused as exc:
            raise StartupRefused(str(exc)) from None
        return Prepared(password, bool(settings.get("require_auth")))
    finally:
        database.close()


def report(prepared: Prepared) -> str:
    """The preflight's one line for the master."""
    return json.dumps(asdict(prepared))
