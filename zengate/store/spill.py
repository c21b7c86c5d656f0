"""Request-log rows on disk while the database cannot take them: append-only JSON-lines files.

Layout: ``<data dir>/request-log-spill/``, one file per worker process at a time, named
``<state>-<created ns>-<pid>-<random>.jsonl``:

``active-…``   the worker appends rows here (one JSON object per line) while the database fails;
``claimed-…``  a worker is importing it into the database, oldest file first.

Ownership is an exclusive ``flock`` held on the file for as long as a process owns it; the kernel
drops it when the process dies, however it dies. So a file nobody holds is an orphan (a killed
worker, a previous run) and any worker may claim it: lock it, check the name still points at the
locked file, rename it to ``claimed-…`` (atomic; the lock goes with it). Two workers can never both
hold one file.

A file is removed only after every one of its rows was committed. A crash half-way through an
import leaves the file (and some of its rows already in the database) to the next claimer, which
imports it again with ``dedupe``: rows whose ``request_id`` is already stored are skipped, in the
transaction that inserts the others. Rows are written with one ``fsync`` per append call (the
background loop batches them) and the directory is synced on every create and rename.

Datetimes round-trip exactly (``{"$dt": isoformat}``); bodies are serialised and clipped before
they are written, as the database would store them.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .db import private_directory

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"
ACTIVE = "active"
CLAIMED = "claimed"
READ_CHUNK = 1 << 20


def encode(row: dict[str, Any], prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> bytes:
    """One row as one JSON line (datetimes tagged so they come back as the same value)."""
    data = prepare(row) if prepare else row
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=_default).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    return json.loads(line, object_hook=_object_hook)


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$d": value.isoformat()}
    return str(value)


def _object_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if "$dt" in obj:
            return dt.datetime.fromisoformat(obj["$dt"])
        if "$d" in obj:
            return dt.date.fromisoformat(obj["$d"])
    return obj


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass
class SpillFile:
    """A spill file this process holds: ``fd`` carries the lock (and the appends, for the active file)."""

    path: Path
    fd: int
    created_ns: int
    rows: int = 0  # rows not yet imported (for an adopted file: its line count)
    offset: int = 0  # bytes already imported
    size: int = 0  # bytes appended (the active file)
    dirty: bool = False  # appended but not yet fsync'd


def _parse_name(name: str) -> tuple[str, int] | None:
    """(state, created ns) of a spill file name, or None for anything else."""
    if not name.endswith(SUFFIX):
        return None
    parts = name[: -len(SUFFIX)].split("-")
    if len(parts) != 4 or parts[0] not in (ACTIVE, CLAIMED) or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


class SpillStore:
    """This process's spill files: the one it appends to and the ones it is importing."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._active: SpillFile | None = None
        self._claimed: list[SpillFile] = []  # oldest first
        self._lock = threading.Lock()
        self.spilled_total = 0  # rows this process ever wrote to disk
        self.skipped_lines = 0  # unreadable lines met while importing (a torn last line after a crash)

    # --- appending ------------------------------------------------------------------------

    @property
    def rows_on_disk(self) -> int:
        """Rows in files this process holds, not yet in the database."""
        active = self._active.rows if self._active else 0
        return active + sum(f.rows for f in self._claimed)

    def _name(self, state: str, created_ns: int) -> Path:
        return self.directory / f"{state}-{created_ns}-{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"

    def _open_active(self) -> SpillFile:
        private_directory(self.directory)
        created = time.time_ns()
        path = self._name(ACTIVE, created)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh name: nobody else can hold it
        _fsync_dir(self.directory)
        return SpillFile(path, fd, created)

    def append(self, lines: list[bytes], *, sync: bool = True, blocking: bool = True) -> bool:
        """Append encoded rows to this process's active file; False when the lock was busy.

        Raises OSError when the disk refuses (the caller keeps the rows in memory); a partial write
        is cut off again so the file never holds half a line followed by more rows.
        """
        if not lines:
            return True
        if not self._lock.acquire(blocking=blocking):
            return False
        try:
            if self._active is None:
                self._active = self._open_active()
            active = self._active
            data = memoryview(b"".join(lines))
            written = 0
            try:
                while written < len(data):
                    written += os.write(active.fd, data[written:])
                if sync:
                    os.fsync(active.fd)
            except OSError:
                try:
                    os.ftruncate(active.fd, active.size)
                except OSError:
                    pass
                raise
            active.size += written
            active.rows += len(lines)
            active.dirty = not sync
            self.spilled_total += len(lines)
            return True
        finally:
            self._lock.release()

    def sync(self) -> None:
        """fsync the active file if rows were appended without it."""
        with self._lock:
            if self._active is not None and self._active.dirty:
                os.fsync(self._active.fd)
                self._active.dirty = False

    # --- claiming -------------------------------------------------------------------------

    def rotate(self) -> None:
        """Hand the active file over to importing (renamed ``claimed-…``); new rows start a new file."""
        with self._lock:
            active = self._active
            if active is None:
                return
            os.fsync(active.fd)
            target = self._name(CLAIMED, active.created_ns)
            os.rename(active.path, target)
            _fsync_dir(self.directory)
            active.path, active.dirty = target, False
            self._active = None
            self._add_claimed(active)

    def _add_claimed(self, spill: SpillFile) -> None:
        self._claimed.append(spill)
        self._claimed.sort(key=lambda f: f.created_ns)

    def adopt_orphans(self) -> int:
        """Claim the spill files no live process holds; returns how many were claimed."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return 0
        mine = {f.path.name for f in self._claimed}
        if self._active is not None:
            mine.add(self._active.path.name)
        adopted = 0
        for name in names:
            parsed = _parse_name(name)
            if parsed is None or name in mine:
                continue
            spill = self._try_claim(self.directory / name, parsed[1])
            if spill is not None:
                self._add_claimed(spill)
                adopted += 1
                log.info("request log: picked up %d spilled rows left by another process (%s)", spill.rows, name)
        return adopted

    def _try_claim(self, path: Path, created_ns: int) -> SpillFile | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # a live process holds it
            return None
        try:
            held, now = os.fstat(fd), os.stat(path)
            if (held.st_ino, held.st_dev) != (now.st_ino, now.st_dev):
                raise FileNotFoundError(path)  # renamed or removed after we opened it
            target = self._name(CLAIMED, created_ns)
            os.rename(path, target)
            _fsync_dir(self.directory)
            return SpillFile(target, fd, created_ns, rows=_count_lines(fd))
        except FileNotFoundError:
            os.close(fd)
            return None
        except OSError:
            os.close(fd)
            raise

    # --- importing ------------------------------------------------------------------------

    @property
    def has_claimed(self) -> bool:
        return bool(self._claimed)

    def next_batch(self, size: int) -> tuple[SpillFile, list[dict[str, Any]], int] | None:
        """The oldest claimed file's next rows: (file, rows, offset after them); None when none is left.

        A file read to its end is removed here: every row before its end was committed.
        """
        while self._claimed:
            spill = self._claimed[0]
            rows, end = self._read(spill, size)
            if rows:
                return spill, rows, end
            self._finish(spill)
        return None

    def _read(self, spill: SpillFile, size: int) -> tuple[list[dict[str, Any]], int]:
        rows: list[dict[str, Any]] = []
        offset = spill.offset  # end of the last whole line taken
        buf = bytearray()
        while len(rows) < size:
            newline = buf.find(b"\n")
            if newline < 0:
                chunk = os.pread(spill.fd, READ_CHUNK, offset + len(buf))
                if chunk:
                    buf += chunk
                    continue
                if buf:  # torn by a crash mid-write: that row never fully reached the disk
                    self.skipped_lines += 1
                    log.warning("request log: skipping an incomplete last line in %s", spill.path.name)
                    offset += len(buf)
                break
            line = bytes(buf[: newline + 1])
            del buf[: newline + 1]
            offset += len(line)
            try:
                rows.append(decode(line))
            except ValueError:
                self.skipped_lines += 1
                log.error("request log: skipping an unreadable line in %s at byte %d", spill.path.name,
                          offset - len(line))
        return rows, offset

    def committed(self, spill: SpillFile, rows: int, offset: int) -> None:
        """The rows before ``offset`` are in the database."""
        spill.offset = offset
        spill.rows = max(0, spill.rows - rows)

    def _finish(self, spill: SpillFile) -> None:
        try:
            spill.path.unlink()  # before the lock goes: a claimer waiting on it then finds the name gone
        except FileNotFoundError:
            pass
        _fsync_dir(self.directory)
        os.close(spill.fd)
        self._claimed.remove(spill)

    # --- shutting down --------------------------------------------------------------------

    def close(self) -> None:
        """Release every file (they stay on disk for the next worker), fsync'd."""
        with self._lock:
            for spill in ([self._active] if self._active else []) + self._claimed:
                try:
                    if spill.dirty:
                        os.fsync(spill.fd)
                finally:
                    os.close(spill.fd)
            self._active = None
            self._claimed = []


def _count_lines(fd: int) -> int:
    count, offset = 0, 0
    while chunk := os.pread(fd, READ_CHUNK, offset):
        count += chunk.count(b"\n")
        offset += len(chunk)
    return count

