"""Long database work leaves the worker's event loop free: request-log batches in turns, SQLite
checkpoints in a native thread, bookkeeping in idle moments (zengate/runtime/helpers.py,
zengate/store/requestlog.py, zengate/store/wal.py, RequestRecord.finish_later).

Under gunicorn's gevent worker every request is served from one OS thread, so these run here
with ``helpers._under_gevent`` forced on: another greenlet stands for the requests being served
and records what it could see each time it got a turn.
"""

from __future__ import annotations

import itertools
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path

import gevent
import pytest
from gevent.socket import wait_read

from zengate.config import Config
from zengate.exchange.records import RequestRecord
from zengate.runtime import helpers
from zengate.store import spill as spill_mod
from zengate.store import wal
from zengate.store.db import database
from zengate.store.migrate import prepare_database
from zengate.store.models import RequestLog, utcnow
from zengate.store.requestlog import BATCH_ROWS, RequestLogWriter


@pytest.fixture
def under_gevent(monkeypatch):
    monkeypatch.setattr(helpers, "_under_gevent", lambda: True)
    yield
    if helpers._idle_work is not None:
        helpers._idle_work._greenlet.kill()
        helpers._idle_work = None


def _row(i: int) -> dict:
    return {"created_at": utcnow(), "request_id": f"req_{i}", "method": "POST", "path": "/v1/chat/completions",
            "model": "m", "format": "openai", "stream": False, "status": 200, "latency_ms": 1.0,
            "input_messages": [{"role": "user", "content": "x" * 2000}], "redact_secrets": True}


def _committed(path: Path) -> int:
    other = sqlite3.connect(path)
    try:
        return other.execute("SELECT count(*) FROM request_log").fetchone()[0]
    finally:
        other.close()


class Bystander:
    """A request being served: a greenlet waiting on a socket, which has data whenever the loop polls it.

    At each turn it gets it notes how many rows another connection sees committed.
    """

    def __init__(self, path: Path):
        self.path = path
        self.seen: list[int] = []
        self._done = False
        self._ours, self._peer = socket.socketpair()
        self._peer.sendall(b"x" * 10_000)
        self._greenlet = gevent.spawn(self._run)
        gevent.sleep(0.001)  # started, waiting on its socket

    def _run(self) -> None:
        while not self._done:
            wait_read(self._ours.fileno())  # resumes only when the loop polls the socket
            self._ours.recv(1)
            self.seen.append(_committed(self.path))

    def stop(self) -> list[int]:
        self._done = True
        self._greenlet.join(5)
        self._ours.close()
        self._peer.close()
        return self.seen


def test_default_batches_are_small():
    writer = RequestLogWriter()
    assert writer.batch_size == BATCH_ROWS <= 64
    assert writer.wake_rows == 500  # the loop is not woken more often for that
    assert RequestLogWriter(max_queued=100).wake_rows == 100


def test_flush_lets_other_greenlets_run_between_committed_batches(db_path, under_gevent):
    writer = RequestLogWriter(batch_size=10)
    for i in range(45):
        writer.record(_row(i))
    bystander = Bystander(db_path)
    assert writer.flush(force=True) == 45
    seen = bystander.stop()
    # a turn after each committed batch but the last, and never inside a transaction
    assert [n for n in seen if 0 < n < 45] == [10, 20, 30, 40]
    assert _committed(db_path) == 45 and writer.pending == 0


def test_a_backlog_goes_in_fewer_bigger_batches_and_rows_queued_meanwhile_wait(db_path, under_gevent, monkeypatch):
    writer = RequestLogWriter(batch_size=10)
    for i in range(400):
        writer.record(_row(i))
    batches = []
    real = writer._write

    def write(batch, dedupe=False):
        batches.append(len(batch))
        real(batch, dedupe)
        writer.record(_row(1000 + len(batches)))  # a request finished meanwhile

    monkeypatch.setattr(writer, "_write", write)
    assert writer.flush(force=True) == 400
    assert batches == [50] * 8  # FLUSH_TURNS
    assert writer.pending == 8  # queued during the flush: written by the next one
    assert writer.flush(force=True) == 8 and _committed(db_path) == 408


