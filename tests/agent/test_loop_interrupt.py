"""Interrupts: TurnInterrupted thrown into the turn's greenlet at any point."""

from __future__ import annotations

import os
import time

import gevent
import gevent.event

from agent_server.devtools.fake_anthropic import reply, text, tool_use
from agent_server.errors import TurnInterrupted
from agent_server.events import names


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        gevent.sleep(0.01)


def interrupt(greenlet, reason="interrupted by user"):
    greenlet.kill(TurnInterrupted(reason), block=True, timeout=10)
    assert greenlet.dead
    return greenlet.value


def processes_running(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\x00", b" ").decode()
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(pid))
    return found


def test_interrupt_while_streaming_keeps_partial_text(loop_factory, agent_fake):
    words = " ".join(f"word{i}" for i in range(200))
    agent_fake.enqueue(reply(text(words), tokens_per_second=100))
    loop, rec = loop_factory()

    g = gevent.spawn(loop.run_turn, "talk", message_id="m1")
    wait_for(lambda: len(rec.of(names.BLOCK_DELTA)) >= 3)
    started = time.monotonic()
    outcome = interrupt(g)

    assert time.monotonic() - started < 3
    assert outcome.status == "interrupted" and outcome.reason == "interrupted by user"
    assert rec.names()[-1] == names.TURN_INTERRUPTED
    [block] = rec.completed_blocks("assistant_text")
    streamed = "".join(d["delta"] for d in rec.of(names.BLOCK_DELTA))
    assert block["content"] == streamed and streamed.startswith("word0 word1")
    assert len(streamed) < len(words)
    assert loop.transcript.main.messages[-1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": streamed}],
    }
    agent_fake.enqueue(reply(text("ok")))
    assert loop.run_turn("continue", message_id="m2").status == "completed"
    sent = agent_fake.requests[-1].json["messages"]
    assert sent[1]["content"][0]["text"] == streamed
    assert sent[2]["content"][0]["text"] == "continue"


def test_interrupt_during_long_bash_kills_the_command(loop_factory, agent_fake):
    marker = (
        f"{30 + os.getpid() % 1000 / 1000:.3f}"  # a sleep argument only this test uses
    )
    agent_fake.enqueue(
        reply(tool_use("Bash", {"command": f"echo started; sleep {marker}"}, id="tu_s"))
    )
    loop, rec = loop_factory()

    g = gevent.spawn(loop.run_turn, "wait", message_id="m1")
    wait_for(lambda: processes_running(f"sleep {marker}"))
    wait_for(
        lambda: any(d["delta"].strip() == "started" for d in rec.of(names.BLOCK_DELTA))
    )
    started = time.monotonic()
    outcome = interrupt(g)

    assert time.monotonic() - started < 5
    assert outcome.status == "interrupted"
    wait_for(lambda: not processes_running(f"sleep {marker}"), timeout=5)
    [use] = rec.completed_blocks("tool_use")
    assert use["status"] == "error"
    [result] = rec.completed_blocks("tool_result")
    assert result["isError"] is True
    assert result["output"] == "started\n\n[interrupted by user]"
    starts = {d["block"]["id"] for d in rec.of(names.BLOCK_START)}
    assert starts == {d["block"]["id"] for d in rec.of(names.BLOCK_COMPLETE)}
    # the next request pairs the tool_use with an "interrupted" result
    agent_fake.enqueue(reply(text("ok")))
    assert loop.run_turn("what happened?", message_id="m2").status == "completed"
    last = agent_fake.requests[-1].json["messages"][-1]["content"]
    assert last[0]["tool_use_id"] == "tu_s" and last[0]["is_error"] is True
    assert last[0]["content"] == "interrupted by user"


def test_interrupt_while_waiting_for_the_sandbox(
    loop_factory, agent_fake, agent_sandbox
):
    never = gevent.event.Event()

    def slow_sandbox():
        never.wait(30)
        return agent_sandbox

    agent_fake.enqueue(reply(tool_use("Write", {"file_path": "a", "content": "x"})))
    loop, rec = loop_factory(get_sandbox=slow_sandbox)

    g = gevent.spawn(loop.run_turn, "write", message_id="m1")
    wait_for(
        lambda: any(
            d["updates"].get("status") == "running" for d in rec.of(names.BLOCK_UPDATE)
        )
    )
    outcome = interrupt(g, "stop it")

    assert outcome.status == "interrupted" and outcome.reason == "stop it"
    assert rec.of(names.TURN_INTERRUPTED)[0]["reason"] == "stop it"
    last = loop.transcript.main.messages[-1]
    assert last["content"][0]["content"] == "stop it"


def test_a_second_kill_during_cleanup_still_ends_the_turn(loop_factory, agent_fake):
    agent_fake.enqueue(reply(text(" ".join(["w"] * 200)), tokens_per_second=100))
    loop, rec = loop_factory()
    slow = gevent.event.Event()

    def emit(name, data):
        rec(name, data)
        if slow.is_set():
            gevent.sleep(0.2)  # cleanup yields: room for a second kill

    loop._emit = loop.blocks.emit = emit
    g = gevent.spawn(loop.run_turn, "talk", message_id="m1")
    wait_for(lambda: len(rec.of(names.BLOCK_DELTA)) >= 3)
    slow.set()
    g.kill(TurnInterrupted("first"), block=False)
    wait_for(lambda: rec.completed_blocks("assistant_text"))  # cleanup has begun
    g.kill(TurnInterrupted("second"), block=True, timeout=10)

    assert g.dead and g.successful()
    assert g.value.status == "interrupted" and g.value.reason == "first"
    assert rec.of(names.TURN_INTERRUPTED)[0]["reason"] == "first"
    assert loop.transcript.main.messages[-1]["role"] == "assistant"
