"""Socket writes for the hot path: one ``send`` where it suffices, ``sendall`` for the rest.

gevent's ``sendall`` asks the kernel for the socket's send-buffer size (a ``getsockopt`` system
call) and runs a loop of Python calls before its first ``send``, on every call: about 6 µs of a
write of a few hundred bytes here. A gateway writes one small piece per streamed event, and the
kernel takes such a piece whole, so a plain ``send`` does it; whatever it leaves (a full buffer, a
slow reader) goes through ``sendall`` with its usual waiting and timeout. Plain sockets behave the
same way.
"""

from __future__ import annotations

from typing import Any


def send_all(sock: Any, data: bytes) -> None:
    """Write all of ``data`` to ``sock``, as ``sock.sendall(data)`` does."""
    if not data:
        return
    sent = sock.send(data)
    if sent < len(data):
        sock.sendall(memoryview(data)[sent:])
