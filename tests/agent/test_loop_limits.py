"""Limits, usage and cost, extended thinking, and resuming from a saved transcript."""

from __future__ import annotations

import pytest

from agent_server.agent.loop import AgentLoop
from agent_server.agent.model import ModelClient
from agent_server.agent.transcript import Transcript
from agent_server.devtools.fake_anthropic import reply, text, thinking, tool_use
from agent_server.events import names
from agent_server.persistence.types import AgentProfile


def bash(id):
    return reply(
        tool_use("Bash", {"command": "echo again"}, id=id),
        input_tokens=100,
        output_tokens=10,
    )


def test_max_turns_stops_before_the_next_model_call(loop_factory, agent_fake):
    agent_fake.enqueue(bash("t1"), bash("t2"), bash("t3"))
    loop, rec = loop_factory(AgentProfile(id="p", name="p", max_turns=2))

    outcome = loop.run_turn("loop forever", message_id="m1")

    assert outcome.status == "completed" and outcome.reason == "max_turns"
    assert len(agent_fake.requests) == 2
    assert rec.of(names.TURN_COMPLETED)[0]["reason"] == "max_turns"
    [note] = rec.completed_blocks("system")
    assert note["subtype"] == "limit" and "max_turns is 2" in note["message"]
    # both tools ran; the transcript ends with their results and stays usable
    last = loop.transcript.main.messages[-1]
    assert last["role"] == "user" and last["content"][0]["tool_use_id"] == "t2"
    agent_fake.reset()
    agent_fake.enqueue(reply(text("stopped")))
    assert loop.run_turn("ok, stop", message_id="m2").status == "completed"


def test_max_budget_stops_the_turn(loop_factory, agent_fake):
    # 100 input + 10 output tokens on sonnet-4-5: $0.00045 per call
    agent_fake.enqueue(bash("t1"), bash("t2"), bash("t3"))
    loop, rec = loop_factory(AgentProfile(id="p", name="p", max_budget_usd=0.0008))

    outcome = loop.run_turn("spend", message_id="m1")

    assert outcome.status == "completed" and outcome.reason == "max_budget"
    assert len(agent_fake.requests) == 2
    assert outcome.cost_usd == pytest.approx(0.0009)
    assert "max_budget_usd" in rec.completed_blocks("system")[0]["message"]


def test_usage_and_cost_are_summed_per_turn_and_session(loop_factory, agent_fake):
    agent_fake.enqueue(
        reply(
            tool_use("Bash", {"command": "true"}),
            input_tokens=1000,
            output_tokens=100,
            cache_read_input_tokens=500,
        ),
        reply(
            text("done"),
            input_tokens=2000,
            output_tokens=200,
            cache_creation_input_tokens=100,
        ),
        reply(text("again"), input_tokens=10, output_tokens=1),
    )
    loop, rec = loop_factory(AgentProfile(id="p", name="p", model="claude-haiku-4-5"))

    first = loop.run_turn("one", message_id="m1")
    second = loop.run_turn("two", message_id="m2")

    assert first.usage.input_tokens == 3000 and first.usage.output_tokens == 300
    assert first.usage.cache_read_input_tokens == 500
    assert first.usage.cache_creation_input_tokens == 100
    expected = (3000 * 1 + 300 * 5 + 500 * 0.1 + 100 * 1.25) / 1e6
    assert first.cost_usd == pytest.approx(expected)
    assert second.cost_usd == pytest.approx((10 + 5) / 1e6)
    last_meta = rec.of(names.METADATA_UPDATE)[-1]
    assert last_meta["model"] == "claude-haiku-4-5"
    assert last_meta["usage"]["inputTokens"] == 3010
    assert last_meta["costUsd"] == pytest.approx(expected + 15 / 1e6)
    assert last_meta["turnUsage"]["inputTokens"] == 10
    assert rec.of(names.TURN_COMPLETED)[0]["costUsd"] == pytest.approx(expected)
    assert loop.transcript.cost_usd == pytest.approx(expected + 15 / 1e6)


