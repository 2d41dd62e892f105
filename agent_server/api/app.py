"""The Flask app factory: blueprints, auth, the one JSON error shape, the WebSocket."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from agent_server.api import events, files, health, openapi, profiles, sessions, ws
from agent_server.api.auth import check_api_key
from agent_server.api.state import AppState
from agent_server.errors import AgentServerError

log = logging.getLogger(__name__)

PUBLIC_PATHS = ("/health", "/openapi.json")


def create_app(runtime, *, api_key: str | None = None) -> Flask:
    """Wire the HTTP and WebSocket transports over a runtime; no I/O happens here."""
    app = Flask("agent_server")
    # no 308 HTML redirects for "//": /files//etc/passwd must reach the path check
    app.url_map.merge_slashes = False
    app.config["MAX_CONTENT_LENGTH"] = runtime.settings.max_body_bytes
    app.config["SOCK_SERVER_OPTIONS"] = {
        "ping_interval": 25,
        "max_message_size": 1024 * 1024,
    }
    app.json.sort_keys = False
    app.extensions["agent_server"] = AppState(runtime=runtime, api_key=api_key)
    if not api_key:
        log.warning(
            "AGENT_SERVER_API_KEY is not set: the API accepts requests without a key; "
            "set it before exposing the server"
        )

    for blueprint in (
        health.bp,
        sessions.bp,
        files.bp,
        events.bp,
        profiles.bp,
        openapi.bp,
    ):
        app.register_blueprint(blueprint)
    ws.init_app(app)

    @app.before_request
    def require_api_key():
        if request.path in PUBLIC_PATHS or request.path == "/ws":
            return None  # the WebSocket also accepts the key in its first message
        check_api_key(api_key, request.headers.get("Authorization"))
        return None

    @app.errorhandler(AgentServerError)
    def agent_server_error(exc: AgentServerError):
        if exc.status_code >= 500:
            log.error("%s: %s", exc.code, exc.message)
        return jsonify(exc.to_dict()), exc.status_code

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc):
        limit = app.config["MAX_CONTENT_LENGTH"]
        body = {
            "error": {
                "code": "payload_too_large",
                "message": f"the request body is larger than {limit} bytes (MAX_BODY_BYTES)",
            }
        }
        return jsonify(body), 413

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return jsonify({"error": {"code": code, "message": exc.description}}), exc.code

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        body = {
            "error": {
                "code": "internal_error",
                "message": "internal server error: see the server log",
            }
        }
        return jsonify(body), 500

    return app
