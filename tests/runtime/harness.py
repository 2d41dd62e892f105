"""A real server for end-to-end tests: runtime + Flask app on gevent's WSGI server, port 0."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import websocket
from gevent.pywsgi import WSGIServer

from agent_server.runtime import create_runtime
from agent_server.sandbox.local_sandbox import LocalSandboxProvider
from agent_server.settings import Settings

API_KEY = "test-key"


@dataclass
class Response:
    status: int
    body: object
    headers: dict = field(default_factory=dict)
    raw: bytes = b""


class ServerHarness:
    """Starts (and restarts) the whole server on one data dir and database."""

    def __init__(
        self,
        data_dir: Path,
        *,
        model_url: str,
        make_persistence,
        api_key: str | None = API_KEY,
        use_bwrap: bool | None = None,
        **runtime_options,
    ) -> None:
        self.data_dir = data_dir
        self.model_url = model_url
        self.make_persistence = make_persistence
        self.api_key = api_key
        self.use_bwrap = use_bwrap
        self.runtime_options = runtime_options
        self.runtime = None
        self.server = None
        self.app = None

    def start(self) -> ServerHarness:
        settings = Settings(
            data_dir=self.data_dir,
            api_key=self.api_key,
            anthropic_api_key="sk-test",
            anthropic_base_url=self.model_url,
            max_body_bytes=1024 * 1024,
        )
        sandbox = LocalSandboxProvider(
            settings.workspaces_dir, use_bwrap=self.use_bwrap
        )
        self.runtime = create_runtime(
            self.make_persistence(), sandbox, settings=settings, **self.runtime_options
        )
        self.runtime.start()
        app = self.app = self.runtime.create_app(api_key=self.api_key)
        self.server = WSGIServer(("127.0.0.1", 0), app, log=None)
        self.server.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(timeout=2)
            self.server = None
        if self.runtime is not None:
            self.runtime.shutdown()
            self.runtime = None

    def restart(self) -> ServerHarness:
        self.stop()
        return self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.server.server_port}/ws"

    def request(
        self, method: str, path: str, body=None, *, headers=None, auth=True, raw=None
    ) -> Response:
        hdrs = dict(headers or {})
        if auth and self.api_key:
            hdrs.setdefault("Authorization", f"Bearer {self.api_key}")
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers=hdrs
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                payload, status, rh = resp.read(), resp.status, dict(resp.headers)
        except urllib.error.HTTPError as err:
            payload, status, rh = err.read(), err.code, dict(err.headers)
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = None
        return Response(status, parsed, rh, payload)

    def get(self, path: str, **kw) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body=None, **kw) -> Response:
        return self.request("POST", path, body if body is not None else {}, **kw)

    def message(self, session_id: str, content: str) -> Response:
        return self.post(f"/sessions/{session_id}/message", {"content": content})

    def create_session(self, **body) -> str:
        resp = self.post("/sessions/create", body)
        assert resp.status == 201, resp.body
        return resp.body["sessionId"]

    def ws(self, *, auth=True, **options) -> WsClient:
        header = (
            [f"Authorization: Bearer {self.api_key}"] if auth and self.api_key else []
        )
        conn = websocket.create_connection(
            self.ws_url, header=header, timeout=15, **options
        )
        return WsClient(conn)


class WsClient:
    """A WebSocket client that collects events."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.events: list[dict] = []

    def send(self, message: dict) -> None:
        self.conn.send(json.dumps(message))

    def subscribe(self, session_id: str, after: int | None = None) -> dict:
        message = {"type": "subscribe", "sessionId": session_id}
        if after is not None:
            message["after"] = after
        self.send(message)
        return self.next(lambda e: e["event"] == "session:status" and e["seq"] is None)

    def recv(self, timeout: float = 15.0) -> dict:
        self.conn.settimeout(timeout)
        event = json.loads(self.conn.recv())
        self.events.append(event)
        return event

    def next(self, predicate, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no matching event within {timeout}s; got {[e['event'] for e in self.events[-20:]]}"
                )
            event = self.recv(left)
            if predicate(event):
                return event

    def seen_or_next(self, predicate, timeout: float = 15.0) -> dict:
        """The first event received so far that matches, else the next one that does."""
        for event in self.events:
            if predicate(event):
                return event
        return self.next(predicate, timeout)

    def until(self, name: str, timeout: float = 20.0) -> list[dict]:
        """Events received up to and including the first ``name``."""
        start = len(self.events)
        self.next(lambda e: e["event"] == name, timeout)
        return self.events[start:]

    def named(self, name: str) -> list[dict]:
        """Events received so far with this name."""
        return [e for e in self.events if e["event"] == name]

    def close(self) -> None:
        self.conn.close()


def assert_error(resp: Response, status: int, code: str | None = None) -> None:
    """The documented error shape: {"error": {"code", "message"}} with this status."""
    assert resp.status == status, (resp.status, resp.raw[:300])
    assert isinstance(resp.body, dict) and set(resp.body) == {"error"}, resp.raw[:300]
    error = resp.body["error"]
    assert isinstance(error.get("code"), str) and isinstance(error.get("message"), str)
    assert error["message"], "an error says what is wrong"
    if code is not None:
        assert error["code"] == code, error


def session_seqs(events: list[dict]) -> list[int]:
    return [e["seq"] for e in events if e["seq"] is not None]
