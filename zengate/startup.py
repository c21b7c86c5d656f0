"""Checks made once by the gunicorn master before any worker starts."""

from __future__ import annotations

from . import auth, ids, prepare_database
from .config import DEFAULT_ADMIN_PASSWORD, Config
from .settings import Settings
from .store.db import database


def check_before_serving(config: Config) -> str | None:
    """Migrate, create first-start state, and return why serving would be unsafe (or None)."""
    from .catalog import ModelsFileError, load_models_file

    try:
        load_models_file(config.models_file)
    except ModelsFileError as exc:
        return str(exc)
    prepare_database(config)
    try:
        settings = Settings()
        settings.ensure("opencode_session", lambda: ids.opencode_id("ses"))
        stored = settings.ensure("admin_password_hash", lambda: auth.initial_password_hash(config.admin_password))
        default = auth.check_password(stored, DEFAULT_ADMIN_PASSWORD)
    finally:
        database.close()
    if default and not config.bind_is_loopback:
        return (f"refusing to listen on {config.bind}: the admin password is still the default 'admin'. "
                "Set ZENGATE_ADMIN_PASSWORD (or run `python -m zengate admin set-password`), "
                "or bind to loopback (ZENGATE_BIND=127.0.0.1:8462).")
    return None
