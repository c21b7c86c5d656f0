"""What runs the gateway: the gunicorn worker and its explicit patches (``worker``), start-up
checks (``startup``, ``exposure``), the event-loop helpers, the background timers, logs and metrics."""
