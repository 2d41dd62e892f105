"""Listening sockets for the servers this package starts itself (not gunicorn's)."""

from __future__ import annotations

import socket


def listen_tcp(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A bound, listening TCP socket whose connections send small writes at once.

    TCP_NODELAY is inherited by accepted connections: without it Nagle's algorithm and
    the peer's delayed ACK hold a streamed event (or the reply on a reused keep-alive
    connection) for ~40 ms. gunicorn sets the same option on its own sockets.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock
