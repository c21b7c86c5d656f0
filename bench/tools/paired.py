"""Paired time to first token: several targets measured in turn, one stream each per round.

With ``--json``, the same for non-streaming requests: the time to the whole JSON answer.

``bench/run.py`` measures the direct path and zengate one after the other, some seconds apart.
On a shared VM the speed of the same code drifts by a third within the hour, which buries the
small change one optimisation makes. Here every round sends one stream to each target (in a shuffled order: see
``round_orders``) on kept-alive connections, so that all targets see the same moments of the machine:
the way to compare two checkouts of zengate, or one change, side by side.

    .venv/bin/python bench/tools/paired.py direct=http://127.0.0.1:9100/chat/completions \\
        before=http://127.0.0.1:9201/v1/chat/completions after=http://127.0.0.1:9200/v1/chat/completions \\
        --anthropic 'before-msg=http://127.0.0.1:9201/v1/messages' --rounds 300

``--json`` sends ``"stream": false`` and times each answer to its last byte (its
``Content-Length``): the way to see a change in the added latency of non-streaming requests.

The first target is the reference: every other target's "added" is its median minus the
reference's. Targets given with ``--anthropic`` get the Anthropic headers. Start the upstream
with ``bench/upstream.py`` and each gateway as ``bench/run.py`` does (or with ``--keep``). Loopback
only; a blocking client, the same for every target.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import time
from urllib.parse import urlsplit

BODY = {"model": "big-pickle", "max_tokens": 256, "stream": True,
        "messages": [{"role": "user", "content": "Say hello in one short sentence."}]}
ANTHROPIC_HEADERS = ["anthropic-version: 2023-06-01", "x-api-key: sk-bench-unused"]


class _ClosedIdle(Exception):
    """The server closed the kept-alive connection before this request was answered at all."""


class Target:
    """One URL on one kept-alive connection; ``ttft_ms`` collects its times to the first ``data:``."""

    def __init__(self, name: str, url: str, headers: list[str], body: bytes, *, whole: bool = False):
        parts = urlsplit(url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit("paired.py talks to loopback addresses only")
        self.name = name
        self.address = (parts.hostname, parts.port or 80)
        self.connect()
        head = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}",
                "Content-Type: application/json", "Accept: text/event-stream", f"Content-Length: {len(body)}",
                *headers]
        self.request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        self.ttft_ms: list[float] = []
        self.whole = whole

    def connect(self) -> None:
        self.sock = socket.create_connection(self.address, timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def measure(self) -> float:
        """One request's time; on a fresh connection if the server closed the idle one meanwhile."""
        try:
            return self._timed()
        except (_ClosedIdle, ConnectionResetError, BrokenPipeError):
            self.sock.close()
            self.connect()
            return self._timed()

    def _timed(self) -> float:
        """Send one request and read its whole answer; in ms, the time to the answer's last byte
        (``whole``) or to its first ``data:`` (a stream)."""
        started = time.perf_counter()
        self.sock.sendall(self.request)
        received, marked, end = b"", None, None
        while not self._complete(received, end):
            data = self.sock.recv(65536)
            if not data:
                if not received:
                    raise _ClosedIdle  # a gateway's keep-alive timeout ran out between two requests
                raise SystemExit(f"{self.name}: the connection closed mid-answer")
            received += data
            if self.whole and end is None and b"\r\n\r\n" in received:
                end = self._answer_end(received)
            if not self.whole and marked is None and b"data:" in received:
                marked = time.perf_counter()
        finished = time.perf_counter()
        if not received.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"{self.name}: {received[:200]!r}")
        return ((marked or finished) - started) * 1000

    def _complete(self, received: bytes, end: int | None) -> bool:
        """The whole answer is in: its ``Content-Length`` (JSON), or the chunked terminator (a stream)."""
        if self.whole:
            return end is not None and len(received) >= end
        return received.endswith(b"\r\n0\r\n\r\n")

    def _answer_end(self, received: bytes) -> int:
        """Where a sized answer ends: its head, the blank line, and ``Content-Length`` bytes."""
        head = received.partition(b"\r\n\r\n")[0]
        lengths = [line.split(b":", 1)[1] for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")]
        if not lengths:
            raise SystemExit(f"{self.name}: no Content-Length in {head[:200]!r}")
        return len(head) + 4 + int(lengths[0])


def round_orders(count: int, rounds: int, seed: int) -> list[list[int]]:
    """The order of the targets in each round: shuffled, and never starting with the last one.

    A gateway that has just answered answers faster (its worker is awake, its caches warm): a
    target measured right after itself, or always right after the same other one, would gain or
    lose by its place in the round. (Reversing the order every other round did that to the first
    and middle targets: the last one of a round was also the first of the next, and the middle
    one always followed another gateway.)
    """
    rng = random.Random(seed)
    orders, last = [], None
    for _ in range(rounds):
        order = list(range(count))
        rng.shuffle(order)
        if count > 1 and order[0] == last:
            order.append(order.pop(0))
        orders.append(order)
        last = order[-1]
    return orders


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="+", help="name=url (OpenAI shape)")
    parser.add_argument("--anthropic", action="append", default=[], help="name=url, sent Anthropic headers")
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1, help="for the order of the targets in each round")
    parser.add_argument("--json", action="store_true", help="non-streaming requests: time to the whole answer")
    args = parser.parse_args()
    body = json.dumps({**BODY, "stream": not args.json}).encode()
    targets = [Target(*spec.split("=", 1), [], body, whole=args.json) for spec in args.targets]
    targets += [Target(*spec.split("=", 1), ANTHROPIC_HEADERS, body, whole=args.json) for spec in args.anthropic]
    for target in targets:
        for _ in range(args.warmup):
            target.measure()
    for order in round_orders(len(targets), args.rounds, args.seed):
        for at in order:
            targets[at].ttft_ms.append(targets[at].measure())
    reference = statistics.median(targets[0].ttft_ms)
    what = "time to the whole answer" if args.json else "time to first token"
    print(f"{what}, {args.rounds} rounds (ms)")
    for target in targets:
        values = sorted(target.ttft_ms)
        p50 = statistics.median(values)
        print(f"{target.name:14} p50 {p50:6.3f}  p25 {values[len(values) // 4]:6.3f}  "
              f"p75 {values[3 * len(values) // 4]:6.3f}  added p50 {p50 - reference:+6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
