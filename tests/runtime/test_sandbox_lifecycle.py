"""The lazy sandbox: failure to start, death noticed by the health job, recreation."""

from __future__ import annotations

import time

from agent_server.devtools.fake_anthropic import reply, text, tool_use


def _sandbox_states(events):
    return [
        e["data"]["runtime"]["sandbox"]["status"]
        for e in events
        if e["event"] == "session:status" and e["data"]["runtime"].get("sandbox")
    ]


def test_a_sandbox_that_fails_to_start_ends_the_turn_with_an_error(server, fake_model):
    sid = server.create_session()
    # a file where the session's workspace directory should go: creation fails for real
    workspaces = server.data_dir / "workspaces"
    workspaces.mkdir(parents=True, exist_ok=True)
    (workspaces / sid).write_text("not a directory")
    ws = server.ws()
    ws.subscribe(sid)
    fake_model.enqueue(reply(tool_use("Bash", {"command": "echo hi"})))
    assert server.post(f"/sessions/{sid}/message", {"content": "run it"}).status == 202
    events = ws.until("session:turn:failed", timeout=20)
    assert "starting" in _sandbox_states(events)
    assert _sandbox_states(events)[-1] == "error"
    errors = [e["data"] for e in events if e["event"] == "error"]
    assert errors and errors[0]["code"] == "sandbox_start_failed"
    state = server.get(f"/sessions/{sid}").body["runtime"]
    assert state["sandbox"]["status"] == "error" and state["turn"]["running"] is False

    # fix the cause: the next message starts a new sandbox and works
    (workspaces / sid).unlink()
    fake_model.enqueue(
        reply(tool_use("Bash", {"command": "echo back"})), reply(text("ok"))
    )
    server.post(f"/sessions/{sid}/message", {"content": "again"})
    events = ws.until("session:turn:completed", timeout=20)
    assert _sandbox_states(events)[-1] == "ready"
    ws.close()


def test_a_dead_sandbox_is_noticed_reported_and_recreated(make_server, fake_model):
    server = make_server(health_interval=0.2)
    sid = server.create_session()
    ws = server.ws()
    ws.subscribe(sid)
    fake_model.enqueue(
        reply(tool_use("Write", {"file_path": "keep.txt", "content": "kept"})),
        reply(text("done")),
    )
    server.post(f"/sessions/{sid}/message", {"content": "write"})
    ws.until("session:turn:completed")
    ws.seen_or_next(lambda e: e["event"] == "session:file:created")

    session = server.runtime.session_manager.get_session(sid)
    session.sandbox.sandbox.terminate()  # the sandbox dies behind the server's back

    died = ws.next(lambda e: e["event"] == "error", timeout=10)
    assert died["data"]["code"] == "sandbox_died"
    assert _sandbox_states(ws.events)[-1] == "error"

    fake_model.enqueue(
        reply(tool_use("Bash", {"command": "cat keep.txt"})), reply(text("ok"))
    )
    server.post(f"/sessions/{sid}/message", {"content": "read it"})
    events = ws.until("session:turn:completed")
    assert _sandbox_states(events)[-1] == "ready"
    outputs = [
        e["data"]["block"].get("output")
        for e in events
        if e["event"] == "session:block:complete"
        and e["data"]["block"]["type"] == "tool_result"
    ]
    assert "kept" in outputs[0]  # the workspace came back from storage
    assert session.sandbox.state()["status"] == "ready"
    assert session.sandbox.sandbox is not None and session.sandbox.sandbox.poll().alive
    ws.close()


def test_the_first_turn_is_marked_in_flight_while_its_sandbox_starts(
    make_server, fake_model, database_url
):
    # the sandbox's "seeded" write and the turn's in-flight marker race on a new
    # session; crash recovery at start-up needs the marker in the stored record
    srv = make_server(database_url)
    for _ in range(2):
        sid = srv.create_session()
        words = " ".join(f"w{i}" for i in range(60))
        fake_model.enqueue(reply(text(words), tokens_per_second=40))
        ws = srv.ws()
        ws.subscribe(sid)
        message_id = srv.message(sid, "hi").body["messageId"]
        deadline = time.monotonic() + 10
        while not (
            stored := srv.runtime.persistence.load_session(sid).record.metadata
        ).get("workspaceSeeded"):
            assert time.monotonic() < deadline, "the sandbox was never seeded"
            time.sleep(0.02)
        assert stored.get("turnInFlight") == message_id
        assert not [e for e in ws.events if e["event"] == "session:turn:completed"]
        ws.until("session:turn:completed", timeout=20)
        ws.close()
