"""WSGI entry point: ``gunicorn -c gunicorn.conf.py app:app``."""

from zengate.web import create_app

app = create_app()
