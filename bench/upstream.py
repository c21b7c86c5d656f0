"""A fast local stand-in for OpenCode Zen, for benchmarks only (not the test suite's fake upstream).

One asyncio process with a hand-written HTTP/1.1 keep-alive handler (``asyncio.Protocol``, no
framework): it serves well over 5,000 requests/s on one core, so that it is never what limits a
benchmark of the gateway in front of it.

    POST /chat/completions   OpenAI chat completion, or an SSE stream when the body says "stream": true
    POST /messages           Anthropic message, or its SSE stream
    POST /responses          OpenAI Responses ``response`` object, or its SSE stream
    GET  /models             the model list
    GET  /_bench/stats       {"requests", "open_streams", "held_streams", "streams_done"}
    POST /_bench/release     lets every held stream finish

Streams send ``--chunks`` chunks (default 20) ``--interval-ms`` apart (default 5), then the
usage chunk (when asked for) and ``data: [DONE]`` - or, for Anthropic and Responses, the events
that close the answer (``message_stop``; ``response.completed`` with the usage). A stream is *held* when its model is
``bench-hold`` (or its body has ``"bench_hold": true``): it sends its first chunk, then waits
for ``POST /_bench/release`` (or ``--hold-max`` seconds) before sending the rest — how the
benchmark keeps 1,000 streams open at once.

Run: ``python bench/upstream.py --port 9100 [--cpu 1]``. Prints ``READY <port>`` when listening.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys

HOLD_MODEL = "bench-hold"
CREATED = 1735689600

MODELS_BODY = json.dumps({
    "object": "list",
    "data": [{"id": mid, "object": "model", "created": CREATED, "owned_by": "opencode"}
             for mid in ("big-pickle", "gpt-5-nano", "glm-4.7-free", "grok-code", "claude-sonnet-4-5")],
}).encode()

ANSWER_TEXT = "The quick brown fox jumps over the lazy dog. " * 4


def openai_answer(model: str) -> bytes:
    return json.dumps({
        "id": "chatcmpl-bench0001", "object": "chat.completion", "created": CREATED, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER_TEXT},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 24, "completion_tokens": 40, "total_tokens": 64},
    }, separators=(",", ":")).encode()


def anthropic_answer(model: str) -> bytes:
    return json.dumps({
        "id": "msg_bench0001", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": ANSWER_TEXT}],
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 24, "output_tokens": 40},
    }, separators=(",", ":")).encode()


RESPONSES_USAGE = {"input_tokens": 24, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                   "output_tokens": 40, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 64}


def _response_object(model: str, status: str, output: list, usage: dict | None) -> dict:
    """A Responses ``response`` object with what the openai SDK's ``Response`` requires."""
    return {"id": "resp_bench0001", "object": "response", "created_at": CREATED, "status": status, "model": model,
            "output": output, "error": None, "incomplete_details": None, "instructions": None, "metadata": {},
            "parallel_tool_calls": True, "temperature": None, "tool_choice": "auto", "tools": [], "top_p": None,
            "store": False, "usage": usage}


