"""Queueing (one turn at a time, in order) and interrupting a turn over the real server."""

from __future__ import annotations

import os
import time

import gevent

from agent_server.devtools.fake_anthropic import reply, text, tool_use
from tests.runtime.harness import assert_error

SLOW_WORDS = " ".join(f"w{i}" for i in range(30))


def _turn_ends(ws, count: int, timeout: float = 20.0) -> list[dict]:
    ends = ("session:turn:completed", "session:turn:failed", "session:turn:interrupted")
    deadline = time.monotonic() + timeout
    while sum(e["event"] in ends for e in ws.events) < count:
        ws.next(lambda e: e["event"] in ends, deadline - time.monotonic())
    return [e for e in ws.events if e["event"] in ends]


def _assert_paired(messages: list[dict]) -> None:
    """Every tool_use of an assistant message is answered in the next user message."""
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or isinstance(message["content"], str):
            continue
        uses = {c["id"] for c in message["content"] if c["type"] == "tool_use"}
        if not uses:
            continue
        answer = messages[i + 1]
        results = {
            c["tool_use_id"]
            for c in answer["content"]
            if isinstance(c, dict) and c["type"] == "tool_result"
        }
        assert uses <= results, (uses, results)


def test_messages_sent_during_a_turn_queue_and_run_in_order(server, fake_model):
    sid = server.create_session()
    ws = server.ws()
    ws.subscribe(sid)
    fake_model.enqueue(
        reply(text(SLOW_WORDS), tokens_per_second=40),
        reply(text("second answer")),
        reply(text("third answer")),
    )
    sent = [server.message(sid, f"message {n}") for n in (1, 2, 3)]
    assert [r.status for r in sent] == [202, 202, 202]
    assert [r.body["queued"] for r in sent] == [False, True, True]
    ids = [r.body["messageId"] for r in sent]
    assert len(set(ids)) == 3

    _turn_ends(ws, 3)
    turns = [
        (e["event"], e["data"]["messageId"])
        for e in ws.events
        if e["event"] in ("session:turn:started", "session:turn:completed")
    ]
    expected = []
    for message_id in ids:
        expected += [
            ("session:turn:started", message_id),
            ("session:turn:completed", message_id),
        ]
    assert turns == expected, "turns alternate, never overlap, in send order"

    calls = [r.json["messages"] for r in fake_model.requests]
    assert len(calls) == 3
    assert "message 1" in str(calls[1]) and SLOW_WORDS in str(calls[1])
    assert "message 1" in str(calls[2]) and "message 2" in str(calls[2])
    assert "second answer" in str(calls[2]) and "message 3" in str(calls[2][-1])
    assert "message 2" not in str(calls[0])
    ws.close()


def test_two_simultaneous_first_messages_start_one_sandbox(server, fake_model):
    sid = server.create_session()
    ws = server.ws()
    ws.subscribe(sid)
    fake_model.enqueue(reply(text("one")), reply(text("two")))
    posts = [gevent.spawn(server.message, sid, f"hello {n}") for n in (1, 2)]
    gevent.joinall(posts, timeout=15, raise_error=True)
    responses = [g.value for g in posts]
    assert sorted(r.status for r in responses) == [202, 202]
    assert sorted(r.body["queued"] for r in responses) == [False, True]
    _turn_ends(ws, 2)

    statuses = [
        (e["data"]["runtime"]["sandbox"] or {}).get("status")
        for e in ws.named("session:status")
    ]
    transitions = [s for i, s in enumerate(statuses) if i == 0 or s != statuses[i - 1]]
    assert transitions.count("starting") == 1, statuses
    sandbox_ids = {
        e["data"]["runtime"]["sandbox"]["id"]
        for e in ws.named("session:status")
        if (e["data"]["runtime"]["sandbox"] or {}).get("id")
    }
    assert len(sandbox_ids) == 1
    workspaces = server.data_dir / "workspaces"
    assert [p.name for p in workspaces.glob("ses_*")] == [sid]
    ws.close()


def test_interrupt_while_streaming_keeps_partial_text_then_runs_the_queue(
    server, fake_model
):
    sid = server.create_session()
    ws = server.ws()
    ws.subscribe(sid)
    words = " ".join(f"word{i}" for i in range(200))
    fake_model.enqueue(reply(text(words), tokens_per_second=50), reply(text("next")))
    first = server.message(sid, "talk slowly").body["messageId"]
    second = server.message(sid, "then this").body["messageId"]
    ws.next(lambda e: e["event"] == "session:block:delta")
    ws.next(lambda e: e["event"] == "session:block:delta")

    resp = server.post(f"/sessions/{sid}/interrupt")
    assert resp.status == 200 and resp.body["interrupted"] is True
    ended = ws.next(lambda e: e["event"] == "session:turn:interrupted", timeout=5)
    assert ended["data"]["messageId"] == first

    ws.next(
        lambda e: (
            e["event"] == "session:turn:completed" and e["data"]["messageId"] == second
        )
    )
    blocks = server.get(f"/sessions/{sid}").body["blocks"]
    texts = [b["content"] for b in blocks if b["type"] == "assistant_text"]
    assert texts[-1] == "next"
    partial = texts[0]
    assert partial.startswith("word0") and len(partial) < len(words)
    _assert_paired(fake_model.requests[-1].json["messages"])
    ws.close()


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and "cmdline" not in cmdline:
            found.append(int(pid))
    return found


