"""Commands in a Modal sandbox: bash in /workspace, output streamed, groups killed.

Commands run with bash in /workspace, always with a timeout; each runs in its own
process group, whose id it leaves in a file under /tmp so that a timeout or a killed
caller can kill the whole group, background children included. Output is streamed to
the caller as it comes and kept up to a byte budget shared by stdout and stderr.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import gevent

from agent_server.errors import AgentServerError, SandboxError, SandboxGone
from agent_server.sandbox.base import WORKSPACE_ROOT, ExecResult, OutputCallback
from agent_server.sandbox.output import OutputCapture

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
        capture = OutputCapture(
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
        return capture.result(None if timed_out else code, timed_out=timed_out)

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
