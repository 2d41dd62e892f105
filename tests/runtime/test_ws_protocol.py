"""The WebSocket under load and on every path.

A slow client is cut off alone, frames arrive whole and in order, and a client that
negotiated compression gets compressed frames.
"""

from __future__ import annotations

import json
import socket
import time

import websocket

from agent_server.devtools.fake_anthropic import reply, text, tool_use

ESTABLISHED = "01"


def _server_side_state(server_port: int, client_port: int) -> str | None:
    """The TCP state (hex, /proc/net/tcp) of the server's end of one connection."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, remote, state = line.split()[1:4]
            if (
                int(local.split(":")[1], 16) == server_port
                and int(remote.split(":")[1], 16) == client_port
            ):
                return state
    return None


def _read_to_close(conn, timeout: float) -> tuple[list[dict], bool]:
    """Everything the server still sends, and whether it then closed the connection."""
    events: list[dict] = []
    conn.settimeout(timeout)
    try:
        while True:
            opcode, data = conn.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return events, True
            if opcode == websocket.ABNF.OPCODE_TEXT:
                events.append(json.loads(data))
    except websocket.WebSocketConnectionClosedException:
        return events, True
    except websocket.WebSocketTimeoutException:
        return events, False


def test_a_client_that_never_reads_is_closed_and_slows_no_one(make_server, fake_model):
    srv = make_server(outbox_limit=20)
    sid = srv.create_session()
    # 8 MB in 80 deltas over ~1 s: more than the kernel buffers (~3 MB here) hold for
    # a client that never reads, so its events pile up in its outbox
    fake_model.enqueue(
        reply(text("abcdefghi " * 800_000, chunks=80), tokens_per_second=80)
    )
    slow = srv.ws(sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    slow.subscribe(sid)
    fast = srv.ws()
    fast.subscribe(sid)

    started = time.monotonic()
    srv.message(sid, "say a lot")
    fast.until("session:turn:completed", timeout=30)
    assert time.monotonic() - started < 10
    deltas = fast.named("session:block:delta")
    assert len(deltas) == 80 and all(len(d["data"]["delta"]) > 90_000 for d in deltas)

    # the agent finished too, and the server let go of the slow client's connection
    # even though it never reads (its socket stays full)
    assert srv.get(f"/sessions/{sid}").body["runtime"]["turn"]["running"] is False
    client_port = slow.conn.sock.getsockname()[1]
    deadline = time.monotonic() + 15
    while _server_side_state(srv.server.server_port, client_port) == ESTABLISHED:
        assert time.monotonic() < deadline, "the server still holds the slow client"
        time.sleep(0.2)
    events, closed = _read_to_close(slow.conn, timeout=10)
    assert closed, "the slow client is closed"
    assert not any(e["event"] == "session:turn:completed" for e in events)
    seqs = [e["seq"] for e in events if e["seq"] is not None]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "no gap before the cut"

    # it resumes by seq and gets exactly the rest
    again = srv.ws()
    again.subscribe(sid, after=seqs[-1])
    again.until("session:turn:completed")
    resumed = [e["seq"] for e in again.events if e["seq"] is not None]
    assert resumed[0] == seqs[-1] + 1
    fast.close()
    again.close()


def test_a_client_that_pauses_reading_gets_every_frame_whole_and_in_order(
    server, fake_model
):
    # 4 MB in 40 deltas while the client reads nothing: frames begin on the socket at
    # once, end on it later, and the ones behind them must follow byte-exact
    pieces = [f"{i:03d}" + chr(0x4E00 + i) * 33_000 for i in range(40)]
    fake_model.enqueue(reply(text("".join(pieces), chunks=40), tokens_per_second=200))
    sid = server.create_session()
    paused = server.ws(sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    paused.subscribe(sid)
    server.message(sid, "say a lot")
    time.sleep(1.5)  # the whole reply is sent meanwhile; this client reads nothing
    paused.until("session:turn:completed", timeout=30)
    deltas = paused.named("session:block:delta")
    assert "".join(d["data"]["delta"] for d in deltas) == "".join(pieces)
    seqs = [e["seq"] for e in paused.events if e["seq"] is not None]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    paused.send({"type": "ping"})
    assert paused.next(lambda e: e["event"] == "pong")
    paused.close()


def test_an_8_mb_block_arrives_whole(server, fake_model):
    content = "".join(f"{i:08d}\n" for i in range(900_000))  # 8.1 MB
    fake_model.enqueue(
        reply(tool_use("Write", {"file_path": "big.txt", "content": content})),
        reply(text("Written.")),
    )
    sid = server.create_session()
    ws = server.ws()
    ws.subscribe(sid)
    server.message(sid, "write a big file")
    ws.until("session:turn:completed", timeout=60)
    uses = [
        e["data"]["block"]
        for e in ws.named("session:block:complete")
        if e["data"]["block"]["type"] == "tool_use"
    ]
    assert len(uses) == 1
    assert uses[0]["input"]["content"] == content
    pieces = [
        e["data"]["delta"]
        for e in ws.named("session:block:delta")
        if e["data"]["blockId"] == uses[0]["id"]
    ]
    assert json.loads("".join(pieces))["content"] == content
    ws.send({"type": "ping"})
    assert ws.next(lambda e: e["event"] == "pong")
    assert server.get(f"/sessions/{sid}/files/big.txt").raw == content.encode()
    ws.close()


def test_a_client_that_negotiates_compression_gets_compressed_frames_in_order(
    server, fake_model
):
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, Request, TextMessage
    from wsproto.extensions import PerMessageDeflate

    sid = server.create_session()
    sock = socket.create_connection(("127.0.0.1", server.server.server_port))
    sock.settimeout(15)
    ws = WSConnection(ConnectionType.CLIENT)
    sock.sendall(
        ws.send(
            Request(
                host="127.0.0.1",
                target="/ws",
                extensions=[PerMessageDeflate()],
                extra_headers=[(b"authorization", f"Bearer {server.api_key}".encode())],
            )
        )
    )
    events, raw_frames, accepted, parts = [], [], None, []

    def pump() -> None:
        nonlocal accepted
        data = sock.recv(65536)
        assert data, "the server closed the connection"
        if accepted:
            raw_frames.append(data)
        ws.receive_data(data)
        for ev in ws.events():
            if isinstance(ev, AcceptConnection):
                accepted = ev
            elif isinstance(ev, TextMessage):
                parts.append(ev.data)
                if ev.message_finished:
                    events.append(json.loads("".join(parts)))
                    parts.clear()

    while accepted is None:
        pump()
    assert any(isinstance(e, PerMessageDeflate) for e in accepted.extensions)
    sock.sendall(
        ws.send(TextMessage(json.dumps({"type": "subscribe", "sessionId": sid})))
    )
    words = [f"word{i} " for i in range(30)]
    fake_model.enqueue(reply(text("".join(words), chunks=30)))
    server.message(sid, "say something")
    while not any(e["event"] == "session:turn:completed" for e in events):
        pump()

    deltas = [e["data"]["delta"] for e in events if e["event"] == "session:block:delta"]
    assert "".join(deltas) == "".join(words)
    seqs = [e["seq"] for e in events if e["seq"] is not None]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    # the frames on the wire were compressed (RSV1 set), not the plain fast path
    assert all(frame[0] & 0x40 for frame in raw_frames if frame[0] & 0x0F == 1)
    sock.close()
