"""A simple-websocket Server whose sends are whole and safe from several greenlets.

simple-websocket 1.1.0 calls ``socket.send``, which under gevent may write only part of
the buffer (STACK-NOTES): large frames, or small ones to a slow client, then corrupt the
stream. Here every send is a ``sendall`` under a lock, and several frames can go out in
one write.
"""

from __future__ import annotations

import threading

import flask_sock
import simple_websocket
from wsproto.events import TextMessage


class _WholeSendSocket:
    """Wraps a socket so ``send`` means ``sendall``, one writer at a time."""

    def __init__(self, sock) -> None:
        self._sock = sock
        self._lock = threading.Lock()

    def send(self, data: bytes) -> int:
        with self._lock:
            self._sock.sendall(data)
        return len(data)

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


def install() -> None:
    """Make flask-sock accept connections with SafeServer."""
    flask_sock.Server = SafeServer
