"""/openapi.json: an OpenAPI 3 description of every route (a test checks none is missing)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from agent_server import __version__

bp = Blueprint("openapi", __name__)

_ERROR = {"$ref": "#/components/schemas/Error"}
_SID = {
    "name": "session_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}


def _json(schema: dict, description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def _errors(*statuses: int) -> dict:
    text = {
        400: "bad JSON or an invalid field",
        401: "missing or wrong API key",
        404: "unknown session, profile or file",
        409: "conflict (e.g. no running turn)",
        413: "request body too large",
    }
    return {str(s): _json(_ERROR, text[s]) for s in statuses}


def _op(
    summary: str, ok: tuple[int, str], *errors: int, params=(), body: dict | None = None
) -> dict:
    op: dict = {
        "summary": summary,
        "parameters": list(params),
        "responses": {
            str(ok[0]): _json({"type": "object"}, ok[1]),
            **_errors(401, *errors),
        },
    }
    if body is not None:
        op["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": body}},
        }
    return op


_CREATE = {
    "type": "object",
    "properties": {
        "agentProfileId": {"type": "string", "default": "default"},
        "name": {"type": "string"},
        "sessionOptions": {
            "type": "object",
            "properties": {"model": {"type": "string"}},
        },
    },
}
_MESSAGE = {
    "type": "object",
    "required": ["content"],
    "properties": {"content": {"type": "string"}},
}

PATHS = {
    "/health": {
        "get": {
            "summary": "Liveness (no auth)",
            "security": [],
            "responses": {"200": _json({"type": "object"}, "ok")},
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document (no auth)",
            "security": [],
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3")},
        }
    },
    "/sessions/create": {
        "post": _op(
            "Create a session (no sandbox yet)",
            (201, "the session"),
            400,
            404,
            413,
            body=_CREATE,
        )
    },
    "/sessions": {
        "get": _op("All sessions with their runtime state", (200, "sessions"))
    },
    "/sessions/{session_id}": {
        "get": _op(
            "Record, runtime state, blocks, subagents, files, usage",
            (200, "the session"),
            404,
            params=[_SID],
        ),
        "delete": _op(
            "Unload (sync, end sandbox); ?purge=true also deletes stored data",
            (200, "unloaded"),
            404,
            params=[
                _SID,
                {"name": "purge", "in": "query", "schema": {"type": "boolean"}},
            ],
        ),
    },
    "/sessions/{session_id}/message": {
        "post": _op(
            "Send a message; the reply streams over /ws or SSE",
            (202, "{sessionId, messageId, queued}"),
            400,
            404,
            413,
            params=[_SID],
            body=_MESSAGE,
        )
    },
    "/sessions/{session_id}/interrupt": {
        "post": _op(
            "Stop the running turn", (200, "interrupted"), 404, 409, params=[_SID]
        )
    },
    "/sessions/{session_id}/files": {
        "get": _op(
            "List workspace files (live sandbox, else storage)",
            (200, "files"),
            404,
            params=[_SID],
        )
    },
    "/sessions/{session_id}/files/{path}": {
        "get": {
            **_op(
                "Download a workspace file",
                (200, "the file's bytes"),
                400,
                404,
                params=[
                    _SID,
                    {
                        "name": "path",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                ],
            ),
        }
    },
    "/sessions/{session_id}/events": {
        "get": _op(
            "The event log as JSON (?after=N); with Accept: text/event-stream a live SSE stream honouring Last-Event-ID",
            (200, "events"),
            400,
            404,
            params=[
                _SID,
                {
                    "name": "after",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 0},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1},
                },
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "schema": {"type": "integer"},
                },
            ],
        )
    },
    "/agent-profiles": {"get": _op("The agent profiles", (200, "profiles"))},
    "/agent-profiles/{profile_id}": {
        "get": _op(
            "One agent profile",
            (200, "the profile"),
            404,
            params=[
                {
                    "name": "profile_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                }
            ],
        )
    },
    "/ws": {
        "get": {
            "summary": "WebSocket: subscribe to session events (see README, Events)",
            "responses": {"101": {"description": "switching protocols"}},
        }
    },
}

SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "agent-server", "version": __version__},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    }
                },
            }
        },
    },
    "security": [{"bearer": []}],
    "paths": PATHS,
}


@bp.get("/openapi.json")
def openapi():
    return jsonify(SPEC)
