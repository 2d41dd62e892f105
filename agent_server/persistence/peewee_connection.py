"""PeeweeConnections: the database, its pool and each call's borrowed connection.

Under gevent (see STACK-NOTES):
- Every call checks a connection out of a bounded pool for its greenlet and returns it
  at the end, so greenlets never share a connection mid-query. Peewee keeps the
  current connection in a ``threading.local``, which gevent makes greenlet-local.
- PostgreSQL: psycopg 3 waits cooperatively when imported after gevent's patch.
- SQLite: its busy handler sleeps inside C and blocks the hub, so greenlets never
  wait on SQLite's lock for each other: one process-wide lock per database file is
  held around each short write transaction (BEGIN IMMEDIATE ... COMMIT), and WAL lets
  readers go on meanwhile. What can still wait inside C (COMMIT on the disk, WAL
  checkpoints, BEGIN IMMEDIATE behind another process) runs on a native thread of
  the file's own: sqlite_waits.py.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import peewee
from playhouse.pool import (
    MaxConnectionsExceeded,
    PooledPostgresqlDatabase,
    PooledSqliteDatabase,
)

from agent_server.errors import PersistenceError
from agent_server.persistence.peewee_errors import VENDOR_ERRORS, first_line, translated
from agent_server.persistence.sqlite_waits import (
    BUSY_TIMEOUT_MS,
    Checkpoints,
    DatabaseThread,
    begin_immediate,
    commit,
)

logger = logging.getLogger(__name__)

# one write lock per SQLite file for the whole process (two adapters on one file
# must not interleave writes either); created lazily, after gevent has patched. And
# one thread per file for its COMMITs and busy BEGINs (sqlite_waits.py).
_SQLITE_WRITE_LOCKS: dict[str, threading.Lock] = {}
_SQLITE_THREADS: dict[str, DatabaseThread] = {}


@dataclass(frozen=True)
class DatabaseTarget:
    kind: str  # "sqlite" | "postgres"
    where: str  # for messages: a file path or host:port/dbname (never a password)
    location: str  # the SQLite path or the PostgreSQL URL


class PeeweeConnections:
    """A pooled Peewee database for one DATABASE_URL, lent out one call at a time."""

    def __init__(
        self,
        database_url: str,
        *,
        max_connections: int = 10,
        connect_timeout: int = 5,
        pool_timeout: float = 10.0,
    ) -> None:
        self.target = _parse_url(database_url)
        _warn_if_imported_before_gevent()
        self._max_connections = max_connections
        self._pool_timeout = pool_timeout
        self._write_lock: threading.Lock | None = None
        self._thread: DatabaseThread | None = None
        self._memory = self.target.location == ":memory:"
        self.checkpoints: Checkpoints | None = None  # a SQLite file's WAL checkpoints
        if self.target.kind == "sqlite":
            self._db = self._sqlite_database(max_connections)
        else:
            self._db = self._postgres_database(max_connections, connect_timeout)

    @property
    def database(self) -> peewee.Database:
        """The pooled Peewee database; use it only inside ``op``."""
        return self._db

    # -- construction -------------------------------------------------------------------
    def _sqlite_database(self, max_connections: int) -> peewee.Database:
        path = self.target.location
        if self._memory:
            # every connection to :memory: is a new empty database: share just one
            max_connections = 1
            lock_key = f":memory:{id(self)}"
        else:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise PersistenceError(
                    f"cannot create the directory of SQLite database {path}: "
                    f"{exc.strerror}"
                ) from exc
            lock_key = os.path.realpath(path)
            self.checkpoints = Checkpoints(self._checkpoint)
        self._write_lock = _SQLITE_WRITE_LOCKS.setdefault(lock_key, threading.Lock())
        self._thread = _SQLITE_THREADS.setdefault(lock_key, DatabaseThread())
        return PooledSqliteDatabase(
            path,
            max_connections=max_connections,
            timeout=self._pool_timeout,
            autoconnect=False,
            check_same_thread=False,  # COMMITs and checkpoints run on the file's thread
            pragmas={
                "journal_mode": "wal",
                "synchronous": "normal",  # durable across crashes of the process
                "foreign_keys": 1,
                "busy_timeout": BUSY_TIMEOUT_MS,  # only other processes hold the lock
                # checkpoints run off the hub (Checkpoints), never inside a COMMIT
                "wal_autocheckpoint": 0 if self.checkpoints else 1000,
            },
        )

    def _postgres_database(
        self, max_connections: int, connect_timeout: int
    ) -> peewee.Database:
        url = self.target.location
        params: dict[str, Any] = {}
        if "connect_timeout=" not in url:
            params["connect_timeout"] = connect_timeout
        return PooledPostgresqlDatabase(
            url,
            max_connections=max_connections,
            stale_timeout=300,
            timeout=self._pool_timeout,
            autoconnect=False,
            prefer_psycopg3=True,
            **params,
        )

    def close(self) -> None:
        """Close every pooled connection (a failure is only logged)."""
        if self.checkpoints is not None:
            self.checkpoints.join(timeout=10)  # its connection is lent out until then
        try:
            self._db.close_all()
        except VENDOR_ERRORS as exc:
            logger.warning("closing %s failed: %s", self.target.where, exc)

    @contextmanager
    def op(
        self, action: str, *, write: bool = False, single: bool = False
    ) -> Iterator[None]:
        """One call's connection, and for writes its transaction (and SQLite lock).

        ``single``: the write is one statement; on PostgreSQL (autocommit
        connections) it runs without BEGIN/COMMIT, as its own transaction.
        """
        if not self._db.is_closed():
            # a nested call on this greenlet: the outer one owns it all
            with translated(action, self.target.where):
                yield
            return
        if single and self._write_lock is None:
            write = False  # the statement is its own transaction
        lock = self._write_lock if write and self._write_lock else nullcontext()
        with lock:
            self._connect()
            discard = False
            try:
                with translated(action, self.target.where):
                    if write and self._thread is not None:  # SQLite
                        begin_immediate(self._db.connection(), self._thread)
                    elif write:
                        self._db.execute_sql("BEGIN")
                    try:
                        yield
                    except Exception:
                        if write:
                            self._rollback()
                        raise
                    if write and self._thread is not None and not self._memory:
                        commit(self._db.connection(), self._thread)
                    elif write:
                        self._db.execute_sql("COMMIT")
            except BaseException as exc:
                # killed mid-call (GreenletExit, gevent.Timeout, an interrupt): the
                # connection may be mid-query, so it is closed, not pooled again
                discard = not isinstance(exc, Exception) and not self._memory
                raise
            finally:
                self._release(discard)
        if write and self.checkpoints is not None:
            self.checkpoints.wrote()

    def _checkpoint(self) -> None:
        """Copy the WAL's committed pages into the database file, off the hub (on the
        file's thread, so COMMITs wait behind it there, not on the hub)."""
        with self.op("checkpointing the write-ahead log"):
            conn = self._db.connection()
            self._thread.run(
                lambda: conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            )

    def _connect(self) -> None:
        try:
            self._db.connect()
        except MaxConnectionsExceeded:
            raise PersistenceError(
                f"all {self._max_connections} connections to {self.target.where} "
                f"stayed busy for {self._pool_timeout:g} s"
            ) from None
        except VENDOR_ERRORS as exc:
            raise PersistenceError(self._connect_message(exc)) from exc

    def _connect_message(self, exc: Exception) -> str:
        detail = first_line(exc)
        if self.target.kind == "postgres":
            return (
                f"cannot connect to DATABASE_URL {self.target.where}: {detail} "
                "(is PostgreSQL running and reachable?)"
            )
        return f"cannot open SQLite database {self.target.where}: {detail}"

    def _rollback(self) -> None:
        try:
            self._db.execute_sql("ROLLBACK")
        except VENDOR_ERRORS as exc:
            # the original error is the one worth raising; this one is logged
            logger.warning("rollback on %s failed: %s", self.target.where, exc)

    def _release(self, discard: bool) -> None:
        try:
            if discard:
                self._db.manual_close()
            else:
                self._db.close()
        except VENDOR_ERRORS as exc:
            logger.warning("releasing a connection to %s: %s", self.target.where, exc)


