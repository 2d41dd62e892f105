"""AgentSession: one conversation's lifecycle, message queue, turns and sandbox."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import gevent

from agent_server.agent.loop import AgentLoop
from agent_server.agent.transcript import Transcript
from agent_server.errors import Conflict, TurnInterrupted
from agent_server.events import names
from agent_server.events.bus import EventBus
from agent_server.events.log import EventLog
from agent_server.persistence.base import PersistenceAdapter
from agent_server.persistence.types import AgentProfile, SessionRecord, utcnow
from agent_server.sandbox.base import SandboxProvider
from agent_server.sessions.sandbox_handle import SandboxHandle
from agent_server.sessions.workspace_sync import WorkspaceSync

log = logging.getLogger(__name__)


@dataclass
class SessionServices:
    """What every session of a runtime shares."""

    persistence: PersistenceAdapter
    sandbox_provider: SandboxProvider
    bus: EventBus
    model_client: Callable[[], object]  # returns the ModelClient (created on first use)
    default_model: str


class AgentSession:
    """A loaded session: runs one turn at a time, queues the rest, owns its sandbox."""

    def __init__(
        self,
        record: SessionRecord,
        profile: AgentProfile,
        services: SessionServices,
        *,
        raw_transcript: str | None = None,
        last_seq: int = 0,
    ) -> None:
        self.record = record
        self.profile = profile
        self._services = services
        self.session_id = record.session_id
        self.log = EventLog(
            self.session_id,
            services.persistence,
            last_seq=last_seq,
            on_event=services.bus.publish,
        )
        self.transcript = Transcript.from_json(raw_transcript)
        self._saved_transcript = raw_transcript
        self.workspace = WorkspaceSync(self.session_id, services.persistence, self.emit)
        self.sandbox = SandboxHandle(
            self.session_id,
            services.sandbox_provider,
            env=dict(profile.environment_variables),
            load_files=self._files_for_new_sandbox,
            emit_status=self.emit_status,
            emit=self.emit,
            on_ready=self._sandbox_ready,
        )
        self._loop: AgentLoop | None = None
        self._queue: deque[tuple[str, str]] = deque()
        self._worker: gevent.Greenlet | None = None
        self._turn: gevent.Greenlet | None = None
        self.current_message_id: str | None = None
        self.last_activity = time.monotonic()
        self._scan_pending = False
        self._restored_paths: set[str] = set()
        self._save_lock = threading.Lock()
        self._record_lock = threading.Lock()  # one record update at a time
        self.closing = False  # close() has begun: no new turn may start
        self._interrupt_pending = False
        self.closed = False

    # -- events -----------------------------------------------------------------------
    def emit(self, name: str, data: dict):
        if name in names.TURN_ENDS and data.get("messageId") == self.current_message_id:
            # whoever hears that the turn ended may ask GET /sessions/:id at once:
            # it must not say the turn still runs (it is stored after this)
            self._turn = None
            self.current_message_id = None
        event = self.log.append(name, data)
        if name == names.BLOCK_COMPLETE and data["block"].get("type") == "tool_result":
            self._schedule_scan()
        return event

    def emit_status(self) -> None:
        self.emit(names.STATUS, {"runtime": self.runtime_state()})

    # -- state ------------------------------------------------------------------------
    def runtime_state(self) -> dict:
        return {
            "isLoaded": not self.closed,
            "sandbox": self.sandbox.state(),
            "turn": {
                "running": self.is_busy,
                "queued": len(self._queue),
                "messageId": self.current_message_id,
            },
        }

    def get_state(self) -> dict:
        """Record, runtime state, usage: what GET /sessions/:id reports besides blocks."""
        return {
            "record": self.record,
            "runtime": self.runtime_state(),
            "lastSeq": self.log.last_seq,
        }

    @property
    def is_busy(self) -> bool:
        # current_message_id covers the moment between dequeuing and spawning the turn
        return (
            self.current_message_id is not None
            or self._turn is not None
            or bool(self._queue)
        )

    # -- messages and turns -----------------------------------------------------------
    def send_message(self, content: str) -> dict:
        """Queue a message; it runs when the turns before it have finished."""
        if self.closing:
            # a turn started now would outlive the sandbox and the unload
            raise Conflict(
                f"session {self.session_id} is being unloaded: send the message again "
                "in a moment (the session is then loaded afresh)"
            )
        message_id = "msg_" + uuid.uuid4().hex[:24]
        queued = self.is_busy
        self._queue.append((message_id, content))
        self.touch()
        if self._worker is None or self._worker.dead:
            self._worker = gevent.spawn(self._work)
        if queued:
            self.emit_status()
        return {"sessionId": self.session_id, "messageId": message_id, "queued": queued}

    def interrupt(self) -> bool:
        """Stop the running turn (queued messages then run); False when none runs."""
        turn = self._turn
        if turn is not None and not turn.dead:
            turn.kill(TurnInterrupted("interrupted by user"), block=True, timeout=30)
            return True
        if self.current_message_id is not None:
            # taken off the queue, its turn not started yet: stop it as soon as it starts
            self._interrupt_pending = True
            return True
        return False

    def _work(self) -> None:
        while self._queue and not self.closing:
            message_id, content = self._queue.popleft()
            self.current_message_id = message_id
            self._interrupt_pending = False
            try:
                self._run_turn(message_id, content)
            except Exception:
                log.exception(
                    "turn %s of session %s crashed", message_id, self.session_id
                )
            finally:
                self.current_message_id = None
                self._turn = None
            self.emit_status()

    def _run_turn(self, message_id: str, content: str) -> None:
        self.sandbox.start()  # overlaps sandbox creation with the first model call
        loop = self._agent_loop()
        self._update_record(set_metadata={"turnInFlight": message_id})
        try:
            if self.closing:  # close() began while the record was written
                self._report_not_run(message_id, "session_unloaded")
                return
            self._turn = gevent.spawn(loop.run_turn, content, message_id=message_id)
            self.emit_status()
            if self._interrupt_pending:
                gevent.sleep(0)  # let the turn start, so that it ends as interrupted
                self._turn.kill(TurnInterrupted("interrupted by user"), block=False)
            self._turn.join()
        finally:
            # over (emit() already said so if its end event went out): it is stored
            # below while other greenlets, and requests, run
            self._turn = None
            self.current_message_id = None
            self.touch()
            self.save_transcript()
            self._update_record(drop_metadata=("turnInFlight",), last_activity=utcnow())
            self.log.flush()
            # no workspace scan here: each tool result already scheduled one

    def _report_not_run(self, message_id: str, reason: str) -> None:
        """A message answered 202 whose turn will never run: say so, never drop it silently."""
        self.emit(
            names.TURN_FAILED,
            {"messageId": message_id, "reason": reason, "usage": None},
        )

    def _agent_loop(self) -> AgentLoop:
        if self._loop is None:
            self._loop = AgentLoop(
                self._services.model_client(),
                self.profile,
                emit=self.emit,
                get_sandbox=self.sandbox.get,
                transcript=self.transcript,
                model=self.record.options.get("model"),
                default_model=self._services.default_model,
            )
        return self._loop

    # -- workspace --------------------------------------------------------------------
    def _files_for_new_sandbox(self):
        data = self._services.persistence.load_session(self.session_id)
        stored = list(data.workspace_files) if data else []
        self._restored_paths = {f.path for f in stored}
        if self.record.metadata.get("workspaceSeeded"):
            return stored
        defaults = [
            f
            for f in self.profile.default_workspace_files
            if f.path not in self._restored_paths
        ]
        return defaults + stored

    def _sandbox_ready(self, sandbox) -> None:
        # what came from storage is known; anything else in the new sandbox (the profile's
        # default files on the first start) is news, saved and reported by the scan
        self.workspace.reset(sandbox, restored=self._restored_paths)
        if not self.record.metadata.get("workspaceSeeded"):
            self._update_record(set_metadata={"workspaceSeeded": True})
        self._scan_now()

    def _schedule_scan(self) -> None:
        if not self._scan_pending:
            self._scan_pending = True
            gevent.spawn(self._scan_now)

    def _scan_now(self) -> int:
        self._scan_pending = False
        sandbox = self.sandbox.sandbox
        return self.workspace.scan(sandbox) if sandbox is not None else 0

    # -- persistence --------------------------------------------------------------------
    def save_transcript(self) -> bool:
        """Store the transcript if it changed since it was last stored."""
        with self._save_lock:
            raw = self.transcript.to_json()
            if raw == self._saved_transcript:
                return False
            self._services.persistence.save_transcript(self.session_id, raw)
            self._saved_transcript = raw
            return True

    def sync(self) -> None:
        """Persist the transcript, changed workspace files and pending events."""
        self.save_transcript()
        self._scan_now()
        self.log.flush()

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def idle_for(self) -> float:
        return 0.0 if self.is_busy else time.monotonic() - self.last_activity

    def _update_record(
        self, *, set_metadata: dict | None = None, drop_metadata=(), **updates
    ) -> None:
        """Store and keep record changes; metadata keys are set or dropped one by one.

        One update at a time, each building on the last: a write lets other
        greenlets run, and two read-modify-writes of the metadata (the turn's marker,
        the sandbox's "seeded") would otherwise drop each other's key.
        """
        with self._record_lock:
            if set_metadata or drop_metadata:
                metadata = {
                    k: v
                    for k, v in self.record.metadata.items()
                    if k not in drop_metadata
                }
                updates["metadata"] = {**metadata, **(set_metadata or {})}
            self._services.persistence.update_session_record(self.session_id, **updates)
            self.record = self.record.replace(**updates)

    # -- unloading ----------------------------------------------------------------------
    def close(self, reason: str = "unloaded") -> None:
        """Stop the turn, sync, end the sandbox, flush the log; the session is unloaded."""
        self.closing = True
        dropped, self._queue = list(self._queue), deque()
        for message_id, _ in dropped:
            self._report_not_run(message_id, f"session_{reason}")
        self.interrupt()
        if self._worker is not None:
            self._worker.join(timeout=30)
        try:
            self.sync()
        finally:
            self.sandbox.terminate()
            self.closed = True
            self.emit(names.STATUS, {"runtime": self.runtime_state(), "reason": reason})
            self.log.flush()
