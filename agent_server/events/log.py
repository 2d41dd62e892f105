"""A session's event log: sequence numbers, a ring buffer of recent events, the stored log.

Every event of a session gets the next ``seq``. Events go to an in-memory ring (fast
replay for clients that reconnect) and, in batches, to the persistence adapter.
Consecutive text deltas of one block are coalesced into one stored row (its ``seq`` is
the last delta's; ``data["deltas"]`` holds every piece), so storage costs a row per run
of deltas, never a row per token, and replay from storage still yields each delta with
its own seq: no gap, no duplicate.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone

import gevent

from agent_server.events.names import BLOCK_DELTA
from agent_server.persistence.base import PersistenceAdapter
from agent_server.persistence.types import StoredEvent

log = logging.getLogger(__name__)

RING_SIZE = 4096
# at most this many events are ever unstored (a flush is forced first)
MAX_UNSTORED = RING_SIZE // 2
FLUSH_GROUP = 16  # logs per adapter call in flush_logs


class Event:
    """One event of a session, with its wire form encoded once for every client."""

    __slots__ = ("session_id", "seq", "name", "data", "_wire", "frame")

    def __init__(self, session_id: str | None, seq: int | None, name: str, data: dict):
        self.session_id = session_id
        self.seq = seq
        self.name = name
        self.data = data
        self._wire: str | None = None
        # the WebSocket frame of ``wire``, built once by the transport for every client
        self.frame: bytes | None = None

    def to_dict(self) -> dict:
        return {
            "event": self.name,
            "sessionId": self.session_id,
            "seq": self.seq,
            "data": self.data,
        }

    @property
    def wire(self) -> str:
        """The JSON text sent to clients (``{"event", "sessionId", "seq", "data"}``)."""
        if self._wire is None:
            parts = _delta_parts(self.name, self.data)
            if (
                parts is not None
                and type(self.seq) is int
                and type(self.session_id) is str
            ):
                # the hot path, built by hand: the general encoder cost ~10 µs a delta
                cid, block_id, delta = parts
                self._wire = _DELTA_WIRE % (
                    _string(self.session_id),
                    self.seq,
                    _string(cid),
                    _string(block_id),
                    _string(delta),
                )
            else:
                self._wire = _encode(self.to_dict())
        return self._wire


def _json_default(value):
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# one encoder for every event: json.dumps with options builds a new one per call
_encode = json.JSONEncoder(separators=(",", ":"), default=_json_default).encode
_string = json.encoder.encode_basestring_ascii  # what _encode does for a str
_DELTA_WIRE = (
    '{"event":"' + BLOCK_DELTA + '","sessionId":%s,"seq":%d,'
    '"data":{"conversationId":%s,"blockId":%s,"delta":%s}}'
)


class EventLog:
    """Numbers, keeps and stores one session's events."""

    def __init__(
        self,
        session_id: str,
        persistence: PersistenceAdapter,
        *,
        last_seq: int = 0,
        on_event: Callable[[Event], None] | None = None,
        ring_size: int = RING_SIZE,
    ) -> None:
        self.session_id = session_id
        self._persistence = persistence
        self._on_event = on_event
        self.last_seq = last_seq
        # tuples, not Events (see _ring_entry): a full ring (100 sessions keep
        # ~400,000 events) must not make every garbage collection longer
        self._ring: deque[tuple] = deque(maxlen=ring_size)
        self._pending: list[StoredEvent] = []
        self._pending_deltas: list[str] | None = (
            None  # the open coalesced delta row's pieces
        )
        self._pending_block: str | None = None
        self._run_seq = 0  # the last seq of the open delta run
        self._flush_lock = threading.Lock()
        self._max_pending = ring_size // 2
        # events (not rows: a coalesced delta row holds many) not yet handed to storage
        self._unstored = 0
        self._taken = 0  # of those, the ones a take_pending flush holds
        self.rows_written = 0
        self.writes = 0

    def append(self, name: str, data: dict) -> Event:
        """Give the event the next seq, keep it, queue it for storage and publish it."""
        self.last_seq += 1
        event = Event(self.session_id, self.last_seq, name, data)
        self._ring.append(_ring_entry(event.seq, name, data))
        self._unstored += 1
        if name == BLOCK_DELTA:
            self._queue_delta(event)
        else:
            self._close_run()
            self._pending.append(StoredEvent(event.seq, name, data))
        if self._on_event is not None:
            self._on_event(event)
        if self._unstored >= self._max_pending:
            # never let an unstored event fall out of the ring; after publishing, since
            # the write lets other greenlets append (and publish) meanwhile
            self.flush()
        return event

    def _queue_delta(self, event: Event) -> None:
        block_id = event.data.get("blockId")
        if self._pending_deltas is not None and block_id == self._pending_block:
            # the hot path: the row's seq is set once, when the run closes
            self._pending_deltas.append(event.data["delta"])
            self._run_seq = event.seq
            return
        self._close_run()
        pieces = [event.data["delta"]]
        data = {
            "conversationId": event.data.get("conversationId"),
            "blockId": block_id,
            "deltas": pieces,
        }
        self._pending.append(StoredEvent(event.seq, BLOCK_DELTA, data))
        self._pending_deltas, self._pending_block = pieces, block_id
        self._run_seq = event.seq

    def _close_run(self) -> None:
        """End the open run of deltas: its row takes the seq of its last delta."""
        if self._pending_deltas is None:
            return
        row = self._pending[-1]
        if row.seq != self._run_seq:
            self._pending[-1] = StoredEvent(self._run_seq, row.name, row.data)
        self._pending_deltas = self._pending_block = None

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def flush(self) -> None:
        """Write the queued rows in one call to the adapter (after any flush under way).

        The write runs in a greenlet of its own: a caller killed meanwhile (an
        interrupted turn) must not leave rows that were stored queued again, which
        every later flush would then fail to store.
        """
        gevent.spawn(self._flush).get()

    def _flush(self) -> None:
        self._flush_lock.acquire()
        rows, stored = self._take(), False
        try:
            if rows:
                self._persistence.append_events(self.session_id, rows)
            stored = True
        finally:
            self.flushed(rows, stored)

    def take_pending(self) -> list[StoredEvent] | None:
        """For a flush of many logs at once: the queued rows, with the flush lock held.

        None when another flush holds the lock. The caller must call ``flushed``.
        """
        if not self._flush_lock.acquire(blocking=False):
            return None
        return self._take()

    def _take(self) -> list[StoredEvent]:
        self._close_run()
        rows, self._pending = self._pending, []
        self._taken, self._unstored = self._unstored, 0
        return rows

    def flushed(self, rows: list[StoredEvent], stored: bool) -> None:
        """End a flush (releasing its lock); rows not stored are queued again."""
        try:
            if stored and rows:
                self.writes += 1
                self.rows_written += len(rows)
            elif rows:
                # keep them for the next flush rather than lose them
                self._pending[:0] = rows
                self._unstored += self._taken
        finally:
            self._taken = 0
            self._flush_lock.release()

    def events_after(self, after: int) -> list[Event]:
        """Every event with seq > after, from memory where possible, else from storage."""
        if after >= self.last_seq:
            return []
        sid, ring = self.session_id, self._ring
        first_in_ring = ring[0][0] if ring else self.last_seq + 1
        if after + 1 >= first_in_ring:
            return [_from_ring(sid, entry) for entry in ring if entry[0] > after]
        stored = [
            e
            for e in expand_stored(
                self.session_id, self._persistence.list_events(self.session_id, after)
            )
            if after < e.seq < first_in_ring
        ]
        return stored + [_from_ring(sid, entry) for entry in ring]


