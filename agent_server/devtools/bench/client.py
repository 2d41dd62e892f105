"""The driver's clients: keep-alive HTTP, WebSocket subscribers, latency arithmetic.

The driver runs in its own gevent-patched process (never the server's): one greenlet
per client, each a real WebSocket connection (``wsclient.BenchWebSocket``, a lean
RFC 6455 client: the driver shares the machine with the server it measures).
"""

from __future__ import annotations

import http.client
import json
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import gevent

from agent_server.devtools.bench.wsclient import BenchWebSocket

TURN_END = {
    "session:turn:completed",
    "session:turn:failed",
    "session:turn:interrupted",
}
_STAMP = re.compile(r"<t:([0-9.]+?)>")


def stamp_age(text: str, now: float) -> float | None:
    """Seconds since the fake wrote this stamped delta (None if it has no stamp)."""
    match = _STAMP.match(text)
    return now - float(match[1]) if match else None


def summary(seconds: list[float]) -> dict:
    """p50 / p99 / max in milliseconds and the count (nearest-rank percentiles)."""
    if not seconds:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(seconds)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return {
        "n": len(ordered),
        "p50_ms": round(rank(0.50), 3),
        "p99_ms": round(rank(0.99), 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


class Http:
    """One keep-alive HTTP/1.1 connection to the server."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body=None) -> tuple[int, object]:
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=60
                )
            try:
                data = None if body is None else json.dumps(body)
                headers = {"Content-Type": "application/json"} if data else {}
                self._conn.request(method, path, data, headers)
                resp = self._conn.getresponse()
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
            except (http.client.HTTPException, ConnectionError):
                self.close()  # a keep-alive connection the server closed: once more
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def create_session(self, **body) -> str:
        status, reply = self.request("POST", "/sessions/create", body)
        if status != 201:
            raise RuntimeError(f"create session: {status} {reply}")
        return reply["sessionId"]

    def message(self, session_id: str, content: str) -> None:
        status, reply = self.request(
            "POST", f"/sessions/{session_id}/message", {"content": content}
        )
        if status != 202:
            raise RuntimeError(f"message: {status} {reply}")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass
class Turn:
    """What a subscriber saw of one turn."""

    latencies: list[float] = field(default_factory=list)  # seconds, stamped deltas
    deltas: int = 0
    first_delta_at: float | None = None  # perf_counter
    last_delta_at: float | None = None
    frame_bytes: int = 0
    end: str | None = None


class Subscriber:
    """A WebSocket client subscribed to sessions."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        self.conn = BenchWebSocket(
            base_url.replace("http://", "ws://") + "/ws", timeout=timeout
        )
        # one deadline per call below rather than a gevent Timeout per socket read
        # (a tenth of the driver's CPU at 5,000 frames/s)
        self.conn.settimeout(None)
        self.timeout = timeout

    def _deadline(self, what: str) -> gevent.Timeout:
        return gevent.Timeout(
            self.timeout, TimeoutError(f"{what}: nothing within {self.timeout:g} s")
        )

    def subscribe(self, session_id: str, after: int | None = None) -> None:
        message = {"type": "subscribe", "sessionId": session_id}
        if after is not None:
            message["after"] = after
        self.conn.send(json.dumps(message))
        with self._deadline("subscribe"):
            return self._subscribed()

    def _subscribed(self) -> None:
        while True:
            event = json.loads(self.conn.recv())
            if event["event"] == "session:status" and event["seq"] is None:
                return
            if event["event"] == "error":
                raise RuntimeError(f"subscribe: {event['data']}")

    def ping(self) -> bool:
        """True when the server answers a ping (other events may come first)."""
        self.conn.send('{"type":"ping"}')
        with self._deadline("ping"):
            while True:
                if json.loads(self.conn.recv())["event"] == "pong":
                    return True

    def first_delta(self) -> float:
        """perf_counter when the next block:delta arrives."""
        with self._deadline("first delta"):
            while True:
                raw = self.conn.recv()
                if '"session:block:delta"' in raw:
                    return time.perf_counter()

    def until_turn_end(self, turn: Turn | None = None) -> Turn:
        """Read until the turn ends, timing every stamped delta on arrival."""
        turn = turn or Turn()
        with self._deadline("turn end"):
            return self._read_turn(turn)

    def _read_turn(self, turn: Turn) -> Turn:
        recv, loads = self.conn.recv, json.loads
        while True:
            raw = recv()
            now, tick = time.time(), time.perf_counter()
            event = loads(raw)
            name = event["event"]
            if name == "session:block:delta":
                age = stamp_age(event["data"]["delta"], now)
                if age is not None:
                    turn.latencies.append(age)
                    turn.deltas += 1
                    turn.frame_bytes += len(raw)
                    turn.last_delta_at = tick
                    if turn.first_delta_at is None:
                        turn.first_delta_at = tick
            elif name in TURN_END:
                turn.end = name
                return turn
            elif name == "error" and event.get("seq") is None:
                raise RuntimeError(f"server error event: {event['data']}")

    def close(self) -> None:
        self.conn.close()
