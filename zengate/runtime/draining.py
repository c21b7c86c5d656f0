"""A worker's connections, so that a stopping worker ends when its last answer does.

gunicorn's gevent worker, once told to stop, polls once a second until its connection pool is
empty. A kept-alive connection waiting for its next request counts as busy there: it held the
worker until the client closed it or its keep-alive deadline came, and every client that reused
its connection right away kept it longer still. :class:`Connections` knows which connections are
between requests. When the worker stops, those with nothing sent on them are closed at once, and
a connection that comes back between requests later (its answer just ended) is closed then;
bytes a client already sent are still read and answered (with ``Connection: close``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gevent
from gevent import monkey

_select = monkey.get_original("select", "select")  # with a zero timeout it never blocks, nor yields
_RawSocket = monkey.get_original("socket", "socket")


class _HeadWait:
    """:meth:`Connections.awaiting_request`, as a class: a ``StopIteration`` raised by a generator
    would become a ``RuntimeError``."""

    __slots__ = ("connections", "handler", "timeout")

    def __init__(self, connections: Connections, seconds: float) -> None:
        self.connections = connections
        self.handler = gevent.getcurrent()
        self.timeout = gevent.Timeout(seconds, False)

    def __enter__(self) -> None:
        connections = self.connections
        if connections.stopping:
            sock = connections.open.get(self.handler)
            if sock is not None and not has_pending_bytes(sock):
                raise StopIteration
        connections.between.add(self.handler)
        self.timeout.__enter__()

    def __exit__(self, *exc: Any) -> bool | None:
        self.connections.between.discard(self.handler)
        return self.timeout.__exit__(*exc)


def has_pending_bytes(sock: Any) -> bool:
    """Whether the client has sent bytes the worker has not read yet (or closed or reset its side:
    the handler's next read sees that)."""
    try:
        readable, _, _ = _select([sock.fileno()], [], [], 0)
    except (OSError, ValueError):  # closed already
        return True
    return bool(readable)


def end_reading(sock: Any) -> None:
    """Shut the connection for reading: a read waiting on it returns ``b""`` (the client's end of
    the stream, which gunicorn's handler answers by closing the connection). Done on a duplicate
    of the descriptor: gevent's own ``shutdown`` would instead raise an error in the waiting read."""
    raw = _RawSocket(fileno=os.dup(sock.fileno()))
    try:
        raw.shutdown(socket.SHUT_RD)
    finally:
        raw.close()


class Connections:
    """The client sockets a worker's handlers hold, and which of them wait between requests."""

    def __init__(self) -> None:
        self.open: dict[Any, Any] = {}  # handler greenlet -> its client socket
        self.between: set[Any] = set()  # handlers waiting for a request head
        self.stopping = False

    @contextmanager
    def serving(self, sock: Any) -> Iterator[None]:
        """Around one connection's handler."""
        me = gevent.getcurrent()
        self.open[me] = sock
        try:
            yield
        finally:
            self.open.pop(me, None)
            self.between.discard(me)

    def awaiting_request(self, seconds: float) -> _HeadWait:
        """Around the wait for (and the reading of) a request head, bounded by ``seconds`` (silent:
        the connection then closes). When the worker is stopping and the client has sent nothing
        on the connection, it ends the connection instead (``StopIteration``, gunicorn's way)."""
        return _HeadWait(self, seconds)

    def close_idle(self) -> int:
        """Stop: close every connection waiting between requests with nothing sent on it. Returns
        how many were closed (their handlers then see the end of the stream and finish)."""
        self.stopping = True
        closed = 0
        for handler in list(self.between):
            sock = self.open.get(handler)
            if sock is None or has_pending_bytes(sock):
                continue
            try:
                end_reading(sock)
            except OSError:
                continue
            closed += 1
        return closed
