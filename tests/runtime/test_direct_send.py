"""Direct sends: an event written from the producing greenlet never overtakes another."""

from __future__ import annotations

import socket

import gevent

from agent_server.api.feed import Outbox
from agent_server.api.ws_server import _WholeSendSocket


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(1)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        pass
    return data


def test_a_direct_send_waits_for_a_sender_woken_but_not_yet_running():
    a, b = socket.socketpair()
    sock = _WholeSendSocket(a)
    # a ping goes out under the lock while the writer waits for it with frame A
    sock._lock.acquire()
    writer = gevent.spawn(sock.send, b"A")
    gevent.sleep(0)
    sock._lock.release()  # the writer is woken by the hub, later

    assert not sock.try_send(b"B"), "B would overtake A"
    writer.join(timeout=5)
    assert sock.try_send(b"B")
    a.close()
    assert _read_all(b) == b"AB"
    b.close()


def test_a_partly_sent_frame_is_finished_before_anything_else():
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock = _WholeSendSocket(a)
    big = b"x" * 1_000_000
    assert sock.try_send(big) and sock.owed, "the socket took only part of it"
    assert not sock.try_send(b"B")
    reader = gevent.spawn(_read_all, b)
    sock.send(b"C")
    a.close()
    assert reader.get(timeout=10) == big + b"C"
    b.close()


def test_live_items_queue_behind_what_the_writer_took():
    sent = []
    box = Outbox()
    box.direct = lambda item: sent.append(item) or True
    box.put("replayed", replay=True)  # replays are always queued
    box.put("A")
    assert box.take() == ["replayed", "A"] and box.sending
    box.put("B")  # the writer has not written "A" yet
    assert sent == []
    box.sent()
    assert box.take() == ["B"]
    box.sent()
    box.put("C")
    assert sent == ["C"] and box.take(timeout=0) == []


def test_a_direct_sender_that_fails_leaves_the_item_to_the_writer():
    box = Outbox()

    def broken(item):
        raise TypeError("not JSON")

    box.direct = broken
    box.put("A")
    assert box.take(timeout=0) == ["A"]