def _message_item(text: str, status: str = "completed") -> dict:
    content = [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else []
    return {"id": "msg_bench0001", "type": "message", "status": status, "role": "assistant", "content": content}


def responses_answer(model: str) -> bytes:
    return json.dumps(_response_object(model, "completed", [_message_item(ANSWER_TEXT)], RESPONSES_USAGE),
                      separators=(",", ":")).encode()


def _chunk(data: bytes) -> bytes:
    """One HTTP chunk (chunked transfer encoding)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def openai_stream_frames(model: str, chunks: int, include_usage: bool) -> list[bytes]:
    frames = []
    for i in range(chunks):
        delta = {"role": "assistant", "content": f"tok{i} "} if i == 0 else {"content": f"tok{i} "}
        frames.append(b"data: " + json.dumps({
            "id": "chatcmpl-bench0001", "object": "chat.completion.chunk", "created": CREATED, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if i == chunks - 1 else None}],
        }, separators=(",", ":")).encode() + b"\n\n")
    tail = b""
    if include_usage:
        tail += b"data: " + json.dumps({
            "id": "chatcmpl-bench0001", "object": "chat.completion.chunk", "created": CREATED, "model": model,
            "choices": [], "usage": {"prompt_tokens": 24, "completion_tokens": chunks, "total_tokens": 24 + chunks},
        }, separators=(",", ":")).encode() + b"\n\n"
    tail += b"data: [DONE]\n\n"
    frames[-1] += tail
    return frames


def anthropic_stream_frames(model: str, chunks: int) -> list[bytes]:
    def ev(obj: dict) -> bytes:
        return b"event: %s\ndata: %s\n\n" % (obj["type"].encode(), json.dumps(obj, separators=(",", ":")).encode())

    start = ev({"type": "message_start", "message": {
        "id": "msg_bench0001", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 24, "output_tokens": 1}}})
    start += ev({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    frames = []
    for i in range(chunks):
        frame = ev({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"tok{i} "}})
        frames.append(start + frame if i == 0 else frame)
    frames[-1] += (ev({"type": "content_block_stop", "index": 0})
                   + ev({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                         "usage": {"output_tokens": chunks}})
                   + ev({"type": "message_stop"}))
    return frames


def responses_stream_frames(model: str, chunks: int) -> list[bytes]:
    """A Responses stream as OpenAI sends one: ``response.created``, ``in_progress``, the message item and
    its text part announced, then one ``response.output_text.delta`` per chunk, then the ``done`` events and
    ``response.completed`` with the output and usage (every event numbered by ``sequence_number``)."""
    seq = iter(range(1_000_000))

    def ev(obj: dict) -> bytes:
        obj = {"type": obj["type"], "sequence_number": next(seq), **obj}
        return b"event: %s\ndata: %s\n\n" % (obj["type"].encode(), json.dumps(obj, separators=(",", ":")).encode())

    ids = {"item_id": "msg_bench0001", "output_index": 0}
    part = {"type": "output_text", "text": "", "annotations": []}
    start = (ev({"type": "response.created", "response": _response_object(model, "in_progress", [], None)})
             + ev({"type": "response.in_progress", "response": _response_object(model, "in_progress", [], None)})
             + ev({"type": "response.output_item.added", "output_index": 0,
                   "item": _message_item("", "in_progress")})
             + ev({"type": "response.content_part.added", **ids, "content_index": 0, "part": part}))
    frames = []
    for i in range(chunks):
        frame = ev({"type": "response.output_text.delta", **ids, "content_index": 0, "delta": f"tok{i} ",
                    "logprobs": []})
        frames.append(start + frame if i == 0 else frame)
    text = "".join(f"tok{i} " for i in range(chunks))
    item = _message_item(text)
    usage = {**RESPONSES_USAGE, "output_tokens": chunks, "total_tokens": 24 + chunks}
    frames[-1] += (ev({"type": "response.output_text.done", **ids, "content_index": 0, "text": text, "logprobs": []})
                   + ev({"type": "response.content_part.done", **ids, "content_index": 0,
                         "part": {**part, "text": text}})
                   + ev({"type": "response.output_item.done", "output_index": 0, "item": item})
                   + ev({"type": "response.completed",
                         "response": _response_object(model, "completed", [item], usage)}))
    return frames


ANSWERS = {"openai": openai_answer, "anthropic": anthropic_answer, "responses": responses_answer}
KINDS = (("/chat/completions", "openai"), ("/messages", "anthropic"), ("/responses", "responses"))


class State:
    def __init__(self, chunks: int, interval: float, hold_max: float):
        self.chunks = chunks
        self.interval = interval
        self.hold_max = hold_max
        self.requests = 0
        self.open_streams = 0
        self.held_streams = 0
        self.streams_done = 0
        self.release = asyncio.Event()
        self._answers: dict[tuple[str, str], bytes] = {}
        self._frames: dict[tuple[str, str, bool], list[bytes]] = {}

    def answer(self, kind: str, model: str) -> bytes:
        key = (kind, model)
        body = self._answers.get(key)
        if body is None:
            body = ANSWERS[kind](model)
            if len(self._answers) < 256:
                self._answers[key] = body
        return body

    def frames(self, kind: str, model: str, include_usage: bool) -> list[bytes]:
        key = (kind, model, include_usage)
        frames = self._frames.get(key)
        if frames is None:
            if kind == "openai":
                frames = openai_stream_frames(model, self.chunks, include_usage)
            elif kind == "anthropic":
                frames = anthropic_stream_frames(model, self.chunks)
            else:
                frames = responses_stream_frames(model, self.chunks)
            if len(self._frames) < 256:
                self._frames[key] = frames
        return frames


def _response(status: str, body: bytes, ctype: bytes = b"application/json", close: bool = False) -> bytes:
    return (b"HTTP/1.1 " + status.encode() + b"\r\nContent-Type: " + ctype
            + b"\r\nContent-Length: " + str(len(body)).encode()
            + (b"\r\nConnection: close" if close else b"") + b"\r\n\r\n" + body)


STREAM_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")


class HTTPProtocol(asyncio.Protocol):
    __slots__ = ("buffer", "busy", "closing", "state", "task", "transport")

    def __init__(self, state: State):
        self.state = state
        self.transport = None
        self.buffer = b""
        self.busy = False
        self.closing = False
        self.task = None

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc):
        self.closing = True
        if self.task is not None:
            self.task.cancel()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self.process()

    def process(self) -> None:
        while not self.busy and not self.closing:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > 65536:
                    self.transport.close()
                return
            head = self.buffer[:end].decode("latin-1")
            lines = head.split("\r\n")
            try:
                method, target, _version = lines[0].split(" ", 2)
            except ValueError:
                self.transport.write(_response("400 Bad Request", b"{}", close=True))
                self.transport.close()
                return
            length = 0
            close = False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value.strip())
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4:end + 4 + length]
            self.buffer = self.buffer[end + 4 + length:]
            self.handle(method, target.split("?", 1)[0], body, close)

    def handle(self, method: str, path: str, raw: bytes, close: bool) -> None:
        st = self.state
        st.requests += 1
        kind = next((k for suffix, k in KINDS if path.endswith(suffix)), None) if method == "POST" else None
        if kind is not None:
            try:
                body = json.loads(raw)
                model = str(body.get("model") or "unknown")
            except (ValueError, AttributeError):
                self.send(_response("400 Bad Request", b'{"error":{"message":"bad json"}}'), close)
                return
            if body.get("stream") is True:
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                hold = model == HOLD_MODEL or body.get("bench_hold") is True
                self.busy = True
                self.task = asyncio.ensure_future(self.stream(st.frames(kind, model, include_usage), hold, close))
                return
            self.send(_response("200 OK", st.answer(kind, model)), close)
        elif method == "GET" and path.endswith("/models"):
            self.send(_response("200 OK", MODELS_BODY), close)
        elif path == "/_bench/stats":
            stats = {"requests": st.requests, "open_streams": st.open_streams, "held_streams": st.held_streams,
                     "streams_done": st.streams_done, "pid": os.getpid()}
            self.send(_response("200 OK", json.dumps(stats).encode()), close)
        elif method == "POST" and path == "/_bench/release":
            st.release.set()
            st.release = asyncio.Event()
            self.send(_response("200 OK", b'{"released":true}'), close)
        else:
            self.send(_response("404 Not Found", b'{"error":{"message":"not found"}}'), close)

    def send(self, data: bytes, close: bool) -> None:
        self.transport.write(data)
        if close:
            self.closing = True
            self.transport.close()

    async def stream(self, frames: list[bytes], hold: bool, close: bool) -> None:
        st = self.state
        st.open_streams += 1
        write = self.transport.write
        try:
            write(STREAM_HEAD + _chunk(frames[0]))
            if hold:
                st.held_streams += 1
                try:
                    await asyncio.wait_for(st.release.wait(), st.hold_max)
                except TimeoutError:
                    pass
                finally:
                    st.held_streams -= 1
            for frame in frames[1:]:
                await asyncio.sleep(st.interval)
                if self.closing:
                    return
                write(_chunk(frame))
            write(b"0\r\n\r\n")
            st.streams_done += 1
        except asyncio.CancelledError:
            return
        finally:
            st.open_streams -= 1
            self.task = None
        self.busy = False
        if close:
            self.closing = True
            self.transport.close()
        elif self.buffer:
            self.process()


async def serve(host: str, port: int, state: State) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HTTPProtocol(state), host, port, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--interval-ms", type=float, default=5.0)
    parser.add_argument("--hold-max", type=float, default=120.0, help="longest a held stream waits (seconds)")
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the bench upstream listens on loopback only")
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    try:
        import uvloop  # type: ignore[import-not-found]  # optional, used when installed
        uvloop.install()
    except ImportError:
        pass
    state_holder: list[State] = []

    async def run() -> None:
        state_holder.append(State(args.chunks, args.interval_ms / 1000.0, args.hold_max))
        await serve(args.host, args.port, state_holder[0])

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
