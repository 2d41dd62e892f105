"""agent-server: a self-hosted runtime for Claude agents.

Public API::

    from agent_server import create_runtime, Settings, PeeweePersistence, LocalSandboxProvider

    runtime = create_runtime(persistence=PeeweePersistence(url), sandbox=LocalSandboxProvider(dir))
    runtime.start()
    app = runtime.create_app(api_key="...")

Importing this package does nothing else: the heavier parts load on first use.
"""

from __future__ import annotations

import importlib

from agent_server.errors import AgentServerError, ConfigError
from agent_server.persistence.base import PersistenceAdapter
from agent_server.persistence.types import (
    AgentProfile,
    AgentProfileSummary,
    SessionData,
    SessionRecord,
    StoredEvent,
    SubagentDefinition,
    WorkspaceFile,
)
from agent_server.settings import Settings

__version__ = "0.1.0"

# name -> module that defines it, imported on first access
_LAZY = {
    "create_runtime": "agent_server.runtime",
    "AgentRuntime": "agent_server.runtime",
    "InMemoryPersistence": "agent_server.persistence.memory_persistence",
    "PeeweePersistence": "agent_server.persistence.peewee_persistence",
    "SandboxProvider": "agent_server.sandbox.base",
    "Sandbox": "agent_server.sandbox.base",
    "LocalSandboxProvider": "agent_server.sandbox.local_sandbox",
    "ModalSandboxProvider": "agent_server.sandbox.modal_sandbox",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agent_server' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AgentProfile",
    "AgentProfileSummary",
    "AgentServerError",
    "ConfigError",
    "PersistenceAdapter",
    "SessionData",
    "SessionRecord",
    "Settings",
    "StoredEvent",
    "SubagentDefinition",
    "WorkspaceFile",
    *_LAZY,
]
