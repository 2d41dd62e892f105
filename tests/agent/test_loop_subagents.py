"""Task: subagents with their own conversation, blocks and result."""

from __future__ import annotations

from agent_server.devtools.fake_anthropic import error, reply, text, tool_use
from agent_server.events import names
from agent_server.persistence.types import AgentProfile, SubagentDefinition

RESEARCHER = SubagentDefinition(
    name="researcher", description="Finds facts in files", prompt="You research."
)


def profile(*subagents, **overrides):
    return AgentProfile(
        id="p", name="boss", subagents=subagents or (RESEARCHER,), **overrides
    )


def task(prompt="find X", subagent_type="researcher", id="tu_task"):
    return tool_use(
        "Task",
        {"description": "look it up", "prompt": prompt, "subagent_type": subagent_type},
        id=id,
    )


def test_subagent_runs_in_its_own_conversation(loop_factory, agent_fake, agent_sandbox):
    agent_fake.enqueue(
        reply(task()),
        reply(
            tool_use(
                "Write", {"file_path": "notes.md", "content": "X is 42"}, id="tu_sub_w"
            )
        ),
        reply(text("Found X: 42.")),
        reply(text("The researcher says 42.")),
    )
    loop, rec = loop_factory(profile())

    outcome = loop.run_turn("what is X?", message_id="m1")

    assert outcome.status == "completed"
    assert agent_sandbox.read_file("notes.md") == b"X is 42"
    main_tools = agent_fake.requests[0].json["tools"]
    task_tool = next(t for t in main_tools if t["name"] == "Task")
    assert "researcher: Finds facts in files" in task_tool["description"]
    sub_request = agent_fake.requests[1].json
    assert sub_request["system"][0]["text"] == "You research."
    assert sub_request["messages"][0]["content"][0]["text"] == "find X"
    assert "Task" not in [t["name"] for t in sub_request["tools"]]
    back = agent_fake.requests[3].json["messages"][-1]["content"][0]
    assert back["tool_use_id"] == "tu_task" and back["content"] == "Found X: 42."

    [found] = rec.of(names.SUBAGENT_DISCOVERED)
    sub_id = found["subagent"]["id"]
    assert sub_id.startswith("sub_")
    assert found["subagent"] == {
        "id": sub_id,
        "name": "researcher",
        "description": "look it up",
        "toolUseId": "tu_task",
    }
    [done] = rec.of(names.SUBAGENT_COMPLETED)
    assert done["subagentId"] == sub_id and done["status"] == "success"
    assert isinstance(done["durationMs"], int)
    [sub_block] = rec.completed_blocks("subagent")
    assert sub_block["conversationId"] == "main" and sub_block["subagentId"] == sub_id
    assert sub_block["status"] == "success" and sub_block["output"] == "Found X: 42."
    in_sub = [b for b in rec.completed_blocks() if b["conversationId"] == sub_id]
    assert [b["type"] for b in in_sub] == [
        "user_message",
        "tool_result",
        "tool_use",
        "assistant_text",
    ]
    deltas = {d["conversationId"] for d in rec.of(names.BLOCK_DELTA)}
    assert sub_id in deltas
    assert loop.transcript.conversation(sub_id).status == "success"
    assert [b["type"] for b in loop.transcript.blocks(sub_id)] == [
        "user_message", "tool_use", "tool_result", "assistant_text",
    ]  # fmt: skip
    # metadata carries the conversation the call belonged to
    assert [m["conversationId"] for m in rec.of(names.METADATA_UPDATE)] == [
        "main",
        sub_id,
        sub_id,
        "main",
    ]


def test_unknown_subagent_type_lists_the_valid_ones(loop_factory, agent_fake):
    agent_fake.enqueue(reply(task(subagent_type="poet")), reply(text("ok")))
    loop, rec = loop_factory(profile())

    loop.run_turn("go", message_id="m1")

    back = agent_fake.requests[1].json["messages"][-1]["content"][0]
    assert back["is_error"] is True
    assert (
        "Unknown subagent_type 'poet'" in back["content"]
        and "researcher" in back["content"]
    )
    assert rec.of(names.SUBAGENT_DISCOVERED) == []


def test_nesting_is_depth_limited(loop_factory, agent_fake):
    nester = SubagentDefinition(
        name="nester",
        description="Delegates",
        prompt="Delegate.",
        tools=("Task", "Read"),
    )
    agent_fake.enqueue(
        reply(task(subagent_type="nester", id="tu_1")),
        reply(task(subagent_type="nester", id="tu_2")),  # depth 1 asks for depth 2
        reply(text("could not nest")),
        reply(text("done")),
    )
    loop, rec = loop_factory(profile(nester), max_subagent_depth=1)

    outcome = loop.run_turn("go", message_id="m1")

    assert outcome.status == "completed"
    sub_tools = [t["name"] for t in agent_fake.requests[1].json["tools"]]
    assert sub_tools == ["Read", "Task"]
    refused = agent_fake.requests[2].json["messages"][-1]["content"][0]
    assert refused["is_error"] is True and "at most 1 levels deep" in refused["content"]
    assert len(rec.of(names.SUBAGENT_DISCOVERED)) == 1


def test_subagent_model_error_is_an_error_result(loop_factory, agent_fake):
    agent_fake.enqueue(reply(task()), error(400, "sub broke"), reply(text("it failed")))
    loop, rec = loop_factory(profile())

    outcome = loop.run_turn("go", message_id="m1")

    assert outcome.status == "completed"
    back = agent_fake.requests[2].json["messages"][-1]["content"][0]
    assert back["is_error"] is True and "sub broke" in back["content"]
    [done] = rec.of(names.SUBAGENT_COMPLETED)
    assert done["status"] == "error"
    sub_errors = [
        b
        for b in rec.completed_blocks("error")
        if b["conversationId"] == done["subagentId"]
    ]
    assert sub_errors and sub_errors[0]["code"] == "invalid_request"
    assert rec.of(names.ERROR) == []  # the turn itself did not fail


def test_task_is_not_offered_without_subagents(loop_factory, agent_fake):
    agent_fake.enqueue(reply(text("hi")))
    loop, _ = loop_factory(AgentProfile(id="p", name="solo", tools=("Read", "Task")))
    loop.run_turn("go", message_id="m1")
    assert [t["name"] for t in agent_fake.requests[0].json["tools"]] == ["Read"]
