"""A lean RFC 6455 client for the bench driver: buffered reads, no per-frame syscalls.

``websocket-client`` reads each frame in two or three ``recv`` calls and unpacks it in
Python: ~120 µs a frame, which at 5,000 deltas/s took more CPU than the server it
measured, on the same two cores. This client reads what the socket has (often many
frames at once) and cuts frames out of that buffer. It speaks the protocol for real:
the opening handshake with its accept key, masked client frames, fragmented messages,
ping → pong and the closing handshake. Text only (the server sends no binary frames).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
from urllib.parse import urlsplit

from agent_server.sockets import wait_then_recv

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_READ = 256 * 1024
TEXT, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x0, 0x8, 0x9, 0xA


class WebSocketClosed(ConnectionError):
    """The server closed the connection (``code`` from its close frame, if any)."""

    def __init__(self, code: int | None = None, reason: str = "") -> None:
        super().__init__(f"WebSocket closed: {code} {reason}".strip())
        self.code = code
        self.reason = reason


class BenchWebSocket:
    """One client connection; ``recv`` returns each text message as str."""

    def __init__(self, url: str, *, timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "ws":
            raise ValueError(f"only ws:// URLs are supported, not {url!r}")
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self._recv = wait_then_recv(sock)
        self._buf = bytearray()
        self._handshake(host, port, parts.path or "/")

    def _handshake(self, host: str, port: int, path: str) -> None:
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(
            b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
            % (path.encode(), host.encode(), port, key)
        )
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            self._fill()
        head = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
        del self._buf[: end + 4]
        if head[0].split(" ")[1:2] != ["101"]:
            raise ConnectionError(f"WebSocket handshake refused: {head[0]}")
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in head[1:])
        }
        expected = base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != expected:
            raise ConnectionError("WebSocket handshake: wrong Sec-WebSocket-Accept")

    def _fill(self) -> None:
        chunk = self._recv(_READ)
        if not chunk:
            raise WebSocketClosed(None, "the connection ended")
        self._buf += chunk

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    # ---- sending ----

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        repeated = (mask * (n // 4 + 1))[:n]
        masked = (
            int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
        ).to_bytes(n, "big")
        self.sock.sendall(head + mask + masked)

    def send(self, text: str) -> None:
        self._send_frame(TEXT, text.encode())

    # ---- receiving ----

    def _frame(self) -> tuple[bool, int, bytes]:
        """The next frame: (fin, opcode, payload)."""
        buf = self._buf
        while True:
            if len(buf) >= 2:
                length = buf[1] & 0x7F
                head = 2 if length < 126 else 4 if length == 126 else 10
                if buf[1] & 0x80:
                    raise ConnectionError("the server sent a masked frame")
                if len(buf) >= head:
                    if length >= 126:
                        length = int.from_bytes(buf[2:head], "big")
                    end = head + length
                    if len(buf) >= end:
                        fin, opcode = bool(buf[0] & 0x80), buf[0] & 0x0F
                        payload = bytes(buf[head:end])
                        del buf[:end]
                        return fin, opcode, payload
            self._fill()

    def recv(self) -> str:
        """The next text message (pings are answered on the way)."""
        parts: list[bytes] = []
        while True:
            fin, opcode, payload = self._frame()
            if opcode == PING:
                self._send_frame(PONG, payload)
                continue
            if opcode == PONG:
                continue
            if opcode == CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                reason = payload[2:].decode(errors="replace")
                self._close_quietly(payload[:2])
                raise WebSocketClosed(code, reason)
            if opcode not in (TEXT, CONTINUATION):
                raise ConnectionError(f"unexpected WebSocket opcode {opcode}")
            parts.append(payload)
            if fin:
                return (parts[0] if len(parts) == 1 else b"".join(parts)).decode()

    # ---- closing ----

    def _close_quietly(self, code: bytes = b"\x03\xe8") -> None:
        with contextlib.suppress(OSError):
            self._send_frame(CLOSE, code)
        self.sock.close()

    def close(self) -> None:
        """Send a close frame and drop the connection (not waiting for the reply)."""
        if self.sock.fileno() >= 0:
            self._close_quietly()
