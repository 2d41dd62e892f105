"""PeeweePersistence: the bundled adapter, on SQLite (default) or PostgreSQL.

Each call borrows its greenlet's connection (and for writes its transaction and the
SQLite write lock) from ``PeeweeConnections`` (peewee_connection.py, which explains
how that works under gevent). Vendor exceptions become PersistenceError there and in
peewee_errors.py; nothing above sees a peewee type.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import peewee

from agent_server.errors import PersistenceError
from agent_server.persistence.base import PersistenceAdapter
from agent_server.persistence.models import (
    MODELS,
    EventRow,
    ProfileRow,
    SessionRow,
    TranscriptRow,
    WorkspaceFileRow,
)
from agent_server.persistence.peewee_connection import PeeweeConnections
from agent_server.persistence.types import (
    AgentProfile,
    AgentProfileSummary,
    SessionData,
    SessionRecord,
    StoredEvent,
    WorkspaceFile,
    utcnow,
)
from agent_server.persistence.values import (
    check_file,
    check_record,
    check_updates,
    event_rows,
    to_json,
)
from agent_server.profiles import profile_from_dict, profile_to_dict

_INSERT_BATCH = 500  # rows per INSERT; well under SQLite's bound-variable limit
_INSERT_EVENTS = (
    f'INSERT INTO "{EventRow._meta.table_name}" '
    '("session_id", "seq", "name", "data") VALUES '
)
_SETUP_LOCK_KEY = 0x6167_656E_7473  # pg_advisory_xact_lock key: one setup at a time


class PeeweePersistence(PersistenceAdapter):
    """Stores everything in SQLite (``sqlite:///path``) or PostgreSQL (``postgresql://``)."""

    def __init__(
        self,
        database_url: str,
        *,
        max_connections: int = 10,
        connect_timeout: int = 5,
        pool_timeout: float = 10.0,
    ) -> None:
        self._connections = PeeweeConnections(
            database_url,
            max_connections=max_connections,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
        )
        self._target = self._connections.target
        self._db = self._connections.database
        self._op = self._connections.op  # one call's connection and transaction
        self.setup()

    def setup(self) -> None:
        """Create the tables and indexes that do not exist yet (safe to repeat)."""
        with self._op("creating the tables", write=True):
            if self._target.kind == "postgres":
                # two workers starting together must not both create a table
                self._db.execute_sql(
                    "SELECT pg_advisory_xact_lock(%s)", (_SETUP_LOCK_KEY,)
                )
            for model in MODELS:
                peewee.SchemaManager(model, self._db).create_all(safe=True)

    @property
    def database(self) -> peewee.Database:
        """The underlying Peewee database (for diagnostics and tests only)."""
        return self._db

    def execute_sql(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run one statement on a pooled connection; its rows (diagnostics, tests)."""
        with self._op("running SQL"):
            cursor = self._db.execute_sql(sql, tuple(params))
            return list(cursor.fetchall()) if cursor.description else []

    def ping(self) -> None:
        """Raise PersistenceError unless the database answers."""
        self.execute_sql("SELECT 1")

    def close(self) -> None:
        """Close every pooled connection."""
        self._connections.close()

    # -- sessions -------------------------------------------------------------------
    def list_all_sessions(self) -> list[SessionRecord]:
        query = _session_columns().order_by(SessionRow.created_at, SessionRow.id)
        with self._op("listing sessions"):
            rows = list(query.tuples().execute(self._db))
        return [_record(row) for row in rows]

    def load_session(self, session_id: str) -> SessionData | None:
        session = (
            _session_columns(TranscriptRow.raw_transcript)
            .join(
                TranscriptRow,
                peewee.JOIN.LEFT_OUTER,
                on=(TranscriptRow.session == SessionRow.session_id),
            )
            .where(SessionRow.session_id == session_id)
        )
        files = (
            WorkspaceFileRow.select(
                WorkspaceFileRow.path,
                WorkspaceFileRow.content,
                WorkspaceFileRow.encoding,
                WorkspaceFileRow.size,
                WorkspaceFileRow.modified_at,
            )
            .where(WorkspaceFileRow.session == session_id)
            .order_by(WorkspaceFileRow.path)
        )
        with self._op(f"loading session {session_id!r}"):
            rows = list(session.tuples().execute(self._db))
            if not rows:
                return None
            file_rows = list(files.tuples().execute(self._db))
        return SessionData(
            record=_record(rows[0][:-1]),
            raw_transcript=rows[0][-1],
            workspace_files=tuple(_file(row) for row in file_rows),
        )

    def create_session_record(self, record: SessionRecord) -> None:
        record = check_record(record)
        query = SessionRow.insert(
            session_id=record.session_id,
            agent_profile_id=record.agent_profile_id,
            name=record.name,
            created_at=record.created_at,
            last_activity=record.last_activity,
            metadata=to_json(record.metadata, "metadata"),
            options=to_json(record.options, "options"),
        )
        # one statement: on PostgreSQL it commits on its own (autocommit), saving the
        # BEGIN and COMMIT round trips; the commit is just as durable
        with self._op(
            f"creating session {record.session_id!r}", write=True, single=True
        ):
            try:
                query.execute(self._db)
            except peewee.IntegrityError:
                raise ValueError(
                    f"session {record.session_id!r} already exists"
                ) from None

    def update_session_record(self, session_id: str, **updates: Any) -> None:
        clean = check_updates(updates)
        for key in ("metadata", "options"):
            if key in clean:
                clean[key] = to_json(clean[key], key)
        where = SessionRow.session_id == session_id
        # one statement either way: see create_session_record
        with self._op(f"updating session {session_id!r}", write=True, single=True):
            if clean:
                changed = SessionRow.update(clean).where(where).execute(self._db)
            else:
                changed = SessionRow.select().where(where).exists(self._db)
            if not changed:
                raise KeyError(f"unknown session {session_id!r}")

    # -- storage ----------------------------------------------------------------------
    def save_transcript(self, session_id: str, raw_transcript: str) -> None:
        if not isinstance(raw_transcript, str):
            raise ValueError("raw_transcript must be a string")
        query = TranscriptRow.insert(
            session=session_id, raw_transcript=raw_transcript
        ).on_conflict(
            conflict_target=[TranscriptRow.session],
            preserve=[TranscriptRow.raw_transcript],
        )
        with self._op(
            f"saving the transcript of {session_id!r}", write=True, single=True
        ):
            self._execute_for_session(query, session_id)

    def save_workspace_file(self, session_id: str, file: WorkspaceFile) -> None:
        file = check_file(file)
        query = WorkspaceFileRow.insert(
            session=session_id,
            path=file.path,
            content=file.content.encode("utf-8", "surrogatepass"),
            encoding=file.encoding,
            size=file.size,
            modified_at=file.modified_at,
        ).on_conflict(
            conflict_target=[WorkspaceFileRow.session, WorkspaceFileRow.path],
            preserve=[
                WorkspaceFileRow.content,
                WorkspaceFileRow.encoding,
                WorkspaceFileRow.size,
                WorkspaceFileRow.modified_at,
            ],
        )
        with self._op(
            f"saving file {file.path!r} of {session_id!r}", write=True, single=True
        ):
            self._execute_for_session(query, session_id)

    def delete_session_file(self, session_id: str, path: str) -> None:
        query = WorkspaceFileRow.delete().where(
            (WorkspaceFileRow.session == session_id) & (WorkspaceFileRow.path == path)
        )
        with self._op(
            f"deleting file {path!r} of {session_id!r}", write=True, single=True
        ):
            query.execute(self._db)

    # -- agent profiles -------------------------------------------------------------------
    def list_agent_profiles(self) -> list[AgentProfileSummary]:
        query = ProfileRow.select(
            ProfileRow.profile_id, ProfileRow.name, ProfileRow.description
        ).order_by(ProfileRow.profile_id)
        with self._op("listing agent profiles"):
            rows = list(query.tuples().execute(self._db))
        return [AgentProfileSummary(*row) for row in rows]

    def load_agent_profile(self, profile_id: str) -> AgentProfile | None:
        query = ProfileRow.select(ProfileRow.data).where(
            ProfileRow.profile_id == profile_id
        )
        with self._op(f"loading agent profile {profile_id!r}"):
            rows = list(query.tuples().execute(self._db))
        if not rows:
            return None
        source = f"agent profile {profile_id!r} stored in {self._target.where}"
        try:
            return profile_from_dict(json.loads(rows[0][0]), source=source)
        except ValueError as exc:
            raise PersistenceError(f"cannot use {exc}") from None

    def save_agent_profile(self, profile: AgentProfile) -> None:
        """Insert or replace a profile (not part of the adapter contract)."""
        query = ProfileRow.insert(
            profile_id=profile.id,
            name=profile.name,
            description=profile.description,
            data=to_json(profile_to_dict(profile), "profile"),
            updated_at=utcnow(),
        ).on_conflict(
            conflict_target=[ProfileRow.profile_id],
            preserve=[
                ProfileRow.name,
                ProfileRow.description,
                ProfileRow.data,
                ProfileRow.updated_at,
            ],
        )
        with self._op(f"saving agent profile {profile.id!r}", write=True):
            query.execute(self._db)

    # -- event log ----------------------------------------------------------------------
    def append_events(self, session_id: str, events: Sequence[StoredEvent]) -> None:
        rows = [(session_id, *row) for row in event_rows(events)]
        if not rows:
            return
        with self._op(f"appending events of {session_id!r}", write=True):
            try:
                self._insert_events(rows)
            except peewee.IntegrityError:
                raise ValueError(
                    f"session {session_id!r} already has an event with one of "
                    "these seqs"
                ) from None

    def append_events_many(
        self, batches: Mapping[str, Sequence[StoredEvent]]
    ) -> dict[str, Exception]:
        """Every session's rows in one transaction (one commit per flush round).

        If that fails (one session's rows clash, the database hiccups), each session
        is tried on its own so that one bad batch does not hold back the others.
        """
        try:
            rows = [
                (session_id, *row)
                for session_id, events in batches.items()
                for row in event_rows(events)
            ]
            if not rows:
                return {}
            with self._op(f"appending events of {len(batches)} sessions", write=True):
                self._insert_events(rows)
            return {}
        except (PersistenceError, ValueError, peewee.IntegrityError):
            # find the culprit: each session on its own
            return super().append_events_many(batches)

    def _insert_events(self, rows: Sequence[tuple[str, int, str, str]]) -> None:
        """(session_id, seq, name, data) rows in multi-row INSERTs.

        The statement is built here: peewee's query builder cost more than the
        database itself for a flush round's rows (and under SQLite the server's other
        greenlets wait for the whole call).
        """
        param = self._db.param
        for start in range(0, len(rows), _INSERT_BATCH):
            batch = rows[start : start + _INSERT_BATCH]
            values = ", ".join([f"({param}, {param}, {param}, {param})"] * len(batch))
            self._db.execute_sql(
                _INSERT_EVENTS + values, [v for row in batch for v in row]
            )

    def list_events(
        self, session_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        query = (
            EventRow.select(EventRow.seq, EventRow.name, EventRow.data)
            .where((EventRow.session_id == session_id) & (EventRow.seq > after_seq))
            .order_by(EventRow.seq)
        )
        if limit is not None:
            query = query.limit(limit)
        with self._op(f"listing events of {session_id!r}"):
            rows = list(query.tuples().execute(self._db))
        return [StoredEvent(seq, name, json.loads(data)) for seq, name, data in rows]

    def last_event_seq(self, session_id: str) -> int:
        query = EventRow.select(peewee.fn.MAX(EventRow.seq)).where(
            EventRow.session_id == session_id
        )
        with self._op(f"reading the last event seq of {session_id!r}"):
            return query.scalar(self._db) or 0

    def delete_session(self, session_id: str) -> None:
        queries = (
            EventRow.delete().where(EventRow.session_id == session_id),
            WorkspaceFileRow.delete().where(WorkspaceFileRow.session == session_id),
            TranscriptRow.delete().where(TranscriptRow.session == session_id),
            SessionRow.delete().where(SessionRow.session_id == session_id),
        )
        with self._op(f"deleting session {session_id!r}", write=True):
            for query in queries:
                query.execute(self._db)

    # -- constraint errors ----------------------------------------------------------------
    def _execute_for_session(self, query: peewee.Query, session_id: str) -> None:
        try:
            query.execute(self._db)
        except peewee.IntegrityError:
            # the only constraint left after the upsert: the session must exist
            raise KeyError(f"unknown session {session_id!r}") from None


# -- helpers ------------------------------------------------------------------------------


def _session_columns(*extra: peewee.Field) -> peewee.ModelSelect:
    return SessionRow.select(
        SessionRow.session_id,
        SessionRow.agent_profile_id,
        SessionRow.name,
        SessionRow.created_at,
        SessionRow.last_activity,
        SessionRow.metadata,
        SessionRow.options,
        *extra,
    )


def _record(row: Sequence[Any]) -> SessionRecord:
    session_id, profile_id, name, created_at, last_activity, metadata, options = row
    return SessionRecord(
        session_id=session_id,
        agent_profile_id=profile_id,
        name=name,
        created_at=created_at,
        last_activity=last_activity,
        metadata=json.loads(metadata),
        options=json.loads(options),
    )


def _file(row: Sequence[Any]) -> WorkspaceFile:
    path, content, encoding, size, modified_at = row
    return WorkspaceFile(
        path=path,
        content=bytes(content).decode("utf-8", "surrogatepass"),
        encoding=encoding,
        size=size,
        modified_at=modified_at,
    )