def _parse_url(url: str) -> DatabaseTarget:
    if url in (":memory:", "sqlite://", "sqlite:///:memory:"):
        return DatabaseTarget("sqlite", ":memory:", ":memory:")
    if url.startswith("sqlite:///"):
        path = unquote(url[len("sqlite:///") :].split("?", 1)[0])
        if path:
            return DatabaseTarget("sqlite", path, path)
    if url.startswith(("postgres://", "postgresql://")):
        url = "postgresql://" + url.split("://", 1)[1]
        parts = urlsplit(url)
        try:
            port = parts.port or 5432
        except ValueError:
            raise PersistenceError(
                "DATABASE_URL has an invalid port; use postgresql://user@host:port/dbname"
            ) from None
        where = f"{parts.hostname or 'localhost'}:{port}{parts.path or '/'}"
        return DatabaseTarget("postgres", where, url)
    raise PersistenceError(
        "DATABASE_URL is not supported: use sqlite:///path/to/file.db, "
        "sqlite:///:memory: or postgresql://user:password@host:port/dbname"
    )


def _warn_if_imported_before_gevent() -> None:
    # peewee picks its greenlet-local state class and psycopg its wait function at
    # import: imported before gevent's patch, greenlets share one connection and
    # every PostgreSQL query blocks the whole process
    monkey = sys.modules.get("gevent.monkey")
    if not (monkey and monkey.is_module_patched("threading")):
        return
    waiting = sys.modules.get("psycopg.waiting")
    blocking_pg = waiting is not None and getattr(waiting, "wait", None) is getattr(
        waiting, "wait_c", object()
    )
    shared_state = not issubclass(peewee._ConnectionLocal, threading.local)
    if blocking_pg or shared_state:
        logger.warning(
            "peewee or psycopg was imported before gevent patched the standard "
            "library: database calls will block or share connections across "
            "greenlets (patch first, see wsgi.py)"
        )
