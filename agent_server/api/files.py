"""/sessions/:id/files: the workspace, from the live sandbox or else from storage."""

from __future__ import annotations

import mimetypes

from flask import Blueprint, Response, jsonify

from agent_server.api.serialize import stored_file_dict
from agent_server.api.state import runtime
from agent_server.errors import WorkspaceFileNotFound
from agent_server.sandbox.base import workspace_relative
from agent_server.sessions.workspace_sync import file_info_dict

bp = Blueprint("files", __name__)


def _live_sandbox(session_id: str):
    session = runtime().session_manager.get_session(session_id)
    if session is None or session.sandbox.status != "ready":
        return None
    return session.sandbox.sandbox


@bp.get("/sessions/<session_id>/files")
def list_files(session_id: str):
    rt = runtime()
    rt.session_manager.record(session_id)
    sandbox = _live_sandbox(session_id)
    if sandbox is not None:
        files = [file_info_dict(f) for f in sandbox.list_files()]
        source = "sandbox"
    else:
        data = rt.persistence.load_session(session_id)
        files = [stored_file_dict(f) for f in (data.workspace_files if data else ())]
        source = "storage"
    return jsonify({"sessionId": session_id, "source": source, "files": files})


@bp.get("/sessions/<session_id>/files/<path:path>")
def download_file(session_id: str, path: str):
    rt = runtime()
    rt.session_manager.record(session_id)
    rel = workspace_relative(path)
    sandbox = _live_sandbox(session_id)
    data: bytes | None = None
    if sandbox is not None:
        try:
            data = sandbox.read_file(rel)
        except (FileNotFoundError, IsADirectoryError):
            data = None
    else:
        stored = rt.persistence.load_session(session_id)
        for file in stored.workspace_files if stored else ():
            if file.path == rel:
                data = file.data
                break
    if data is None:
        raise WorkspaceFileNotFound(
            f"no file {rel!r} in the workspace of session {session_id}: "
            f"list files with GET /sessions/{session_id}/files"
        )
    mimetype = mimetypes.guess_type(rel)[0] or "application/octet-stream"
    return Response(data, mimetype=mimetype)
