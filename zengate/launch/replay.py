"""``python -m zengate replay FILE``: send a captured client request to the gateway again.

The line is chosen by ``--line N`` (1-based) or ``--request-id``, else the file's last one. Its
client request goes to the gateway (``--url``, found as for ``claude``) with its method, path,
query, body and the headers that are no secret and no transport's own; the capture masked the
key, so ``--key`` (else ``$ZENGATE_API_KEY``) is sent in the header the client used (or ``?key=``
for Gemini clients that used that). The status and the answer are printed as they come.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlencode, urlsplit

from ..runtime.logs import MASK
from .common import LaunchError, gateway_address, shown_url

#: Headers the transport sets for itself (or that would make the answer unreadable here).
NOT_REPLAYED = frozenset({"host", "content-length", "connection", "transfer-encoding", "keep-alive", "te",
                          "upgrade", "accept-encoding", "expect", "proxy-connection"})
KEY_HEADERS = ("authorization", "x-api-key", "x-goog-api-key")


class ReplayError(LaunchError):
    """The capture file or line cannot be replayed; the message says why."""


@dataclass(frozen=True)
class Replay:
    """A captured client request, ready to send again."""

    method: str
    target: str  # path and query
    headers: dict[str, str]
    body: bytes
    masked: bool  # the body still holds masked parts: it goes as it was captured


def choose_line(lines: Iterable[str], *, number: int | None = None, request_id: str | None = None) -> dict:
    """The capture line asked for (``number`` is 1-based; neither given: the last one)."""
    chosen: dict | None = None
    count = 0
    for count, text in enumerate(lines, 1):
        if number is not None and count != number:
            continue
        if not text.strip():
            if number is not None:
                raise ReplayError(f"line {number} is empty")
            continue
        try:
            entry = json.loads(text)
        except ValueError:
            if number is not None or request_id is None:
                raise ReplayError(f"line {count} is not a capture line (not JSON)") from None
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("client"), dict):
            if number is not None:
                raise ReplayError(f"line {count} is not a capture line (no client request)")
            continue
        if request_id is not None and entry.get("request_id") != request_id:
            continue
        chosen = entry
        if number is not None or request_id is not None:
            break
    if chosen is None:
        if number is not None:
            raise ReplayError(f"the file has {count} lines; there is no line {number}")
        if request_id is not None:
            raise ReplayError(f"no line of the file has request_id {request_id!r}")
        raise ReplayError("the file holds no capture line")
    return chosen


def replay_of(entry: Mapping[str, Any], key: str | None) -> Replay:
    """The request to send for a capture line (pure): secrets stay out unless ``key`` is given."""
    client = entry["client"]
    if client.get("cut"):
        raise ReplayError(f"the captured body was cut at {len(client.get('body') or '')} characters of "
                          f"{client.get('bytes')} bytes (capture_body_bytes): it cannot be sent again whole")
    method = str(client.get("method") or "POST").upper()
    path = str(client.get("path") or "/")
    if not path.startswith("/"):
        raise ReplayError(f"the captured path {path[:100]!r} is not a path")
    captured = {str(k): str(v) for k, v in (client.get("headers") or {}).items()}
    headers = {name: value for name, value in captured.items()
               if name.lower() not in NOT_REPLAYED and name.lower() not in KEY_HEADERS and MASK not in value}
    used = [name for name in captured if name.lower() in KEY_HEADERS]
    query = [(name, value) for name, value in parse_qsl(str(client.get("query") or ""), keep_blank_values=True)]
    key_in_query = any(name == "key" for name, _ in query)
    query = [(name, value) for name, value in query if MASK not in value and name != "key"]
    if key:
        if key_in_query and not used:
            query.append(("key", key))
        elif used and used[0].lower() != "authorization":
            headers[used[0]] = key
        else:
            headers["Authorization"] = f"Bearer {key}"
    body = str(client.get("body") or "").encode()
    target = path + (f"?{urlencode(query)}" if query else "")
    return Replay(method, target, headers, body, MASK in body.decode())


def send(url: str, replay: Replay, out: TextIO, timeout: float = 600.0) -> int:
    """Send ``replay`` to the gateway at ``url``; print the status, then the answer as it comes. The status."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        connection.request(replay.method, (parts.path.rstrip("/") or "") + replay.target,
                           body=replay.body if replay.body or replay.method not in ("GET", "HEAD") else None,
                           headers=replay.headers)
        response = connection.getresponse()
        out.write(f"HTTP {response.status} {response.reason}\n")
        out.flush()
        while chunk := response.read1(65536):
            out.write(chunk.decode("utf-8", "replace"))
            out.flush()
        return response.status
    except (OSError, http.client.HTTPException) as exc:
        raise ReplayError(f"the gateway at {shown_url(url)} could not be asked: {exc}") from None
    finally:
        connection.close()


def cmd_replay(args: argparse.Namespace) -> int:
    """The ``replay`` verb: 0 when the gateway answered below 400, 1 otherwise, 2 when nothing was sent."""
    try:
        address = gateway_address(args.url, os.environ)
        try:
            with open(args.file, encoding="utf-8") as file:
                entry = choose_line(file, number=args.line, request_id=args.request_id)
        except OSError as exc:
            raise ReplayError(f"cannot read {args.file}: {exc.strerror or exc}") from None
        replay = replay_of(entry, args.key or os.environ.get("ZENGATE_API_KEY") or None)
        print(f"replaying {entry.get('request_id') or 'the request'}: {replay.method} {replay.target} "
              f"to {shown_url(address.url)} ({address.source})", file=sys.stderr)
        if replay.masked:
            print(f"note: the captured body holds masked parts ({MASK}); they are sent as they are",
                  file=sys.stderr)
        status = send(address.url, replay, sys.stdout)
    except LaunchError as exc:
        print(f"zengate replay: {exc}", file=sys.stderr)
        return 2
    print(file=sys.stdout)
    return 0 if status < 400 else 1
