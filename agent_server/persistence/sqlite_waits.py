"""The SQLite calls that can wait on the disk or on another process, off gevent's hub.

A sqlite3 call blocks the whole process while it runs: every greenlet, every stream.
The calls that can wait run on a native thread of the database file's own
(``DatabaseThread``; sqlite3 lets go of the GIL while SQLite works) while their
greenlet waits cooperatively:

- ``BEGIN IMMEDIATE`` while another process writes (SQLite's busy handler sleeps
  inside C for up to ``BUSY_TIMEOUT_MS``). It is tried at once first, without
  waiting; only a busy database goes to the thread.
- COMMIT, which writes the transaction to the WAL file. On ext4 that write() can wait
  10-25 ms while the journal commits another file's fsync (under the streaming
  benchmark, server p99 was 10-20 ms with COMMIT on the hub, 2.1-7.6 ms and mostly
  under 3.5 with COMMIT here; docs/benchmarks.md).
- WAL checkpoints. By default the COMMIT that takes the WAL past 1,000 pages copies
  them into the database file and fsyncs it, inside C. Connections run with
  ``wal_autocheckpoint=0`` instead, and ``Checkpoints`` runs a PASSIVE checkpoint on
  the same thread, at most once per ``CHECKPOINT_EVERY`` while writes go on.

The statements of a write transaction (page cache only) and reads stay on the hub.

The price: a write's COMMIT waits for a loop pass and the GIL on its way back, with
the write lock held. On a hub saturated by CPU-bound greenlets, writes therefore slow
down as everything else does (a greenlet waiting on PostgreSQL does too), where a
write that never yields would not; measured in docs/benchmarks.md.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import time
from collections.abc import Callable

import gevent
from gevent import get_hub, getcurrent
from gevent.threadpool import ThreadPool

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000  # how long a write waits for another process's
CHECKPOINT_EVERY = 1.0  # seconds between WAL checkpoints while writes go on


def cooperative() -> bool:
    """True when waiting here lets other greenlets run: gevent patched threading and
    this is not the hub itself. Otherwise the calls below just run where they are."""
    monkey = sys.modules.get("gevent.monkey")
    if not (monkey and monkey.is_module_patched("threading")):
        return False
    return getcurrent() is not get_hub()


class DatabaseThread:
    """One native thread for a database file's waiting calls, started on first use
    (so in the process that uses it, after any fork)."""

    def __init__(self) -> None:
        self._pool: ThreadPool | None = None

    def run(self, fn: Callable, *args):
        if self._pool is None:
            self._pool = ThreadPool(1)
        return off_hub(self._pool, fn, *args)


def off_hub(pool: ThreadPool, fn: Callable, *args):
    """``fn(*args)`` on a thread of ``pool``; this greenlet waits for it.

    Its exception is raised here (not printed by the pool). A greenlet killed while
    it waits (a Timeout, an interrupt) still waits for the call to end before the
    kill goes on, since the connection is in use until then; a second kill in that
    time is dropped.
    """
    if not cooperative():
        return fn(*args)

    def call():
        try:
            return True, fn(*args)
        except Exception as exc:
            return False, exc

    pending = pool.spawn(call)
    try:
        ok, value = pending.get()
    except BaseException:
        while not pending.ready():
            try:
                pending.wait()
            except BaseException:
                continue
        raise
    if ok:
        return value
    raise value


def begin_immediate(conn: sqlite3.Connection, thread: DatabaseThread) -> None:
    """``BEGIN IMMEDIATE`` on ``conn``: at once, or after waiting off the hub (up to
    BUSY_TIMEOUT_MS) while another process holds the write lock."""
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY:
            raise
        thread.run(_begin_waiting, conn)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def _begin_waiting(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("BEGIN IMMEDIATE")


def commit(conn: sqlite3.Connection, thread: DatabaseThread) -> None:
    """COMMIT on ``conn``, off the hub."""
    thread.run(conn.execute, "COMMIT")


class Checkpoints:
    """Runs ``checkpoint()`` after writes, at most once per CHECKPOINT_EVERY, in a
    greenlet of its own (a caller killed meanwhile does not cut it short)."""

    def __init__(self, checkpoint: Callable[[], None]) -> None:
        self._checkpoint = checkpoint
        self._last = time.monotonic()
        self._running: gevent.Greenlet | None = None

    def wrote(self) -> None:
        now = time.monotonic()
        if self._running is not None or now - self._last < CHECKPOINT_EVERY:
            return
        self._last = now
        if not cooperative():
            self._run()
            return
        self._running = gevent.spawn(self._run)

    def _run(self) -> None:
        try:
            self._checkpoint()
        except Exception as exc:  # the next one copies what this one did not
            logger.warning("WAL checkpoint failed: %s", exc)
        finally:
            self._running = None
            self._last = time.monotonic()

    def join(self, timeout: float | None = None) -> None:
        """Wait for a checkpoint under way (tests, shutdown)."""
        running = self._running
        if running is not None:
            running.join(timeout)
