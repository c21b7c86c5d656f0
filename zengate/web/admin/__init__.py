"""The admin views: login and sessions, keys and settings (``admin``), stats, proxy rotation,
metrics; all behind an admin session, state changes behind the CSRF rules."""
