"""/ws: the WebSocket transport (flask-sock).

Client → server: ``{"type": "auth", "token"}`` (when no Authorization header was sent),
``{"type": "subscribe", "sessionId", "after"?}``, ``{"type": "unsubscribe", "sessionId"}``,
``{"type": "ping"}``. Server → client: one JSON object per event,
``{"event", "sessionId", "seq", "data"}``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket

import gevent
from flask import Flask, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from agent_server.api import ws_server
from agent_server.api.auth import api_key_error
from agent_server.api.feed import (
    DEFAULT_OUTBOX_LIMIT,
    BroadcastFeed,
    Outbox,
    SessionFeed,
)
from agent_server.api.state import runtime, state
from agent_server.errors import AgentServerError
from agent_server.events import names
from agent_server.events.log import Event

log = logging.getLogger(__name__)

AUTH_TIMEOUT_SECONDS = 10.0
MAX_SUBSCRIPTIONS = 1000


def init_app(app: Flask) -> None:
    ws_server.install()
    sock = Sock(app)
    sock.route("/ws")(websocket)


def websocket(ws) -> None:
    Connection(ws, runtime(), state().api_key).run()


class Connection:
    """One WebSocket client: a reader (this greenlet) and a writer greenlet."""

    def __init__(self, ws, rt, api_key: str | None) -> None:
        self.ws = ws
        self.runtime = rt
        self.api_key = api_key
        self.outbox = Outbox(rt.outbox_limit or DEFAULT_OUTBOX_LIMIT)
        self.feeds: dict[str, SessionFeed] = {}
        self.outbox.direct = self._send_now
        self.listener = BroadcastFeed(self.outbox)
        self.authed = (
            api_key_error(api_key, request.headers.get("Authorization")) is None
        )

    def run(self) -> None:
        writer = gevent.spawn(self._write)
        try:
            if not self.authed and not self._authenticate():
                return
            self.runtime.bus.listen(self.listener)
            while not self.outbox.closed:
                raw = self.ws.receive(timeout=1.0)
                if raw is None:
                    continue
                self._handle(raw)
        except ConnectionClosed:
            pass
        finally:
            self.runtime.bus.unlisten(self.listener)
            for feed in self.feeds.values():
                feed.stop(self.runtime.bus)
            self.outbox.close()
            writer.join(timeout=5)
            if not writer.dead:
                # the client stopped reading: the writer waits on a full socket, holding
                # the send lock, and would keep this connection forever
                with contextlib.suppress(OSError):
                    self.ws.sock.shutdown(socket.SHUT_RDWR)
                writer.join(timeout=1)
            elif self.outbox.close_reason:
                with contextlib.suppress(ConnectionClosed):
                    self.ws.close(reason=1008, message=self.outbox.close_reason[:120])

    def _send_now(self, event: Event) -> bool:
        """The outbox's direct sender: write at once when that cannot block."""
        sent = self.ws.try_send_event(event)
        if sent and self.ws.owes:
            self.outbox.wake()  # the socket took part of the frame: the writer ends it
        return sent

    def _write(self) -> None:
        outbox, ws = self.outbox, self.ws
        try:
            while True:
                items = outbox.take()
                if items or ws.owes:
                    try:
                        ws.send_events(items)
                    finally:
                        outbox.sent()
                elif outbox.closed:
                    return
        except (ConnectionClosed, OSError):
            outbox.close()

    def _authenticate(self) -> bool:
        raw = self.ws.receive(timeout=AUTH_TIMEOUT_SECONDS)
        message = _parse(raw) if raw is not None else None
        token = (
            message.get("token")
            if isinstance(message, dict) and message.get("type") == "auth"
            else None
        )
        error = api_key_error(
            self.api_key, f"Bearer {token}" if isinstance(token, str) else None
        )
        if error is not None:
            self._send_error("unauthorized", error)
            self.outbox.close("unauthorized")
            return False
        self.authed = True
        self.outbox.put(Event(None, None, "auth", {"ok": True}))
        return True

    def _handle(self, raw) -> None:
        message = _parse(raw)
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            self._send_error(
                "bad_message",
                'each message must be a JSON object with a "type": subscribe, unsubscribe, ping or auth',
            )
            return
        kind = message["type"]
        try:
            if kind == "subscribe":
                self._subscribe(message)
            elif kind == "unsubscribe":
                feed = self.feeds.pop(str(message.get("sessionId")), None)
                if feed is not None:
                    feed.stop(self.runtime.bus)
            elif kind == "ping":
                self.outbox.put(Event(None, None, "pong", {}))
            elif kind == "auth":
                self.outbox.put(Event(None, None, "auth", {"ok": True}))
            else:
                self._send_error(
                    "bad_message",
                    f"unknown message type {kind!r}: use subscribe, unsubscribe, ping or auth",
                )
        except AgentServerError as exc:
            self._send_error(exc.code, exc.message, message.get("sessionId"))

    def _subscribe(self, message: dict) -> None:
        session_id = message.get("sessionId")
        after = message.get("after")
        if not isinstance(session_id, str) or not session_id:
            self._send_error("bad_message", "subscribe needs a sessionId string")
            return
        if after is not None and (
            not isinstance(after, int) or isinstance(after, bool) or after < 0
        ):
            self._send_error(
                "bad_message",
                "after must be the last seq you received (an integer ≥ 0)",
                session_id,
            )
            return
        self.runtime.session_manager.record(
            session_id
        )  # 404-style error for unknown ids
        if len(self.feeds) >= MAX_SUBSCRIPTIONS:
            self._send_error(
                "too_many_subscriptions",
                f"at most {MAX_SUBSCRIPTIONS} sessions per connection",
                session_id,
            )
            return
        old = self.feeds.pop(session_id, None)
        if old is not None:
            old.stop(self.runtime.bus)
        feed = SessionFeed(self.outbox, session_id)
        self.feeds[session_id] = feed
        feed.start(self.runtime.bus, self.runtime.session_manager, after)

    def _send_error(
        self, code: str, message: str, session_id: str | None = None
    ) -> None:
        self.outbox.put(
            Event(session_id, None, names.ERROR, {"code": code, "message": message})
        )


def _parse(raw):
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return None
