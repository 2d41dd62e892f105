"""A session's sandbox: created lazily, shared by its turns, noticed when it dies."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import gevent
from gevent.event import AsyncResult

from agent_server.errors import SandboxError
from agent_server.events import names
from agent_server.persistence.types import WorkspaceFile
from agent_server.sandbox.base import Sandbox, SandboxProvider

log = logging.getLogger(__name__)

Emit = Callable[[str, dict], object]


class SandboxHandle:
    """Owns one session's sandbox: start it once, wait for it, notice its death, end it.

    Status goes none → starting → ready, or → error (creation failed or the sandbox
    died; the next ``get`` starts a new one), or → stopped after ``terminate``.
    """

    def __init__(
        self,
        session_id: str,
        provider: SandboxProvider,
        *,
        env: dict[str, str],
        load_files: Callable[[], Sequence[WorkspaceFile]],
        emit_status: Callable[[], None],
        emit: Emit,
        on_ready: Callable[[Sandbox], None],
    ) -> None:
        self.session_id = session_id
        self._provider = provider
        self._env = env
        self._load_files = load_files
        self._emit_status = emit_status
        self._emit = emit
        self._on_ready = on_ready
        self.sandbox: Sandbox | None = None
        self.status = "none"
        self.message: str | None = None
        self._ready: AsyncResult | None = None

    def state(self) -> dict | None:
        if self.status == "none":
            return None
        sandbox_id = self.sandbox.id if self.sandbox is not None else None
        return {"status": self.status, "message": self.message, "id": sandbox_id}

    def start(self) -> None:
        """Begin creating the sandbox in the background, unless it exists or is starting."""
        if self._ready is not None:
            return
        self._ready = AsyncResult()
        self._set(
            "starting", f"Starting a {self._provider.name} sandbox for this session"
        )
        gevent.spawn(self._create, self._ready)

    def _create(self, ready: AsyncResult) -> None:
        try:
            files = self._load_files()
            sandbox = self._provider.create(self.session_id, env=self._env, files=files)
        except Exception as exc:  # reported to the client and to the waiting turn
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            log.warning(
                "sandbox for session %s failed to start: %s", self.session_id, message
            )
            if self._ready is ready:
                self._ready = None
            self._set("error", f"The sandbox failed to start: {message}")
            self._emit(
                names.ERROR, {"code": "sandbox_start_failed", "message": message}
            )
            ready.set_exception(SandboxError(f"the sandbox failed to start: {message}"))
            return
        if self._ready is not ready:  # terminated while starting
            _terminate_quietly(sandbox)
            ready.set_exception(
                SandboxError("the session was unloaded while its sandbox started")
            )
            return
        self.sandbox = sandbox
        try:
            self._on_ready(sandbox)
        finally:
            self._set("ready", "The sandbox is ready")
            ready.set(sandbox)

    def get(self) -> Sandbox:
        """The running sandbox, starting one if needed and waiting until it is ready."""
        if self._ready is None:
            self.start()
        return self._ready.get()

    def check(self) -> bool:
        """Ask a ready sandbox whether it still runs; report and forget it if not."""
        sandbox = self.sandbox
        if sandbox is None or self.status != "ready":
            return True
        try:
            status = sandbox.poll()
        except SandboxError as exc:
            alive, reason = False, exc.message
        else:
            alive, reason = (
                status.alive,
                status.message or f"exit code {status.exit_code}",
            )
        if alive:
            return True
        self.sandbox, self._ready = None, None
        message = (
            f"The sandbox stopped ({reason}); a new one starts with the next message"
        )
        self._set("error", message)
        self._emit(names.ERROR, {"code": "sandbox_died", "message": message})
        return False

    def terminate(self) -> None:
        sandbox, self.sandbox, self._ready = self.sandbox, None, None
        if sandbox is not None:
            _terminate_quietly(sandbox)
            self._set("stopped", "The sandbox was stopped")

    def _set(self, status: str, message: str) -> None:
        self.status, self.message = status, message
        self._emit_status()


def _terminate_quietly(sandbox: Sandbox) -> None:
    try:
        sandbox.terminate()
    except SandboxError as exc:
        log.warning("terminating sandbox %s: %s", sandbox.id, exc.message)
