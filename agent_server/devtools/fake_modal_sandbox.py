"""A fake Modal sandbox's state, and the base both of fake Modal's services share.

A sandbox is a temp directory standing for ``/workspace`` (with a private ``/tmp``
and home beside it) and the execs started in it; when it ends, every process
carrying its id in the environment is killed and every exec's readers get NOT_FOUND.
Everything here runs on the fake server's asyncio loop.
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from grpclib import GRPCError, Status
from modal_proto import api_pb2

if TYPE_CHECKING:
    from agent_server.devtools.fake_modal import FakeModal

WORKSPACE = "/workspace"


class _Exec:
    """One command's output buffers, stdin position and exit status."""

    # a process exec's processes are killed with all of its sandbox's at once
    killed_with_sandbox = False

    def __init__(self, exec_id: str) -> None:
        self.exec_id = exec_id
        self.output = {1: bytearray(), 2: bytearray()}
        self.eof = {1: False, 2: False}
        self.exit: tuple[str, int] | None = None  # ("code" | "signal", n)
        self.gone = False  # its sandbox died: readers get NOT_FOUND
        self.stdin_written = 0
        self.stdin_closed = False
        self._changed = asyncio.Event()

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self) -> None:
        await self._changed.wait()

    def add_output(self, fd: int, data: bytes) -> None:
        self.output[fd] += data
        self.notify()

    def finish(self, kind: str, value: int) -> None:
        if self.exit is None:
            self.exit = (kind, value)
        self.eof = {1: True, 2: True}
        self.notify()

    async def write_stdin(self, offset: int, data: bytes, eof: bool) -> None:
        skip = self.stdin_written - offset  # resent bytes are dropped
        if skip < 0:
            raise GRPCError(Status.OUT_OF_RANGE, "stdin offset beyond what was written")
        data = data[skip:]
        if data and not self.stdin_closed:
            await self._stdin(data)
        self.stdin_written += len(data)
        if eof and not self.stdin_closed:
            self.stdin_closed = True
            await self._stdin_eof()

    async def _stdin(self, data: bytes) -> None:
        raise NotImplementedError

    async def _stdin_eof(self) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError


def _kill_marked(var: str, value: str) -> None:
    """SIGKILL every process whose environment carries ``var=value``."""
    marker = f"{var}={value}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    os.kill(int(entry), signal.SIGKILL)
        except OSError:
            continue  # gone, or not ours


@dataclass
class _Sandbox:
    sandbox_id: str
    task_id: str
    app_id: str
    name: str
    root: str
    env: dict[str, str]
    tags: dict[str, str] = field(default_factory=dict)
    result: api_pb2.GenericResult | None = None
    execs: dict[str, _Exec] = field(default_factory=dict)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def tmp(self) -> str:
        return os.path.join(os.path.dirname(self.root), "tmp")

    @property
    def alive(self) -> bool:
        return self.result is None

    def end(self, result: api_pb2.GenericResult) -> None:
        if self.result is not None:
            return
        self.result = result
        for ex in self.execs.values():
            if not ex.killed_with_sandbox:  # processes: all at once below
                ex.kill()
            ex.gone = True
            ex.notify()
        _kill_marked("FAKE_MODAL_SANDBOX", self.sandbox_id)
        self.ended.set()


def _fill_unimplemented(cls: type) -> type:
    """Answer every RPC the fake leaves out with UNIMPLEMENTED, and record it."""
    for name in list(getattr(cls, "__abstractmethods__", ())):

        async def handler(self, stream, _name=name):
            self.fake.unimplemented_calls.append(_name)
            raise GRPCError(
                Status.UNIMPLEMENTED, f"fake Modal does not implement {_name}"
            )

        setattr(cls, name, handler)
    cls.__abstractmethods__ = frozenset()
    return cls


class _Services:
    """State shared by both services; every method runs on the server's loop."""

    def __init__(self, fake: FakeModal) -> None:
        self.fake = fake

    @property
    def sandboxes(self) -> dict[str, _Sandbox]:
        return self.fake._sandboxes

    def sandbox(self, sandbox_id: str) -> _Sandbox:
        sb = self.sandboxes.get(sandbox_id)
        if sb is None:
            raise GRPCError(Status.NOT_FOUND, f"Sandbox {sandbox_id} not found")
        return sb

    def live_task(self, task_id: str) -> _Sandbox:
        for sb in self.sandboxes.values():
            if sb.task_id == task_id:
                if not sb.alive:
                    raise GRPCError(Status.NOT_FOUND, f"task {task_id} has finished")
                return sb
        raise GRPCError(Status.NOT_FOUND, f"task {task_id} not found")

    def exec_of(self, task_id: str, exec_id: str) -> _Exec:
        sb = self.live_task(task_id)
        ex = sb.execs.get(exec_id)
        if ex is None:
            raise GRPCError(Status.NOT_FOUND, f"exec {exec_id} not found")
        return ex
