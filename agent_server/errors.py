"""The error tree of agent-server, and the one JSON shape every error takes.

    AgentServerError                 500 internal_error
    ├── ConfigError                  (start-up only: a bad setting; never an HTTP answer)
    ├── BadRequest                   400 bad_request
    │   ├── InvalidField             400 invalid_field
    │   └── PathOutsideWorkspace     400 path_outside_workspace
    ├── Unauthorized                 401 unauthorized
    ├── NotFound                     404 not_found
    │   ├── SessionNotFound          404 session_not_found
    │   ├── ProfileNotFound          404 profile_not_found
    │   └── WorkspaceFileNotFound    404 file_not_found
    ├── Conflict                     409 conflict
    ├── PayloadTooLarge              413 payload_too_large
    ├── SandboxError                 502 sandbox_error
    │   ├── SandboxTimeout           504 sandbox_timeout
    │   └── SandboxGone              502 sandbox_gone
    ├── ModelError                   502 model_error (retryable says whether a retry may help)
    └── PersistenceError             500 persistence_error

Vendor exceptions (anthropic, modal, peewee) are translated into these at the adapter
that calls the vendor; nothing above the adapters sees a vendor type.
"""

from __future__ import annotations


class AgentServerError(Exception):
    """Base of every error this project raises on purpose."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict:
        """The documented wire shape: ``{"error": {"code", "message"}}``."""
        return {"error": {"code": self.code, "message": self.message}}


class ConfigError(AgentServerError):
    """A setting is missing or invalid; start-up stops with this one line."""

    code = "config_error"


class BadRequest(AgentServerError):
    status_code = 400
    code = "bad_request"


class InvalidField(BadRequest):
    code = "invalid_field"


class PathOutsideWorkspace(BadRequest):
    code = "path_outside_workspace"


class Unauthorized(AgentServerError):
    status_code = 401
    code = "unauthorized"


class NotFound(AgentServerError):
    status_code = 404
    code = "not_found"


class SessionNotFound(NotFound):
    code = "session_not_found"


class ProfileNotFound(NotFound):
    code = "profile_not_found"


class WorkspaceFileNotFound(NotFound):
    code = "file_not_found"


class Conflict(AgentServerError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(AgentServerError):
    status_code = 413
    code = "payload_too_large"


class SandboxError(AgentServerError):
    """A sandbox could not be created or could not do what was asked."""

    status_code = 502
    code = "sandbox_error"


class SandboxTimeout(SandboxError):
    status_code = 504
    code = "sandbox_timeout"


class SandboxGone(SandboxError):
    """The sandbox is no longer running (terminated, crashed or reaped)."""

    code = "sandbox_gone"


class ModelError(AgentServerError):
    """The Messages API failed; ``retryable`` tells whether trying again may help."""

    status_code = 502
    code = "model_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool = False,
        status: int | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable
        self.status = status


class PersistenceError(AgentServerError):
    code = "persistence_error"


class TurnInterrupted(BaseException):
    """Raised inside a running turn (in its greenlet) to stop it at any point.

    A BaseException, like GreenletExit, so that ``except Exception`` blocks in tool
    code do not swallow it.
    """

    def __init__(self, reason: str = "interrupted by user") -> None:
        super().__init__(reason)
        self.reason = reason