def _delta_parts(name: str, data: dict) -> tuple[str, str, str] | None:
    """(conversationId, blockId, delta) of a plain text delta; None for anything else."""
    if name != BLOCK_DELTA or len(data) != 3:
        return None
    cid, block_id, delta = parts = (
        data.get("conversationId"),
        data.get("blockId"),
        data.get("delta"),
    )
    if type(cid) is str and type(block_id) is str and type(delta) is str:
        return parts
    return None


def _ring_entry(seq: int, name: str, data: dict) -> tuple:
    """What the ring keeps of an event: for a text delta, (seq, cid, block, text).

    A tuple of strings is soon dropped by the garbage collector's tracking; one that
    holds a dict is tracked for good. Other events keep (seq, name, data).
    """
    parts = _delta_parts(name, data)
    return (seq, *parts) if parts is not None else (seq, name, data)


def _from_ring(session_id: str, entry: tuple) -> Event:
    if len(entry) == 4:
        seq, cid, block_id, delta = entry
        data = {"conversationId": cid, "blockId": block_id, "delta": delta}
        return Event(session_id, seq, BLOCK_DELTA, data)
    return Event(session_id, *entry)


def flush_logs(logs: list[EventLog]) -> int:
    """Write the queued rows of many logs, one adapter call per adapter and up to
    FLUSH_GROUP logs; rows written.

    Other greenlets run between the calls: SQLite's calls block the whole process,
    and one call for 100 streaming sessions held every stream for ~5 ms.
    A log whose rows could not be stored keeps them for the next flush (the failure
    is logged); a log being flushed by someone else is skipped this round.
    """
    groups: dict[int, list[EventLog]] = {}
    for event_log in logs:
        groups.setdefault(id(event_log._persistence), []).append(event_log)
    written = 0
    for group in groups.values():
        for start in range(0, len(group), FLUSH_GROUP):
            if start:
                # > 0: sleep(0) may resume this before the loop polls for I/O
                gevent.sleep(0.0001)
            written += _flush_group(group[start : start + FLUSH_GROUP])
    return written


