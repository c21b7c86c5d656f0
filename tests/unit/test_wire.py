"""zengate/upstream/wire.py against the standard library and urllib3 it stands in for.

The fast header parser must give the very message ``http.client.parse_headers`` gives, for any
head (well-formed or not), and leave the body where it was; the response's ``begin`` must
behave as http.client's; the connection's ``putheader`` must write and refuse what urllib3's does.
"""

from __future__ import annotations

import email.parser
import http.client
import io
import time

import pytest
import urllib3
from hypothesis import given, settings
from hypothesis import strategies as st
from urllib3.util.request import SKIP_HEADER

from tests.support.fake_upstream import FakeUpstream, drop_after, openai_text
from zengate.upstream import wire

BODY = b"the body: must stay unread\r\n"


def _both(head: bytes):
    """(theirs, ours): each a message, or the exception raised, and what is left to read."""
    results = []
    for parse in (http.client.parse_headers, wire.parse_headers):
        fp = io.BytesIO(head + BODY)
        try:
            message = parse(fp)
        except Exception as exc:  # compared below
            results.append((type(exc), str(exc), fp.read()))
            continue
        results.append((message._headers, message.get_payload(), [type(d) for d in message.defects],
                        message.get_unixfrom(), type(message), fp.read()))
    return results


HEADS = [
    b"Content-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"\r\n",  # no headers at all
    b"A: b\nC:  d  \n\n",  # LF line ends, trailing blanks kept
    b"X-Tab:\tvalue\r\nX-Empty:\r\nX-Colons: a:b:c\r\n\r\n",
    b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",  # repeated names keep their order
    b"X-Latin: caf\xe9\r\n\r\n",  # latin-1 value
    b"X-Folded: one\r\n two\r\n\r\n",  # obsolete line folding: the email parser's business
    b"No colon here\r\nA: b\r\n\r\n",
    b": empty name\r\n\r\n",
    b"From someone: x\r\n\r\n",
    b"Bad Name: x\r\n\r\n",
    b"X-CR: a\rb\r\n\r\n",  # a stray CR splits the line for the email parser
    b"X-\xe9: x\r\n\r\n",  # a name outside ASCII
    b"A: b\r\n",  # the connection ended inside the head
    b"A: b\r\nC: d",
    b"".join(b"H%d: v\r\n" % i for i in range(100)) + b"\r\n",  # over http.client's header count
    b"X-Long: " + b"v" * 70000 + b"\r\n\r\n",  # over its line length
]


@pytest.mark.parametrize("head", HEADS)
def test_same_message_as_the_standard_parser(head):
    theirs, ours = _both(head)
    assert ours == theirs


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"") + b"\r\n")
                | st.tuples(st.from_regex(rb"[!-9;-~]{1,12}", fullmatch=True),
                            st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")))
                .map(lambda nv: nv[0] + b":" + nv[1] + b"\r\n"), max_size=12))
def test_same_message_for_any_head(lines):
    theirs, ours = _both(b"".join(lines) + b"\r\n")
    assert ours == theirs


class _Sock:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, mode):
        return io.BytesIO(self.data)


RESPONSES = [
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n", "POST"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\n", "POST"),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 12\r\n\r\n", "POST"),
    (b"HTTP/1.1 100 Continue\r\nX: y\r\n\r\nHTTP/1.1 429 Too Many Requests\r\nRetry-After: 30\r\n"
     b"Content-Length: 2\r\n\r\n", "POST"),
    (b"HTTP/1.1 204 No Content\r\nX-Folded: a\r\n b\r\n\r\n", "POST"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", "POST"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", "HEAD"),
]


@pytest.mark.parametrize("raw, method", RESPONSES)
def test_response_begins_as_http_client_does(raw, method):
    def begun(cls):
        response = cls(_Sock(raw + BODY), method=method)
        response.begin()
        return (response.status, response.reason, response.version, response.chunked, response.length,
                response.will_close, response.msg.items(), response.fp.read())

    assert begun(wire.LeanHTTPResponse) == begun(http.client.HTTPResponse)


def test_response_really_uses_the_fast_parser(monkeypatch):
    """With the email parser broken, http.client's begin fails and ours does not touch it."""
    def broken(*args, **kwargs):
        raise AssertionError("the email parser was used")

    monkeypatch.setattr(email.parser, "Parser", broken)
    raw = b"HTTP/1.1 200 OK\r\nA: b\r\nContent-Length: 0\r\n\r\n"
    with pytest.raises(AssertionError, match="email parser"):
        http.client.HTTPResponse(_Sock(raw), method="GET").begin()
    response = wire.LeanHTTPResponse(_Sock(raw), method="GET")
    response.begin()
    assert response.msg["A"] == "b" and response.length == 0


