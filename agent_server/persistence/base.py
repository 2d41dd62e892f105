"""PersistenceAdapter: the integration point for a user's own storage.

Implement the nine abstract methods and the runtime works: sessions, transcripts,
workspace files and agent profiles survive idle unloads and restarts. The event-log
methods have working defaults that keep the log in this process's memory (replay after
a reconnect works; replay of events from before a restart needs an adapter that stores
them, as the bundled ones do).

Every method may be called from any greenlet; implementations must not hold a lock
across network I/O for longer than one statement or transaction.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from agent_server.persistence.types import (
    AgentProfile,
    AgentProfileSummary,
    SessionData,
    SessionRecord,
    StoredEvent,
    WorkspaceFile,
)


class PersistenceAdapter(ABC):
    """Stores sessions, transcripts, workspace files, agent profiles and event logs."""

    # -- sessions -------------------------------------------------------------------
    @abstractmethod
    def list_all_sessions(self) -> list[SessionRecord]:
        """Every stored session record, oldest first (by created_at)."""

    @abstractmethod
    def load_session(self, session_id: str) -> SessionData | None:
        """The record, raw transcript and workspace files of a session; None if unknown."""

    @abstractmethod
    def create_session_record(self, record: SessionRecord) -> None:
        """Store a new session. A second record with the same id raises ValueError."""

    @abstractmethod
    def update_session_record(self, session_id: str, **updates: Any) -> None:
        """Change only the named fields (see types.UPDATABLE_FIELDS); others stay.

        An unknown session id or field name raises KeyError / ValueError.
        """

    # -- storage ----------------------------------------------------------------------
    @abstractmethod
    def save_transcript(self, session_id: str, raw_transcript: str) -> None:
        """Replace the session's raw transcript (an opaque JSON string) with this one."""

    @abstractmethod
    def save_workspace_file(self, session_id: str, file: WorkspaceFile) -> None:
        """Insert or replace the file at ``file.path``; content and encoding round-trip."""

    @abstractmethod
    def delete_session_file(self, session_id: str, path: str) -> None:
        """Forget the file at ``path``; deleting a file that is not there is not an error."""

    # -- agent profiles -------------------------------------------------------------------
    @abstractmethod
    def list_agent_profiles(self) -> list[AgentProfileSummary]:
        """Summaries of the profiles this store holds (may be empty)."""

    @abstractmethod
    def load_agent_profile(self, profile_id: str) -> AgentProfile | None:
        """The full profile, or None if this store has no profile with that id."""

    # -- event log (working defaults: in memory) --------------------------------------
    def append_events(self, session_id: str, events: Sequence[StoredEvent]) -> None:
        """Append rows to the session's event log; their seqs rise and are all new."""
        with self._memory_lock():
            self._memory_events().setdefault(session_id, []).extend(events)

    def append_events_many(
        self, batches: Mapping[str, Sequence[StoredEvent]]
    ) -> dict[str, Exception]:
        """Append the rows of several sessions; the sessions whose rows were not stored.

        The default calls ``append_events`` once per session; adapters may write all
        of them in one transaction (the bundled one does). A session's rows are stored
        whole or not at all, and one session's failure never loses another's rows.
        """
        failed: dict[str, Exception] = {}
        for session_id, rows in batches.items():
            try:
                self.append_events(session_id, rows)
            except Exception as exc:
                failed[session_id] = exc
        return failed

    def list_events(
        self, session_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        """Rows with seq > after_seq in seq order, at most ``limit`` of them."""
        with self._memory_lock():
            rows = [
                e
                for e in self._memory_events().get(session_id, ())
                if e.seq > after_seq
            ]
        rows.sort(key=lambda e: e.seq)
        return rows if limit is None else rows[:limit]

    def last_event_seq(self, session_id: str) -> int:
        """The highest stored seq of the session's event log; 0 when it has none."""
        rows = self.list_events(session_id)
        return rows[-1].seq if rows else 0

    def delete_session(self, session_id: str) -> None:
        """Purge the session: record, transcript, files and events. Unknown ids are fine.

        The default forgets only the in-memory event log; adapters that store sessions
        override it to delete their rows too.
        """
        with self._memory_lock():
            self._memory_events().pop(session_id, None)

    def close(self) -> None:
        """Release connections; the adapter is not used afterwards."""

    # the default event log lives on the instance, created on first use so that
    # subclasses need not call super().__init__()
    def _memory_events(self) -> dict[str, list[StoredEvent]]:
        try:
            return self.__events
        except AttributeError:
            self.__events: dict[str, list[StoredEvent]] = {}
            return self.__events

    def _memory_lock(self) -> threading.Lock:
        try:
            return self.__lock
        except AttributeError:
            self.__lock = threading.Lock()
            return self.__lock
