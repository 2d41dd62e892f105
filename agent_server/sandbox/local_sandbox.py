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

import codecs
import errno
import glob
import json
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import gevent
import gevent.os
from gevent import subprocess

from agent_server.errors import (
    AgentServerError,
    PathOutsideWorkspace,
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

MINIMAL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ID_PREFIX = "local-"
BWRAP_NOT_FOUND = "bubblewrap (bwrap) not found"
# /etc entries programs need to work (alternatives links, certificates, loader cache,
# time zones); never passwd/shadow, pip.conf, npmrc, gitconfig and the like
ETC_ALLOWED = (
    "alternatives", "ssl", "ca-certificates", "ld.so.cache", "ld.so.conf",
    "ld.so.conf.d", "localtime", "timezone", "mime.types", "magic", "magic.mime",
    "protocols", "services", "os-release", "debian_version", "terminfo",
    "nsswitch.conf", "host.conf", "gai.conf", "locale.alias", "perl", "python3*",
)  # fmt: skip
_SESSION_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,199}")
_CHUNK = 65536
_READER_GRACE = 1.0  # seconds to drain pipes after the command's group is gone
_EXIT_CHECK = 0.5  # seconds between checks for an exit gevent did not report
_bwrap_checked: dict[str, str | None] = {}  # bwrap path -> None if it works, else why
_bwrap_lock = threading.Lock()


def bwrap_status() -> tuple[str | None, str | None]:
    """(path of a working bwrap, None) or (None, why there is none); probed once."""
    path = shutil.which("bwrap")
    if path is None:
        return None, BWRAP_NOT_FOUND
    with _bwrap_lock:
        if path not in _bwrap_checked:
            _bwrap_checked[path] = _probe_bwrap(path)
    problem = _bwrap_checked[path]
    return (None, problem) if problem else (path, None)


