"""The local sandbox: a workspace directory on this host, commands run with bubblewrap.

Each session's workspace is ``<workspaces_dir>/<session_id>``. With bubblewrap (bwrap)
a command sees that directory at ``/workspace`` (read-write), ``/usr`` and a short list
of harmless ``/etc`` entries read-only, a private ``/tmp``, no network and nothing else
of the host: not the server's data dir, not other sessions. Without bwrap (not found,
not working, or ``use_bwrap=False``) commands are plain subprocesses of the server's
user with the workspace's host path as working directory; they can read whatever that
user can, ``hidden_paths`` included. In both modes ``$WORKSPACE`` and ``$HOME`` name the
workspace as the command sees it (``/workspace``, or the host path without bwrap); the
``/workspace/...`` spelling is understood only by the file API in the plain mode.

Commands see only a minimal PATH, HOME, LANG, TERM and WORKSPACE plus the create-time
and per-exec env, never the server's own environment. A command runs in its own
process group (its own PID namespace with bwrap); when it ends, times out, or the
calling greenlet is killed, the whole group is killed, background children included.
Output is capped at ``output_limit`` bytes for stdout and stderr together; the rest is
read and discarded.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

import gevent
from gevent import subprocess

from agent_server.errors import (
    AgentServerError,
    SandboxError,
    SandboxGone,
)
from agent_server.persistence.types import WorkspaceFile
from agent_server.sandbox.base import (
    DEFAULT_IGNORE,
    DEFAULT_OUTPUT_LIMIT,
    WORKSPACE_ROOT,
    ExecResult,
    FileInfo,
    OutputCallback,
    Sandbox,
    SandboxProvider,
    SandboxStatus,
    workspace_relative,
)
from agent_server.sandbox.bwrap import (
    BWRAP_NOT_FOUND,
    ETC_ALLOWED,
    MINIMAL_PATH,
    bwrap_argv,
    bwrap_status,
)
from agent_server.sandbox.local_paths import (
    ignored,
    in_parent,
    require_regular,
    resolve,
)
from agent_server.sandbox.local_process import kill_group, read_chunks, wait_exit
from agent_server.sandbox.output import OutputCapture

# the bwrap names stay importable from here, where callers have always found them
__all__ = [
    "BWRAP_NOT_FOUND",
    "ETC_ALLOWED",
    "ID_PREFIX",
    "MINIMAL_PATH",
    "LocalSandbox",
    "LocalSandboxProvider",
    "bwrap_status",
]

ID_PREFIX = "local-"
_SESSION_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,199}")
_READER_GRACE = 1.0  # seconds to drain pipes after the command's group is gone


class LocalSandboxProvider(SandboxProvider):
    """Workspaces under one host directory; bwrap isolation when available."""

    name = "local"

    def __init__(
        self,
        workspaces_dir: str | os.PathLike,
        *,
        use_bwrap: bool | None = None,
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
        ignore: Sequence[str] = DEFAULT_IGNORE,
        hidden_paths: Sequence[str | os.PathLike] = (),
    ) -> None:
        self.workspaces_dir = Path(workspaces_dir)
        self.output_limit = output_limit
        self.ignore = tuple(tuple(p for p in i.split("/") if p) for i in ignore)
        self.hidden_paths = tuple(os.path.realpath(p) for p in hidden_paths)
        self.shell = shutil.which("bash", path=MINIMAL_PATH) or "/bin/sh"
        self.bwrap: str | None = None
        self.isolation_problem: str | None = None  # why isolated is False
        if use_bwrap is False:
            self.isolation_problem = "bubblewrap disabled (use_bwrap=False)"
        else:
            self.bwrap, self.isolation_problem = bwrap_status()
            if use_bwrap and self.bwrap is None:
                raise SandboxError(f"use_bwrap=True but {self.isolation_problem}")
        self.isolated = self.bwrap is not None
        self.bwrap_missing = self.isolation_problem == BWRAP_NOT_FOUND
        self._live: dict[str, LocalSandbox] = {}

    def create(
        self,
        session_id: str,
        *,
        env: Mapping[str, str] | None = None,
        files: Sequence[WorkspaceFile] = (),
    ) -> LocalSandbox:
        """Make (or reuse) the session's workspace dir and write ``files`` over it."""
        root = self._workspace_dir(session_id)
        env = {str(k): str(v) for k, v in (env or {}).items()}
        try:
            root.mkdir(parents=True, exist_ok=True)
            self._save_env(session_id, env)
        except OSError as exc:
            raise SandboxError(f"cannot create workspace {root}: {exc}") from None
        sandbox = LocalSandbox(self, session_id, str(root), env)
        for f in files:
            try:
                sandbox._write(f.path, f.data, mtime=f.modified_at.timestamp())
            except (AgentServerError, OSError) as exc:
                raise SandboxError(f"cannot restore {f.path!r}: {exc}") from None
        self._live[session_id] = sandbox
        return sandbox

    def attach(self, sandbox_id: str) -> LocalSandbox | None:
        """The sandbox whose workspace dir still exists (also after a restart)."""
        if not sandbox_id.startswith(ID_PREFIX):
            return None
        session_id = sandbox_id[len(ID_PREFIX) :]
        if not _SESSION_ID.fullmatch(session_id):
            return None
        live = self._live.get(session_id)
        if live is not None and live.poll().alive:
            return live
        root = self.workspaces_dir / session_id
        if not root.is_dir():
            return None
        sandbox = LocalSandbox(self, session_id, str(root), self._load_env(session_id))
        self._live[session_id] = sandbox
        return sandbox

    def destroy(self, session_id: str) -> None:
        """Terminate the session's sandbox and delete its workspace (purge)."""
        live = self._live.pop(session_id, None)
        if live is not None:
            live.terminate()
        root = self._workspace_dir(session_id)
        shutil.rmtree(root, ignore_errors=True)  # never follows symlinks
        self._env_file(session_id).unlink(missing_ok=True)

    def _workspace_dir(self, session_id: str) -> Path:
        if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
            raise SandboxError(
                f"session id {session_id!r} cannot name a workspace directory: use "
                "letters, digits and _ . @ + - (not starting with . or -)"
            )
        return self.workspaces_dir / session_id

    # The create-time env is kept beside the workspaces (never inside one: commands
    # would see it as a file) so that attach() after a restart restores it.
    def _env_file(self, session_id: str) -> Path:
        return self.workspaces_dir / ".sandbox-env" / f"{session_id}.json"

    def _save_env(self, session_id: str, env: Mapping[str, str]) -> None:
        path = self._env_file(session_id)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(dict(env), f)

    def _load_env(self, session_id: str) -> dict[str, str]:
        try:
            return dict(json.loads(self._env_file(session_id).read_text()))
        except (OSError, ValueError):
            return {}


