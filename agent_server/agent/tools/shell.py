"""Bash: run a shell command in the sandbox, streaming its output."""

from __future__ import annotations

from typing import Any

from agent_server.agent.tools.base import Tool, ToolContext, ToolOutput, truncate

DEFAULT_TIMEOUT_MS = 120_000
MAX_TIMEOUT_MS = 600_000


class Bash(Tool):
    """Run a command with ``sh`` in /workspace."""

    name = "Bash"
    description = (
        "Runs a shell command in the workspace (/workspace is the working directory) and "
        "returns its stdout, stderr and exit code. timeout is in milliseconds (default "
        f"{DEFAULT_TIMEOUT_MS}, max {MAX_TIMEOUT_MS}). Prefer Read, Edit, Glob and Grep for "
        "files; use Bash for running programs, tests, git and package managers."
    )
    input_schema = {
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "The command to run"},
            "timeout": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_TIMEOUT_MS,
                "description": "Timeout in milliseconds",
            },
            "description": {
                "type": "string",
                "description": "What the command does, in 5-10 words",
            },
        },
        "required": ["command"],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        timeout_s = args.get("timeout", DEFAULT_TIMEOUT_MS) / 1000
        stream = ctx.on_output
        result = ctx.sandbox.exec(
            args["command"],
            timeout=timeout_s,
            on_output=(lambda _name, text: stream(text)) if stream else None,
        )
        parts = [p.rstrip("\n") for p in (result.stdout, result.stderr) if p.strip()]
        if result.truncated:
            parts.append(
                "[output truncated: the command printed more than the sandbox keeps]"
            )
        if result.timed_out:
            parts.append(f"Command timed out after {timeout_s:g}s and was killed")
        elif result.exit_code:
            parts.append(f"Exit code: {result.exit_code}")
        text = truncate("\n".join(parts)) if parts else "(no output)"
        return ToolOutput(text, is_error=result.timed_out or bool(result.exit_code))