def _probe_bwrap(path: str) -> str | None:
    with tempfile.TemporaryDirectory(prefix="bwrap-probe-") as ws:
        argv, fds = _bwrap_argv(path, ws, ["true"], ())
        try:
            proc = subprocess.run(
                argv, env={"PATH": MINIMAL_PATH}, pass_fds=fds, timeout=20,
                stdin=subprocess.DEVNULL, capture_output=True,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError) as exc:
            return f"bwrap at {path} does not run here ({exc})"
        finally:
            for fd in fds:
                os.close(fd)
    if proc.returncode != 0:
        why = proc.stderr.decode("utf-8", "replace").strip()[:200]
        return f"bwrap at {path} does not work here ({why or proc.returncode})"
    return None


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
            argv, data_fds = _bwrap_argv(p.bwrap, self.root, argv, p.hidden_paths)
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
        capture = _Capture(self._provider.output_limit, on_output, proc.pid)
        readers = [
            gevent.spawn(capture.drain, out_r, "stdout"),
            gevent.spawn(capture.drain, err_r, "stderr"),
        ]
        try:
            code = _wait_exit(proc, timeout)
            timed_out = code is None
            # also ends background children, which would keep the pipes open
            _kill_group(proc.pid)
            gevent.joinall(readers, timeout=_READER_GRACE)
        finally:
            # runs when the calling greenlet is killed, too: nothing outlives exec
            _kill_group(proc.pid)
            gevent.killall(readers)
            for fd in (out_r, err_r):
                os.close(fd)
            if proc.returncode is None:
                _wait_exit(proc, 5)  # reap the killed process
            self._running.discard(proc.pid)
        if capture.error is not None:
            raise capture.error
        if self._terminated:
            raise SandboxGone(f"sandbox {self.id} was terminated while the command ran")
        if code is not None and code < 0:
            code = 128 - code  # killed by a signal: report it the way shells do
        return ExecResult(
            exit_code=code,
            stdout="".join(capture.text["stdout"]),
            stderr="".join(capture.text["stderr"]),
            timed_out=timed_out,
            truncated=capture.truncated,
        )

    # ---- files ----

    def read_file(self, path: str) -> bytes:
        """The file's bytes; symlinks are followed only while they stay inside."""
        self._check_alive()
        rel = self._resolve(path)
        with self._errors(path, "read"), self._parent(rel, create=False) as (dfd, name):
            # O_NONBLOCK: opening a FIFO a command left here must not hang the server
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(name, flags, dir_fd=dfd)
            try:
                _require_regular(fd, path)
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
        rel = self._resolve(path)
        with self._errors(path, "write"), self._parent(rel, create=True) as (dfd, name):
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
            fd = os.open(name, flags | os.O_CLOEXEC, 0o644, dir_fd=dfd)
            try:
                _require_regular(fd, path)
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
        real_parent = self._resolve(parent or ".")
        target = os.path.normpath(os.path.join(real_parent, name))
        with self._errors(path, "delete"), self._parent(target, create=False) as at:
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
                if _ignored(sub, ignore):
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
            _kill_group(pgid)

    # ---- internals ----

    def _check_alive(self) -> None:
        status = self.poll()
        if not status.alive:
            raise SandboxGone(f"sandbox {self.id} is gone: {status.message}")

    def _resolve(self, path: str) -> str:
        """The path relative to the root with every symlink resolved, or refused."""
        rel = workspace_relative(path)
        real = os.path.realpath(os.path.join(self.root, rel))
        if real != self.root and not real.startswith(self.root + os.sep):
            raise PathOutsideWorkspace(
                f"path {path!r} leads outside the workspace through a symlink"
            )
        return os.path.relpath(real, self.root)

    @contextmanager
    def _parent(self, rel: str, *, create: bool) -> Iterator[tuple[int, str]]:
        """(fd of the parent dir, leaf name), walking with O_NOFOLLOW from the root.

        ``rel`` is already resolved; a component that is a symlink now was swapped in
        since, and the walk refuses it instead of following it out.
        """
        if rel == ".":
            raise IsADirectoryError(errno.EISDIR, "the workspace root is a directory")
        *dirs, leaf = rel.split(os.sep)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in dirs:
                if create:
                    with suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                nfd = os.open(part, flags, dir_fd=fd)
                os.close(fd)
                fd = nfd
            yield fd, leaf
        finally:
            os.close(fd)

    @contextmanager
    def _errors(self, path: str, op: str) -> Iterator[None]:
        """Translate OS errors into the documented ones."""
        try:
            yield
        except (FileNotFoundError, IsADirectoryError):
            raise
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PathOutsideWorkspace(
                    f"path {path!r} is a symlink that changed while it was opened"
                ) from None
            if exc.errno == errno.ENOTDIR and op != "write":
                raise FileNotFoundError(errno.ENOENT, "no such file", path) from None
            raise SandboxError(f"cannot {op} {path!r}: {exc.strerror}") from None


class _Capture:
    """Collects a command's output up to a shared byte budget, streaming it on."""

    def __init__(self, limit: int, on_output: OutputCallback | None, pgid: int):
        self.left = limit
        self.on_output = on_output
        self.pgid = pgid
        self.text: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.truncated = False
        self.error: BaseException | None = None

    def drain(self, fd: int, stream: str) -> None:
        """Read ``fd`` to EOF; what goes past the budget is read and dropped."""
        gevent.os.make_nonblocking(fd)
        # incremental: a multibyte character split across two reads survives
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while chunk := gevent.os.nb_read(fd, _CHUNK):
            keep = chunk[: self.left]
            self.left -= len(keep)
            if len(keep) < len(chunk):
                self.truncated = True
            if keep:
                self._emit(stream, decoder.decode(keep))
        self._emit(stream, decoder.decode(b"", final=True))

    def _emit(self, stream: str, text: str) -> None:
        if not text:
            return
        self.text[stream].append(text)
        if self.on_output is None or self.error is not None:
            return
        try:
            self.on_output(stream, text)
        except Exception as exc:
            # the caller's callback failed: stop the command, exec re-raises it
            self.error = exc
            _kill_group(self.pgid)


