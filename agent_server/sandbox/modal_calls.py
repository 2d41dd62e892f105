"""Calls into modal: loaded lazily, bounded by our own time limit, errors translated.

modal itself retries an unreachable server for about a minute, so every call gets our
own limit (``SandboxTimeout`` past it), and its exceptions become SandboxError,
SandboxTimeout or SandboxGone: nothing of modal leaves the ``modal_*`` modules.

Under gevent's ``patch_all()`` modal's blocking API cooperates: its asyncio loop runs
in a greenlet and the hub stays free while a call waits.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import gevent

from agent_server.errors import (
    AgentServerError,
    ConfigError,
    SandboxError,
    SandboxGone,
    SandboxTimeout,
)

MISSING_EXTRA = (
    "SANDBOX_PROVIDER=modal needs the modal extra: pip install 'agent-server[modal]'"
)


def import_modal():
    """The ``modal`` module; ConfigError if the extra is not installed."""
    try:
        import modal
    except ImportError:
        raise ConfigError(MISSING_EXTRA) from None
    # modal's blocking API runs its loop in a greenlet of this thread, so it believes
    # it is called from async code and warns on every call: that is expected here
    warnings.filterwarnings("ignore", category=modal.exception.AsyncUsageWarning)
    return modal


def bounded_call(
    what: str,
    fn: Callable,
    args: tuple,
    kw: Mapping[str, Any],
    *,
    limit: float,
    passthrough: tuple[type[BaseException], ...],
    translate: Callable[[str, Exception], SandboxError],
):
    """``fn(*args, **kw)`` within ``limit`` seconds, other errors ``translate``d.

    Exceptions of the ``passthrough`` types, and this project's own, are re-raised as
    they are.
    """
    timer = gevent.Timeout(limit)
    timer.start()
    try:
        return fn(*args, **kw)
    except gevent.Timeout as exc:
        if exc is not timer:
            raise
        raise SandboxTimeout(
            f"Modal did not answer within {limit:g} s while {what}: check network "
            "access to Modal and MODAL_TOKEN_ID/MODAL_TOKEN_SECRET"
        ) from None
    except AgentServerError:
        raise
    except passthrough:
        raise
    except Exception as exc:
        raise translate(what, exc) from None
    finally:
        timer.close()


def translate_error(modal_exceptions: Any, what: str, exc: Exception) -> SandboxError:
    """This project's error for a modal (or grpc, or OS) exception."""
    e = modal_exceptions
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, e.AuthError):
        return SandboxError(
            f"Modal rejected the credentials while {what}: check "
            f"MODAL_TOKEN_ID/MODAL_TOKEN_SECRET ({detail})"
        )
    if isinstance(exc, (e.ConnectionError, ConnectionError, OSError)):
        return SandboxError(
            f"cannot reach Modal while {what}: check network access to Modal ({detail})"
        )
    if isinstance(exc, e.NotFoundError):
        return SandboxGone(f"Modal no longer knows the sandbox ({what}): {detail}")
    return SandboxError(f"Modal failed while {what}: {detail}")