class LocalSandbox(Sandbox):
    """One session's workspace directory and the commands running in it."""

    def __init__(self, provider: LocalSandboxProvider, session_id: str, root: str,
                 env: Mapping[str, str]) -> None:  # fmt: skip
        self.id = ID_PREFIX + session_id
        self.session_id = session_id
        self.root = os.path.realpath(root)
        self.env = dict(env)
        self._provider = provider
        self._terminated = False
        self._running: set[int] = set()  # process group ids

    # ---- commands ----

    def exec(
        self,
        command: str,
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecResult:
        """Run ``command`` with bash (sh if none) in the workspace; see the module doc."""
        self._check_alive()
        p = self._provider
        inside = WORKSPACE_ROOT if p.bwrap else self.root
        full_env = {"PATH": MINIMAL_PATH, "HOME": inside, "LANG": "C.UTF-8"}
        full_env.update({"TERM": "dumb", "WORKSPACE": inside, **self.env})
        full_env.update({str(k): str(v) for k, v in (env or {}).items()})
        argv, data_fds = [p.shell, "-c", command], ()
        if p.bwrap:
            argv, data_fds = bwrap_argv(p.bwrap, self.root, argv, p.hidden_paths)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            proc = subprocess.Popen(
                argv, cwd=self.root, env=full_env, stdin=subprocess.DEVNULL,
                stdout=out_w, stderr=err_w, pass_fds=data_fds,
                start_new_session=True, close_fds=True,
            )  # fmt: skip
        except OSError as exc:
            os.close(out_r)
            os.close(err_r)
            raise SandboxError(f"cannot start the command: {exc}") from None
        finally:
            for fd in (out_w, err_w, *data_fds):
                os.close(fd)
        return self._wait(proc, out_r, err_r, timeout, on_output)

    def _wait(self, proc, out_r, err_r, timeout, on_output) -> ExecResult:
        self._running.add(proc.pid)
        # a failing callback stops the command; exec then re-raises the failure
        capture = OutputCapture(
            self._provider.output_limit, on_output, lambda: kill_group(proc.pid)
        )
        readers = [
            gevent.spawn(capture.drain, read_chunks(out_r), "stdout"),
            gevent.spawn(capture.drain, read_chunks(err_r), "stderr"),
        ]
        try:
            code = wait_exit(proc, timeout)
            timed_out = code is None
            # also ends background children, which would keep the pipes open
            kill_group(proc.pid)
            gevent.joinall(readers, timeout=_READER_GRACE)
        finally:
            # runs when the calling greenlet is killed, too: nothing outlives exec
            kill_group(proc.pid)
            gevent.killall(readers)
            for fd in (out_r, err_r):
                os.close(fd)
            if proc.returncode is None:
                wait_exit(proc, 5)  # reap the killed process
            self._running.discard(proc.pid)
        if capture.error is not None:
            raise capture.error
        if self._terminated:
            raise SandboxGone(f"sandbox {self.id} was terminated while the command ran")
        if code is not None and code < 0:
            code = 128 - code  # killed by a signal: report it the way shells do
        return capture.result(code, timed_out=timed_out)

    # ---- files ----

    def read_file(self, path: str) -> bytes:
        """The file's bytes; symlinks are followed only while they stay inside."""
        self._check_alive()
        rel = resolve(self.root, path)
        with in_parent(self.root, rel, path, "read") as (dfd, name):
            # O_NONBLOCK: opening a FIFO a command left here must not hang the server
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(name, flags, dir_fd=dfd)
            try:
                require_regular(fd, path)
                chunks = []
                while chunk := os.read(fd, 1 << 20):
                    chunks.append(chunk)
                return b"".join(chunks)
            finally:
                os.close(fd)

    def write_file(self, path: str, data: bytes) -> None:
        """Create or replace the file (keeping its mode), creating parent dirs."""
        self._check_alive()
        self._write(path, data)

    def _write(self, path: str, data: bytes, mtime: float | None = None) -> None:
        rel = resolve(self.root, path)
        with in_parent(self.root, rel, path, "write", create=True) as (dfd, name):
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
            fd = os.open(name, flags | os.O_CLOEXEC, 0o644, dir_fd=dfd)
            try:
                require_regular(fd, path)
                os.ftruncate(fd, 0)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if mtime is not None:
                    os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)

    def delete_file(self, path: str) -> None:
        """Remove the file (a symlink itself, never its target)."""
        self._check_alive()
        rel = workspace_relative(path)
        if rel == ".":
            raise IsADirectoryError(errno.EISDIR, "the workspace root is a directory")
        parent, name = os.path.split(rel)
        real_parent = resolve(self.root, parent or ".")
        target = os.path.normpath(os.path.join(real_parent, name))
        with in_parent(self.root, target, path, "delete") as at:
            dfd, leaf = at
            if stat.S_ISDIR(os.stat(leaf, dir_fd=dfd, follow_symlinks=False).st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a directory", path)
            os.unlink(leaf, dir_fd=dfd)

    def list_files(self) -> list[FileInfo]:
        """Regular files, recursively; symlinks are neither listed nor followed."""
        self._check_alive()
        ignore = self._provider.ignore
        found: list[FileInfo] = []
        stack: list[tuple[str, tuple[str, ...]]] = [(self.root, ())]
        while stack:
            dirpath, parts = stack.pop()
            try:
                entries = list(os.scandir(dirpath))
            except OSError:
                continue  # removed or unreadable meanwhile
            for entry in entries:
                sub = (*parts, entry.name)
                if ignored(sub, ignore):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((entry.path, sub))
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        found.append(FileInfo("/".join(sub), st.st_size, st.st_mtime))
                except OSError:
                    continue
        return sorted(found, key=lambda f: f.path)

    # ---- lifecycle ----

    def poll(self) -> SandboxStatus:
        """Alive until terminated or until its workspace directory disappears."""
        if self._terminated:
            return SandboxStatus(alive=False, message="terminated")
        if not os.path.isdir(self.root):
            return SandboxStatus(alive=False, message="workspace directory is gone")
        return SandboxStatus(alive=True)

    def terminate(self) -> None:
        """Kill running commands; the workspace stays (provider.destroy deletes it)."""
        self._terminated = True
        for pgid in list(self._running):
            kill_group(pgid)

    # ---- internals ----

    def _check_alive(self) -> None:
        status = self.poll()
        if not status.alive:
            raise SandboxGone(f"sandbox {self.id} is gone: {status.message}")
