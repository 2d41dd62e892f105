"""InMemoryPersistence: the real fake adapter; everything lives in this process."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent_server.persistence.base import PersistenceAdapter
from agent_server.persistence.types import (
    AgentProfile,
    AgentProfileSummary,
    SessionData,
    SessionRecord,
    StoredEvent,
    WorkspaceFile,
)
from agent_server.persistence.values import (
    check_events,
    check_file,
    check_record,
    check_updates,
    json_dict,
)


@dataclass
class _Stored:
    record: SessionRecord
    transcript: str | None = None
    files: dict[str, WorkspaceFile] = field(default_factory=dict)


class InMemoryPersistence(PersistenceAdapter):
    """Keeps sessions, files, events and profiles in dicts; for tests and demos."""

    def __init__(self, profiles: Iterable[AgentProfile] = ()) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, _Stored] = {}
        # the event log is kept apart from the sessions, as in the default log: a
        # late event of a deleted or never-stored session is not an error
        self._events: dict[str, list[StoredEvent]] = {}
        self._profiles: dict[str, AgentProfile] = {p.id: p for p in profiles}

    # -- sessions -------------------------------------------------------------------
    def list_all_sessions(self) -> list[SessionRecord]:
        with self._lock:
            records = [_copy(s.record) for s in self._sessions.values()]
        # sorted() is stable: equal created_at keeps insertion order
        return sorted(records, key=lambda r: r.created_at)

    def load_session(self, session_id: str) -> SessionData | None:
        with self._lock:
            stored = self._sessions.get(session_id)
            if stored is None:
                return None
            files = tuple(sorted(stored.files.values(), key=lambda f: f.path))
            return SessionData(_copy(stored.record), stored.transcript, files)

    def create_session_record(self, record: SessionRecord) -> None:
        record = check_record(record)
        with self._lock:
            if record.session_id in self._sessions:
                raise ValueError(f"session {record.session_id!r} already exists")
            self._sessions[record.session_id] = _Stored(record)

    def update_session_record(self, session_id: str, **updates: Any) -> None:
        clean = check_updates(updates)
        with self._lock:
            stored = self._get(session_id)
            stored.record = stored.record.replace(**clean)

    # -- storage ----------------------------------------------------------------------
    def save_transcript(self, session_id: str, raw_transcript: str) -> None:
        if not isinstance(raw_transcript, str):
            raise ValueError("raw_transcript must be a string")
        with self._lock:
            self._get(session_id).transcript = raw_transcript

    def save_workspace_file(self, session_id: str, file: WorkspaceFile) -> None:
        file = check_file(file)
        with self._lock:
            self._get(session_id).files[file.path] = file

    def delete_session_file(self, session_id: str, path: str) -> None:
        with self._lock:
            stored = self._sessions.get(session_id)
            if stored is not None:
                stored.files.pop(path, None)

    # -- agent profiles -------------------------------------------------------------------
    def list_agent_profiles(self) -> list[AgentProfileSummary]:
        with self._lock:
            return [p.summary() for p in self._profiles.values()]

    def load_agent_profile(self, profile_id: str) -> AgentProfile | None:
        with self._lock:
            return self._profiles.get(profile_id)

    def save_agent_profile(self, profile: AgentProfile) -> None:
        """Insert or replace a profile (not part of the adapter contract)."""
        with self._lock:
            self._profiles[profile.id] = profile

    # -- event log ----------------------------------------------------------------------
    def append_events(self, session_id: str, events: Sequence[StoredEvent]) -> None:
        rows = sorted(check_events(events), key=lambda e: e.seq)
        if not rows:
            return
        with self._lock:
            log = self._events.setdefault(session_id, [])
            if log and rows[0].seq <= log[-1].seq:
                taken = {e.seq for e in log}
                if any(e.seq in taken for e in rows):
                    raise ValueError(
                        f"session {session_id!r} already has an event with one of "
                        "these seqs"
                    )
                log.extend(rows)
                log.sort(key=lambda e: e.seq)
            else:
                log.extend(rows)

    def list_events(
        self, session_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        with self._lock:
            rows = [e for e in self._events.get(session_id, ()) if e.seq > after_seq]
        rows = rows if limit is None else rows[:limit]
        # copies, so that a caller mutating data cannot change the log
        return [StoredEvent(e.seq, e.name, json_dict(e.data, "data")) for e in rows]

    def last_event_seq(self, session_id: str) -> int:
        with self._lock:
            log = self._events.get(session_id)
            return log[-1].seq if log else 0

    def delete_session(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)
            self._events.pop(session_id, None)

    def _get(self, session_id: str) -> _Stored:
        try:
            return self._sessions[session_id]
        except KeyError:
            raise KeyError(f"unknown session {session_id!r}") from None


def _copy(record: SessionRecord) -> SessionRecord:
    # callers may mutate the dicts they get; the stored ones must not change
    return record.replace(
        metadata=json_dict(record.metadata, "metadata"),
        options=json_dict(record.options, "options"),
    )
