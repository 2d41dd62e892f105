"""The Task tool's run: a subagent conversation nested in the current turn.

The subagent gets its own conversation (id ``sub_<hex>``) in the transcript and its
blocks carry that id. The parent's conversation shows a ``subagent`` block (running →
success|error, output = the subagent's final text); Claude gets the same text as the
Task tool_result. A model error inside the subagent ends only the subagent (an error
result for the parent); limits, interrupts and a lost sandbox end the whole turn.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from agent_server.agent import blocks as b
from agent_server.agent.runs import Run, subagent_run
from agent_server.agent.stream import ToolCall
from agent_server.agent.tools import TASK_SCHEMA, ToolOutput
from agent_server.agent.tools.schema import validate
from agent_server.agent.transcript import Conversation
from agent_server.errors import ModelError
from agent_server.events import names

if TYPE_CHECKING:
    from agent_server.agent.loop import AgentLoop


def run_task(loop: AgentLoop, parent: Run, call: ToolCall) -> ToolOutput:
    """Start the subagent ``call`` asks for, run it to its end, return its answer."""
    problems = validate(call.input, TASK_SCHEMA)
    if problems:
        return ToolOutput("Invalid input for Task: " + "; ".join(problems), True)
    subagents = loop.profile.subagents
    valid = ", ".join(s.name for s in subagents)
    definition = next(
        (s for s in subagents if s.name == call.input["subagent_type"]), None
    )
    if definition is None:
        return ToolOutput(
            f"Unknown subagent_type {call.input['subagent_type']!r}. Valid types: {valid}.",
            True,
        )
    if parent.depth >= loop.max_subagent_depth:
        return ToolOutput(
            f"Subagents may nest at most {loop.max_subagent_depth} levels deep; "
            "do this task here instead.",
            True,
        )
    sub_id = b.new_id("sub")
    description = call.input["description"]
    conv = loop.transcript.add_conversation(
        Conversation(
            sub_id,
            name=definition.name,
            description=description,
            status=b.RUNNING,
            parent_id=parent.conversation_id,
            tool_use_id=call.id,
        )
    )
    loop.blocks.emit(
        names.SUBAGENT_DISCOVERED,
        {
            "subagent": {
                "id": sub_id,
                "name": definition.name,
                "description": description,
                "toolUseId": call.id,
            }
        },
    )
    block = loop.blocks.start(
        b.subagent(
            sub_id,
            definition.name,
            call.input,
            call.id,
            conversation_id=parent.conversation_id,
        )
    )
    prompt = call.input["prompt"]
    conv.append_user(prompt)
    loop.blocks.start_complete(b.user_message(prompt, conversation_id=sub_id))
    started = time.monotonic()
    run = subagent_run(parent, definition, sub_id, bool(subagents))
    try:
        loop.converse(run)
        output = conv.final_text() or "(the subagent finished without a final answer)"
        status = b.SUCCESS
    except ModelError as exc:
        conv.repair(f"subagent failed: {exc.message}")
        loop.blocks.start_complete(
            b.error(exc.code, exc.message, conversation_id=sub_id)
        )
        output = f"The subagent failed: {exc.message} ({exc.code})"
        status = b.FAILED
    duration = int((time.monotonic() - started) * 1000)
    conv.status = status
    loop.blocks.update(block, status=status)
    loop.blocks.complete(block, output=output, durationMs=duration)
    loop.blocks.emit(
        names.SUBAGENT_COMPLETED,
        {"subagentId": sub_id, "status": status, "durationMs": duration},
    )
    return ToolOutput(output, status != b.SUCCESS)