def test_close_writes_rows_queued_during_its_flushes_without_spilling_them(db_path, tmp_path, monkeypatch):
    writer = RequestLogWriter(batch_size=10, spill_dir=tmp_path / "spill")
    for i in range(30):
        writer.record(_row(i))
    real = writer._write
    extra = iter(range(1000, 1005))

    def write(batch, dedupe=False):
        real(batch, dedupe)
        for i in extra:  # a stream ending while the worker exits: one row per batch
            writer.record(_row(i))
            break

    monkeypatch.setattr(writer, "_write", write)
    assert writer.close(timeout=5) == 0
    assert _committed(db_path) == 35 and writer.spilled == 0


def test_without_gevent_flush_writes_straight_through(db_path, monkeypatch):
    turns = []
    monkeypatch.setattr(gevent, "sleep", lambda *a: turns.append(a))
    writer = RequestLogWriter(batch_size=10)
    for i in range(45):
        writer.record(_row(i))
    assert writer.flush(force=True) == 45
    assert turns == []  # threads are preempted: no gevent call outside a gevent worker


def test_recover_lets_other_greenlets_run_between_imported_batches(db_path, tmp_path, under_gevent):
    spill_dir = tmp_path / "spill"
    spill_dir.mkdir()
    (spill_dir / "active-1000-99999-deadbeef.jsonl").write_bytes(b"".join(spill_mod.encode(_row(i)) for i in range(25)))
    writer = RequestLogWriter(batch_size=10, spill_dir=spill_dir)
    bystander = Bystander(db_path)
    assert writer.recover(force=True) == 25
    seen = bystander.stop()
    assert [n for n in seen if 0 < n < 25] == [10, 20]
    assert _committed(db_path) == 25


def test_off_loop_runs_in_a_native_thread_while_greenlets_go_on(under_gevent):
    ticks = []

    def ticker():
        for _ in range(1000):
            ticks.append(time.monotonic())
            gevent.sleep(0.001)

    greenlet = gevent.spawn(ticker)
    gevent.sleep(0)

    def blocking():
        started = time.monotonic()
        time.sleep(0.2)  # a blocking C call: the unpatched sleep
        return threading.get_ident(), started, time.monotonic()

    ident, started, ended = helpers.off_loop(blocking)
    greenlet.kill()
    assert ident != threading.get_ident()
    assert sum(started <= t <= ended for t in ticks) >= 10  # the loop went on meanwhile


def test_off_loop_outside_gevent_is_a_plain_call():
    assert helpers.off_loop(threading.get_ident) == threading.get_ident()


# --- checkpoints ------------------------------------------------------------------------------

def _fill_wal(writer: RequestLogWriter, start: int, count: int) -> None:
    for i in range(start, start + count):
        writer.record(_row(i))
    writer.flush(force=True)


def test_connections_leave_checkpoints_to_the_background_loop(db_path):
    assert database.execute_sql("PRAGMA wal_autocheckpoint").fetchone()[0] == 10_000
    assert database.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_checkpointer_copies_the_wal_into_the_database_file_off_the_loop(db_path, under_gevent, monkeypatch):
    threads = []
    real = wal.checkpoint

    def checkpoint(path):
        threads.append(threading.get_ident())
        return real(path)

    monkeypatch.setattr(wal, "checkpoint", checkpoint)
    writer = RequestLogWriter()
    _fill_wal(writer, 0, 200)
    wal_file = Path(f"{db_path}-wal")
    size_before = db_path.stat().st_size
    assert wal_file.stat().st_size > 200_000  # the rows are in the log, not yet in the database file
    checkpointer = wal.Checkpointer(threshold=100_000)
    assert checkpointer.tick(writer.written) is True
    assert threads and threads[0] != threading.get_ident()
    assert db_path.stat().st_size > size_before + 200_000  # copied into the database file
    busy, frames, copied = wal.checkpoint(str(db_path))
    assert busy == 0 and copied == frames  # nothing was left to copy
    assert RequestLog.select().count() == 200


