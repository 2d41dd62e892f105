"""Idle unload, restore into a new sandbox, DELETE (unload) and purge, on both databases."""

from __future__ import annotations

import shutil

import pytest

from agent_server.devtools.fake_anthropic import reply, text, tool_use
from tests.runtime.harness import assert_error


def _sandbox_statuses(ws) -> list[str | None]:
    return [
        (e["data"]["runtime"]["sandbox"] or {}).get("status")
        for e in ws.named("session:status")
    ]


def test_idle_session_unloads_then_resumes_with_files_restored(
    make_server, fake_model, database_url
):
    srv = make_server(database_url, idle_timeout=1.0)
    sid = srv.create_session()
    ws = srv.ws()
    ws.subscribe(sid)
    fake_model.enqueue(
        reply(
            tool_use("Write", {"file_path": "notes.txt", "content": "remember me\n"})
        ),
        reply(text("Saved.")),
    )
    srv.message(sid, "write notes.txt")
    ws.next(lambda e: e["event"] == "session:turn:completed")

    unloaded = ws.next(
        lambda e: e["event"] == "session:status" and e["data"].get("reason") == "idle",
        timeout=10,
    )
    assert unloaded["data"]["runtime"]["isLoaded"] is False
    ws.seen_or_next(
        lambda e: (
            e["event"] == "sessions:list"
            and e["data"]["change"] == "unloaded"
            and e["data"]["sessionId"] == sid
        )
    )
    got = srv.get(f"/sessions/{sid}").body
    assert got["runtime"]["isLoaded"] is False
    files = srv.get(f"/sessions/{sid}/files").body
    assert files["source"] == "storage"
    assert [f["path"] for f in files["files"]] == ["notes.txt"]
    assert srv.get(f"/sessions/{sid}/files/notes.txt").raw == b"remember me\n"

    # a new sandbox has nothing on disk: the workspace must come from storage
    shutil.rmtree(srv.data_dir / "workspaces" / sid)
    before = len(_sandbox_statuses(ws))
    fake_model.enqueue(
        reply(tool_use("Bash", {"command": "cat notes.txt"})), reply(text("Read it."))
    )
    assert srv.message(sid, "what did you write?").status == 202
    ws.next(lambda e: e["event"] == "session:turn:completed", timeout=20)
    assert "starting" in _sandbox_statuses(ws)[before:], "a new sandbox was created"
    results = [
        e["data"]["block"]
        for e in ws.named("session:block:complete")
        if e["data"]["block"]["type"] == "tool_result"
    ]
    assert "remember me" in str(results[-1].get("output")), results[-1]
    assert srv.get(f"/sessions/{sid}").body["runtime"]["isLoaded"] is True
    ws.close()


def test_delete_unloads_and_purge_forgets(make_server, fake_model, database_url):
    srv = make_server(database_url)
    sid = srv.create_session(name="to delete")
    ws = srv.ws()
    ws.subscribe(sid)
    fake_model.enqueue(
        reply(tool_use("Write", {"file_path": "a.txt", "content": "A"})),
        reply(text("ok")),
    )
    srv.message(sid, "write a.txt")
    ws.next(lambda e: e["event"] == "session:turn:completed")

    resp = srv.request("DELETE", f"/sessions/{sid}")
    assert resp.status == 200 and resp.body["purged"] is False
    got = srv.get(f"/sessions/{sid}").body
    assert got["runtime"]["isLoaded"] is False
    assert [b["type"] for b in got["blocks"]][0] == "user_message"
    assert srv.get(f"/sessions/{sid}/files/a.txt").raw == b"A"
    assert sid in [s["sessionId"] for s in srv.get("/sessions").body["sessions"]]

    resp = srv.request("DELETE", f"/sessions/{sid}?purge=true")
    assert resp.status == 200 and resp.body["purged"] is True
    ws.next(
        lambda e: e["event"] == "sessions:list" and e["data"]["change"] == "deleted"
    )
    assert_error(srv.get(f"/sessions/{sid}"), 404, "session_not_found")
    assert_error(srv.get(f"/sessions/{sid}/events?after=0"), 404, "session_not_found")
    assert sid not in [s["sessionId"] for s in srv.get("/sessions").body["sessions"]]
    assert not (srv.data_dir / "workspaces" / sid).exists()
    # and it stays forgotten across a restart
    srv.restart()
    assert_error(srv.get(f"/sessions/{sid}"), 404, "session_not_found")
    ws.close()


@pytest.mark.postgres
def test_a_second_unload_waits_for_the_first(make_server, fake_model, pg_url):
    import gevent

    # on PostgreSQL storage calls yield, so the two unloads really overlap
    server = make_server(pg_url)
    sid = server.create_session()
    ws = server.ws()
    ws.subscribe(sid)
    server.post(f"/sessions/{sid}/message", {"content": "hello"})
    ws.until("session:turn:completed")
    manager = server.runtime.session_manager
    session = manager.get_session(sid)
    first = gevent.spawn(manager.unload_session, sid, "idle")
    gevent.sleep(0)  # the first unload is under way (it yields on storage)
    assert manager.unload_session(sid, "unloaded") is True
    # by the time the second returns, the first has finished everything it writes
    assert session.closed and manager.get_session(sid) is None
    first.join(timeout=10)
    assert first.value is True
    ws.close()
