"""The local sandbox's processes: cooperative reads, exits never missed, group kills."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import suppress

import gevent.os
from gevent import subprocess

_CHUNK = 65536
_EXIT_CHECK = 0.5  # seconds between checks for an exit gevent did not report


def read_chunks(fd: int) -> Iterator[bytes]:
    """What ``fd`` yields up to EOF, read cooperatively."""
    gevent.os.make_nonblocking(fd)
    while chunk := gevent.os.nb_read(fd, _CHUNK):
        yield chunk


def wait_exit(proc: subprocess.Popen, timeout: float) -> int | None:
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


def kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pgid, signal.SIGKILL)