def test_checkpointer_waits_for_writes_for_its_interval_and_for_a_big_enough_wal(db_path):
    writer = RequestLogWriter()
    threshold = os.path.getsize(f"{db_path}-wal") + 150_000  # the migrations' pages are in the log too
    checkpointer = wal.Checkpointer(threshold=threshold, interval=3600)
    assert checkpointer.tick(writer.written) is False  # nothing written yet
    _fill_wal(writer, 0, 10)
    assert os.path.getsize(f"{db_path}-wal") < threshold
    assert checkpointer.tick(writer.written) is False  # the log is still small
    _fill_wal(writer, 10, 200)
    assert checkpointer.tick(writer.written) is True
    assert checkpointer.tick(writer.written) is False  # no new rows
    _fill_wal(writer, 210, 200)
    assert checkpointer.tick(writer.written) is False  # within its interval
    assert checkpointer.runs == 1


def test_checkpointer_ignores_databases_without_a_file(monkeypatch):
    prepare_database(Config(database_url="sqlite:///:memory:"))
    try:
        assert wal.sqlite_file() is None
        assert wal.Checkpointer(threshold=0).tick(1) is False
    finally:
        database.close()


def test_a_failed_checkpoint_is_logged_and_the_loop_goes_on(db_path, monkeypatch, caplog):
    def fail(path):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(wal, "checkpoint", fail)
    writer = RequestLogWriter()
    _fill_wal(writer, 0, 100)
    assert wal.Checkpointer(threshold=1).tick(writer.written) is False
    assert "SQLite checkpoint failed (disk I/O error)" in caplog.text


# --- idle moments -------------------------------------------------------------------------------

class Busy:
    """Requests keeping the loop busy: a greenlet whose socket is always ready, for ``seconds``."""

    def __init__(self, seconds: float):
        self.turns: list[float] = []
        self._ours, self._peer = socket.socketpair()
        self._peer.sendall(b"x" * 100_000)
        self._until = time.monotonic() + seconds
        self.greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while time.monotonic() < self._until:
            wait_read(self._ours.fileno())
            self._ours.recv(1)
            self.turns.append(time.monotonic())
        self._ours.close()
        self._peer.close()


def test_idle_work_runs_at_once_outside_gevent():
    done = []
    helpers.when_idle(lambda: done.append(1))
    assert done == [1]


def test_idle_work_waits_for_the_requests_ready_to_run(under_gevent):
    done = []
    busy = Busy(0.005)  # well under IDLE_WAIT
    helpers.when_idle(lambda: done.append(time.monotonic()))
    assert done == []  # not inside the call
    busy.greenlet.join(1)
    gevent.sleep(0.001)
    assert len(done) == 1 and done[0] > busy.turns[-1]  # after the last ready turn


def test_idle_work_runs_within_idle_wait_on_a_worker_that_is_never_idle(under_gevent):
    done = []
    busy = Busy(10 * helpers.IDLE_WAIT)
    started = time.monotonic()
    helpers.when_idle(lambda: done.append(time.monotonic()))
    busy.greenlet.join(5)
    assert len(done) == 1
    assert done[0] < busy.turns[-1]  # it did not wait for the load to end…
    assert done[0] - started >= helpers.IDLE_WAIT * 0.9  # …but for IDLE_WAIT


def test_idle_work_runs_in_order_and_one_failure_stops_nothing(under_gevent, caplog):
    done = []
    helpers.when_idle(lambda: done.append("first"))
    helpers.when_idle(lambda: 1 / 0)
    helpers.when_idle(lambda: done.append("third"))
    gevent.sleep(0.01)
    assert done == ["first", "third"]
    assert "work done in an idle moment failed" in caplog.text and "ZeroDivisionError" in caplog.text
    helpers.when_idle(lambda: done.append("later"))  # the greenlet goes on serving
    gevent.sleep(0.01)
    assert done[-1] == "later"


def test_run_idle_work_runs_what_waits_now(under_gevent):
    done = []
    helpers.when_idle(lambda: done.append(1))
    helpers.run_idle_work()  # a worker about to exit
    assert done == [1]
    gevent.sleep(0.01)
    assert done == [1]  # not twice


def test_a_record_finished_later_keeps_its_latency_and_is_written_once(db_path, under_gevent):
    writer = RequestLogWriter()
    record = RequestRecord("req_1", "POST", "/v1/chat/completions", "openai", writer)
    time.sleep(0.05)
    record.finish_later(200)
    assert writer.pending == 0 and not record.done  # the caller went on
    time.sleep(0.2)  # the next request, say (blocking: the loop cannot run meanwhile)
    assert not record.done
    deadline = time.monotonic() + 2
    while not record.done and time.monotonic() < deadline:
        gevent.sleep(0.005)  # the loop's turns: the idle greenlet runs in the first idle moment
    assert record.done and writer.pending == 1
    record.finish(500)  # a second finish does nothing
    assert writer.flush(force=True) == 1
    row = RequestLog.get(RequestLog.request_id == "req_1")
    assert row.status == 200 and 50 <= row.latency_ms < 200  # up to finish_later, not to the idle moment


