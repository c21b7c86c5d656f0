"""zengate: a self-hosted gateway from OpenAI and Anthropic clients to OpenCode Zen.

A request's way through the packages: ``web`` (the app factory, the client-API and admin views)
→ ``exchange`` (routing, the fallback loop, relay, the request record) with ``dialects`` (each
API's shapes, as pure functions) → ``upstream`` (the connection pool, proxies); ``store`` (the
database) and ``runtime`` (the gunicorn worker, loop helpers, logs, metrics) stand beside them.
"""

__version__ = "0.1.0"
