"""A real server for end-to-end tests: runtime + Flask app on gevent's WSGI server, port 0."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
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
        # websocket-client checks UTF-8 in pure Python (~3 s per 8 MB) in this process
        options.setdefault("skip_utf8_validation", True)
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


class SseClient:
    """A streaming Server-Sent Events reader over http.client (comments are skipped)."""

    def __init__(self, harness: ServerHarness, path: str, headers: dict | None = None):
        hdrs = {"Accept": "text/event-stream", **(headers or {})}
        if harness.api_key:
            hdrs.setdefault("Authorization", f"Bearer {harness.api_key}")
        self.conn = http.client.HTTPConnection(
            "127.0.0.1", harness.server.server_port, timeout=15
        )
        self.conn.request("GET", path, headers=hdrs)
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.comments: list[str] = []
        self.events: list[dict] = []  # {"id", "event", "data"} per frame

    def next(self) -> dict:
        """The next event frame (blocks until one arrives)."""
        return self._read(until_comment=False)

    def next_comment(self) -> str:
        """The next comment line (``: keep-alive``), skipping nothing else."""
        return self._read(until_comment=True)

    def _read(self, until_comment: bool):
        frame: dict = {}
        while True:
            line = self.response.readline()
            if not line:
                raise EOFError("the SSE stream ended")
            line = line.decode().rstrip("\r\n")
            if not line:
                if frame:
                    self.events.append(frame)
                    return frame
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                if until_comment:
                    return self.comments[-1]
                continue
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "id":
                frame["id"] = int(value)
            elif key == "event":
                frame["event"] = value
            elif key == "data":
                frame["data"] = json.loads(value)

    def until(self, predicate) -> dict:
        while True:
            frame = self.next()
            if predicate(frame):
                return frame

    def close(self) -> None:
        self.conn.close()


class ProcessServer(ServerHarness):
    """The server as users run it: ``gunicorn -k gevent wsgi:app`` in a subprocess."""

    ROOT = Path(__file__).resolve().parents[2]

    def __init__(self, data_dir: Path, *, model_url: str, env: dict | None = None):
        super().__init__(data_dir, model_url=model_url, make_persistence=None)
        self.extra_env = dict(env or {})
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.stderr_path = data_dir.parent / f"gunicorn-{self.port}.log"

    def launch(self, graceful_timeout: int = 10) -> subprocess.Popen:
        env = {
            k: v
            for k, v in os.environ.items()
            if k in ("PATH", "HOME", "LANG", "TMPDIR", "SYSTEMROOT")
        }
        env.update(
            DATA_DIR=str(self.data_dir),
            ANTHROPIC_BASE_URL=self.model_url,
            ANTHROPIC_API_KEY="x",
            AGENT_SERVER_API_KEY=self.api_key,
            LOG_LEVEL="WARNING",
            **self.extra_env,
        )
        self.process = subprocess.Popen(
            [
                str(self.ROOT / ".venv/bin/gunicorn"),
                "-k",
                "gevent",
                "--workers",
                "1",
                "--graceful-timeout",
                str(graceful_timeout),
                "--bind",
                f"127.0.0.1:{self.port}",
                "wsgi:app",
            ],
            cwd=self.ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.stderr_path, "wb"),  # noqa: SIM115 (the child owns it)
        )
        return self.process

    def start(self, timeout: float = 30.0) -> ProcessServer:
        self.launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn exited: {self.stderr()}")
            try:
                if self.get("/health", auth=False).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"gunicorn did not answer /health: {self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                if ppid == self.process.pid:
                    pids.append(int(entry))
        return pids

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