def _bwrap_argv(
    bwrap: str, root: str, command: list[str], hidden: Sequence[str]
) -> tuple[list[str], tuple[int, ...]]:
    """The bwrap command line, and the fds it reads generated /etc files from."""
    args = [bwrap, "--ro-bind", "/usr", "/usr"]
    binds = [("/usr", "/usr"), (root, WORKSPACE_ROOT)]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):  # merged /usr: /bin -> usr/bin
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
            binds.append((top, top))
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for pattern in ETC_ALLOWED:
        for path in sorted(glob.glob(os.path.join("/etc", pattern))):
            args += ["--ro-bind-try", path, path]
            binds.append((os.path.realpath(path), path))
    uid, gid = os.getuid(), os.getgid()
    generated = {
        "/etc/passwd": f"sandbox:x:{uid}:{gid}:sandbox:{WORKSPACE_ROOT}:/bin/sh\n",
        "/etc/group": f"sandbox:x:{gid}:\n",
        "/etc/hosts": "127.0.0.1 localhost sandbox\n::1 localhost\n",
    }
    fds = []
    for dest, content in generated.items():
        # memfd, not a pipe: with pipes here gevent missed bwrap's exit about once
        # in 30 runs (the child stayed a zombie and wait() never returned)
        fd = os.memfd_create("sandbox-etc", os.MFD_CLOEXEC)
        os.write(fd, content.encode())
        os.lseek(fd, 0, os.SEEK_SET)
        fds.append(fd)
        args += ["--ro-bind-data", str(fd), dest]
    args += ["--bind", root, WORKSPACE_ROOT]
    args += _masks(binds, hidden)
    args += ["--chdir", WORKSPACE_ROOT, "--unshare-all", "--hostname", "sandbox"]
    args += ["--die-with-parent", "--new-session", *command]
    return args, tuple(fds)


def _masks(binds: Sequence[tuple[str, str]], hidden: Sequence[str]) -> list[str]:
    """Cover hidden paths that lie inside something bound (an empty tmpfs or file)."""
    args: list[str] = []
    for h in hidden:
        for src, dest in binds:
            if h == src or h.startswith(src.rstrip("/") + "/"):
                target = dest + h[len(src) :]
                if os.path.isdir(h):
                    args += ["--tmpfs", target]
                elif os.path.exists(h):
                    args += ["--ro-bind", "/dev/null", target]
    return args


def _ignored(parts: tuple[str, ...], ignore: Sequence[tuple[str, ...]]) -> bool:
    """True if an ignore entry matches the end of ``parts`` (at any depth)."""
    return any(len(parts) >= len(i) and parts[-len(i) :] == i for i in ignore if i)


def _require_regular(fd: int, path: str) -> None:
    mode = os.fstat(fd).st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", path)
    if not stat.S_ISREG(mode):
        raise SandboxError(f"{path!r} is not a regular file")


def _wait_exit(proc: subprocess.Popen, timeout: float) -> int | None:
    """The exit status, or None after ``timeout``; cooperative.

    gevent learns of a child's exit from SIGCHLD; should that be missed, the child
    stays a zombie and ``proc.wait`` would never return. So wait in slices and look
    for the exit ourselves in between (``waitid`` on that one pid reaps it).
    """
    deadline = time.monotonic() + max(timeout, 0)
    while True:
        left = deadline - time.monotonic()
        try:
            return proc.wait(timeout=max(min(left, _EXIT_CHECK), 0))
        except subprocess.TimeoutExpired:
            pass
        try:
            info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            info = None  # gevent reaped it just now: the next wait() returns
        if info is not None:
            code = info.si_status
            proc.returncode = code if info.si_code == os.CLD_EXITED else -code
            return proc.returncode
        if left <= _EXIT_CHECK:
            return None


def _kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pgid, signal.SIGKILL)
