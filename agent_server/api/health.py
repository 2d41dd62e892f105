"""/health: liveness without auth."""

from __future__ import annotations

from flask import Blueprint, jsonify

from agent_server import __version__
from agent_server.api.state import runtime

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    rt = runtime()
    return jsonify(
        {
            "status": "ok",
            "version": __version__,
            "sandboxProvider": rt.sandbox_provider.name,
            "sandboxIsolated": rt.sandbox_provider.isolated,
            "loadedSessions": len(rt.session_manager.get_loaded_sessions()),
        }
    )
