"""Keeps the stored copy of a session's workspace in step with its sandbox."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone

from agent_server.errors import SandboxError
from agent_server.events import names
from agent_server.persistence.base import PersistenceAdapter
from agent_server.persistence.types import WorkspaceFile
from agent_server.sandbox.base import FileInfo, Sandbox

log = logging.getLogger(__name__)

MAX_STORED_FILE_BYTES = 10 * 1024 * 1024


def file_info_dict(info: FileInfo) -> dict:
    modified = datetime.fromtimestamp(info.mtime, timezone.utc)
    stamp = modified.isoformat().replace("+00:00", "Z")
    return {"path": info.path, "size": info.size, "modifiedAt": stamp}


class WorkspaceSync:
    """Compares the workspace with its last listing; saves, deletes and reports changes."""

    def __init__(
        self,
        session_id: str,
        persistence: PersistenceAdapter,
        emit: Callable[[str, dict], object],
        *,
        max_file_bytes: int = MAX_STORED_FILE_BYTES,
    ) -> None:
        self.session_id = session_id
        self._persistence = persistence
        self._emit = emit
        self._max_file_bytes = max_file_bytes
        self._baseline: dict[str, tuple[int, float]] | None = None
        self._lock = threading.Lock()

    def reset(self, sandbox: Sandbox, restored: set[str] | None = None) -> None:
        """Take the sandbox's current files as known (restored files are not news).

        Files present but not among ``restored`` (e.g. written by the image) are new.
        """
        with self._lock:
            listing = sandbox.list_files()
            self._baseline = {
                f.path: (f.size, f.mtime)
                for f in listing
                if restored is None or f.path in restored
            }

    def scan(self, sandbox: Sandbox) -> int:
        """Save what changed since the last listing and emit file events; count of changes."""
        with self._lock:
            try:
                listing = sandbox.list_files()
            except SandboxError as exc:
                log.warning(
                    "listing workspace of %s failed: %s", self.session_id, exc.message
                )
                return 0
            before = self._baseline or {}
            now = {f.path: f for f in listing}
            changes = 0
            unsaved: set[str] = set()
            for path, info in now.items():
                known = before.get(path)
                if known == (info.size, info.mtime):
                    continue
                if not self._save(sandbox, info):
                    unsaved.add(path)  # not stored: retried by the next scan
                    continue
                event = names.FILE_CREATED if known is None else names.FILE_MODIFIED
                self._emit(event, {"file": file_info_dict(info)})
                changes += 1
            for path in before.keys() - now.keys():
                self._persistence.delete_session_file(self.session_id, path)
                self._emit(names.FILE_DELETED, {"path": path})
                changes += 1
            self._baseline = {
                p: (f.size, f.mtime) for p, f in now.items() if p not in unsaved
            }
            # keep what was known of an unsaved file, so it is retried as a change
            self._baseline.update((p, before[p]) for p in unsaved if p in before)
            return changes

    def _save(self, sandbox: Sandbox, info: FileInfo) -> bool:
        if info.size > self._max_file_bytes:
            log.warning(
                "not storing %s of session %s: %d bytes is over the %d byte limit",
                info.path,
                self.session_id,
                info.size,
                self._max_file_bytes,
            )
            return True
        try:
            data = sandbox.read_file(info.path)
        except (FileNotFoundError, IsADirectoryError):
            return False  # gone between listing and reading: the next scan sees it
        except SandboxError as exc:
            log.warning(
                "reading %s of %s failed: %s", info.path, self.session_id, exc.message
            )
            return False
        modified = datetime.fromtimestamp(info.mtime, timezone.utc)
        self._persistence.save_workspace_file(
            self.session_id, WorkspaceFile.from_bytes(info.path, data, modified)
        )
        return True
