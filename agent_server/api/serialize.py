"""How records, transcripts and files look on the wire (camelCase JSON)."""

from __future__ import annotations

from datetime import datetime, timezone

from agent_server.agent.transcript import Transcript
from agent_server.persistence.types import SessionRecord, WorkspaceFile


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def record_dict(record: SessionRecord) -> dict:
    return {
        "sessionId": record.session_id,
        "agentProfileId": record.agent_profile_id,
        "name": record.name,
        "createdAt": iso(record.created_at),
        "lastActivity": iso(record.last_activity),
        "metadata": dict(record.metadata),
        "sessionOptions": dict(record.options),
    }


def session_summary(record: SessionRecord, runtime_state: dict) -> dict:
    return {**record_dict(record), "runtime": runtime_state}


def transcript_dict(transcript: Transcript) -> dict:
    """Blocks of the main conversation and of each subagent, plus usage and cost."""
    main = transcript.conversations.get("main")
    subagents = [
        {
            "id": conv_id,
            "name": conv.name,
            "status": conv.status,
            "blocks": conv.blocks,
        }
        for conv_id, conv in transcript.conversations.items()
        if conv_id != "main"
    ]
    return {
        "blocks": main.blocks if main is not None else [],
        "subagents": subagents,
        "usage": transcript.usage.to_wire(),
        "costUsd": transcript.cost_usd,
    }


def stored_file_dict(file: WorkspaceFile) -> dict:
    return {
        "path": file.path,
        "size": file.size,
        "modifiedAt": iso(file.modified_at),
        "encoding": file.encoding,
    }
