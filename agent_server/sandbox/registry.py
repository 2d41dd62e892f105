"""Picks the sandbox provider named by the settings; modal is imported only if chosen."""

from __future__ import annotations

import logging

from agent_server.errors import ConfigError
from agent_server.sandbox.base import SandboxProvider
from agent_server.settings import SANDBOX_PROVIDERS, Settings

log = logging.getLogger(__name__)


def create_provider(settings: Settings) -> SandboxProvider:
    """The provider for ``settings.sandbox_provider``; ConfigError for an unknown one."""
    name = settings.sandbox_provider
    if name == "local":
        return _local(settings)
    if name == "modal":
        return _modal(settings)
    raise ConfigError(
        f"SANDBOX_PROVIDER={name!r} is invalid: use one of {', '.join(SANDBOX_PROVIDERS)}"
    )


def _local(settings: Settings) -> SandboxProvider:
    from agent_server.sandbox.local_sandbox import LocalSandboxProvider

    provider = LocalSandboxProvider(
        settings.workspaces_dir,
        output_limit=settings.exec_output_limit_bytes,
        hidden_paths=(settings.data_dir,),
    )
    if not provider.isolated:
        hint = (
            "Install bubblewrap for isolation."
            if provider.bwrap_missing
            else "Make bwrap work here (it needs user namespaces) for isolation."
        )
        log.warning(
            "local sandbox is not isolated: %s; commands run as plain subprocesses "
            "with the server's user. %s",
            provider.isolation_problem,
            hint,
        )
    return provider


def _modal(settings: Settings) -> SandboxProvider:
    try:
        from agent_server.sandbox.modal_sandbox import ModalSandboxProvider
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "modal":
            raise ConfigError(
                "SANDBOX_PROVIDER=modal needs the modal package: "
                "pip install 'agent-server[modal]'"
            ) from None
        raise
    return ModalSandboxProvider.from_settings(settings)