def test_interrupt_during_a_long_command_kills_it(server, fake_model):
    sid = server.create_session()
    ws = server.ws()
    ws.subscribe(sid)
    marker = "30.4173"
    fake_model.enqueue(reply(tool_use("Bash", {"command": f"sleep {marker}"})))
    server.message(sid, "wait a while")
    ws.next(
        lambda e: (
            e["event"] == "session:block:update"
            and e["data"]["updates"].get("status") == "running"
        ),
        timeout=20,
    )
    deadline = time.monotonic() + 10
    while not _processes_with(f"sleep {marker}") and time.monotonic() < deadline:
        gevent.sleep(0.05)
    assert _processes_with(f"sleep {marker}"), "the command runs"

    started = time.monotonic()
    assert server.post(f"/sessions/{sid}/interrupt").status == 200
    ws.next(lambda e: e["event"] == "session:turn:interrupted", timeout=10)
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while _processes_with(f"sleep {marker}") and time.monotonic() < deadline:
        gevent.sleep(0.05)
    assert not _processes_with(f"sleep {marker}"), "the command's process is gone"

    # the session still works, and what it sends the model is a valid conversation
    fake_model.enqueue(reply(text("back again")))
    assert server.message(sid, "are you ok?").status == 202
    done = ws.next(lambda e: e["event"] == "session:turn:completed")
    assert done["data"]["reason"] == "end_turn"
    messages = fake_model.requests[-1].json["messages"]
    assert any(
        c["type"] == "tool_use"
        for m in messages
        if m["role"] == "assistant"
        for c in m["content"]
    )
    _assert_paired(messages)
    ws.close()


def test_interrupt_without_a_running_turn_is_a_conflict(server, fake_model):
    sid = server.create_session()
    assert_error(server.post(f"/sessions/{sid}/interrupt"), 409, "conflict")
    ws = server.ws()
    ws.subscribe(sid)
    server.message(sid, "hi")
    ws.next(lambda e: e["event"] == "session:turn:completed")
    assert_error(server.post(f"/sessions/{sid}/interrupt"), 409, "conflict")
    assert server.message(sid, "still there?").status == 202
    ws.next(lambda e: e["event"] == "session:turn:completed")
    ws.close()


def test_messages_still_queued_when_the_session_is_unloaded_are_reported_failed(
    server, fake_model
):
    from agent_server.devtools.fake_anthropic import reply, text

    sid = server.create_session()
    ws = server.ws()
    ws.subscribe(sid)
    fake_model.enqueue(reply(text("slow " * 200), tokens_per_second=50))
    first = server.post(f"/sessions/{sid}/message", {"content": "one"}).body
    queued = [
        server.post(f"/sessions/{sid}/message", {"content": c}).body
        for c in ("two", "three")
    ]
    assert all(q["queued"] for q in queued)
    ws.next(lambda e: e["event"] == "session:block:delta")
    assert server.request("DELETE", f"/sessions/{sid}").status == 200
    failed = {}
    while len(failed) < 2:
        event = ws.next(
            lambda e: e["event"] in ("session:turn:failed", "session:turn:interrupted")
        )
        if event["event"] == "session:turn:failed":
            failed[event["data"]["messageId"]] = event["data"]["reason"]
    assert failed == {q["messageId"]: "session_unloaded" for q in queued}
    interrupted = ws.seen_or_next(lambda e: e["event"] == "session:turn:interrupted")
    assert interrupted["data"]["messageId"] == first["messageId"]
    ws.close()


def test_right_after_the_turn_ends_the_session_reports_no_turn_running(
    server, fake_model
):
    # a client that GETs the session as soon as it sees the end event must not be
    # told the turn still runs (its transcript and record are stored after the event)
    sid = server.create_session()
    ws = server.ws()
    ws.subscribe(sid)
    for n in range(1, 6):
        fake_model.enqueue(reply(text(f"answer {n}")))
        server.message(sid, f"message {n}")
        _turn_ends(ws, n)
        turn = server.get(f"/sessions/{sid}").body["runtime"]["turn"]
        assert turn == {"running": False, "queued": 0, "messageId": None}, n
