"""The tools Claude can call, and how a profile's tool list picks them.

Read, Write, Edit, Bash, Glob and Grep run against the session's sandbox; Task starts
a subagent and is run by the loop (see tools/task.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from agent_server.agent.tools.base import (
    Tool,
    ToolContext,
    ToolError,
    ToolOutput,
    display_path,
    run_tool,
)
from agent_server.agent.tools.files import Edit, Read, Write
from agent_server.agent.tools.search import Glob, Grep
from agent_server.agent.tools.shell import Bash
from agent_server.agent.tools.task import TASK, TASK_SCHEMA, task_spec

BUILTIN_TOOLS: dict[str, Tool] = {
    t.name: t for t in (Read(), Write(), Edit(), Bash(), Glob(), Grep())
}
TOOL_NAMES = (*BUILTIN_TOOLS, TASK)


def select(names: Iterable[str]) -> list[Tool]:
    """The built-in tools named in ``names``, in that order (Task and unknown names skipped)."""
    return [BUILTIN_TOOLS[n] for n in dict.fromkeys(names) if n in BUILTIN_TOOLS]


__all__ = [
    "BUILTIN_TOOLS",
    "TASK",
    "TASK_SCHEMA",
    "TOOL_NAMES",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolOutput",
    "display_path",
    "run_tool",
    "select",
    "task_spec",
]
