"""A simple-websocket Server whose sends are whole and safe from several greenlets.

simple-websocket 1.1.0 calls ``socket.send``, which under gevent may write only part of
the buffer (STACK-NOTES): large frames, or small ones to a slow client, then corrupt the
stream. Here every send is a ``sendall`` under a lock, and several frames can go out in
one write, and ``try_send_event`` writes a frame from the producing greenlet when the
socket takes it without blocking (a part it does not take is owed and goes first in the
writer's next send).

Events go out as frames built once per event (``text_frame``), not through wsproto
per client: wsproto's framing cost more CPU per delta than the rest of the fan-out.
A connection that negotiated an extension (permessage-deflate) keeps wsproto's path.
"""

from __future__ import annotations

import threading

import flask_sock
import simple_websocket
from wsproto.connection import ConnectionState
from wsproto.events import TextMessage

from agent_server.sockets import os_socket


class _WholeSendSocket:
    """Wraps a socket so ``send`` means ``sendall``, one writer at a time."""

    def __init__(self, sock) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self._raw = os_socket(sock)  # for try_send's write that must not yield
        self.owed = b""  # bytes of a frame try_send began; they go before anything else
        self._senders = 0  # send() calls waiting for the lock or holding it

    def send(self, data: bytes) -> int:
        # counted from before the lock is asked for: a greenlet woken to take a
        # released lock has not taken it yet, and its bytes must go before try_send's
        self._senders += 1
        try:
            with self._lock:
                if self.owed:
                    data, self.owed = self.owed + data, b""
                self._sock.sendall(data)
        finally:
            self._senders -= 1
        return len(data)

    def try_send(self, data: bytes) -> bool:
        """Write ``data`` now if no other write is under way and that cannot block.

        True when the socket took it (or part of it: the rest is ``owed``); False
        when nothing was written and the caller should queue it for the writer.
        """
        raw = self._raw
        if raw is None or self.owed or self._senders:
            return False
        try:
            sent = raw.send(data)
        except OSError:  # full (EAGAIN) or broken: the writer finds out which
            return False
        if sent < len(data):
            self.owed = data[sent:]
        return True

    def __getattr__(self, name):
        return getattr(self._sock, name)


class SafeServer(simple_websocket.Server):
    def handshake(self):
        self.sock = _WholeSendSocket(self.sock)
        super().handshake()

    def send_many(self, texts: list[str]) -> None:
        """Send several text frames in one write."""
        if not self.connected:
            raise simple_websocket.ConnectionClosed(
                self.close_reason, self.close_message
            )
        self.sock.send(b"".join(self.ws.send(TextMessage(data=t)) for t in texts))

    @property
    def owes(self) -> bool:
        """True while part of a frame waits to be written (see ``try_send_event``)."""
        return bool(self.sock.owed)

    def try_send_event(self, event) -> bool:
        """Write the event's frame now if that cannot block; False to queue it."""
        if not self._plain_frames():
            return False
        frame = event.frame
        if frame is None:
            frame = event.frame = text_frame(event.wire)
        return self.sock.try_send(frame)

    def send_events(self, events) -> None:
        """Send events (``.wire`` text, ``.frame`` cache) as text frames in one write."""
        if not self._plain_frames():
            self.send_many([e.wire for e in events])
            return
        if not self.connected:
            raise simple_websocket.ConnectionClosed(
                self.close_reason, self.close_message
            )
        frames = []
        for event in events:
            frame = event.frame
            if frame is None:
                frame = event.frame = text_frame(event.wire)
            frames.append(frame)
        # no events: just what is owed (send puts it first)
        self.sock.send(frames[0] if len(frames) == 1 else b"".join(frames))

    _plain: bool | None = None  # no extension negotiated: known once the handshake ends

    def _plain_frames(self) -> bool:
        """True while the connection is open with no extension (frames need no codec)."""
        if self._plain is None:
            conn = self.ws.connection
            if conn is None or conn.state is not ConnectionState.OPEN:
                return False
            proto = getattr(conn, "_proto", None)
            self._plain = proto is not None and not proto.extensions
        # simple-websocket clears ``connected`` as soon as a close is sent or received
        return self._plain and self.connected


def text_frame(text: str) -> bytes:
    """An unmasked, unfragmented WebSocket text frame (RFC 6455 5.2), as servers send."""
    data = text.encode()
    n = len(data)
    if n < 126:
        return bytes((0x81, n)) + data
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + data
    return b"\x81\x7f" + n.to_bytes(8, "big") + data


def install() -> None:
    """Make flask-sock accept connections with SafeServer."""
    flask_sock.Server = SafeServer
