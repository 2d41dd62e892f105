"""The services the transports reach through ``current_app`` (one accessor)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from flask import current_app, request

from agent_server.errors import BadRequest


@dataclass
class AppState:
    runtime: object
    api_key: str | None


def state() -> AppState:
    return current_app.extensions["agent_server"]


def runtime():
    return state().runtime


def json_body() -> dict:
    """The request's JSON object, or a 400 saying what is wrong with it."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body
