"""Replay by seq across reconnects: WebSocket and SSE, from memory and from storage."""

from __future__ import annotations

import pytest

from agent_server.api import events as sse_module
from agent_server.devtools.fake_anthropic import reply, text, tool_use
from tests.runtime.harness import SseClient, session_seqs

WORDS = " ".join(f"w{i}" for i in range(60))


def _script_slow_turn(fake) -> None:
    fake.enqueue(
        reply(
            text("Writing."),
            tool_use("Write", {"file_path": "r.txt", "content": "r\n"}),
        ),
        reply(text(WORDS), tokens_per_second=60),
    )


def _comparable(event: dict) -> tuple:
    return (event["seq"], event["event"], event["sessionId"], event["data"])


def _until_idle(ws) -> None:
    """Read through the turn's end and the status event that follows it."""
    ws.until("session:turn:completed")
    ws.next(
        lambda e: (
            e["event"] == "session:status"
            and e["seq"] is not None
            and not e["data"]["runtime"]["turn"]["running"]
        )
    )


def _log(srv, sid: str, after: int = 0) -> list[dict]:
    return srv.get(f"/sessions/{sid}/events?after={after}").body["events"]


def _assert_whole(received: list[dict], log: list[dict]) -> None:
    seqs = session_seqs(received)
    assert seqs == list(range(1, len(seqs) + 1)), "no gap, no duplicate"
    assert [_comparable(e) for e in received if e["seq"] is not None] == [
        _comparable(e) for e in log
    ]


def test_ws_resume_after_a_disconnect_mid_turn(server, fake_model):
    sid = server.create_session()
    _script_slow_turn(fake_model)
    first = server.ws()
    first.subscribe(sid, after=0)
    server.message(sid, "go")
    for _ in range(15):
        first.next(lambda e: e["event"] == "session:block:delta")
    seen = [e for e in first.events if e["seq"] is not None]
    first.close()

    second = server.ws()
    second.subscribe(sid, after=seen[-1]["seq"])
    _until_idle(second)
    rest = [e for e in second.events if e["seq"] is not None]
    assert rest[0]["seq"] == seen[-1]["seq"] + 1
    _assert_whole(seen + rest, _log(server, sid))
    second.close()


def test_ws_replay_from_storage_after_unload_and_restart(
    make_server, fake_model, database_url
):
    srv = make_server(database_url)
    sid = srv.create_session()
    _script_slow_turn(fake_model)
    live = srv.ws()
    live.subscribe(sid, after=0)
    srv.message(sid, "go")
    _until_idle(live)
    live_events = [e for e in live.events if e["seq"] is not None]
    deltas = [e for e in live_events if e["event"] == "session:block:delta"]
    assert len(deltas) > 40
    live.close()

    assert srv.request("DELETE", f"/sessions/{sid}").status == 200
    unload_status = _log(srv, sid, live_events[-1]["seq"])
    assert [e["event"] for e in unload_status][-1] == "session:status"
    everything = live_events + unload_status

    for restart in (False, True):
        if restart:
            srv.restart()
        # resume from the middle of a coalesced run of deltas: each comes back alone
        middle = deltas[len(deltas) // 2]["seq"]
        ws = srv.ws()
        ws.subscribe(sid, after=middle)
        expected = [e for e in everything if e["seq"] > middle]
        while len([e for e in ws.events if e["seq"] is not None]) < len(expected):
            ws.next(lambda e: e["seq"] is not None, timeout=5)
        got = [e for e in ws.events if e["seq"] is not None]
        assert [_comparable(e) for e in got] == [_comparable(e) for e in expected]
        ws.close()
        _assert_whole(everything, _log(srv, sid))


def test_ws_subscribe_without_after_gets_only_live_events(server, fake_model):
    sid = server.create_session()
    server.message(sid, "first")
    ws = server.ws()
    ws.subscribe(sid, after=0)
    _until_idle(ws)
    last = max(session_seqs(ws.events))
    ws.close()

    ws = server.ws()
    status = ws.subscribe(sid)
    assert status["data"]["lastSeq"] == last
    server.message(sid, "second")
    ws.until("session:turn:completed")
    assert min(session_seqs(ws.events)) == last + 1
    ws.close()


@pytest.fixture
def fast_keepalive(monkeypatch):
    monkeypatch.setattr(sse_module, "SSE_KEEPALIVE_SECONDS", 0.2)


def test_sse_resume_with_last_event_id(server, fake_model, fast_keepalive):
    sid = server.create_session()
    sse = SseClient(server, f"/sessions/{sid}/events", {"Last-Event-ID": "0"})
    assert sse.status == 200
    assert sse.response.getheader("Content-Type").startswith("text/event-stream")
    snapshot = sse.next()
    assert snapshot["event"] == "session:status" and "id" not in snapshot
    # while nothing happens, keep-alive comments arrive; they are not events
    assert sse.comments == ["connected"]
    assert sse.next_comment() == "keep-alive"
    assert sse.events == [snapshot]
    _script_slow_turn(fake_model)
    server.message(sid, "go")
    for _ in range(20):
        sse.until(lambda f: f["event"] == "session:block:delta")
    seen = [f for f in sse.events if "id" in f]
    sse.close()

    resumed = SseClient(
        server, f"/sessions/{sid}/events", {"Last-Event-ID": str(seen[-1]["id"])}
    )
    resumed.next()  # the status snapshot
    resumed.until(lambda f: f["event"] == "session:turn:completed")
    rest = [f for f in resumed.events if "id" in f]
    resumed.close()

    frames = seen + rest
    ids = [f["id"] for f in frames]
    assert ids == list(range(1, len(ids) + 1)), "no gap, no duplicate"
    for frame in frames:
        assert frame["data"]["seq"] == frame["id"]
        assert frame["data"]["event"] == frame["event"]
    log = _log(server, sid)
    assert [(f["id"], f["data"]["data"]) for f in frames] == [
        (e["seq"], e["data"]) for e in log[: len(frames)]
    ]


def test_sse_after_query_replays_an_unloaded_session(server, fake_model):
    sid = server.create_session()
    ws = server.ws()
    ws.subscribe(sid)
    server.message(sid, "hello")
    ws.until("session:turn:completed")
    ws.close()
    server.request("DELETE", f"/sessions/{sid}")
    log = _log(server, sid)

    sse = SseClient(server, f"/sessions/{sid}/events?after=2")
    assert sse.next()["data"]["data"]["runtime"]["isLoaded"] is False
    frames = [sse.next() for _ in range(len(log) - 2)]
    assert [f["id"] for f in frames] == [e["seq"] for e in log[2:]]
    sse.close()
