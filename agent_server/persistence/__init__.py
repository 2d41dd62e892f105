"""Persistence: the adapter interface, its value types and the bundled adapters."""

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

__all__ = [
    "AgentProfile",
    "AgentProfileSummary",
    "PersistenceAdapter",
    "SessionData",
    "SessionRecord",
    "StoredEvent",
    "SubagentDefinition",
    "WorkspaceFile",
]
