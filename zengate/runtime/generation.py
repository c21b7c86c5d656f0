"""A number every worker of an instance reads before it trusts what it has cached.

A worker that changes shared state (the settings table) gives the number a new value; the others
compare it with the value they last loaded at and reload when it differs, so a change made through
one worker applies to the next request on all of them. The number lives in a small memory-mapped
file in the instance's runtime directory (the one gunicorn.conf.py makes per master start for the
metrics): reading it is a memory load, no system call, no service. Outside gunicorn (one process)
it is a number in memory.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

SIZE = 8  # one unsigned 64-bit number


def runtime_dir() -> Path | None:
    """Where the instance's workers share state under gunicorn: ``shared/`` in the per-start
    directory gunicorn.conf.py makes (``PROMETHEUS_MULTIPROC_DIR``; a subdirectory, because
    prometheus_client reads every ``*.db`` file beside its own as metrics), or None in a single
    process."""
    metrics = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not metrics:
        return None
    directory = Path(metrics) / "shared"
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory


class Generation:
    """The shared number: :meth:`read` it, :meth:`bump` it after a change."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        if path is None:
            self._buffer: mmap.mmap | bytearray = bytearray(SIZE)
        else:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size < SIZE:
                    os.ftruncate(fd, SIZE)  # only ever grown: a worker opening it later keeps the value
                self._buffer = mmap.mmap(fd, SIZE)
            finally:
                os.close(fd)  # the mapping stays
        self._view = memoryview(self._buffer).cast("Q")

    @classmethod
    def for_instance(cls, name: str) -> Generation:
        """The instance's number called ``name``: shared through the runtime directory under
        gunicorn (``PROMETHEUS_MULTIPROC_DIR``), in memory otherwise."""
        directory = runtime_dir()
        return cls(directory / f"zengate-{name}.generation" if directory else None)

    def read(self) -> int:
        return self._view[0]

    def bump(self) -> int:
        """Give the number a new value (one no worker can hold yet) and return it."""
        value = int.from_bytes(os.urandom(8), "little") or 1
        while value == self._view[0]:
            value = int.from_bytes(os.urandom(8), "little") or 1
        self._view[0] = value
        return value
