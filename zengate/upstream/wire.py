"""The upstream connections: urllib3's, with less work per request on the way to the first byte.

The pools of the upstream client's :class:`~zengate.upstream.client.DirectAdapter` make these
connections. On the wire nothing changes but the number of writes; what changes is the Python
run for each request, which a streamed answer's first token waits for:

* **one write per request** (:class:`_OneSend`): http.client writes a request's head and its
  body separately, and on loopback each write costs a wake-up of the receiving process (tens of
  µs on a VM) besides the system call. Bodies up to :data:`ONE_SEND_LIMIT` go with the head.
  Writes use :func:`zengate.runtime.sockets.send_all` instead of gevent's ``sendall``.
* **headers written in one step**: urllib3's ``putheader`` scans for its ``SKIP_HEADER`` marker
  and http.client's re-checks its state and builds lists, about 5 µs a header here; the same
  validation and output take a fraction of that.
* **response heads parsed without the email package** (:func:`parse_headers`): http.client
  hands the header lines to ``email.parser``, whose feed parser costs about 80 µs for a
  ten-line head here. Well-formed lines (``Name: value``, the name a token) are stored in the
  same ``HTTPMessage`` the same way, at a seventh of the cost; anything else (folded lines, a
  line without a colon, a stray CR) goes to the email parser as before.

Besides, :func:`set_read_timeout` changes a live connection's read timeout while its answer is
read: an attempt waits for its first byte no longer than its share of ``first_byte_budget``, and
the rest of a stream gets ``upstream_read_timeout`` back.
"""

from __future__ import annotations

import email.parser
import http.client
import re
import sys
import types

import urllib3
from urllib3.util.request import SKIP_HEADER

from ..runtime.sockets import send_all

#: A body up to this size goes out in the same write as the request head (larger ones span
#: several TCP segments anyway, and joining them would copy the body once more).
ONE_SEND_LIMIT = 64 * 1024

#: A header line the email parser would read as ``name: value``: printable ASCII except ':', and
#: at least one character (it also takes an empty name, and ``From `` lines: those go to it).
_PLAIN_HEADER_NAME = re.compile(rb"[!-9;-~]+").fullmatch


def parse_headers(fp, _class: type[http.client.HTTPMessage] = http.client.HTTPMessage) -> http.client.HTTPMessage:
    """``http.client.parse_headers`` with a fast path for well-formed heads; the same message."""
    lines = http.client._read_headers(fp)  # its limits (line length, header count) stay
    message = _class()
    for line in lines[:-1]:  # the last is the blank line, or b"" where the connection ended
        name, colon, value = line.partition(b":")
        if not colon or not _PLAIN_HEADER_NAME(name) or b"\r" in value[:-2]:
            break
        # email's compat32 policy: the value without leading blanks and the line end
        message.set_raw(name.decode("ascii"), value.decode("iso-8859-1").lstrip(" \t").rstrip("\r\n"))
    else:
        message.set_payload("")  # as the email parser leaves it
        return message
    return email.parser.Parser(_class=_class).parsestr(b"".join(lines).decode("iso-8859-1"))


def _begin_with(parse) -> types.FunctionType:
    """``HTTPResponse.begin``, http.client's own code, calling ``parse`` for the header lines.

    The status line, ``100 Continue``, chunked and length handling stay the standard library's;
    only the name ``parse_headers`` resolves to ``parse``. Should a Python release stop calling
    it by that name, this is the standard ``begin`` unchanged.
    """
    begin = http.client.HTTPResponse.begin
    if "parse_headers" not in begin.__code__.co_names or begin.__code__.co_freevars:
        return begin
    namespace = {**vars(http.client), "parse_headers": parse}
    return types.FunctionType(begin.__code__, namespace, "begin", begin.__defaults__)


class LeanHTTPResponse(http.client.HTTPResponse):
    """http.client's response, its head parsed by :func:`parse_headers`."""

    begin = _begin_with(parse_headers)


def set_read_timeout(connection, seconds: float | None) -> None:
    """Give a live urllib3 connection's next socket reads ``seconds`` (None: no limit).

    urllib3 keeps a connection's timeout in its ``timeout`` attribute and hands it to the socket
    (``sock``, http.client's) before sending a request and before reading the answer's head; a
    read already waiting keeps the timeout it began with. It takes any of urllib3's connections:
    proxied calls use urllib3's own classes, direct ones zengate's (``tests/unit/test_wire.py``
    fails should urllib3 or http.client change these attributes).
    """
    connection.timeout = seconds  # what urllib3 applies again on the connection's next request
    sock = connection.sock
    if sock is not None:
        sock.settimeout(seconds)


class _OneSend:
    """Mixed into urllib3's connections: the request head waits for the body's first write."""

    response_class = LeanHTTPResponse
    _hold_head = False
    _head: bytes | None = None

    def request(self, method, url, body=None, headers=None, **kwargs):  # urllib3 HTTPConnection.request
        self._hold_head = isinstance(body, bytes) and len(body) <= ONE_SEND_LIMIT
        try:
            super().request(method, url, body=body, headers=headers, **kwargs)
        except BaseException:
            self._head = None  # the request failed: nothing more goes out on this connection
            raise
        finally:
            self._hold_head = False
        head, self._head = self._head, None
        if head:  # no body was sent (an empty one): the head alone
            self._write(head)

    def putheader(self, header, *values) -> None:
        """One header line, checked as http.client checks it.

        urllib3's ``request`` calls this between ``putrequest`` and ``endheaders``, as http.client
        requires. The usual case (one ``str`` value) is written here; others take the usual way.
        """
        if len(values) != 1 or not isinstance(header, str) or not isinstance(values[0], str) \
                or values[0] == SKIP_HEADER:
            super().putheader(header, *values)
            return
        name, value = header.encode("ascii"), values[0].encode("latin-1")
        if not http.client._is_legal_header_name(name):
            raise ValueError(f"Invalid header name {name!r}")
        if http.client._is_illegal_header_value(value):
            raise ValueError(f"Invalid header value {value!r}")
        self._output(name + b": " + value)

    def send(self, data) -> None:
        if self._hold_head:
            if self._head is None:
                self._head = data  # http.client's first send of a request is its whole head
                return
            data, self._head, self._hold_head = self._head + data, None, False
        self._write(data)

    def _write(self, data) -> None:
        """http.client's ``send``; bytes on an open connection go out with :func:`send_all`."""
        if self.sock is None or not isinstance(data, bytes):
            super().send(data)
            return
        sys.audit("http.client.send", self, data)
        send_all(self.sock, data)


class OneSendConnection(_OneSend, urllib3.connection.HTTPConnection):
    pass


class OneSendHTTPSConnection(_OneSend, urllib3.connection.HTTPSConnection):
    pass


class Pool(urllib3.HTTPConnectionPool):
    ConnectionCls = OneSendConnection


class TLSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = OneSendHTTPSConnection
