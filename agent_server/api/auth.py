"""The API key check shared by REST and the WebSocket."""

from __future__ import annotations

import hmac

from agent_server.errors import Unauthorized


def api_key_error(api_key: str | None, header: str | None) -> str | None:
    """Why ``header`` does not carry the key (``Bearer <key>`` or the bare key); None if it does."""
    if not api_key:
        return None
    given = (header or "").strip()
    if given.lower().startswith("bearer "):
        given = given[7:].strip()
    if not given:
        return "missing API key: send the header 'Authorization: Bearer <key>'"
    if not hmac.compare_digest(given.encode(), api_key.encode()):
        return "wrong API key: check AGENT_SERVER_API_KEY"
    return None


def check_api_key(api_key: str | None, header: str | None) -> None:
    error = api_key_error(api_key, header)
    if error is not None:
        raise Unauthorized(error)