# --- turns for a greenlet that never waits ------------------------------------------------------

def _spin(seconds: float) -> None:
    """A piece of work holding the CPU, as a request whose sockets are all ready does."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        pass


class Hog:
    """A connection whose requests are always there: ``pieces`` pieces of work of ``piece`` seconds,
    never waiting, with ``between()`` after each (what the worker does between two requests)."""

    def __init__(self, pieces: int, piece: float, between):
        self.pieces, self.piece, self.between = pieces, piece, between
        self.done: list[float] = []
        self.greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        for _ in range(self.pieces):
            _spin(self.piece)
            self.done.append(time.monotonic())
            self.between()


def _first_turn_during(between) -> int:
    """How many of a hog's 40 pieces were done when a connection whose request is ready got its first turn."""
    ours, peer = socket.socketpair()
    peer.sendall(b"x")
    first_turn: list[int] = []
    hogs: list[Hog] = []

    def bystander() -> None:
        wait_read(ours.fileno())  # ready at once: runs at the loop's first poll
        first_turn.append(len(hogs[0].done))

    watcher = gevent.spawn(bystander)
    gevent.sleep(0)  # it starts, and waits on its socket
    hogs.append(Hog(40, 0.0005, between))
    hogs[0].greenlet.join(5)
    watcher.join(5)
    ours.close()
    peer.close()
    return first_turn[0]


def test_a_greenlet_that_never_waits_holds_the_loop_without_turns(under_gevent):
    """The problem take_turn_if_due solves: nobody else runs until the hog is done."""
    assert _first_turn_during(lambda: None) == 40


def test_with_turns_the_others_run_before_the_hog_is_done(under_gevent):
    # within two slices (4–5 pieces each): at the first turn the hog's timer fires before the
    # bystander's socket is served in the same turn of the loop, and the hog runs one more slice
    first = _first_turn_during(helpers.take_turn_if_due)
    assert first < 40 and first <= 2 * (helpers.TURN_SLICE / 0.0005 + 1)


def test_take_turn_if_due_lets_the_others_run_every_slice(under_gevent):
    other: list[int] = []
    hog = Hog(60, 0.0005, helpers.take_turn_if_due)  # 30 ms of work in 0.5 ms pieces

    def bystander() -> None:  # a connection whose request is ready: a turn each time the loop polls
        ours, peer = socket.socketpair()
        peer.sendall(b"x" * 1000)
        while not hog.greenlet.dead:
            wait_read(ours.fileno())
            ours.recv(1)
            other.append(len(hog.done))
        ours.close()
        peer.close()

    watcher = gevent.spawn(bystander)
    hog.greenlet.join(5)
    watcher.join(5)
    during = [n for n in other if 0 < n < 60]
    # a turn every TURN_SLICE (2 ms: every 4–5 pieces) while the hog works, not one at its end
    steps = [b - a for a, b in itertools.pairwise(during)]
    assert len(steps) >= 5 and max(steps) <= helpers.TURN_SLICE / 0.0005 + 2, other


def test_take_turn_if_due_yields_nothing_when_the_loop_has_just_polled(under_gevent, monkeypatch):
    slept = []
    monkeypatch.setattr(gevent, "sleep", lambda seconds=0: slept.append(seconds))
    for _ in range(5):  # a worker at low load: every request waited for its upstream
        gevent.get_hub().loop.run(once=True)  # the loop polls (what a wait goes through)
        _spin(0.003)
        helpers.take_turn_if_due()
    assert slept == []


def test_take_turn_if_due_is_a_no_op_outside_gevent(monkeypatch):
    """Threads are preempted anyway: no turn is taken, however long since the loop last polled."""
    slept = []
    monkeypatch.setattr(gevent, "sleep", lambda seconds=0: slept.append(seconds))
    for _ in range(3):
        _spin(helpers.TURN_SLICE * 1.5)
        helpers.take_turn_if_due()
    assert slept == []
