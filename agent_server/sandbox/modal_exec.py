"""Commands in a Modal sandbox: bash in /workspace, output streamed, groups killed.

Commands run with bash in /workspace, always with a timeout; each runs in its own
process group, whose id it leaves in a file under /tmp so that a timeout or a killed
caller can kill the whole group, background children included. Output is streamed to
the caller as it comes and kept up to a byte budget shared by stdout and stderr.
"""

from __future__ import annotations

import codecs
import math
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import gevent

from agent_server.errors import AgentServerError, SandboxError, SandboxGone
from agent_server.sandbox.base import WORKSPACE_ROOT, ExecResult, OutputCallback

if TYPE_CHECKING:
    from agent_server.sandbox.modal_sandbox import ModalSandboxProvider

# runs "$1" in its own process group, leaves the group id in "$0" while it runs
_GROUP_WRAPPER = (
    'set -m; bash -c "$1" & pid=$!; exec 2>/dev/null; set +m; '
    'echo $pid > "$0"; wait $pid; rc=$?; rm -f "$0"; exit $rc'
)
_KILL_GROUP = 'kill -KILL -- -"$(cat "$0" 2>/dev/null)" 2>/dev/null; rm -f "$0"'
_FILE_OP_TIMEOUT = 60  # seconds for a helper command (resolve, list, restore)


class ModalCommands:
    """The command half of ModalSandbox: ``exec`` and the helper commands.

    Mixed into ModalSandbox, which supplies the attributes below and the methods
    ``_call`` (a provider call, SandboxGone once the sandbox has ended) and
    ``_check_open``.
    """

    _p: ModalSandboxProvider
    _sb: Any  # the modal.Sandbox
    _env: dict[str, str]
    _terminated: bool

    def exec(
        self,
        command: str,
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecResult:
        """Run ``command`` with bash in /workspace; see the module docstring."""
        self._check_open()
        p = self._p
        pidfile = f"/tmp/.agent-server-exec-{uuid.uuid4().hex}"
        modal_timeout = max(1, math.ceil(timeout))
        full_env = {**self._env, **{str(k): str(v) for k, v in (env or {}).items()}}
        started = time.monotonic()
        proc = self._call(
            "starting a command",
            self._sb.exec,
            "bash",
            "-c",
            _GROUP_WRAPPER,
            pidfile,
            command,
            timeout=modal_timeout,
            workdir=WORKSPACE_ROOT,
            env=full_env,
            text=False,
        )
        # a failing callback stops the command; exec then re-raises the failure
        capture = _Capture(
            p.output_limit, on_output, lambda: gevent.spawn(self._kill_group, pidfile)
        )
        readers = [
            gevent.spawn(capture.drain, proc.stdout, "stdout"),
            gevent.spawn(capture.drain, proc.stderr, "stderr"),
        ]
        finished = False
        try:
            code = self._call(
                "running a command",
                self._wait,
                proc,
                readers,
                limit=modal_timeout + p.call_timeout,
            )
            finished = True
        except SandboxGone:
            finished = True  # nothing left to kill
            raise
        finally:
            gevent.killall(readers)
            if not finished:  # our caller is gone: nothing outlives exec
                self._kill_group(pidfile)
        if capture.error is not None:
            raise capture.error
        elapsed = time.monotonic() - started
        # modal reports -1 when its deadline passed; the kill may also win the race
        timed_out = code == -1 or (
            code is not None and code >= 128 and elapsed >= timeout
        )
        if timed_out:
            self._kill_group(pidfile)
        return ExecResult(
            exit_code=None if timed_out else code,
            stdout="".join(capture.text["stdout"]),
            stderr="".join(capture.text["stderr"]),
            timed_out=timed_out,
            truncated=capture.truncated,
        )

    def _wait(self, proc, readers) -> int:
        code = proc.wait()
        gevent.joinall(readers, raise_error=True)
        return code

    def _kill_group(self, pidfile: str) -> None:
        """Kill a command's whole process group (best effort, bounded)."""
        if self._terminated:
            return
        with suppress(AgentServerError):
            proc = self._call(
                "stopping a command",
                self._sb.exec,
                "bash",
                "-c",
                _KILL_GROUP,
                pidfile,
                timeout=10,
            )
            self._call("stopping a command", proc.wait)

    def _run(self, what: str, *argv: str, stdin: bytes | None = None) -> bytes:
        """A helper command's stdout; SandboxError if it fails."""
        self._check_open()
        proc = self._call(
            what, self._sb.exec, *argv, timeout=_FILE_OP_TIMEOUT, text=False
        )
        if stdin is not None:
            self._call(what, self._feed, proc, stdin, limit=_FILE_OP_TIMEOUT)
        out, err, code = self._call(
            what, self._collect, proc, limit=_FILE_OP_TIMEOUT + 5
        )
        if code != 0:
            detail = err.decode("utf-8", "replace").strip()[:500]
            raise SandboxError(f"{what} failed in the sandbox (exit {code}): {detail}")
        return out

    @staticmethod
    def _feed(proc, data: bytes) -> None:
        step = 4 << 20  # below the client's stdin buffer limit
        for i in range(0, len(data), step):
            proc.stdin.write(data[i : i + step])
            proc.stdin.drain()
        proc.stdin.write_eof()
        proc.stdin.drain()

    @staticmethod
    def _collect(proc) -> tuple[bytes, bytes, int]:
        err = gevent.spawn(proc.stderr.read)
        out = proc.stdout.read()
        return out, err.get(), proc.wait()


class _Capture:
    """Collects output up to a shared byte budget (stdout and stderr together)."""

    def __init__(
        self,
        limit: int,
        on_output: OutputCallback | None,
        on_error: Callable[[], object],
    ) -> None:
        self.left = limit
        self.on_output = on_output
        self.on_error = on_error
        self.text: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.truncated = False
        self.error: BaseException | None = None

    def drain(self, reader, stream: str) -> None:
        """Read the stream to its end; what goes past the budget is dropped."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for chunk in reader:
            keep = chunk[: max(self.left, 0)]
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
            self.error = exc
            self.on_error()
