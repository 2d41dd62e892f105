"""PeeweePersistence under gevent: many greenlets, one event loop that never stalls."""

from __future__ import annotations

import sqlite3
import time

import gevent
import psycopg
import pytest

from agent_server.errors import PersistenceError
from agent_server.persistence.peewee_persistence import PeeweePersistence
from agent_server.persistence.sqlite_waits import CHECKPOINT_EVERY, DatabaseThread
from agent_server.persistence.types import SessionRecord, StoredEvent, WorkspaceFile


def busy_writer(store: PeeweePersistence, n: int) -> int:
    """Records, files and events, yielding between writes; returns writes done."""
    writes = 0
    for r in range(2):
        sid = f"w{n}-{r}"
        store.create_session_record(SessionRecord(sid, "default"))
        writes += 1
        for i in range(5):
            store.save_workspace_file(sid, WorkspaceFile(f"f{i}.txt", f"{n}/{i}"))
            store.append_events(sid, [StoredEvent(2 * i + 1, "e", {"i": i})])
            store.append_events(sid, [StoredEvent(2 * i + 2, "e", {"i": i})])
            store.update_session_record(sid, metadata={"i": i})
            writes += 4
            gevent.sleep(0)
            assert store.load_session(sid) is not None
    return writes


def test_fifty_greenlet_writers_on_one_sqlite_file_never_hit_a_locked_database(
    tmp_path,
):
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    # two adapters on one file, as after a reload: they share the file's write lock
    stores = [PeeweePersistence(url), PeeweePersistence(url)]
    for store in stores:
        # every statement yields to the hub, as it would with a query hook or log
        # handler doing network I/O: transactions now overlap unless serialised
        # (without the write lock this test fails with "database is locked")
        store.database.query_hooks.append(lambda event: gevent.sleep(0))
    try:
        greenlets = [gevent.spawn(busy_writer, stores[n % 2], n) for n in range(50)]
        gevent.joinall(greenlets, timeout=60)
        errors = [g.exception for g in greenlets if g.exception is not None]
        assert errors == []
        assert sum(g.value for g in greenlets) == 50 * 42

        sessions = stores[0].list_all_sessions()
        assert len(sessions) == 100
        some = stores[1].load_session("w49-1")
        assert len(some.workspace_files) == 5
        assert [e.seq for e in stores[1].list_events("w49-1")] == list(range(1, 11))
    finally:
        for store in stores:
            store.close()


class Ticker:
    """Counts 10 ms ticks of a greenlet: how often the hub let other greenlets run."""

    def __init__(self) -> None:
        self.count = 0
        self._greenlet = gevent.spawn(self._tick)

    def _tick(self) -> None:
        while True:
            gevent.sleep(0.01)
            self.count += 1

    def stop(self) -> None:
        self._greenlet.kill()


