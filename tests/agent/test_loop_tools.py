"""Turns where Claude calls tools: real files in the workspace, results sent back."""

from __future__ import annotations

from agent_server.devtools.fake_anthropic import reply, text, tool_use
from agent_server.events import names


def tool_results(request) -> dict[str, dict]:
    """The tool_result blocks of a recorded request's last message, by tool_use_id."""
    content = request.json["messages"][-1]["content"]
    return {b["tool_use_id"]: b for b in content if b["type"] == "tool_result"}


def test_write_bash_read_turn(loop_factory, agent_fake, agent_sandbox):
    agent_fake.enqueue(
        reply(
            text("Writing."),
            tool_use(
                "Write",
                {"file_path": "/workspace/hello.txt", "content": "hello\n"},
                id="tu_w",
            ),
        ),
        reply(
            tool_use(
                "Bash", {"command": "wc -c < hello.txt; echo made > out.txt"}, id="tu_b"
            )
        ),
        reply(tool_use("Read", {"file_path": "out.txt"}, id="tu_r")),
        reply(text("All done.")),
    )
    loop, rec = loop_factory()

    outcome = loop.run_turn("make files", message_id="m1")

    assert outcome.status == "completed" and outcome.reason == "end_turn"
    assert agent_sandbox.read_file("hello.txt") == b"hello\n"
    assert agent_sandbox.read_file("out.txt") == b"made\n"
    assert len(agent_fake.requests) == 4
    r_write = tool_results(agent_fake.requests[1])["tu_w"]
    assert "hello.txt" in r_write["content"] and not r_write.get("is_error")
    r_bash = tool_results(agent_fake.requests[2])["tu_b"]
    assert r_bash["content"] == "6"
    r_read = tool_results(agent_fake.requests[3])["tu_r"]
    assert r_read["content"] == "     1\tmade"
    # the assistant message before each result carries the tool_use, as the API needs
    assert agent_fake.requests[1].json["messages"][1]["content"][1]["id"] == "tu_w"

    uses = rec.completed_blocks("tool_use")
    assert [(u["toolName"], u["status"]) for u in uses] == [
        ("Write", "success"),
        ("Bash", "success"),
        ("Read", "success"),
    ]
    assert uses[1]["input"] == {"command": "wc -c < hello.txt; echo made > out.txt"}
    updates = [
        d["updates"]
        for d in rec.of(names.BLOCK_UPDATE)
        if d["blockId"] == uses[1]["id"]
    ]
    assert updates[0] == {"input": uses[1]["input"]}
    assert [u["status"] for u in updates[1:]] == ["running", "success"]
    bash_result = rec.completed_blocks("tool_result")[1]
    assert bash_result["toolUseId"] == "tu_b" and bash_result["output"] == "6"
    assert isinstance(bash_result["durationMs"], int)
    # Bash output streamed as deltas onto its tool_result block
    streamed = [
        d["delta"]
        for d in rec.of(names.BLOCK_DELTA)
        if d["blockId"] == bash_result["id"]
    ]
    assert "".join(streamed).strip() == "6"
    # tool input JSON streamed onto the tool_use block
    json_deltas = [
        d["delta"] for d in rec.of(names.BLOCK_DELTA) if d["blockId"] == uses[0]["id"]
    ]
    assert "hello.txt" in "".join(json_deltas)
    assert len(rec.of(names.METADATA_UPDATE)) == 4


def test_edit_failures_go_back_to_claude(loop_factory, agent_fake, agent_sandbox):
    agent_sandbox.write_file("a.txt", b"one two two")
    agent_fake.enqueue(
        reply(
            tool_use(
                "Edit",
                {"file_path": "a.txt", "old_string": "three", "new_string": "3"},
                id="tu_1",
            ),
            tool_use(
                "Edit",
                {"file_path": "a.txt", "old_string": "two", "new_string": "2"},
                id="tu_2",
            ),
        ),
        reply(text("I could not edit it.")),
    )
    loop, rec = loop_factory()

    outcome = loop.run_turn("edit", message_id="m1")

    assert outcome.status == "completed"
    results = tool_results(agent_fake.requests[1])
    assert results["tu_1"]["is_error"] is True
    assert results["tu_1"]["content"] == "old_string not found in /workspace/a.txt"
    assert results["tu_2"]["content"].startswith(
        "old_string occurs 2 times in /workspace/a.txt"
    )
    assert [u["status"] for u in rec.completed_blocks("tool_use")] == ["error", "error"]
    assert agent_sandbox.read_file("a.txt") == b"one two two"


def test_bad_and_unknown_tool_input_is_an_error_result(
    loop_factory, agent_fake, agent_sandbox
):
    agent_fake.enqueue(
        reply(
            tool_use("Write", {"file_path": "x.txt"}, id="tu_bad"),
            tool_use("Deploy", {"where": "prod"}, id="tu_unknown"),
            tool_use("Read", {"file_path": "/etc/passwd"}, id="tu_out"),
        ),
        reply(text("ok")),
    )
    loop, _ = loop_factory()

    outcome = loop.run_turn("go", message_id="m1")

    assert outcome.status == "completed"
    results = tool_results(agent_fake.requests[1])
    assert (
        results["tu_bad"]["is_error"]
        and "missing required parameter 'content'" in results["tu_bad"]["content"]
    )
    assert (
        results["tu_unknown"]["is_error"]
        and "Unknown tool 'Deploy'" in results["tu_unknown"]["content"]
    )
    assert "outside the workspace" in results["tu_out"]["content"]
    # the request offered exactly the profile's tools
    offered = [t["name"] for t in agent_fake.requests[0].json["tools"]]
    assert offered == ["Read", "Write", "Edit", "Bash", "Glob", "Grep"]


def test_sandbox_is_asked_for_only_when_a_tool_runs(
    loop_factory, agent_fake, agent_sandbox
):
    asked = []

    def get_sandbox():
        asked.append(1)
        return agent_sandbox

    agent_fake.enqueue(reply(text("no tools")))
    loop, _ = loop_factory(get_sandbox=get_sandbox)
    loop.run_turn("hi", message_id="m1")
    assert asked == []

    agent_fake.enqueue(
        reply(
            tool_use("Bash", {"command": "true"}), tool_use("Bash", {"command": "true"})
        ),
        reply(text("done")),
    )
    loop.run_turn("run", message_id="m2")
    assert asked == [1]


def test_sandbox_failure_fails_the_turn_and_leaves_it_usable(loop_factory, agent_fake):
    from agent_server.errors import SandboxError

    def broken():
        raise SandboxError("no sandbox for you")

    agent_fake.enqueue(
        reply(tool_use("Bash", {"command": "true"})), reply(text("fine"))
    )
    loop, rec = loop_factory(get_sandbox=broken)

    outcome = loop.run_turn("run", message_id="m1")

    assert outcome.status == "failed" and outcome.reason == "sandbox_error"
    assert rec.of(names.ERROR) == [
        {"code": "sandbox_error", "message": "no sandbox for you"}
    ]
    assert rec.completed_blocks("tool_use")[0]["status"] == "error"
    outcome = loop.run_turn("again", message_id="m2")
    assert outcome.status == "completed"
    last = agent_fake.requests[-1].json["messages"][-1]["content"]
    assert last[0]["type"] == "tool_result" and last[0]["is_error"] is True
    assert last[-1]["text"] == "again"
