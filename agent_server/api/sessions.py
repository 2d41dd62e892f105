"""/sessions: create, list, describe, message, interrupt, delete."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from agent_server.agent.transcript import Transcript
from agent_server.api.serialize import (
    record_dict,
    session_summary,
    stored_file_dict,
    transcript_dict,
)
from agent_server.api.state import json_body, runtime
from agent_server.errors import Conflict, InvalidField
from agent_server.sessions.manager import validate_options

bp = Blueprint("sessions", __name__)

MAX_MESSAGE_CHARS = 1_000_000


def _optional_str(body: dict, key: str, limit: int = 200) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidField(f"{key} must be a non-empty string")
    if len(value) > limit:
        raise InvalidField(f"{key} is longer than {limit} characters")
    return value


@bp.post("/sessions/create")
def create_session():
    body = json_body()
    manager = runtime().session_manager
    record = manager.create_session(
        agent_profile_id=_optional_str(body, "agentProfileId"),
        name=_optional_str(body, "name"),
        options=validate_options(body.get("sessionOptions")),
    )
    return jsonify(
        session_summary(record, manager.runtime_state(record.session_id))
    ), 201


@bp.get("/sessions")
def list_sessions():
    manager = runtime().session_manager
    sessions = [
        session_summary(r, manager.runtime_state(r.session_id))
        for r in manager.records()
    ]
    return jsonify({"sessions": sessions})


@bp.get("/sessions/<session_id>")
def get_session(session_id: str):
    rt = runtime()
    manager = rt.session_manager
    session = manager.get_session(session_id)
    data = rt.persistence.load_session(session_id)
    record = session.record if session else manager.record(session_id)
    if session is not None:
        transcript = session.transcript
    else:
        transcript = Transcript.from_json(data.raw_transcript if data else None)
    files = [stored_file_dict(f) for f in (data.workspace_files if data else ())]
    return jsonify(
        {
            "session": record_dict(record),
            "runtime": manager.runtime_state(session_id),
            **transcript_dict(transcript),
            "files": files,
            "lastSeq": manager.last_seq(session_id),
        }
    )


@bp.post("/sessions/<session_id>/message")
def send_message(session_id: str):
    body = json_body()
    content = body.get("content")
    if not isinstance(content, str) or not content.strip():
        raise InvalidField(
            'content must be a non-empty string, e.g. {"content": "Hello"}'
        )
    if len(content) > MAX_MESSAGE_CHARS:
        raise InvalidField(f"content is longer than {MAX_MESSAGE_CHARS} characters")
    session = runtime().session_manager.load_session(session_id)
    return jsonify(session.send_message(content)), 202


@bp.post("/sessions/<session_id>/interrupt")
def interrupt(session_id: str):
    manager = runtime().session_manager
    manager.record(session_id)
    session = manager.get_session(session_id)
    if session is None or not session.interrupt():
        raise Conflict(f"session {session_id} has no running turn to interrupt")
    return jsonify({"sessionId": session_id, "interrupted": True})


@bp.delete("/sessions/<session_id>")
def delete_session(session_id: str):
    purge = request.args.get("purge", "").lower() in ("1", "true", "yes")
    runtime().session_manager.delete_session(session_id, purge=purge)
    return jsonify({"sessionId": session_id, "unloaded": True, "purged": purge})
