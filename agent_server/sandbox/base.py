"""Sandbox providers: where a session's tools read and write files and run commands.

A sandbox holds one session's workspace, which commands see as ``/workspace``. Paths
given to the file methods are relative to the workspace root (``/workspace/x`` is
accepted as ``x``); a path that resolves outside it is refused with
PathOutsideWorkspace. Implementations raise only this project's errors (SandboxError,
SandboxTimeout, SandboxGone, PathOutsideWorkspace); vendor exceptions never leak.
"""

from __future__ import annotations

import posixpath
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from agent_server.errors import PathOutsideWorkspace
from agent_server.persistence.types import WorkspaceFile

WORKSPACE_ROOT = "/workspace"
DEFAULT_IGNORE = (".git/objects", "node_modules", "__pycache__", ".venv")
DEFAULT_OUTPUT_LIMIT = 1024 * 1024

# on_output(stream, text): stream is "stdout" or "stderr"
OutputCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class ExecResult:
    """How a command ended. exit_code is None when it was killed by a timeout."""

    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    truncated: bool = False  # output went past the provider's cap and was cut


@dataclass(frozen=True)
class FileInfo:
    path: str  # relative to the workspace, POSIX
    size: int
    mtime: float  # seconds since the epoch


@dataclass(frozen=True)
class SandboxStatus:
    alive: bool
    exit_code: int | None = None
    message: str | None = None


class Sandbox(ABC):
    """One session's isolated workspace and command runner."""

    id: str

    @abstractmethod
    def exec(
        self,
        command: str,
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecResult:
        """Run ``command`` with a shell in /workspace and wait for it.

        With ``on_output`` the output is also handed over as it arrives (the streaming
        form). On timeout the whole process group is killed and the result says
        timed_out. If the calling greenlet is killed, the command is killed too.
        Raises SandboxGone if the sandbox is no longer running.
        """

    @abstractmethod
    def read_file(self, path: str) -> bytes:
        """The file's bytes. FileNotFoundError if there is none, IsADirectoryError if a dir."""

    @abstractmethod
    def write_file(self, path: str, data: bytes) -> None:
        """Create or replace the file, creating parent directories."""

    @abstractmethod
    def delete_file(self, path: str) -> None:
        """Remove the file; FileNotFoundError if there is none."""

    @abstractmethod
    def list_files(self) -> list[FileInfo]:
        """Every regular file under the workspace, recursively, dotfiles included,
        skipping the provider's ignore list; sorted by path."""

    @abstractmethod
    def poll(self) -> SandboxStatus:
        """Whether the sandbox is still running, and if not, how it ended."""

    @abstractmethod
    def terminate(self) -> None:
        """Stop the sandbox and free its resources; calling it twice is fine."""


class SandboxProvider(ABC):
    """Creates sandboxes (and, where it can, reconnects to live ones)."""

    name: str = "sandbox"
    isolated: bool = True  # False: commands can see the host (said once at start)

    @abstractmethod
    def create(
        self,
        session_id: str,
        *,
        env: Mapping[str, str] | None = None,
        files: Sequence[WorkspaceFile] = (),
    ) -> Sandbox:
        """A running sandbox for the session with ``files`` restored into its workspace.

        ``env`` holds the only variables commands see besides a minimal PATH and HOME.
        Raises SandboxError when it cannot be created.
        """

    def attach(self, sandbox_id: str) -> Sandbox | None:
        """Reconnect to a live sandbox after a restart; None where that is not possible."""
        return None

    def close(self) -> None:
        """Release the provider's own resources (not the sandboxes)."""


def workspace_relative(path: str) -> str:
    """Normalise a path to one relative to the workspace root, or refuse it.

    Accepts ``a/b``, ``./a/b`` and ``/workspace/a/b``; refuses anything that climbs
    out (``../x``, ``a/../../x``) or is absolute elsewhere (``/etc/passwd``).
    Symlinks are the provider's business: it must check where they point.
    """
    if not isinstance(path, str) or path.strip() == "" or "\x00" in path:
        raise PathOutsideWorkspace(
            f"invalid path {path!r}: give a path inside the workspace"
        )
    p = path.replace("\\", "/")
    if p.startswith("/"):
        norm = posixpath.normpath(p)
        if norm == WORKSPACE_ROOT:
            return "."
        if not norm.startswith(WORKSPACE_ROOT + "/"):
            raise PathOutsideWorkspace(
                f"path {path!r} is outside the workspace: use a path relative to "
                f"{WORKSPACE_ROOT} or under it"
            )
        return norm[len(WORKSPACE_ROOT) + 1 :]
    norm = posixpath.normpath(p)
    if norm == ".." or norm.startswith("../"):
        raise PathOutsideWorkspace(
            f"path {path!r} climbs out of the workspace: use a path inside {WORKSPACE_ROOT}"
        )
    return norm
