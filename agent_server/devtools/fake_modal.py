"""A fake Modal control plane and task command router, for the real ``modal`` client.

``FakeModal().start()`` serves both gRPC services of Modal (``ModalClient``, here,
and ``TaskCommandRouter``, in fake_modal_tasks) with grpclib on 127.0.0.1 and
returns the URL to put in ``MODAL_SERVER_URL``; any token id and secret are accepted.
It implements what a sandbox's lifecycle uses: apps, environments, images (always
built), sandboxes by id and by name, tags, wait/poll, terminate, and on the router:
exec start, stdio read, wait, poll and stdin. Every other RPC answers UNIMPLEMENTED
and is recorded in ``unimplemented_calls``.

Each sandbox is a temp directory standing for ``/workspace`` (fake_modal_sandbox);
an exec runs as a real local bash process there (fake_modal_tasks), and
``modal-sandbox-fs-tools``, which the client's ``sandbox.filesystem`` API runs
through exec, is implemented in process (fake_modal_fs).

grpclib needs its own asyncio loop, and under gevent an asyncio loop can only run in a
real OS thread: the server lives in one.

Failure knobs for tests: ``fail_next_create`` (the next create fails), and
``kill_sandbox(id)`` (the sandbox dies: its processes are killed, its task ends).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from gevent import monkey
from google.protobuf import empty_pb2
from grpclib import GRPCError, Status
from grpclib.server import Server
from modal_proto import api_pb2
from modal_proto.api_grpc import ModalClientBase

from agent_server.devtools.fake_modal_fs import FS_TOOLS
from agent_server.devtools.fake_modal_sandbox import (
    WORKSPACE,
    _fill_unimplemented,
    _Sandbox,
    _Services,
)
from agent_server.devtools.fake_modal_tasks import _CommandRouter

__all__ = ["FS_TOOLS", "WORKSPACE", "FakeModal"]

# the unpatched primitives: the server thread must not depend on gevent's hub
_start_thread = monkey.get_original("_thread", "start_new_thread")
_allocate_lock = monkey.get_original("_thread", "allocate_lock")

_FINISHED = api_pb2.GenericResult


def _jwt(lifetime: float = 3600) -> str:
    """An unsigned JWT with ``exp``: all the client reads of it."""

    def enc(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{enc({'alg': 'none'})}.{enc({'exp': int(time.time() + lifetime)})}.sig"


@_fill_unimplemented
class _ControlPlane(_Services, ModalClientBase):
    async def ClientHello(self, stream) -> None:
        await stream.recv_message()
        await stream.send_message(api_pb2.ClientHelloResponse())

    async def AuthTokenGet(self, stream) -> None:
        await stream.recv_message()
        await stream.send_message(api_pb2.AuthTokenGetResponse(token=_jwt()))

    async def AppGetOrCreate(self, stream) -> None:
        req = await stream.recv_message()
        app_id = self.fake._apps.setdefault(req.app_name, "ap-" + uuid.uuid4().hex[:20])
        await stream.send_message(api_pb2.AppGetOrCreateResponse(app_id=app_id))

    async def EnvironmentGetOrCreate(self, stream) -> None:
        req = await stream.recv_message()
        settings = api_pb2.EnvironmentSettings(image_builder_version="2025.06")
        meta = api_pb2.EnvironmentMetadata(name=req.deployment_name, settings=settings)
        await stream.send_message(
            api_pb2.EnvironmentGetOrCreateResponse(
                environment_id="en-fake", metadata=meta
            )
        )

    async def ImageGetOrCreate(self, stream) -> None:
        await stream.recv_message()
        ok = api_pb2.GenericResult(status=_FINISHED.GENERIC_STATUS_SUCCESS)
        image_id = "im-" + uuid.uuid4().hex[:20]
        await stream.send_message(
            api_pb2.ImageGetOrCreateResponse(image_id=image_id, result=ok)
        )

    async def SandboxCreateV2(self, stream) -> None:
        req = await stream.recv_message()
        fake = self.fake
        if fake.fail_next_create:
            fake.fail_next_create = False
            raise GRPCError(
                Status.RESOURCE_EXHAUSTED, "fake Modal: no capacity (fail_next_create)"
            )
        name = req.definition.name
        for sb in self.sandboxes.values():
            if name and sb.alive and sb.name == name and sb.app_id == req.app_id:
                raise GRPCError(
                    Status.ALREADY_EXISTS, f"a sandbox named {name!r} already exists"
                )
        env: dict[str, str] = {}
        for source in req.secret_sources:
            env.update(source.env.contents)
        sandbox_id = "sb-" + uuid.uuid4().hex
        root = os.path.join(fake._base, sandbox_id)
        os.makedirs(os.path.join(root, "workspace"))
        os.makedirs(os.path.join(root, "home"))
        os.makedirs(os.path.join(root, "tmp"))
        sb = _Sandbox(
            sandbox_id=sandbox_id,
            task_id="ta-" + uuid.uuid4().hex[:20] + "V",
            app_id=req.app_id,
            name=name,
            root=os.path.join(root, "workspace"),
            env=env,
            tags={t.tag_name: t.tag_value for t in req.tags},
        )
        self.sandboxes[sandbox_id] = sb
        if req.definition.timeout_secs:
            timeout = _FINISHED(status=_FINISHED.GENERIC_STATUS_TIMEOUT)
            asyncio.get_running_loop().call_later(
                req.definition.timeout_secs, sb.end, timeout
            )
        await stream.send_message(
            api_pb2.SandboxCreateV2Response(
                sandbox_id=sandbox_id,
                task_id=sb.task_id,
                metadata=api_pb2.SandboxHandleMetadata(app_id=sb.app_id),
                command_router_access=api_pb2.CommandRouterAccess(
                    url=fake.url, jwt=_jwt()
                ),
            )
        )

    async def SandboxGetFromNameV2(self, stream) -> None:
        req = await stream.recv_message()
        app_id = self.fake._apps.get(req.app_name)
        for sb in self.sandboxes.values():
            if sb.alive and sb.name == req.sandbox_name and sb.app_id == app_id:
                meta = api_pb2.SandboxHandleMetadata(app_id=sb.app_id)
                await stream.send_message(
                    api_pb2.SandboxGetFromNameResponse(
                        sandbox_id=sb.sandbox_id, metadata=meta
                    )
                )
                return
        raise GRPCError(
            Status.NOT_FOUND, f"no running sandbox named {req.sandbox_name!r}"
        )

    SandboxGetFromName = SandboxGetFromNameV2

    async def SandboxGetCommandRouterAccess(self, stream) -> None:
        await stream.recv_message()
        await stream.send_message(
            api_pb2.SandboxGetCommandRouterAccessResponse(url=self.fake.url, jwt=_jwt())
        )

    async def SandboxGetTaskIdV2(self, stream) -> None:
        req = await stream.recv_message()
        sb = self.sandbox(req.sandbox_id)
        if sb.alive:
            resp = api_pb2.SandboxGetTaskIdResponse(task_id=sb.task_id)
        else:
            resp = api_pb2.SandboxGetTaskIdResponse(task_result=sb.result)
        await stream.send_message(resp)

    async def SandboxTagsSetV2(self, stream) -> None:
        req = await stream.recv_message()
        self.sandbox(req.sandbox_id).tags = {t.tag_name: t.tag_value for t in req.tags}
        await stream.send_message(empty_pb2.Empty())

    async def SandboxTagsGetV2(self, stream) -> None:
        req = await stream.recv_message()
        tags = self.sandbox(req.sandbox_id).tags
        protos = [api_pb2.SandboxTag(tag_name=k, tag_value=v) for k, v in tags.items()]
        await stream.send_message(api_pb2.SandboxTagsGetResponse(tags=protos))

    async def SandboxTerminateV2(self, stream) -> None:
        req = await stream.recv_message()
        sb = self.sandbox(req.sandbox_id)
        sb.end(_FINISHED(status=_FINISHED.GENERIC_STATUS_TERMINATED))
        await stream.send_message(
            api_pb2.SandboxTerminateResponse(existing_result=sb.result)
        )

    async def SandboxWaitV2(self, stream) -> None:
        req = await stream.recv_message()
        sb = self.sandbox(req.sandbox_id)
        if sb.alive and req.timeout > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(sb.ended.wait(), req.timeout)
        meta = api_pb2.SandboxHandleMetadata(app_id=sb.app_id)
        await stream.send_message(
            api_pb2.SandboxWaitResponse(result=sb.result, metadata=meta)
        )


class FakeModal:
    """A fake Modal on 127.0.0.1: ``with FakeModal() as fake: os.environ[...] = fake.url``."""

    def __init__(self) -> None:
        self.url = ""
        self.fail_next_create = False
        self.unimplemented_calls: list[str] = []
        self._apps: dict[str, str] = {}
        self._sandboxes: dict[str, _Sandbox] = {}
        self._base = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopped = _allocate_lock()

    def start(self) -> str:
        """Serve on a free port; returns the URL for MODAL_SERVER_URL."""
        self._base = os.path.realpath(tempfile.mkdtemp(prefix="fake-modal-"))
        started = _allocate_lock()
        started.acquire()
        self._stopped.acquire()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self._serve(started))
            except BaseException as exc:  # reported to start() below
                failure.append(exc)
            finally:
                if started.locked():
                    started.release()
                self._stopped.release()

        _start_thread(run, ())
        # blocks the hub for the few milliseconds the server takes to bind
        started.acquire()
        if failure:
            raise RuntimeError(f"fake Modal did not start: {failure[0]!r}")
        return self.url

    async def _serve(self, started) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = Server([_ControlPlane(self), _CommandRouter(self)])
        await server.start("127.0.0.1", 0)
        port = server._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        started.release()
        await self._stop.wait()
        for sb in self._sandboxes.values():
            sb.end(_FINISHED(status=_FINISHED.GENERIC_STATUS_TERMINATED))
        server.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2)

    def stop(self) -> None:
        """Kill every sandbox's processes, stop serving and delete the directories."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._stopped.acquire(timeout=5)
            self._loop = None
        if self._base:
            shutil.rmtree(self._base, ignore_errors=True)
            self._base = ""

    def __enter__(self) -> FakeModal:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _in_loop(self, fn, *args):
        """Run ``fn(*args)`` on the server's loop and return its result."""
        if self._loop is None:
            raise RuntimeError("fake Modal is not running")
        done = _allocate_lock()
        done.acquire()
        box: list = []

        def call() -> None:
            try:
                box.append((True, fn(*args)))
            except BaseException as exc:
                box.append((False, exc))
            finally:
                done.release()

        self._loop.call_soon_threadsafe(call)
        if not done.acquire(timeout=10):
            raise RuntimeError("fake Modal's loop did not answer within 10 s")
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def kill_sandbox(self, sandbox_id: str) -> None:
        """The sandbox dies: its processes are killed and its task ends (exit 137)."""
        failed = _FINISHED(
            status=_FINISHED.GENERIC_STATUS_FAILURE,
            exitcode=137,
            exception="fake Modal: the sandbox was killed",
        )
        self._in_loop(lambda: self._sandboxes[sandbox_id].end(failed))

    def sandbox_ids(self, *, alive: bool = True) -> list[str]:
        """Ids of the sandboxes created so far (only running ones by default)."""
        return self._in_loop(
            lambda: [
                s.sandbox_id for s in self._sandboxes.values() if s.alive or not alive
            ]
        )

    def workspace_dir(self, sandbox_id: str) -> Path:
        """The directory standing for the sandbox's /workspace."""
        return Path(self._in_loop(lambda: self._sandboxes[sandbox_id].root))
