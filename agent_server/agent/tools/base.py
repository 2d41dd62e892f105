"""What a tool is, what it returns, and how a call is checked and run.

A tool's failure (bad input, a missing file, a path outside the workspace) becomes
an error tool_result that Claude reads and acts on; it never ends the turn. Only
SandboxGone ends the turn (the sandbox must be replaced), and TurnInterrupted, a
BaseException, passes through every handler here untouched.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent_server.agent.tools.schema import validate
from agent_server.errors import BadRequest, SandboxError, SandboxGone
from agent_server.sandbox.base import WORKSPACE_ROOT, Sandbox, workspace_relative

# the longest tool output sent back to Claude (Claude Code's limit for Bash)
MAX_OUTPUT_CHARS = 30_000


class ToolError(Exception):
    """A tool could not do what was asked; the message goes back to Claude."""


@dataclass(frozen=True)
class ToolOutput:
    """The content of a tool_result and whether it reports an error."""

    output: str
    is_error: bool = False


@dataclass
class ToolContext:
    """What a running tool can use: the session's sandbox and an output stream."""

    sandbox: Sandbox | None = None
    on_output: Callable[[str], None] | None = None  # Bash output as it arrives


class Tool(ABC):
    """One tool Claude can call: its name, description, schema and behaviour."""

    name: str
    description: str
    input_schema: dict[str, Any]
    needs_sandbox = True

    def spec(self) -> dict[str, Any]:
        """The entry of the Messages API ``tools`` parameter."""
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
        }

    @abstractmethod
    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        """Do the call; raise ToolError (or a file error) for a failure Claude should see."""


def run_tool(tool: Tool, args: Any, ctx: ToolContext) -> ToolOutput:
    """Validate ``args`` and run ``tool``; every failure but SandboxGone becomes an error output."""
    problems = validate(args, tool.input_schema)
    if problems:
        return ToolOutput(
            f"Invalid input for {tool.name}: " + "; ".join(problems), True
        )
    try:
        return tool.run(args, ctx)
    except SandboxGone:
        raise
    except ToolError as exc:
        return ToolOutput(str(exc), True)
    except (
        BadRequest,
        SandboxError,
    ) as exc:  # PathOutsideWorkspace, exec/file failures
        return ToolOutput(exc.message, True)
    except FileNotFoundError:
        return ToolOutput(f"File does not exist: {_shown(args)}", True)
    except IsADirectoryError:
        return ToolOutput(f"{_shown(args)} is a directory, not a file", True)
    except NotADirectoryError:
        return ToolOutput(f"a parent of {_shown(args)} is not a directory", True)
    except PermissionError:
        return ToolOutput(f"permission denied: {_shown(args)}", True)


def _shown(args: dict) -> str:
    path = args.get("file_path") or args.get("path") or "?"
    return display_path(path)


def display_path(path: str) -> str:
    """How a workspace path is shown to Claude: absolute, under /workspace."""
    try:
        rel = workspace_relative(path)
    except BadRequest:
        return path
    return WORKSPACE_ROOT if rel == "." else f"{WORKSPACE_ROOT}/{rel}"


def truncate(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    """Keep the head and tail of a long output, saying how much was cut."""
    if len(text) <= limit:
        return text
    half = limit // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n\n... [{cut} characters truncated] ...\n\n{text[-half:]}"
