"""The server as deployed: gunicorn's gevent worker, SIGTERM, bad settings, a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from agent_server.devtools.fake_anthropic import reply, text
from tests.runtime.harness import ProcessServer


def _chat(srv, sid: str, content: str) -> None:
    ws = srv.ws()
    ws.subscribe(sid)
    assert srv.message(sid, content).status == 202
    ws.until("session:turn:completed", timeout=30)
    ws.close()


def test_gunicorn_serves_then_stops_cleanly_on_sigterm(tmp_path, fake_model):
    srv = ProcessServer(tmp_path / "data", model_url=fake_model.base_url).start()
    try:
        sid = srv.create_session(name="under gunicorn")
        fake_model.enqueue(reply(text("Served by gunicorn.")))
        _chat(srv, sid, "hello gunicorn")

        started = time.monotonic()
        srv.process.send_signal(signal.SIGTERM)
        assert srv.process.wait(timeout=15) == 0, srv.stderr()
        assert time.monotonic() - started < 10  # the graceful timeout
        assert "Traceback" not in srv.stderr()
    finally:
        srv.stop()

    again = ProcessServer(tmp_path / "data", model_url=fake_model.base_url).start()
    try:
        got = again.get(f"/sessions/{sid}").body
        assert got["session"]["name"] == "under gunicorn"
        contents = [b.get("content") for b in got["blocks"]]
        assert contents == ["hello gunicorn", "Served by gunicorn."]
        assert got["runtime"]["isLoaded"] is False
    finally:
        again.stop()


@pytest.mark.parametrize(
    "env, variable",
    [({"PORT": "abc"}, "PORT"), ({"SANDBOX_PROVIDER": "nope"}, "SANDBOX_PROVIDER")],
)
def test_an_invalid_setting_stops_gunicorn_with_one_line(
    tmp_path, fake_model, env, variable
):
    srv = ProcessServer(tmp_path / "data", model_url=fake_model.base_url, env=env)
    process = srv.launch()
    try:
        assert process.wait(timeout=30) != 0
    except subprocess.TimeoutExpired:
        srv.stop()
        raise
    stderr = srv.stderr()
    assert "Traceback" not in stderr, stderr
    ours = [line for line in stderr.splitlines() if line.startswith("agent-server:")]
    assert len(ours) == 1, stderr
    assert variable in ours[0] and "invalid" in ours[0]


def test_a_crash_mid_turn_is_marked_interrupted_on_restart(
    tmp_path, fake_model, make_server, database_url
):
    data_dir = tmp_path / "data"
    srv = ProcessServer(
        data_dir, model_url=fake_model.base_url, env={"DATABASE_URL": database_url}
    ).start()
    try:
        sid = srv.create_session()
        fake_model.enqueue(reply(text("done first")))
        _chat(srv, sid, "first")
        words = " ".join(f"w{i}" for i in range(400))
        fake_model.enqueue(reply(text(words), tokens_per_second=40))
        ws = srv.ws()
        ws.subscribe(sid)
        message_id = srv.message(sid, "second, cut short").body["messageId"]
        ws.next(lambda e: e["event"] == "session:block:delta", timeout=15)
        workers = srv.worker_pids()
        assert workers
        # a crash: nothing runs its shutdown (SIGKILL), the arbiter first so no
        # worker is respawned
        os.kill(srv.process.pid, signal.SIGKILL)
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        srv.process.wait(timeout=10)
        ws.close()
    finally:
        srv.stop()

    fake_model.enqueue(reply(text("back after the crash")))
    restarted = make_server(database_url)
    log = restarted.get(f"/sessions/{sid}/events?after=0").body["events"]
    seqs = [e["seq"] for e in log]
    assert seqs == sorted(set(seqs))
    last = log[-1]
    assert last["event"] == "session:turn:interrupted"
    assert last["data"] == {"messageId": message_id, "reason": "server_restarted"}
    got = restarted.get(f"/sessions/{sid}").body
    assert "turnInFlight" not in got["session"]["metadata"]

    ws = restarted.ws()
    ws.subscribe(sid)
    assert restarted.message(sid, "are you back?").status == 202
    done = ws.next(lambda e: e["event"] == "session:turn:completed", timeout=20)
    assert done["seq"] > last["seq"]
    messages = fake_model.requests[-1].json["messages"]
    assert messages[0]["content"][0]["text"] == "first"
    assert "are you back?" in str(messages[-1]["content"])
    ws.close()
