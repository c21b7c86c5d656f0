"""Streaming load client: time to first token and total time, and holding many streams open.

A plain asyncio HTTP/1.1 client (keep-alive, chunked decoding, nothing else), so its own cost
per chunk stays small and is the same whether it talks to the upstream or to zengate.

    python bench/streams.py latency URL --body FILE --concurrency 64 --streams 640 [--header 'k: v']
        Each of ``concurrency`` tasks keeps one connection and runs streams back to back until
        ``streams`` have been started in all. Time to first token = from the request written to
        the first ``data:`` line received - in a Responses stream (``event: response.…``), whose
        first events announce the answer, to the first ``response.output_text.delta``; total = to
        the end of the response.
    python bench/streams.py hold URL --body FILE --streams 1000
        Opens ``streams`` streams at once (connections, each its own), prints
        ``HELD {"open": n, ...}`` once every stream has its first ``data:`` line (or the time is
        up), then waits for them all to finish (the upstream is told to let them go by whoever
        runs this) and prints ``RESULT {...}``.

Loopback only; every loop is bounded by a count and a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from urllib.parse import urlsplit

# A Responses stream's event lines (an event's line comes before its data, so the first is seen no later
# than the first "data:"), its first token and its end.
RESPONSES_EVENT = b"event: response."
RESPONSES_TEXT_DELTA = b"event: response.output_text.delta"
RESPONSES_END = b"event: response.completed"


class StreamFailed(Exception):
    pass


def _request_bytes(url: str, body: bytes, headers: list[str]) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("streams.py talks to loopback addresses only")
    lines = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
             "Accept: text/event-stream", f"Content-Length: {len(body)}", *headers]
    return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader, started: float, on_first_data=None) -> dict:
    """Read one response; returns status, first-data time, end time, whether [DONE] was seen."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    first = None
    tail = b""  # the last bytes seen, to find 'data:', '[DONE]' and the event names split across chunks
    done = False
    responses = False  # a Responses stream: its first token is its first text delta

    def seen(data: bytes) -> None:
        nonlocal first, tail, done, responses
        window = tail + data
        if first is None:
            responses = responses or RESPONSES_EVENT in window
            if (RESPONSES_TEXT_DELTA if responses else b"data:") in window:
                first = time.perf_counter()
                if on_first_data is not None:
                    on_first_data()
        if b"[DONE]" in window or b"event: message_stop" in window or RESPONSES_END in window:
            done = True
        tail = window[-48:]

    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size_line = await reader.readline()
            if not size_line:
                raise StreamFailed("connection closed inside a chunked body")
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers expected
                break
            data = await reader.readexactly(size + 2)
            seen(data[:-2])
    elif "content-length" in headers:
        seen(await reader.readexactly(int(headers["content-length"])))
    else:  # read to close
        while True:
            data = await reader.read(65536)
            if not data:
                break
            seen(data)
    end = time.perf_counter()
    keep = headers.get("connection", "").lower() != "close"
    return {"status": status, "first": first, "end": end, "done": done, "keep": keep,
            "ttft_ms": (first - started) * 1000 if first else None, "total_ms": (end - started) * 1000}


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: list[float]) -> dict:
    return {"p50": percentile(values, 50), "p90": percentile(values, 90), "p99": percentile(values, 99),
            "mean": sum(values) / len(values) if values else None, "n": len(values)}


async def run_latency(url: str, body: bytes, headers: list[str], concurrency: int, streams: int,
                      deadline_s: float) -> dict:
    host, port, request = _request_bytes(url, body, headers)
    ttft: list[float] = []
    total: list[float] = []
    errors: list[str] = []
    started = [0]
    deadline = time.monotonic() + deadline_s

    async def worker() -> None:
        reader = writer = None
        try:
            while started[0] < streams and time.monotonic() < deadline:
                started[0] += 1
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                t0 = time.perf_counter()
                writer.write(request)
                try:
                    r = await asyncio.wait_for(_read_response(reader, t0), 60)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, StreamFailed, ValueError) as exc:
                    errors.append(type(exc).__name__)
                    writer.close()
                    reader = writer = None
                    continue
                if r["status"] != 200 or not r["done"] or r["ttft_ms"] is None:
                    errors.append(f"status {r['status']} done={r['done']}")
                else:
                    ttft.append(r["ttft_ms"])
                    total.append(r["total_ms"])
                if not r["keep"]:
                    writer.close()
                    reader = writer = None
        finally:
            if writer is not None:
                writer.close()

    t_start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t_start
    return {"concurrency": concurrency, "streams": len(ttft), "errors": len(errors),
            "error_kinds": sorted(set(errors))[:5], "elapsed_s": elapsed,
            "streams_per_s": len(ttft) / elapsed if elapsed else None,
            "ttft_ms": summary(ttft), "total_ms": summary(total)}


async def run_hold(url: str, body: bytes, headers: list[str], streams: int, open_timeout: float,
                   finish_timeout: float, connect_parallel: int) -> dict:
    host, port, request = _request_bytes(url, body, headers)
    open_now = [0]
    all_open = asyncio.Event()
    results: list[dict] = []
    errors: list[str] = []
    gate = asyncio.Semaphore(connect_parallel)

    def got_first() -> None:
        open_now[0] += 1
        if open_now[0] >= streams:
            all_open.set()

    async def one() -> None:
        writer = None
        try:
            async with gate:
                reader, writer = await asyncio.open_connection(host, port)
            t0 = time.perf_counter()
            writer.write(request)
            r = await asyncio.wait_for(_read_response(reader, t0, got_first), open_timeout + finish_timeout)
            if r["status"] != 200 or not r["done"]:
                errors.append(f"status {r['status']} done={r['done']}")
            else:
                results.append(r)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, StreamFailed, ValueError) as exc:
            errors.append(type(exc).__name__)
        finally:
            if writer is not None:
                writer.close()

    t_start = time.perf_counter()
    tasks = [asyncio.ensure_future(one()) for _ in range(streams)]
    try:
        await asyncio.wait_for(all_open.wait(), open_timeout)
    except TimeoutError:
        pass
    held = {"open": open_now[0], "errors_so_far": len(errors), "open_s": time.perf_counter() - t_start}
    print("HELD " + json.dumps(held), flush=True)
    await asyncio.wait(tasks, timeout=finish_timeout + 5)
    for task in tasks:
        task.cancel()
    return {"requested": streams, "held": held["open"], "open_s": held["open_s"], "completed": len(results),
            "errors": len(errors) + (streams - len(results) - len(errors)),
            "error_kinds": sorted(set(errors))[:5]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="streaming load client (loopback only)")
    parser.add_argument("mode", choices=("latency", "hold"))
    parser.add_argument("url")
    parser.add_argument("--body", required=True, help="file with the JSON request body")
    parser.add_argument("--header", action="append", default=[], help="extra 'Name: value' header")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--deadline", type=float, default=60.0, help="latency mode: stop starting streams after this")
    parser.add_argument("--open-timeout", type=float, default=60.0)
    parser.add_argument("--finish-timeout", type=float, default=60.0)
    parser.add_argument("--connect-parallel", type=int, default=64)
    args = parser.parse_args(argv)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, args.streams * 2 + 256))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    with open(args.body, "rb") as f:
        body = f.read()
    if args.mode == "latency":
        result = asyncio.run(run_latency(args.url, body, args.header, args.concurrency, args.streams, args.deadline))
    else:
        result = asyncio.run(run_hold(args.url, body, args.header, args.streams, args.open_timeout,
                                      args.finish_timeout, args.connect_parallel))
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
