"""The Modal sandbox: a session's workspace in a remote Modal container.

Only the ``modal_*`` modules import ``modal``, lazily, when the provider is built:
this one (the provider, the sandbox and its lifecycle), modal_calls (every call
bounded by our own ``call_timeout``, modal's exceptions translated into SandboxError,
SandboxTimeout or SandboxGone), modal_exec (commands) and modal_files (files).

A session's sandbox is named after the session, so creating it twice (a second
server, a restart) finds the running one instead of starting another; files are
restored only into a new sandbox, since a running one is at least as current.
The image needs bash, coreutils, GNU find and tar (Debian-based images have them).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any

from agent_server.errors import (
    AgentServerError,
    ConfigError,
    SandboxError,
    SandboxGone,
)
from agent_server.persistence.types import WorkspaceFile
from agent_server.sandbox.base import (
    DEFAULT_IGNORE,
    DEFAULT_OUTPUT_LIMIT,
    WORKSPACE_ROOT,
    Sandbox,
    SandboxProvider,
    SandboxStatus,
)
from agent_server.sandbox.modal_calls import (
    MISSING_EXTRA,
    bounded_call,
    import_modal,
    translate_error,
)
from agent_server.sandbox.modal_exec import ModalCommands
from agent_server.sandbox.modal_files import ModalFiles

__all__ = [
    "DEFAULT_APT_PACKAGES",
    "DEFAULT_CREATE_TIMEOUT",
    "MISSING_EXTRA",
    "SESSION_TAG",
    "ModalSandbox",
    "ModalSandboxProvider",
    "sandbox_name",
]

DEFAULT_APT_PACKAGES = ("git", "curl", "ripgrep", "jq", "procps", "unzip")
DEFAULT_CREATE_TIMEOUT = 600.0  # the first create builds the image
SESSION_TAG = "agent-server-session"
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
# what every command sees, as with the local sandbox
_BASE_ENV = {"HOME": WORKSPACE_ROOT, "WORKSPACE": WORKSPACE_ROOT}


def sandbox_name(session_id: str) -> str:
    """A Modal-safe sandbox name derived from the session id (stable, < 64 chars)."""
    safe = _NAME_UNSAFE.sub("-", session_id)
    name = f"session-{safe}"
    if safe == session_id and len(name) < 64:
        return name
    digest = hashlib.sha256(session_id.encode()).hexdigest()[:12]
    return f"session-{safe[:40]}-{digest}"


class ModalSandboxProvider(SandboxProvider):
    """Sandboxes in Modal containers, one per session, found again by name."""

    name = "modal"
    isolated = True

    def __init__(
        self,
        *,
        app_name: str,
        token_id: str | None = None,
        token_secret: str | None = None,
        image: Any = None,
        timeout: int = 3600,
        idle_timeout: int | None = 1800,
        call_timeout: float = 30.0,
        create_timeout: float = DEFAULT_CREATE_TIMEOUT,
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
        ignore: Sequence[str] = DEFAULT_IGNORE,
        server_url: str | None = None,
        apt_packages: Sequence[str] = DEFAULT_APT_PACKAGES,
        pip_packages: Sequence[str] = (),
        npm_packages: Sequence[str] = (),
    ) -> None:
        self.modal = import_modal()
        self.app_name = app_name
        self.timeout = int(timeout)
        self.idle_timeout = int(idle_timeout) if idle_timeout else None
        self.call_timeout = call_timeout
        self.create_timeout = max(create_timeout, call_timeout)
        self.output_limit = output_limit
        self.ignore = tuple(tuple(p for p in i.split("/") if p) for i in ignore)
        self._credentials = (
            (token_id, token_secret) if token_id and token_secret else None
        )
        self._server_url = server_url
        self._image_spec = image
        self._packages = (tuple(apt_packages), tuple(pip_packages), tuple(npm_packages))
        self._client: Any = None
        self._app: Any = None
        self._image: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> ModalSandboxProvider:
        """The provider described by the server's Settings (SANDBOX_PROVIDER=modal)."""
        if not (settings.modal_token_id and settings.modal_token_secret):
            raise ConfigError(
                "SANDBOX_PROVIDER=modal needs MODAL_TOKEN_ID and MODAL_TOKEN_SECRET "
                "(create a token at modal.com, or use SANDBOX_PROVIDER=local)"
            )
        return cls(
            app_name=settings.modal_app_name,
            token_id=settings.modal_token_id,
            token_secret=settings.modal_token_secret,
            # a safety net for sandboxes a crashed server left behind; the server
            # itself terminates them when their session goes idle
            idle_timeout=int(settings.idle_timeout_seconds) + 600,
            output_limit=settings.exec_output_limit_bytes,
        )

    # ---- bounded, translated calls into modal ----

    def call(
        self,
        what: str,
        fn: Callable,
        *args,
        limit: float | None = None,
        passthrough: tuple[type[BaseException], ...] = (),
        **kw,
    ):
        """``fn(*args, **kw)`` within our own time limit, modal errors translated.

        Exceptions of the ``passthrough`` types are re-raised as they are, for the
        caller in the ``modal_*`` modules to handle.
        """
        return bounded_call(
            what,
            fn,
            args,
            kw,
            limit=self.call_timeout if limit is None else limit,
            passthrough=passthrough,
            translate=self.translate,
        )

    def translate(self, what: str, exc: Exception) -> SandboxError:
        """This project's error for a modal (or grpc, or OS) exception."""
        return translate_error(self.modal.exception, what, exc)

    def _ready(self) -> tuple[Any, Any, Any]:
        """The client, app and image, made on first use (once, under a lock)."""
        with self._lock:
            if self._client is None:
                self._client = self.call("connecting to Modal", self._connect)
            if self._app is None:
                self._app = self.call(
                    f"looking up the app {self.app_name!r}",
                    self.modal.App.lookup,
                    self.app_name,
                    create_if_missing=True,
                    client=self._client,
                )
            if self._image is None:
                self._image = self._build_image()
            return self._client, self._app, self._image

    def _connect(self):
        modal = self.modal
        if self._credentials is None:
            return modal.Client.from_env()
        if self._server_url is None:
            return modal.Client.from_credentials(*self._credentials)
        from modal_proto import api_pb2

        client = modal.Client(
            self._server_url, api_pb2.CLIENT_TYPE_CLIENT, self._credentials
        )
        client._open()
        return client

    def _build_image(self):
        spec, modal = self._image_spec, self.modal
        if spec is not None and not isinstance(spec, str):
            return spec  # a modal.Image the caller built
        apt, pip, npm = self._packages
        if npm:
            apt = (*apt, "nodejs", "npm")
        image = modal.Image.from_registry(spec) if spec else modal.Image.debian_slim()
        if apt:
            image = image.apt_install(*apt)
        if pip:
            image = image.pip_install(*pip)
        if npm:
            image = image.run_commands("npm install -g " + " ".join(npm))
        return image.workdir(WORKSPACE_ROOT)

    # ---- the provider interface ----

    def create(
        self,
        session_id: str,
        *,
        env: Mapping[str, str] | None = None,
        files: Sequence[WorkspaceFile] = (),
    ) -> ModalSandbox:
        """The session's running sandbox (found by name), or a new one with ``files``."""
        client, app, image = self._ready()
        env = {str(k): str(v) for k, v in (env or {}).items()}
        name = sandbox_name(session_id)
        Sb = self.modal.Sandbox
        for _attempt in range(3):
            try:
                sb = self.call(
                    "creating a sandbox",
                    Sb.create,
                    "sleep",
                    "infinity",
                    app=app,
                    image=image,
                    name=name,
                    tags={SESSION_TAG: session_id},
                    env={**env, **_BASE_ENV},
                    workdir=WORKSPACE_ROOT,
                    timeout=self.timeout,
                    idle_timeout=self.idle_timeout,
                    client=client,
                    limit=self.create_timeout,
                    passthrough=(self.modal.exception.AlreadyExistsError,),
                )
            except self.modal.exception.AlreadyExistsError:
                try:
                    found = self.call(
                        f"looking up the running sandbox {name!r}",
                        Sb.from_name,
                        self.app_name,
                        name,
                        client=client,
                    )
                except SandboxGone:
                    continue  # it ended in between: create again
                return ModalSandbox(self, found, env)
            sandbox = ModalSandbox(self, sb, env)
            if files:
                try:
                    sandbox.restore(files)
                except AgentServerError:
                    sandbox.terminate()
                    raise
            return sandbox
        raise SandboxError(
            f"could not create the sandbox {name!r} on Modal: one of that name keeps "
            "appearing and ending; try again"
        )

    def attach(self, sandbox_id: str) -> ModalSandbox | None:
        """The sandbox with this id if it is still running, else None."""
        client, _app, _image = self._ready()
        e = self.modal.exception
        try:
            sb = self.call(
                f"looking up the sandbox {sandbox_id}",
                self.modal.Sandbox.from_id,
                sandbox_id,
                client=client,
                passthrough=(e.NotFoundError, e.InvalidError),
            )
        except (e.NotFoundError, e.InvalidError):
            return None
        if sb.returncode is not None:
            return None
        return ModalSandbox(self, sb, {})

    def close(self) -> None:
        """Close the Modal client (the sandboxes keep running)."""
        client, self._client, self._app = self._client, None, None
        if client is not None:
            with suppress(AgentServerError):
                self.call("closing the Modal client", client.close)


