"""A plain text turn: the events a client sees, in order, and what was sent."""

from __future__ import annotations

from agent_server.agent.blocks import MAIN
from agent_server.devtools.fake_anthropic import reply, text
from agent_server.events import names


def test_text_turn_event_order_and_stable_ids(loop_factory, agent_fake):
    agent_fake.enqueue(
        reply(text("Hello there, friend.", chunks=4), input_tokens=10, output_tokens=5)
    )
    loop, rec = loop_factory()

    outcome = loop.run_turn("hi", message_id="m1")

    assert outcome.status == "completed"
    assert outcome.reason == "end_turn"
    assert outcome.usage.input_tokens == 10 and outcome.usage.output_tokens == 5
    kinds = [(n, d.get("block", {}).get("type")) for n, d in rec.events]
    text_id = rec.of(names.BLOCK_START)[1]["block"]["id"]
    deltas = rec.of(names.BLOCK_DELTA)
    assert kinds == [
        (names.TURN_STARTED, None),
        (names.BLOCK_START, "user_message"),
        (names.BLOCK_COMPLETE, "user_message"),
        (names.BLOCK_START, "assistant_text"),
        *[(names.BLOCK_DELTA, None)] * len(deltas),
        (names.BLOCK_COMPLETE, "assistant_text"),
        (names.METADATA_UPDATE, None),
        (names.TURN_COMPLETED, None),
    ]
    assert len(deltas) == 4
    assert all(d["blockId"] == text_id and d["conversationId"] == MAIN for d in deltas)
    assert "".join(d["delta"] for d in deltas) == "Hello there, friend."
    final = rec.completed_blocks("assistant_text")[0]
    assert final["id"] == text_id
    assert final["content"] == "Hello there, friend."
    assert final["model"] == "claude-sonnet-4-6"
    assert rec.of(names.TURN_STARTED) == [{"messageId": "m1"}]
    done = rec.of(names.TURN_COMPLETED)[0]
    assert done["messageId"] == "m1" and done["stopReason"] == "end_turn"
    meta = rec.of(names.METADATA_UPDATE)[0]
    assert meta["usage"]["inputTokens"] == 10 and meta["usage"]["outputTokens"] == 5
    assert meta["costUsd"] == (10 * 3 + 5 * 15) / 1e6
    # the start event was not rewritten by the completion
    assert rec.of(names.BLOCK_START)[1]["block"]["content"] == ""
    sent = agent_fake.requests[-1].json
    assert sent["model"] == "claude-sonnet-4-6" and sent["stream"] is True
    assert sent["messages"][0]["content"][0]["text"] == "hi"
    assert loop.transcript.main.messages[-1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Hello there, friend."}],
    }