def test_extended_thinking_is_requested_and_kept_with_signatures(
    loop_factory, agent_fake
):
    agent_fake.enqueue(
        reply(
            thinking("Let me check.", signature="sig-1"),
            tool_use("Bash", {"command": "echo 1"}, id="t1"),
        ),
        reply(thinking("Now answer.", signature="sig-2"), text("One.")),
    )
    loop, rec = loop_factory(
        AgentProfile(id="p", name="p", thinking_budget_tokens=4096, max_tokens=2000)
    )

    assert loop.run_turn("count", message_id="m1").status == "completed"

    first = agent_fake.requests[0].json
    assert first["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert first["max_tokens"] > 4096
    assistant = agent_fake.requests[1].json["messages"][1]
    assert assistant["content"][0] == {
        "type": "thinking",
        "thinking": "Let me check.",
        "signature": "sig-1",
    }
    assert [b["content"] for b in rec.completed_blocks("thinking")] == [
        "Let me check.",
        "Now answer.",
    ]
    thinking_ids = {b["id"] for b in rec.completed_blocks("thinking")}
    streamed = "".join(
        d["delta"] for d in rec.of(names.BLOCK_DELTA) if d["blockId"] in thinking_ids
    )
    assert streamed == "Let me check.Now answer."


def test_saved_transcript_resumes_the_conversation(
    loop_factory, agent_fake, agent_sandbox
):
    agent_fake.enqueue(
        reply(tool_use("Write", {"file_path": "a.txt", "content": "hi"}, id="t1")),
        reply(text("Wrote it.")),
        reply(text("Yes, a.txt.")),
    )
    loop, _ = loop_factory()
    loop.run_turn("write a file", message_id="m1")
    raw = loop.transcript.to_json()
    blocks_before = loop.transcript.blocks()

    resumed = Transcript.from_json(raw)
    client = ModelClient(api_key="k", base_url=agent_fake.base_url, max_retries=0)
    loop2 = AgentLoop(
        client,
        AgentProfile(id="p", name="test"),
        emit=lambda n, d: None,
        get_sandbox=lambda: agent_sandbox,
        transcript=resumed,
    )
    assert loop2.transcript.blocks() == blocks_before  # same ids after a reload
    assert loop2.run_turn("did you write it?", message_id="m2").status == "completed"

    sent = agent_fake.requests[-1].json["messages"]
    assert [m["role"] for m in sent] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert sent[0]["content"][0]["text"] == "write a file"
    assert sent[1]["content"][0]["id"] == "t1"
    assert sent[2]["content"][0]["tool_use_id"] == "t1"
    assert sent[3]["content"] == [{"type": "text", "text": "Wrote it."}]
    assert sent[4]["content"][0]["text"] == "did you write it?"
    assert loop2.transcript.usage.input_tokens > loop.transcript.usage.input_tokens


def test_model_choice_session_over_profile_over_default(loop_factory, agent_fake):
    agent_fake.enqueue(reply(text("a")), reply(text("b")), reply(text("c")))
    for kwargs, prof_model, expected in [
        ({"model": "claude-opus-4-5"}, "claude-haiku-4-5", "claude-opus-4-5"),
        ({}, "claude-haiku-4-5", "claude-haiku-4-5"),
        ({"default_model": "claude-opus-4-1"}, None, "claude-opus-4-1"),
    ]:
        loop, _ = loop_factory(
            AgentProfile(id="p", name="p", model=prof_model), **kwargs
        )
        loop.run_turn("hi", message_id="m")
        assert agent_fake.requests[-1].json["model"] == expected


def test_a_transcript_left_mid_tool_by_a_crash_still_works(loop_factory, agent_fake):
    crashed = Transcript()
    crashed.main.append_user("run it")
    crashed.main.messages.append(
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}],
        }
    )
    agent_fake.enqueue(reply(text("sorry about that")))
    loop, _ = loop_factory(transcript=Transcript.from_json(crashed.to_json()))

    assert loop.run_turn("hello?", message_id="m1").status == "completed"

    last = agent_fake.requests[-1].json["messages"][-1]["content"]
    assert last[0]["type"] == "tool_result" and last[0]["tool_use_id"] == "t1"
    assert last[0]["is_error"] is True
    assert last[1]["text"] == "hello?"