def hold_write_lock(path, seconds: float) -> gevent.Greenlet:
    """Another process's view: a raw connection holds SQLite's write lock a while."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")

    def release():
        gevent.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    return gevent.spawn(release)


def test_a_sqlite_write_waiting_for_another_process_lets_other_greenlets_run(
    tmp_path,
):
    path = tmp_path / "shared.db"
    store = PeeweePersistence(f"sqlite:///{path}")
    try:
        holder = hold_write_lock(path, 0.6)
        ticks = Ticker()
        started = time.monotonic()
        # waits inside SQLite (busy_timeout) until the other connection commits
        store.append_events("s", [StoredEvent(1, "e", {"i": 1})])
        waited = time.monotonic() - started
        ticks.stop()
        holder.join()
        assert 0.5 <= waited < 3
        # with the wait on the hub, nothing else would run (and the holder could
        # never commit: the write would fail after busy_timeout)
        assert ticks.count >= 30
        assert [e.seq for e in store.list_events("s")] == [1]
    finally:
        store.close()


def test_a_greenlet_killed_while_its_sqlite_write_waits_leaves_a_usable_store(
    tmp_path,
):
    path = tmp_path / "shared.db"
    store = PeeweePersistence(f"sqlite:///{path}", max_connections=1, pool_timeout=2)
    try:
        holder = hold_write_lock(path, 0.5)
        with pytest.raises(gevent.Timeout), gevent.Timeout(0.1):
            store.append_events("s", [StoredEvent(1, "e", {"i": 1})])
        holder.join()
        # the killed write stored nothing and gave its connection back
        assert store.list_events("s") == []
        store.append_events("s", [StoredEvent(1, "e", {"i": 2})])
        assert [e.data for e in store.list_events("s")] == [{"i": 2}]
    finally:
        store.close()


def test_the_wal_reaches_the_database_file_by_a_checkpoint_outside_any_commit(
    tmp_path,
):
    path = tmp_path / "wal.db"
    store = PeeweePersistence(f"sqlite:///{path}")
    try:
        big = {"text": "x" * 100_000}
        # 6 MB: past the 1,000 pages at which a COMMIT would checkpoint by default
        store.append_events("s", [StoredEvent(i, "e", big) for i in range(1, 61)])
        assert path.stat().st_size < 1_000_000, "the COMMIT copied the WAL itself"
        gevent.sleep(CHECKPOINT_EVERY + 0.2)
        store.append_events("s", [StoredEvent(61, "e", {})])  # starts a checkpoint
        deadline = time.monotonic() + 10
        while path.stat().st_size < 6_000_000:
            assert time.monotonic() < deadline, "no checkpoint after the write"
            gevent.sleep(0.05)
        assert len(store.list_events("s")) == 61
    finally:
        store.close()


def test_postgres_writers_in_many_greenlets_share_a_bounded_pool(pg_url):
    store = PeeweePersistence(pg_url, max_connections=4)
    try:
        greenlets = [gevent.spawn(busy_writer, store, n) for n in range(20)]
        gevent.joinall(greenlets, timeout=60)
        assert [g.exception for g in greenlets if g.exception] == []
        assert len(store.list_all_sessions()) == 40
    finally:
        store.close()


def test_a_slow_postgres_query_does_not_block_other_greenlets(pg_url):
    store = PeeweePersistence(pg_url)
    try:
        ticks = Ticker()
        gevent.sleep(0)
        store.execute_sql("SELECT pg_sleep(1)")
        ticks.stop()
        # a blocked hub would allow no tick at all during the second
        assert ticks.count >= 50
    finally:
        store.close()


def test_concurrent_greenlets_use_separate_connections_up_to_the_limit(pg_url):
    store = PeeweePersistence(pg_url, max_connections=3)
    dbname = pg_url.rsplit("/", 1)[1]
    seen = []

    def count_connections():
        with psycopg.connect(pg_url, autocommit=True) as conn:
            while True:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (dbname,),
                ).fetchone()
                seen.append(row[0])
                gevent.sleep(0.05)

    try:
        watcher = gevent.spawn(count_connections)
        started = time.monotonic()
        sleepers = [
            gevent.spawn(store.execute_sql, "SELECT pg_sleep(0.5)") for _ in range(6)
        ]
        gevent.joinall(sleepers, raise_error=True)
        elapsed = time.monotonic() - started
        watcher.kill()
        # 6 half-second queries on 3 connections: two rounds, not six
        assert 0.9 <= elapsed < 2.5
        assert max(seen) == 3
    finally:
        store.close()


def test_a_greenlet_killed_mid_query_does_not_leak_its_connection(pg_url):
    store = PeeweePersistence(pg_url, max_connections=1, pool_timeout=3)
    try:
        with pytest.raises(gevent.Timeout), gevent.Timeout(0.3):
            store.execute_sql("SELECT pg_sleep(5)")
        # with the only connection still checked out this would wait and fail
        store.create_session_record(SessionRecord("after", "default"))
        assert store.load_session("after") is not None
    finally:
        store.close()


def test_unreachable_postgres_fails_fast_with_a_clear_message():
    # nothing listens on port 1 of 127.0.0.1
    started = time.monotonic()
    with pytest.raises(PersistenceError) as caught:
        PeeweePersistence("postgres://postgres:secret@127.0.0.1:1/app")
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "127.0.0.1:1/app" in message
    assert "PostgreSQL running" in message
    assert "secret" not in message
    assert not isinstance(caught.value.__cause__, PersistenceError)


def test_unsupported_database_url_is_refused():
    with pytest.raises(PersistenceError, match="sqlite:///"):
        PeeweePersistence("mysql://localhost/app")


def test_sqlite_file_that_cannot_be_created_gives_persistence_error(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(PersistenceError, match="not-a-dir"):
        PeeweePersistence(f"sqlite:///{blocker / 'db.sqlite'}")


def test_sqlite_database_is_in_wal_mode(tmp_path):
    store = PeeweePersistence(f"sqlite:///{tmp_path / 'wal.db'}")
    try:
        assert store.execute_sql("PRAGMA journal_mode") == [("wal",)]
    finally:
        store.close()


def test_relative_sqlite_url_creates_missing_directories(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = PeeweePersistence("sqlite:///data/nested/agent-server.db")
    store.close()
    assert (tmp_path / "data" / "nested" / "agent-server.db").is_file()


def test_an_error_on_the_database_thread_is_raised_to_the_caller_not_printed(capfd):
    def fails():
        raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        DatabaseThread().run(fails)
    gevent.sleep(0.05)  # anything the pool would print is out by now
    assert "Traceback" not in capfd.readouterr().err
