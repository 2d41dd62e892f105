"""Fake Modal's task command router: exec processes, their stdio, wait and poll.

An exec runs as a real local bash process in its sandbox's directory: ``/workspace``
and ``/tmp`` in its arguments, env values and working directory are rewritten to the
sandbox's directories, and the workspace directory's path in its output back to
``/workspace``. Commands see a minimal environment plus the sandbox's and the exec's
env. ``modal-sandbox-fs-tools`` execs are served in process (fake_modal_fs).

Exit codes travel over a pipe rather than through waitpid, because gevent's SIGCHLD
handler may reap any child of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal

from gevent import monkey
from grpclib import GRPCError, Status
from modal_proto import task_command_router_pb2 as sr_pb2
from modal_proto.task_command_router_grpc import TaskCommandRouterBase

from agent_server.devtools.fake_modal_fs import FS_TOOLS, _FsToolExec
from agent_server.devtools.fake_modal_sandbox import (
    WORKSPACE,
    _Exec,
    _fill_unimplemented,
    _kill_marked,
    _Sandbox,
    _Services,
)

# the unpatched primitives: the server thread must not depend on gevent's hub
_waitpid = monkey.get_original("os", "waitpid")
_posix_spawn = monkey.get_original("os", "posix_spawn")

_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# runs "$@" and reports its exit status on fd 3 (see the module docstring)
_WRAPPER = 'cd -- "$FAKE_MODAL_CWD" || exit 1; "$@"; echo $? >&3'
_KILL_GRACE = 0.3  # the client's own exec deadline fires first, as with real Modal
_CHUNK = 65536


class _ProcessExec(_Exec):
    """A real bash process with pipes for stdin, stdout, stderr and its exit code."""

    killed_with_sandbox = True

    def __init__(self, exec_id: str, sandbox: _Sandbox, argv: list[str], env: dict):
        super().__init__(exec_id)
        self.loop = asyncio.get_running_loop()
        self.rewrite = {1: _Unrewriter(sandbox.root), 2: _Unrewriter(sandbox.root)}
        pipes = [os.pipe() for _ in range(4)]  # stdin, stdout, stderr, exit code
        (in_r, in_w), (out_r, out_w), (err_r, err_w), (code_r, code_w) = pipes
        actions = [
            (os.POSIX_SPAWN_DUP2, in_r, 0),
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2),
            (os.POSIX_SPAWN_DUP2, code_w, 3),
        ]
        try:
            self.pid = _posix_spawn(
                shutil.which("bash") or "/bin/bash",
                ["bash", "-c", _WRAPPER, "fake-modal-exec", *argv],
                env,
                file_actions=actions,
                setsid=True,
            )
        finally:
            for fd in (in_r, out_w, err_w, code_w):
                os.close(fd)
        self.stdin_fd = in_w
        self.code = bytearray()
        self.open_fds = {out_r: 1, err_r: 2, code_r: 3}
        for fd in self.open_fds:
            os.set_blocking(fd, False)
            self.loop.add_reader(fd, self._readable, fd)

    def _readable(self, fd: int) -> None:
        try:
            data = os.read(fd, _CHUNK)
        except BlockingIOError:
            return
        which = self.open_fds[fd]
        if which == 3:
            self.code += data
        elif data:
            self.add_output(which, self.rewrite[which].feed(data))
        if data:
            return
        self.loop.remove_reader(fd)
        os.close(fd)
        del self.open_fds[fd]
        if which != 3:
            self.add_output(which, self.rewrite[which].flush())
            self.eof[which] = True
            self.notify()
        if not self.open_fds:
            self._ended()

    def _ended(self) -> None:
        code = self.code.decode().strip()
        if code.isdigit():
            n = int(code)
            self.finish(*(("signal", n - 128) if n > 128 else ("code", n)))
        else:  # the wrapper itself was killed
            self.finish("signal", signal.SIGKILL)
        self._close_stdin()
        self._reap(5)

    def _reap(self, tries: int) -> None:
        with contextlib.suppress(ChildProcessError):  # gevent's handler got it first
            if _waitpid(self.pid, os.WNOHANG)[0] == 0 and tries:
                self.loop.call_later(0.1, self._reap, tries - 1)

    async def _stdin(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self.stdin_fd is not None:
            try:
                view = view[os.write(self.stdin_fd, view) :]
            except BlockingIOError:
                await asyncio.sleep(0.005)
            except BrokenPipeError:
                self._close_stdin()

    async def _stdin_eof(self) -> None:
        self._close_stdin()

    def _close_stdin(self) -> None:
        if self.stdin_fd is not None:
            os.close(self.stdin_fd)
            self.stdin_fd = None

    def kill(self) -> None:
        if self.exit is None:
            _kill_marked("FAKE_MODAL_EXEC", self.exec_id)


class _Unrewriter:
    """Turns the sandbox directory's path in output back into /workspace, streaming.

    Only a tail that could be the start of the path is held back between chunks.
    """

    def __init__(self, root: str) -> None:
        self.root = root.encode()
        self.held = b""

    def feed(self, data: bytes) -> bytes:
        data = (self.held + data).replace(self.root, WORKSPACE.encode())
        self.held = b""
        for n in range(min(len(self.root) - 1, len(data)), 0, -1):
            if self.root.startswith(data[-n:]):
                data, self.held = data[:-n], data[-n:]
                break
        return data

    def flush(self) -> bytes:
        held, self.held = self.held, b""
        return held


_SANDBOX_DIRS = re.compile(r"(?<![\w./-])(/workspace|/tmp)(?![\w.-])")


def _to_host(sb: _Sandbox, text: str) -> str:
    """``/workspace`` and ``/tmp`` in an argument or env value, as the host dirs."""
    return _SANDBOX_DIRS.sub(
        lambda m: sb.root if m.group(1) == WORKSPACE else sb.tmp, text
    )


@_fill_unimplemented
class _CommandRouter(_Services, TaskCommandRouterBase):
    async def TaskExecStart(self, stream) -> None:
        req = await stream.recv_message()
        sb = self.live_task(req.task_id)
        if req.exec_id in sb.execs:  # a retried start: idempotent
            await stream.send_message(sr_pb2.TaskExecStartResponse())
            return
        args = list(req.command_args)
        if args and args[0] == FS_TOOLS:
            ex: _Exec = _FsToolExec(req.exec_id, sb, args[1] if len(args) > 1 else "")
        else:
            ex = _ProcessExec(req.exec_id, sb, self._argv(sb, args), self._env(sb, req))
            if req.timeout_secs:
                loop = asyncio.get_running_loop()
                loop.call_later(req.timeout_secs + _KILL_GRACE, ex.kill)
        sb.execs[req.exec_id] = ex
        await stream.send_message(sr_pb2.TaskExecStartResponse())

    @staticmethod
    def _argv(sb: _Sandbox, args: list[str]) -> list[str]:
        return [_to_host(sb, a) for a in args]

    @staticmethod
    def _env(sb: _Sandbox, req) -> dict[str, str]:
        workdir = req.workdir or WORKSPACE
        cwd = (
            sb.root + workdir[len(WORKSPACE) :]
            if workdir.startswith(WORKSPACE)
            else workdir
        )
        env = {
            "PATH": _PATH,
            "HOME": os.path.join(os.path.dirname(sb.root), "home"),
            "LANG": "C.UTF-8",
            "TMPDIR": sb.tmp,
        }
        env.update(sb.env)
        env.update(req.env)
        for source in req.secret_sources:
            env.update(source.env.contents)
        env = {k: _to_host(sb, v) for k, v in env.items()}
        env.update(
            FAKE_MODAL_CWD=cwd,
            FAKE_MODAL_SANDBOX=sb.sandbox_id,
            FAKE_MODAL_EXEC=req.exec_id,
        )
        return env

    async def TaskExecStdioRead(self, stream) -> None:
        req = await stream.recv_message()
        ex = self.exec_of(req.task_id, req.exec_id)
        fd = (
            1
            if req.file_descriptor == sr_pb2.TASK_EXEC_STDIO_FILE_DESCRIPTOR_STDOUT
            else 2
        )
        offset = req.offset
        while True:
            if ex.gone:
                raise GRPCError(Status.NOT_FOUND, f"task {req.task_id} has finished")
            buf = ex.output[fd]
            if offset < len(buf):
                data = bytes(buf[offset : offset + _CHUNK])
                offset += len(data)
                await stream.send_message(sr_pb2.TaskExecStdioReadResponse(data=data))
                continue
            if ex.eof[fd]:
                return
            await ex.changed()

    async def TaskExecWait(self, stream) -> None:
        req = await stream.recv_message()
        ex = self.exec_of(req.task_id, req.exec_id)
        while ex.exit is None:
            if ex.gone:
                raise GRPCError(Status.NOT_FOUND, f"task {req.task_id} has finished")
            await ex.changed()
        await stream.send_message(
            sr_pb2.TaskExecWaitResponse(**{ex.exit[0]: ex.exit[1]})
        )

    async def TaskExecPoll(self, stream) -> None:
        req = await stream.recv_message()
        ex = self.exec_of(req.task_id, req.exec_id)
        kwargs = {ex.exit[0]: ex.exit[1]} if ex.exit else {}
        await stream.send_message(sr_pb2.TaskExecPollResponse(**kwargs))

    async def TaskExecStdinWrite(self, stream) -> None:
        req = await stream.recv_message()
        ex = self.exec_of(req.task_id, req.exec_id)
        await ex.write_stdin(req.offset, req.data, req.eof)
        await stream.send_message(sr_pb2.TaskExecStdinWriteResponse())

    async def TaskExecStdinWriteStream(self, stream) -> None:
        ex: _Exec | None = None
        offset = 0
        async for msg in stream:
            kind = msg.WhichOneof("payload")
            if kind == "start":
                ex = self.exec_of(msg.start.task_id, msg.start.exec_id)
                offset = msg.start.offset
            elif ex is None:
                raise GRPCError(
                    Status.INVALID_ARGUMENT, "stdin stream must begin with start"
                )
            elif kind == "end":
                await ex.write_stdin(offset, b"", True)
            else:
                await ex.write_stdin(offset, msg.data, False)
                offset += len(msg.data)
        await stream.send_message(sr_pb2.TaskExecStdinWriteStreamResponse())

    async def TaskExecStdinStatus(self, stream) -> None:
        req = await stream.recv_message()
        ex = self.exec_of(req.task_id, req.exec_id)
        await stream.send_message(
            sr_pb2.TaskExecStdinStatusResponse(
                num_bytes_written=ex.stdin_written, closed=ex.stdin_closed
            )
        )
