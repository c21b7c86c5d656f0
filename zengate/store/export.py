"""The request log as a download: rows read newest first in bounded batches, written as JSON Lines or CSV.

Nothing here knows Flask: the stats blueprint (zengate/web/admin/stats.py) builds the filtered
query and turns each row into the same dict the log page shows, and these functions read and
encode. :func:`newest_first` pages by keyset on ``(created_at, id)``, one short query per batch, so
memory stays at one batch however long the log, no transaction or cursor stays open while a slow
client reads, and rows written meanwhile neither shift nor repeat a page (new ones are newer than
the first page and never reached). CSV cells that a spreadsheet would run as a formula are
defused with a leading ``'``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Iterator

import peewee

from .models import RequestLog

BATCH = 500  # rows per query
CHUNK_BYTES = 64 * 1024  # encoded output handed to the server at a time

#: CSV columns, in order: every field of a log row; ``attempts`` and ``guards`` as JSON in their cell.
CSV_COLUMNS = (
    "id", "created_at", "request_id", "method", "path", "model", "upstream_model", "format", "stream", "status",
    "latency_ms", "ttfb_ms", "input_tokens", "output_tokens", "key_prefix", "cost", "proxy", "error",
    "trim_tokens_before", "trim_tokens_after", "attempts", "guards",
)
#: Added after :data:`CSV_COLUMNS` when bodies are asked for (``input_messages`` as JSON).
BODY_COLUMNS = ("input_messages", "output_content")

#: What a spreadsheet takes for the start of a formula (OWASP's list): such a text cell gets a leading ``'``.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

#: format name → (media type, file extension)
FORMATS = {
    "jsonl": ("application/x-ndjson", "jsonl"),
    "csv": ("text/csv; charset=utf-8", "csv"),
}


def newest_first(query: peewee.ModelSelect, batch_size: int | None = None) -> Iterator[RequestLog]:
    """Every row ``query`` selects, newest first (``created_at``, then ``id``), read ``batch_size``
    (default :data:`BATCH`) at a time.

    Each batch starts strictly after the last row of the one before, on both columns, so rows
    sharing a ``created_at`` (a batch of writes from one worker) are neither skipped nor repeated.
    """
    batch_size = BATCH if batch_size is None else batch_size
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    ordered = query.order_by(RequestLog.created_at.desc(), RequestLog.id.desc())
    last: tuple[dt.datetime, int] | None = None
    while True:
        page = ordered
        if last is not None:
            created, ident = last
            page = page.where((RequestLog.created_at < created)
                              | ((RequestLog.created_at == created) & (RequestLog.id < ident)))
        rows = list(page.limit(batch_size))
        yield from rows
        if len(rows) < batch_size:
            return
        last = (rows[-1].created_at, rows[-1].id)


def columns(*, bodies: bool) -> tuple[str, ...]:
    """The CSV header: :data:`CSV_COLUMNS`, then :data:`BODY_COLUMNS` with bodies."""
    return CSV_COLUMNS + BODY_COLUMNS if bodies else CSV_COLUMNS


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def csv_cell(value) -> str:
    """One CSV cell: empty for null, ``true``/``false``, numbers as written, lists and objects as
    JSON, and text that starts like a formula (``= + - @``, tab, CR) prefixed with ``'``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if not isinstance(value, str):
        return _json(value)
    if value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_lines(rows: Iterable[dict], *, bodies: bool) -> Iterator[str]:
    """The header, then one CSV record per row (RFC 4180: CRLF, quotes where needed); fields a row
    lacks are empty, fields outside :func:`columns` are left out."""
    names = columns(bodies=bodies)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def record(cells) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(cells)
        return buffer.getvalue()

    yield record(names)
    for row in rows:
        yield record(csv_cell(row.get(name)) for name in names)


def jsonl_lines(rows: Iterable[dict]) -> Iterator[str]:
    """One compact JSON object per line, the row as it is (UTF-8 text, not ``\\u`` escapes)."""
    for row in rows:
        yield _json(row) + "\n"


def encode(lines: Iterable[str], chunk_bytes: int | None = None) -> Iterator[bytes]:
    """``lines`` as UTF-8 in chunks of about ``chunk_bytes`` (default :data:`CHUNK_BYTES`): fewer,
    larger writes to the socket.

    A lone surrogate (an ``\\ud800`` escape in a logged body, decoded) comes out as its escape
    ``\\ud800``, which inside a JSON string is the very same value, rather than failing mid-download.
    """
    chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    pending: list[bytes] = []
    size = 0
    for line in lines:
        data = line.encode("utf-8", "backslashreplace")
        pending.append(data)
        size += len(data)
        if size >= chunk_bytes:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


def filename(fmt: str, now: dt.datetime) -> str:
    """``zengate-requests-20260131T140000Z.jsonl``: the export's name, by UTC time (``now`` naive UTC or aware)."""
    if now.tzinfo is not None:
        now = now.astimezone(dt.UTC).replace(tzinfo=None)
    return f"zengate-requests-{now:%Y%m%dT%H%M%S}Z.{FORMATS[fmt][1]}"