class _Capture:
    def __init__(self) -> None:
        self.data = b""

    def sendall(self, data) -> None:
        self.data += bytes(data)

    def send(self, data) -> int:
        self.data += bytes(data)
        return len(data)

    def settimeout(self, timeout) -> None:
        pass


def _wire_bytes(cls, headers, body=b'{"a":1}') -> bytes:
    conn = cls("upstream.test", 8080)
    conn.sock = _Capture()
    conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
    return conn.sock.data


def test_request_bytes_equal_urllib3s():
    headers = {"Content-Type": "application/json", "Authorization": "Bearer public", "x-opencode-client": "cli",
               "User-Agent": "opencode/1.0", "X-Latin": "caf\xe9", "Accept-Encoding": "identity"}
    ours = _wire_bytes(wire.OneSendConnection, headers)
    assert ours == _wire_bytes(urllib3.connection.HTTPConnection, headers)
    assert b"\r\nX-Latin: caf\xe9\r\n" in ours


@pytest.mark.parametrize("name, value", [("X-Bad\r\nInjected", "v"), ("X-Header", "a\r\nInjected: yes"),
                                         ("X:Colon", "v"), ("", "v"), ("X-Header", "a\nb")])
def test_bad_headers_are_refused_as_http_client_refuses_them(name, value):
    for cls in (urllib3.connection.HTTPConnection, wire.OneSendConnection):
        with pytest.raises(ValueError, match="Invalid header"):
            _wire_bytes(cls, {name: value})


def test_unencodable_headers_are_refused_as_http_client_refuses_them():
    for cls in (urllib3.connection.HTTPConnection, wire.OneSendConnection):
        with pytest.raises(UnicodeEncodeError):
            _wire_bytes(cls, {"X-Header": "snow \u2603"})
        with pytest.raises(UnicodeEncodeError):
            _wire_bytes(cls, {"X-\xe9": "v"})


def test_other_header_forms_take_the_standard_way():
    conn = wire.OneSendConnection("upstream.test", 8080)
    conn.putrequest("GET", "/")
    conn.putheader("X-Multi", "a", "b")  # several values: folded by http.client
    conn.putheader(b"X-Bytes", b"v")
    conn.putheader("X-Int", 5)
    conn.putheader("Accept-Encoding", SKIP_HEADER)  # urllib3's marker: nothing written
    assert conn._buffer[-3:] == [b"X-Multi: a\r\n\tb", b"X-Bytes: v", b"X-Int: 5"]
    with pytest.raises(ValueError, match="SKIP_HEADER"):
        conn.putheader("X-Other", SKIP_HEADER)


# --- a live connection's read timeout (the first-byte deadline hands a stream back its read timeout) --

@pytest.mark.parametrize("pool_class", [urllib3.HTTPConnectionPool, wire.Pool], ids=["urllib3", "zengate"])
def test_set_read_timeout_reaches_the_socket_of_a_live_answer(pool_class):
    """urllib3's connections (proxied calls) and ours: the attributes set_read_timeout relies on
    (``timeout``, ``sock``) still exist, and the answer's next read waits the new time, not the old."""
    with FakeUpstream() as up:
        up.script("m", drop_after(1, openai_text("one two"), stall=30))  # a first event, then silence
        pool = pool_class("127.0.0.1", int(up.url.rsplit(":", 1)[1]), maxsize=1)
        response = pool.urlopen("POST", "/v1/chat/completions", body=b'{"model": "m", "stream": true}',
                                headers={"Content-Type": "application/json"}, preload_content=False,
                                retries=False, timeout=urllib3.Timeout(connect=5, read=30))
        connection = response.connection
        assert isinstance(connection, urllib3.connection.HTTPConnection) and connection.sock.gettimeout() == 30
        chunks = response.read_chunked(None, decode_content=False)
        assert next(chunks).startswith(b"data: ")
        wire.set_read_timeout(connection, 0.3)
        assert connection.timeout == 0.3 and connection.sock.gettimeout() == 0.3
        began = time.monotonic()
        with pytest.raises(urllib3.exceptions.ReadTimeoutError):
            next(chunks)
        assert 0.25 <= time.monotonic() - began < 5
        pool.close()
