"""Task: the tool that starts a subagent. The loop runs it; this module describes it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent_server.persistence.types import SubagentDefinition

TASK = "Task"


def task_spec(subagents: Sequence[SubagentDefinition]) -> dict[str, Any]:
    """The Task entry of the ``tools`` parameter, naming each subagent it can start."""
    listing = "\n".join(f"- {s.name}: {s.description}" for s in subagents)
    return {
        "name": TASK,
        "description": (
            "Starts a subagent to do a task on its own and returns its final answer. "
            "The subagent sees only the prompt you give it, so make it self-contained. "
            f"Available subagent types:\n{listing}"
        ),
        "input_schema": TASK_SCHEMA
        | {
            "properties": TASK_SCHEMA["properties"]
            | {"subagent_type": {"type": "string", "enum": [s.name for s in subagents]}}
        },
    }


TASK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "description": {
            "type": "string",
            "description": "A short (3-5 word) description of the task",
        },
        "prompt": {
            "type": "string",
            "description": "The task for the subagent, in full",
        },
        "subagent_type": {"type": "string", "description": "Which subagent to start"},
    },
    "required": ["description", "prompt", "subagent_type"],
    "additionalProperties": False,
}
