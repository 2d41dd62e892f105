"""Transcript: saved form round-trip, repair after an interrupt, merging user messages."""

from __future__ import annotations

import json

import pytest

from agent_server.agent.pricing import Usage
from agent_server.agent.transcript import Conversation, Transcript
from agent_server.errors import PersistenceError


def tool_use_message(*ids):
    return {
        "role": "assistant",
        "content": [{"type": "text", "text": "let me"}]
        + [{"type": "tool_use", "id": i, "name": "Bash", "input": {}} for i in ids],
    }


def test_round_trip_keeps_messages_blocks_usage_and_subagents():
    t = Transcript()
    t.main.append_user("hi")
    t.main.messages.append(
        {"role": "assistant", "content": [{"type": "text", "text": "yo"}]}
    )
    t.main.add_block({"id": "blk_1", "type": "user_message", "content": "hi"})
    t.add_conversation(
        Conversation(
            "sub_1", name="researcher", status="success", tool_use_id="toolu_1"
        )
    )
    t.add_usage(Usage(10, 20), 0.5)
    t.model = "claude-haiku-4-5"

    back = Transcript.from_json(t.to_json())

    assert json.loads(t.to_json())["version"] == 1
    assert back.main.messages == t.main.messages
    assert back.blocks() == [{"id": "blk_1", "type": "user_message", "content": "hi"}]
    assert back.conversation("sub_1").name == "researcher"
    assert back.conversation("sub_1").tool_use_id == "toolu_1"
    assert back.usage == Usage(10, 20) and back.cost_usd == 0.5
    assert back.model == "claude-haiku-4-5"


def test_from_json_of_nothing_is_empty_and_of_garbage_is_an_error():
    assert Transcript.from_json(None).main.messages == []
    assert Transcript.from_json("").main.messages == []
    with pytest.raises(PersistenceError):
        Transcript.from_json("{not json")
    with pytest.raises(PersistenceError):
        Transcript.from_json(json.dumps({"version": 99, "conversations": []}))


def test_repair_pairs_every_tool_use_of_the_last_assistant_message():
    t = Transcript()
    t.main.append_user("do it")
    t.main.messages.append(tool_use_message("t1", "t2"))

    assert t.repair() == 2
    results = t.main.messages[-1]
    assert results["role"] == "user"
    assert [
        (b["tool_use_id"], b["content"], b["is_error"]) for b in results["content"]
    ] == [
        ("t1", "interrupted by user", True),
        ("t2", "interrupted by user", True),
    ]
    assert t.repair() == 0  # idempotent


def test_repair_fills_only_missing_results_and_drops_empty_messages():
    t = Transcript()
    t.main.append_user("do it")
    t.main.messages.append(tool_use_message("t1", "t2"))
    t.main.messages.append(
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
        }
    )
    assert t.repair("stopped") == 1
    assert [b["tool_use_id"] for b in t.main.messages[-1]["content"]] == ["t1", "t2"]
    assert t.main.messages[-1]["content"][1]["content"] == "stopped"

    t2 = Transcript()
    t2.main.append_user("x")
    t2.main.messages.append(tool_use_message("t9"))
    t2.main.messages.append({"role": "user", "content": []})  # results not yet filled
    assert t2.repair() == 1
    assert len(t2.main.messages) == 3


def test_a_new_user_message_merges_into_a_trailing_user_message():
    t = Transcript()
    t.main.append_user("first")  # e.g. the model call for it failed
    t.main.append_user("second")
    assert t.main.messages == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "first"},
                {"type": "text", "text": "second"},
            ],
        }
    ]


def test_cost_becomes_unknown_once_a_call_cannot_be_priced():
    t = Transcript()
    t.add_usage(Usage(1, 1), 0.1)
    t.add_usage(Usage(1, 1), None)
    t.add_usage(Usage(1, 1), 0.1)
    assert t.cost_usd is None and t.usage == Usage(3, 3)