def _flush_group(logs: list[EventLog]) -> int:
    taken: list[tuple[EventLog, list[StoredEvent]]] = []
    failed: dict[str, Exception] = {}
    try:
        for event_log in logs:
            rows = event_log.take_pending()
            if rows is not None:
                taken.append((event_log, rows))
        batches = {lg.session_id: rows for lg, rows in taken if rows}
        if batches:
            failed = logs[0]._persistence.append_events_many(batches)
    except BaseException:
        for event_log, rows in taken:
            event_log.flushed(rows, False)
        raise
    written = 0
    for event_log, rows in taken:
        error = failed.get(event_log.session_id)
        event_log.flushed(rows, error is None)
        if error is None:
            written += len(rows)
        else:
            log.error(
                "storing events of session %s failed: %s", event_log.session_id, error
            )
    return written


def expand_stored(session_id: str, rows: list[StoredEvent]) -> list[Event]:
    """Turn stored rows back into events, splitting coalesced delta rows."""
    events: list[Event] = []
    for row in rows:
        data = row.data
        if row.name == BLOCK_DELTA and "deltas" in data:
            pieces = data["deltas"]
            first = row.seq - len(pieces) + 1
            conv, block_id = data.get("conversationId"), data.get("blockId")
            for i, piece in enumerate(pieces):
                events.append(
                    Event(
                        session_id,
                        first + i,
                        BLOCK_DELTA,
                        {"conversationId": conv, "blockId": block_id, "delta": piece},
                    )
                )
        else:
            events.append(Event(session_id, row.seq, row.name, dict(data)))
    return events


def stored_events_after(
    session_id: str, persistence: PersistenceAdapter, after: int
) -> list[Event]:
    """Replay of an unloaded session: everything stored after ``after``."""
    return [
        e
        for e in expand_stored(session_id, persistence.list_events(session_id, after))
        if e.seq > after
    ]
