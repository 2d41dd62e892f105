"""/agent-profiles: the profiles sessions can be created with."""

from __future__ import annotations

from flask import Blueprint, jsonify

from agent_server.api.state import runtime
from agent_server.errors import ProfileNotFound

bp = Blueprint("profiles", __name__)


def _summary(profile) -> dict:
    return {"id": profile.id, "name": profile.name, "description": profile.description}


@bp.get("/agent-profiles")
def list_profiles():
    return jsonify({"profiles": [_summary(p) for p in runtime().profiles.list()]})


@bp.get("/agent-profiles/<profile_id>")
def get_profile(profile_id: str):
    profile = runtime().profiles.get(profile_id)
    if profile is None:
        raise ProfileNotFound(
            f"no agent profile {profile_id!r}: list profiles with GET /agent-profiles"
        )
    return jsonify(
        {
            **_summary(profile),
            "model": profile.model,
            "tools": list(profile.tools),
            "subagents": [
                {
                    "name": s.name,
                    "description": s.description,
                    "tools": s.tools,
                    "model": s.model,
                }
                for s in profile.subagents
            ],
            "maxTurns": profile.max_turns,
            "maxBudgetUsd": profile.max_budget_usd,
        }
    )
