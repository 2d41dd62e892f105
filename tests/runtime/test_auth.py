"""The API key: REST (Bearer or bare), open routes, and the WebSocket's two ways in."""

from __future__ import annotations

import json

import pytest
import websocket

from agent_server.api import ws as ws_module
from tests.runtime.harness import API_KEY, WsClient, assert_error


def test_rest_needs_the_key(server):
    for path in ("/sessions", "/agent-profiles", "/sessions/ses_x/events"):
        assert_error(server.get(path, auth=False), 401, "unauthorized")
        wrong = server.get(path, auth=False, headers={"Authorization": "Bearer nope"})
        assert_error(wrong, 401, "unauthorized")
    create = server.request("POST", "/sessions/create", {}, auth=False)
    assert_error(create, 401, "unauthorized")
    assert server.get("/sessions").body["sessions"] == [], "nothing was created"


def test_bearer_and_bare_key_are_accepted(server):
    assert server.get("/sessions", headers={"Authorization": API_KEY}).status == 200
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    assert server.get("/sessions", auth=False, headers=bearer).status == 200


def test_health_and_openapi_are_open(server):
    health = server.get("/health", auth=False)
    assert health.status == 200 and health.body["status"] == "ok"
    spec = server.get("/openapi.json", auth=False)
    assert spec.status == 200 and spec.body["openapi"].startswith("3.")


def _unauthed(server) -> WsClient:
    return server.ws(auth=False)


def _closed(client: WsClient, timeout: float = 5.0) -> bool:
    """True when the server closes the connection (after any events it sent)."""
    client.conn.settimeout(timeout)
    try:
        while True:
            opcode, data = client.conn.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return True
            if opcode == websocket.ABNF.OPCODE_TEXT:
                client.events.append(json.loads(data))
    except websocket.WebSocketConnectionClosedException:
        return True
    except websocket.WebSocketTimeoutException:
        return False


def test_ws_header_auth(server):
    sid = server.create_session()
    client = server.ws()
    client.subscribe(sid)
    client.send({"type": "ping"})
    assert client.next(lambda e: True)["event"] == "pong"
    client.close()


def test_ws_first_message_auth(server):
    sid = server.create_session()
    client = _unauthed(server)
    client.send({"type": "auth", "token": API_KEY})
    assert client.recv() == {
        "event": "auth",
        "sessionId": None,
        "seq": None,
        "data": {"ok": True},
    }
    client.subscribe(sid)
    client.send({"type": "ping"})
    assert client.next(lambda e: True)["event"] == "pong"
    client.close()


@pytest.mark.parametrize(
    "first",
    [
        {"type": "auth", "token": "wrong"},
        {"type": "auth"},
        {"type": "subscribe", "sessionId": "ses_x"},
    ],
)
def test_ws_wrong_or_missing_token_gets_an_error_then_closed(server, first):
    client = _unauthed(server)
    client.send(first)
    assert _closed(client)
    errors = [e for e in client.events if e["event"] == "error"]
    assert [e["data"]["code"] for e in errors] == ["unauthorized"]
    assert not [e for e in client.events if e["event"] != "error"]


def test_ws_without_auth_message_is_closed_after_the_timeout(server, monkeypatch):
    monkeypatch.setattr(ws_module, "AUTH_TIMEOUT_SECONDS", 0.5)
    client = _unauthed(server)
    assert _closed(client, timeout=5.0)
    assert [e["event"] for e in client.events] in ([], ["error"])


def test_ws_without_key_configured_needs_no_auth(make_server):
    srv = make_server(api_key=None)
    sid = srv.create_session()
    client = srv.ws(auth=False)
    client.subscribe(sid)
    client.close()