class ModalSandbox(ModalCommands, ModalFiles, Sandbox):
    """One session's Modal sandbox."""

    def __init__(self, provider: ModalSandboxProvider, sb: Any, env: Mapping[str, str]):
        self.id = sb.object_id
        self._p = provider
        self._sb = sb
        self._env = {**_BASE_ENV, **env}
        self._terminated = False

    # ---- lifecycle ----

    def poll(self) -> SandboxStatus:
        """Running, or how it ended (modal's exit code: 137 terminated, 124 timeout)."""
        if self._terminated:
            return SandboxStatus(alive=False, message="terminated")
        try:
            code = self._p.call("checking the sandbox", self._sb.poll)
        except SandboxGone as exc:
            return SandboxStatus(alive=False, message=exc.message)
        if code is None:
            return SandboxStatus(alive=True)
        return SandboxStatus(
            alive=False, exit_code=code, message=f"the sandbox ended (exit code {code})"
        )

    def terminate(self) -> None:
        """Stop the sandbox on Modal; calling it twice is fine."""
        if self._terminated:
            return
        self._terminated = True
        with suppress(SandboxGone):
            self._p.call("terminating the sandbox", self._sb.terminate)
        with suppress(AgentServerError):
            self._p.call("closing the sandbox connection", self._sb.detach)

    # ---- internals ----

    def _check_open(self) -> None:
        if self._terminated:
            raise SandboxGone(f"sandbox {self.id} was terminated")

    def _call(self, what: str, fn: Callable, *args, **kw):
        """A provider call; a failure on a sandbox that has ended is SandboxGone."""
        try:
            return self._p.call(what, fn, *args, **kw)
        except SandboxError:
            status = self._status_after_error()
            if status is not None and not status.alive:
                raise SandboxGone(
                    f"sandbox {self.id} is gone while {what}: {status.message}"
                ) from None
            raise

    def _status_after_error(self) -> SandboxStatus | None:
        try:
            return self.poll()
        except AgentServerError:
            return None
