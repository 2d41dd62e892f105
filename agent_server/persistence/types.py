"""The values that cross the persistence boundary: frozen dataclasses, no vendor types."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class SessionRecord:
    """One session as stored: who it talks to and when it last did anything."""

    session_id: str
    agent_profile_id: str
    name: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    last_activity: datetime = field(default_factory=utcnow)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> SessionRecord:
        return replace(self, **changes)


# the fields update_session_record may change
UPDATABLE_FIELDS = ("agent_profile_id", "name", "last_activity", "metadata", "options")


@dataclass(frozen=True)
class WorkspaceFile:
    """A file of a session's workspace; binary content travels as base64."""

    path: str  # relative to the workspace root, POSIX separators
    content: str
    encoding: str = "utf-8"  # "utf-8" | "base64"
    size: int = 0
    modified_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        if self.encoding not in ("utf-8", "base64"):
            raise ValueError(
                f"encoding must be 'utf-8' or 'base64', not {self.encoding!r}"
            )

    @classmethod
    def from_bytes(
        cls, path: str, data: bytes, modified_at: datetime | None = None
    ) -> WorkspaceFile:
        """Text stays text; anything that is not valid UTF-8 is stored as base64."""
        try:
            content, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            content, encoding = base64.b64encode(data).decode("ascii"), "base64"
        return cls(
            path=path,
            content=content,
            encoding=encoding,
            size=len(data),
            modified_at=modified_at or utcnow(),
        )

    @property
    def data(self) -> bytes:
        """The file's bytes, whatever its encoding."""
        if self.encoding == "base64":
            return base64.b64decode(self.content)
        return self.content.encode("utf-8")


@dataclass(frozen=True)
class SessionData:
    """A session with what was saved of it: transcript and workspace files."""

    record: SessionRecord
    raw_transcript: str | None = None
    workspace_files: tuple[WorkspaceFile, ...] = ()


@dataclass(frozen=True)
class StoredEvent:
    """One row of a session's event log.

    ``seq`` is the session's event sequence number. A row may stand for several
    consecutive events (coalesced text deltas); its ``seq`` is then the last one.
    """

    seq: int
    name: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class AgentProfileSummary:
    id: str
    name: str
    description: str | None = None


@dataclass(frozen=True)
class SubagentDefinition:
    """A subagent the main agent can start with the Task tool."""

    name: str
    description: str
    prompt: str
    tools: tuple[str, ...] | None = None  # None: the parent's tools, minus Task
    model: str | None = None  # None: the parent's model


@dataclass(frozen=True)
class AgentProfile:
    """What an agent is: prompt, model, tools, subagents, limits."""

    id: str
    name: str
    description: str | None = None
    system_prompt: str = "You are a helpful assistant."
    model: str | None = None  # None: the server's default model
    tools: tuple[str, ...] = ("Read", "Write", "Edit", "Bash", "Glob", "Grep")
    subagents: tuple[SubagentDefinition, ...] = ()
    default_workspace_files: tuple[WorkspaceFile, ...] = ()
    environment_variables: Mapping[str, str] = field(default_factory=dict)
    max_turns: int | None = None
    max_budget_usd: float | None = None
    agent_md: str | None = None
    max_tokens: int = 8192
    thinking_budget_tokens: int | None = None  # extended thinking when set

    def summary(self) -> AgentProfileSummary:
        return AgentProfileSummary(
            id=self.id, name=self.name, description=self.description
        )
