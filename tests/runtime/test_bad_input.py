"""Bad requests get the documented status and error shape, never a 500 or a host file."""

from __future__ import annotations

import http.client
import json

import pytest

from agent_server.devtools.fake_anthropic import reply, text, tool_use
from tests.runtime.harness import API_KEY, assert_error

UNKNOWN = "ses_doesnotexist"


def _raw(server, method: str, path: str, body: bytes = b"", headers=None):
    """A request whose path and body go out exactly as given (no client-side cleanup)."""
    conn = http.client.HTTPConnection(
        "127.0.0.1", server.server.server_port, timeout=15
    )
    hdrs = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    conn.request(method, path, body=body, headers={**hdrs, **(headers or {})})
    resp = conn.getresponse()
    status, payload = resp.status, resp.read()
    conn.close()
    return status, payload


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", b'"a string"', b"\xff\xfe", b'{"content": }']
)
def test_bodies_that_are_not_a_json_object(server, body):
    sid = server.create_session()
    for path in ("/sessions/create", f"/sessions/{sid}/message"):
        resp = server.request(
            "POST", path, raw=body, headers={"Content-Type": "application/json"}
        )
        assert_error(resp, 400, "bad_request")


@pytest.mark.parametrize(
    "body, code",
    [
        ({"name": 7}, "invalid_field"),
        ({"name": ""}, "invalid_field"),
        ({"agentProfileId": 3}, "invalid_field"),
        ({"sessionOptions": "x"}, "invalid_field"),
        ({"sessionOptions": {"model": 5}}, "invalid_field"),
    ],
)
def test_create_with_wrong_types(server, body, code):
    assert_error(server.post("/sessions/create", body), 400, code)
    assert server.get("/sessions").body["sessions"] == []


def test_create_with_an_unknown_profile(server):
    resp = server.post("/sessions/create", {"agentProfileId": "no-such-profile"})
    assert_error(resp, 404, "profile_not_found")
    assert_error(
        server.get("/agent-profiles/no-such-profile"), 404, "profile_not_found"
    )


@pytest.mark.parametrize(
    "body", [{"content": 5}, {"content": ""}, {"content": ["hi"]}, {}, {"text": "hi"}]
)
def test_message_with_wrong_content(server, fake_model, body):
    sid = server.create_session()
    assert_error(server.post(f"/sessions/{sid}/message", body), 400, "invalid_field")
    assert fake_model.requests == []
    assert server.get(f"/sessions/{sid}").body["runtime"]["isLoaded"] is False


def test_unknown_session_on_every_route(server):
    calls = [
        ("GET", f"/sessions/{UNKNOWN}", None),
        ("POST", f"/sessions/{UNKNOWN}/message", {"content": "hi"}),
        ("POST", f"/sessions/{UNKNOWN}/interrupt", {}),
        ("DELETE", f"/sessions/{UNKNOWN}", None),
        ("DELETE", f"/sessions/{UNKNOWN}?purge=true", None),
        ("GET", f"/sessions/{UNKNOWN}/files", None),
        ("GET", f"/sessions/{UNKNOWN}/files/a.txt", None),
        ("GET", f"/sessions/{UNKNOWN}/events", None),
        ("GET", f"/sessions/{UNKNOWN}/events?after=0", None),
    ]
    for method, path, body in calls:
        resp = server.request(method, path, body)
        assert_error(resp, 404, "session_not_found")
    sse = server.get(
        f"/sessions/{UNKNOWN}/events", headers={"Accept": "text/event-stream"}
    )
    assert_error(sse, 404, "session_not_found")
    assert_error(server.get("/no/such/route"), 404)
    assert_error(server.request("PUT", "/sessions/create", {}), 405)


def test_a_body_over_the_limit_is_413(server, fake_model):
    sid = server.create_session()
    big = b'{"content": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    status, payload = _raw(server, "POST", f"/sessions/{sid}/message", big)
    assert status == 413
    assert b'"payload_too_large"' in payload
    status, payload = _raw(server, "POST", "/sessions/create", big)
    assert status == 413
    assert fake_model.requests == []


@pytest.fixture
def session_with_file(server, fake_model):
    sid = server.create_session()
    fake_model.enqueue(
        reply(tool_use("Write", {"file_path": "in.txt", "content": "inside"})),
        reply(text("ok")),
    )
    ws = server.ws()
    ws.subscribe(sid)
    server.message(sid, "write")
    ws.until("session:turn:completed")
    ws.close()
    return sid


TRAVERSALS = [
    "../../../../../../etc/passwd",
    "%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "in.txt/../../../../../../etc/passwd",
]


@pytest.mark.parametrize("live", [True, False], ids=["sandbox", "storage"])
def test_path_traversal_in_files(server, session_with_file, live):
    sid = session_with_file
    if not live:
        server.request("DELETE", f"/sessions/{sid}")
    assert _raw(server, "GET", f"/sessions/{sid}/files/in.txt") == (200, b"inside")
    for path in TRAVERSALS:
        status, payload = _raw(server, "GET", f"/sessions/{sid}/files/{path}")
        assert status in (400, 404), (path, status, payload[:100])
        assert b"root:" not in payload
        assert b'"error"' in payload
        if status == 400:
            assert b"path_outside_workspace" in payload


@pytest.mark.parametrize(
    "query, header",
    [
        ("after=abc", None),
        ("after=-1", None),
        ("after=1.5", None),
        ("limit=x", None),
        ("", "abc"),
        ("", "-3"),
    ],
)
def test_bad_after_and_last_event_id(server, query, header):
    sid = server.create_session()
    headers = {}
    if header is not None:
        headers = {"Accept": "text/event-stream", "Last-Event-ID": header}
    resp = server.get(f"/sessions/{sid}/events?{query}", headers=headers)
    assert_error(resp, 400, "invalid_field")


@pytest.mark.parametrize(
    "message, code",
    [
        ("{not json", "bad_message"),
        ("[1, 2]", "bad_message"),
        ('{"type": 5}', "bad_message"),
        ('{"type": "dance"}', "bad_message"),
        ('{"type": "subscribe"}', "bad_message"),
        (json.dumps({"type": "subscribe", "sessionId": UNKNOWN}), "session_not_found"),
        ('{"type": "subscribe", "sessionId": "SID", "after": -1}', "bad_message"),
        ('{"type": "subscribe", "sessionId": "SID", "after": "3"}', "bad_message"),
    ],
)
def test_ws_bad_messages_get_an_error_and_the_connection_stays(server, message, code):
    sid = server.create_session()
    client = server.ws()
    client.conn.send(message.replace("SID", sid))
    error = client.recv(timeout=5)
    assert error["event"] == "error" and error["data"]["code"] == code
    assert error["data"]["message"]
    client.send({"type": "ping"})
    assert client.recv(timeout=5)["event"] == "pong"
    client.subscribe(sid)  # and it still works
    client.close()
