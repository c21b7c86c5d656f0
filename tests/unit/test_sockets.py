"""zengate.runtime.sockets.send_all: everything arrives, in order, whatever ``send`` takes at a time."""

from __future__ import annotations

import socket
import threading

import pytest

from zengate.runtime.sockets import send_all


class StingySocket:
    """``send`` takes at most ``per_send`` bytes; ``sendall`` takes the rest."""

    def __init__(self, per_send: int) -> None:
        self.per_send = per_send
        self.calls: list[tuple[str, bytes]] = []

    def send(self, data) -> int:
        taken = bytes(data[: self.per_send])
        self.calls.append(("send", taken))
        return len(taken)

    def sendall(self, data) -> None:
        self.calls.append(("sendall", bytes(data)))


def test_a_piece_the_kernel_takes_whole_is_one_send():
    sock = StingySocket(per_send=1000)
    send_all(sock, b"data: 1\n\n")
    assert sock.calls == [("send", b"data: 1\n\n")]


def test_what_send_leaves_goes_through_sendall():
    sock = StingySocket(per_send=4)
    send_all(sock, b"0123456789")
    assert sock.calls == [("send", b"0123"), ("sendall", b"456789")]


def test_nothing_to_send_makes_no_call():
    sock = StingySocket(per_send=4)
    send_all(sock, b"")
    assert sock.calls == []


@pytest.mark.parametrize("size", [10, 8 * 1024 * 1024])
def test_real_socket_receives_every_byte(size):
    """8 MiB is far more than a loopback socket buffers: ``send`` takes part, ``sendall`` waits."""
    server = socket.create_server(("127.0.0.1", 0))
    writer = socket.create_connection(server.getsockname(), timeout=30)
    reader, _ = server.accept()
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    received = bytearray()

    def read() -> None:
        while len(received) < size:
            chunk = reader.recv(1 << 20)
            if not chunk:
                return
            received.extend(chunk)

    thread = threading.Thread(target=read)
    thread.start()
    send_all(writer, data)
    thread.join(30)
    for s in (writer, reader, server):
        s.close()
    assert bytes(received) == data
