"""(6) Storage cost of streaming (PostgreSQL) and the replay-from-storage rate.

Writes are counted by the database itself: a statement-level trigger on the event
table records each INSERT statement (one per EventLog flush) with its sessions.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

import gevent
import psycopg

from agent_server.devtools.bench.client import Http, Subscriber
from agent_server.devtools.bench.fake import spec
from agent_server.devtools.bench.latency import RATE

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
FLUSH_WAIT = 3.0  # > the runtime's 2 s event-log flush interval

_COUNTER = """
CREATE TABLE IF NOT EXISTS bench_writes (session_id text, rows_in int);
CREATE OR REPLACE FUNCTION bench_count() RETURNS trigger AS $$
BEGIN
  INSERT INTO bench_writes SELECT session_id, count(*) FROM new_rows GROUP BY session_id;
  RETURN NULL;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS bench_count ON agent_events;
CREATE TRIGGER bench_count AFTER INSERT ON agent_events
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bench_count();
"""


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new PostgreSQL database for this run, dropped afterwards; yields its URL."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def install_counter(database_url: str) -> None:
    """Count event-log writes (after the server has created its tables)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(_COUNTER)


def _stream(server_url: str, session_id: str, content: str) -> None:
    http, sub = Http(server_url), Subscriber(server_url)
    try:
        sub.subscribe(session_id)
        http.message(session_id, content)
        sub.until_turn_end()
    finally:
        sub.close()
        http.close()


def writes(server_url: str, database_url: str, sessions: int, deltas: int) -> dict:
    """Event-log INSERTs and rows per 1,000 deltas, each session streaming at RATE."""
    http = Http(server_url)
    ids = [http.create_session(name="storage") for _ in range(sessions)]
    http.close()
    gevent.joinall(
        [gevent.spawn(_stream, server_url, sid, spec(deltas, RATE)) for sid in ids],
        raise_error=True,
    )
    time.sleep(FLUSH_WAIT)
    with psycopg.connect(database_url) as conn:
        statements, rows_logged = conn.execute(
            "SELECT count(*), coalesce(sum(rows_in), 0) FROM bench_writes "
            "WHERE session_id = ANY(%s)",
            (ids,),
        ).fetchone()
        rows, stored_deltas = conn.execute(
            "SELECT count(*), coalesce(sum(CASE WHEN name = 'session:block:delta' "
            "THEN json_array_length((data::json)->'deltas') END), 0) "
            "FROM agent_events WHERE session_id = ANY(%s)",
            (ids,),
        ).fetchone()
    per_k = 1000 / max(1, stored_deltas)
    return {
        "sessions": sessions,
        "deltas_per_session": deltas,
        "rate_per_session": RATE,
        "deltas_stored": int(stored_deltas),
        "writes": statements,
        "rows": rows,
        "rows_per_write_logged": int(rows_logged),
        "writes_per_1000_deltas": round(statements * per_k, 2),
        "rows_per_1000_deltas": round(rows * per_k, 2),
    }


def replay(server_url: str, deltas: int, repeats: int = 3) -> dict:
    """Events/s from GET /sessions/:id/events?after=0 on an unloaded session."""
    http = Http(server_url)
    sid = http.create_session(name="replay")
    _stream(server_url, sid, spec(deltas, 0))
    status, _ = http.request("DELETE", f"/sessions/{sid}")
    if status not in (200, 204):
        raise RuntimeError(f"unload: {status}")
    best, count, last_seq = None, 0, 0
    for _ in range(repeats):
        started = time.perf_counter()
        status, body = http.request("GET", f"/sessions/{sid}/events?after=0")
        took = time.perf_counter() - started
        if status != 200:
            raise RuntimeError(f"replay: {status} {body}")
        count, last_seq = len(body["events"]), body["lastSeq"]
        best = took if best is None else min(best, took)
    http.close()
    return {
        "events": count,
        "last_seq": last_seq,
        "complete": count == last_seq,
        "seconds": round(best, 4),
        "events_per_s": round(count / best),
    }
