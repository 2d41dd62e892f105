"""Cheaper reads and writes on gevent sockets, for the streaming hot paths.

gevent's ``recv`` tries the read first; when data trickles in (one delta at a time)
that read almost always fails with EAGAIN, a syscall and an exception per delta,
before it waits. ``wait_then_recv`` waits first. ``os_socket`` is the non-blocking OS
socket under a gevent socket, for a write that must not yield. Neither applies under
TLS (decrypted bytes may be buffered; bytes must go through the SSL object) or to a
socket gevent did not make: then they fall back (``sock.recv``, None).
"""

from __future__ import annotations

from collections.abc import Callable


def os_socket(sock):
    """The OS-level (non-blocking) socket under gevent's ``sock``; None if none or TLS."""
    if hasattr(sock, "cipher"):
        return None
    return getattr(sock, "_sock", None)


def wait_then_recv(sock) -> Callable[[int], bytes]:
    """``recv(n)`` for ``sock`` that waits for readability before it reads."""
    raw, wait = os_socket(sock), getattr(sock, "_wait", None)
    if raw is None or wait is None:
        return sock.recv
    raw_recv = raw.recv

    def recv(size: int) -> bytes:
        while True:
            wait(sock._read_event)  # raises if the socket is closed meanwhile
            try:
                return raw_recv(size)
            except BlockingIOError:
                continue

    return recv
