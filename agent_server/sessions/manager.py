"""SessionManager: every session's record, the loaded ones, and where each one runs."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from agent_server.agent.transcript import Transcript
from agent_server.errors import InvalidField, ProfileNotFound, SessionNotFound
from agent_server.events import names
from agent_server.events.log import MAX_UNSTORED, Event, stored_events_after
from agent_server.persistence.types import SessionRecord, StoredEvent
from agent_server.profiles import ProfileCatalog
from agent_server.sessions.session import AgentSession, SessionServices

log = logging.getLogger(__name__)


class SessionManager:
    """Creates, loads, finds and unloads sessions.

    "Which process runs this session" is answered here alone (``owns``); with one
    process the answer is always this one.
    """

    def __init__(self, services: SessionServices, profiles: ProfileCatalog) -> None:
        self._services = services
        self._persistence = services.persistence
        self.profiles = profiles
        self._records: dict[str, SessionRecord] = {}
        self._loaded: dict[str, AgentSession] = {}
        self._loading: dict[str, threading.Lock] = {}
        self._unloading: dict[str, threading.Event] = {}

    # -- start-up ---------------------------------------------------------------------
    def start(self) -> None:
        """Read every session record; mark turns cut short by a crash as interrupted."""
        self._records = {r.session_id: r for r in self._persistence.list_all_sessions()}
        for record in list(self._records.values()):
            if record.metadata.get("turnInFlight"):
                self._recover_interrupted_turn(record)

    def _recover_interrupted_turn(self, record: SessionRecord) -> None:
        message_id = record.metadata["turnInFlight"]
        data = self._persistence.load_session(record.session_id)
        transcript = Transcript.from_json(data.raw_transcript if data else None)
        transcript.repair("interrupted: the server stopped during this turn")
        self._persistence.save_transcript(record.session_id, transcript.to_json())
        # events clients saw live may not have been stored before the crash: number on
        # past any seq they can have seen, so that none is reused (a gap, not a lie)
        seq = self._persistence.last_event_seq(record.session_id) + MAX_UNSTORED + 1
        self._persistence.append_events(
            record.session_id,
            [
                StoredEvent(
                    seq,
                    names.TURN_INTERRUPTED,
                    {"messageId": message_id, "reason": "server_restarted"},
                )
            ],
        )
        metadata = {k: v for k, v in record.metadata.items() if k != "turnInFlight"}
        self._persistence.update_session_record(record.session_id, metadata=metadata)
        self._records[record.session_id] = record.replace(metadata=metadata)
        log.info(
            "session %s: turn %s marked interrupted (server restarted)",
            record.session_id,
            message_id,
        )

    # -- queries ----------------------------------------------------------------------
    def owns(self, session_id: str) -> bool:
        return True

    def records(self) -> list[SessionRecord]:
        return sorted(self._records.values(), key=lambda r: r.created_at)

    def record(self, session_id: str) -> SessionRecord:
        session = self._loaded.get(session_id)
        if session is not None:
            return session.record
        try:
            return self._records[session_id]
        except KeyError:
            raise SessionNotFound(
                f"no session with id {session_id!r}: list sessions with GET /sessions"
            ) from None

    def get_loaded_sessions(self) -> list[AgentSession]:
        return list(self._loaded.values())

    def get_session(self, session_id: str) -> AgentSession | None:
        """The loaded session, or None if it is not loaded (or unknown)."""
        return self._loaded.get(session_id)

    def runtime_state(self, session_id: str) -> dict:
        session = self._loaded.get(session_id)
        if session is not None:
            return session.runtime_state()
        return {
            "isLoaded": False,
            "sandbox": None,
            "turn": {"running": False, "queued": 0, "messageId": None},
        }

    # -- lifecycle --------------------------------------------------------------------
    def create_session(
        self,
        agent_profile_id: str | None = None,
        name: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> SessionRecord:
        profile_id = agent_profile_id or "default"
        if self.profiles.get(profile_id) is None:
            raise ProfileNotFound(
                f"no agent profile {profile_id!r}: list profiles with GET /agent-profiles"
            )
        record = SessionRecord(
            session_id="ses_" + uuid.uuid4().hex,
            agent_profile_id=profile_id,
            name=name,
            options=dict(options or {}),
        )
        self._persistence.create_session_record(record)
        self._records[record.session_id] = record
        self._broadcast_list("created", record.session_id)
        return record

    def load_session(self, session_id: str) -> AgentSession:
        """The loaded session, loading it from storage first if needed."""
        session = self._loaded.get(session_id)
        if session is not None:
            return session
        record = self.record(session_id)
        lock = self._loading.setdefault(session_id, threading.Lock())
        try:
            with lock:  # two messages at once load the session once
                session = self._loaded.get(session_id)
                if session is not None:
                    return session
                session = self._build_session(record)
                self._loaded[session_id] = session
        finally:
            self._loading.pop(session_id, None)
        session.emit_status()
        self._broadcast_list("loaded", session_id)
        return session

    def _build_session(self, record: SessionRecord) -> AgentSession:
        session_id = record.session_id
        profile = self.profiles.get(record.agent_profile_id)
        if profile is None:
            raise ProfileNotFound(
                f"session {session_id} uses agent profile {record.agent_profile_id!r}, "
                "which no longer exists: restore the profile file or create a new session"
            )
        data = self._persistence.load_session(session_id)
        return AgentSession(
            data.record if data else record,
            profile,
            self._services,
            raw_transcript=data.raw_transcript if data else None,
            last_seq=self._persistence.last_event_seq(session_id),
        )

    def unload_session(self, session_id: str, reason: str = "unloaded") -> bool:
        """Sync and unload; False if it was not loaded.

        A second unload while one runs (the idle job and a DELETE) waits for the first,
        so that nothing of the session is written after it returns (e.g. after a purge).
        """
        session = self._loaded.get(session_id)
        if session is None:
            return False
        running = self._unloading.get(session_id)
        if running is not None:
            running.wait(timeout=60)
            return True
        done = self._unloading[session_id] = threading.Event()
        try:
            session.close(reason)
        finally:
            self._loaded.pop(session_id, None)
            self._records[session_id] = session.record
            del self._unloading[session_id]
            done.set()
            self._broadcast_list("unloaded", session_id)
        return True

    def delete_session(self, session_id: str, *, purge: bool = False) -> None:
        self.record(session_id)  # 404 for an unknown id
        self.unload_session(session_id, reason="deleted" if purge else "unloaded")
        if purge:
            self._persistence.delete_session(session_id)
            self._records.pop(session_id, None)
            destroy = getattr(self._services.sandbox_provider, "destroy", None)
            if destroy is not None:
                destroy(session_id)
            self._broadcast_list("deleted", session_id)

    def shutdown(self) -> None:
        for session_id in list(self._loaded):
            try:
                self.unload_session(session_id, reason="server_shutdown")
            except Exception:
                log.exception("unloading %s at shutdown failed", session_id)

    # -- events -----------------------------------------------------------------------
    def events_after(self, session_id: str, after: int) -> list[Event]:
        session = self._loaded.get(session_id)
        if session is not None:
            return session.log.events_after(after)
        self.record(session_id)
        return stored_events_after(session_id, self._persistence, after)

    def last_seq(self, session_id: str) -> int:
        session = self._loaded.get(session_id)
        if session is not None:
            return session.log.last_seq
        return self._persistence.last_event_seq(session_id)

    def _broadcast_list(self, change: str, session_id: str) -> None:
        self._services.bus.broadcast(
            Event(
                None,
                None,
                names.SESSIONS_LIST,
                {
                    "change": change,
                    "sessionId": session_id,
                    "count": len(self._records),
                },
            )
        )


def validate_options(options: Any) -> dict:
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise InvalidField(
            'sessionOptions must be a JSON object, e.g. {"model": "claude-sonnet-4-6"}'
        )
    model = options.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidField("sessionOptions.model must be a string model id")
    return options
