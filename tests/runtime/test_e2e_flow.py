"""End to end: create → message with tools → events on the socket → GET → restart → continue."""

from __future__ import annotations

import pytest

from agent_server.devtools.fake_anthropic import reply, text, tool_use


def _script_tool_turn(fake):
    fake.enqueue(
        reply(
            text("I'll write it."),
            tool_use("Write", {"file_path": "hello.py", "content": "print('hi')\n"}),
        ),
        reply(tool_use("Bash", {"command": "python3 hello.py"})),
        reply(text("It printed hi.")),
    )


def _flow(make_server, fake_model, database_url=None):
    srv = make_server(database_url)
    sid = srv.create_session(name="e2e")
    ws = srv.ws()
    status = ws.subscribe(sid, after=0)
    assert status["data"]["runtime"]["isLoaded"] is False

    _script_tool_turn(fake_model)
    resp = srv.post(
        f"/sessions/{sid}/message", {"content": "write hello.py and run it"}
    )
    assert resp.status == 202 and resp.body["queued"] is False
    events = ws.until("session:turn:completed", timeout=30)
    names = [e["event"] for e in events]

    # the documented order of a turn, seqs rising by one
    assert names.index("session:turn:started") < names.index("session:block:start")
    seqs = [e["seq"] for e in events if e["seq"] is not None]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    starts = {
        e["data"]["block"]["id"]: e["data"]["block"]["type"]
        for e in events
        if e["event"] == "session:block:start"
    }
    completes = {
        e["data"]["block"]["id"]: e["data"]["block"]
        for e in events
        if e["event"] == "session:block:complete"
    }
    assert set(starts) == set(completes)
    types = [b["type"] for b in completes.values()]
    for t in ("user_message", "assistant_text", "tool_use", "tool_result"):
        assert t in types
    statuses = [
        e["data"]["runtime"]["sandbox"]["status"]
        for e in events
        if e["event"] == "session:status" and e["data"]["runtime"]["sandbox"]
    ]
    assert "starting" in statuses and "ready" in statuses
    bash_result = [
        b
        for b in completes.values()
        if b["type"] == "tool_result" and "hi" in str(b.get("output"))
    ]
    assert bash_result, "the Bash output reached the client"
    ws.seen_or_next(
        lambda e: (
            e["event"] == "session:file:created"
            and e["data"]["file"]["path"] == "hello.py"
        )
    )
    deltas = [e for e in events if e["event"] == "session:block:delta"]
    assert deltas and all(d["data"]["blockId"] in starts for d in deltas)
    assert any(e["event"] == "session:metadata:update" for e in events)

    # GET shows the same blocks with the same ids
    got = srv.get(f"/sessions/{sid}").body
    assert [b["id"] for b in got["blocks"]] == [
        bid for bid in starts if completes[bid]["conversationId"] == "main"
    ]
    assert got["usage"]["outputTokens"] > 0
    assert srv.get(f"/sessions/{sid}/files/hello.py").raw == b"print('hi')\n"
    ws.close()

    # restart: the session and its blocks are back, and a new message continues
    srv.restart()
    again = srv.get(f"/sessions/{sid}").body
    assert [b["id"] for b in again["blocks"]] == [b["id"] for b in got["blocks"]]
    assert [f["path"] for f in again["files"]] == ["hello.py"]
    fake_model.enqueue(reply(text("Still here.")))
    ws = srv.ws()
    ws.subscribe(sid)
    assert (
        srv.post(f"/sessions/{sid}/message", {"content": "are you there?"}).status
        == 202
    )
    ws.until("session:turn:completed")
    sent = fake_model.requests[-1].json["messages"]
    assert sent[0]["content"][0]["text"] == "write hello.py and run it"
    assert sent[-1]["role"] == "user" and "are you there?" in str(sent[-1]["content"])
    # replay across the restart: everything from seq 0, without gaps
    replay = srv.get(f"/sessions/{sid}/events?after=0").body["events"]
    assert [e["seq"] for e in replay] == list(range(1, len(replay) + 1))
    ws.close()


def test_flow_on_sqlite(make_server, fake_model):
    _flow(make_server, fake_model)


@pytest.mark.postgres
def test_flow_on_postgresql(make_server, fake_model, pg_url):
    _flow(make_server, fake_model, pg_url)
