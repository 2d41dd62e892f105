"""Read, Write and Edit: file tools over the sandbox's file methods."""

from __future__ import annotations

from typing import Any

from agent_server.agent.tools.base import (
    Tool,
    ToolContext,
    ToolError,
    ToolOutput,
    display_path,
)
from agent_server.sandbox.base import workspace_relative

DEFAULT_READ_LINES = 2000
MAX_LINE_CHARS = 2000
_PATH_HELP = "Path of the file: absolute under /workspace (/workspace/src/app.py) or relative to it"


def _text(data: bytes, path: str) -> str:
    """Decode a file as text, or say it is binary."""
    if b"\x00" in data[:8192]:
        raise ToolError(
            f"{display_path(path)} is a binary file ({len(data)} bytes); Read shows text files only"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolError(
            f"{display_path(path)} is a binary file ({len(data)} bytes, not UTF-8); Read shows text files only"
        ) from None


class Read(Tool):
    """Read a text file with numbered lines, like ``cat -n``."""

    name = "Read"
    description = (
        "Reads a file from the workspace. Lines are numbered like `cat -n` (number, tab, line); "
        f"up to {DEFAULT_READ_LINES} lines from the start unless offset/limit say otherwise. "
        f"Lines longer than {MAX_LINE_CHARS} characters are cut. Binary files are reported, not shown."
    )
    input_schema = {
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "description": _PATH_HELP},
            "offset": {
                "type": "integer",
                "minimum": 0,
                "description": "Line number to start from (1-based)",
            },
            "limit": {
                "type": "integer",
                "minimum": 1,
                "description": "How many lines to read",
            },
        },
        "required": ["file_path"],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        path = workspace_relative(args["file_path"])
        text = _text(ctx.sandbox.read_file(path), path)
        if text == "":
            return ToolOutput(f"{display_path(path)} exists but is empty")
        lines = text.split("\n")  # like cat: only \n ends a line
        if lines[-1] == "":
            lines.pop()
        start = max(1, args.get("offset", 1))  # 0 is taken as the first line
        limit = args.get("limit", DEFAULT_READ_LINES)
        if start > len(lines):
            raise ToolError(
                f"offset {start} is past the end of {display_path(path)} ({len(lines)} lines)"
            )
        chosen = lines[start - 1 : start - 1 + limit]
        out = []
        for n, line in enumerate(chosen, start):
            if len(line) > MAX_LINE_CHARS:
                line = line[:MAX_LINE_CHARS] + " [line truncated]"
            out.append(f"{n:6}\t{line}")
        end = start - 1 + len(chosen)
        if end < len(lines):
            out.append(
                f"\n[{len(lines) - end} more lines: read on with offset={end + 1}]"
            )
        return ToolOutput("\n".join(out))


class Write(Tool):
    """Create or replace a file."""

    name = "Write"
    description = (
        "Writes a file to the workspace, replacing it if it exists and creating parent "
        "directories. Prefer Edit for changing part of an existing file."
    )
    input_schema = {
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "description": _PATH_HELP},
            "content": {
                "type": "string",
                "description": "The full content of the file",
            },
        },
        "required": ["file_path", "content"],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        path = workspace_relative(args["file_path"])
        data = args["content"].encode("utf-8")
        ctx.sandbox.write_file(path, data)
        return ToolOutput(f"Wrote {len(data)} bytes to {display_path(path)}")


class Edit(Tool):
    """Replace an exact string in a file."""

    name = "Edit"
    description = (
        "Replaces old_string with new_string in a file. old_string must match the file "
        "exactly (whitespace included) and occur once, unless replace_all is true. "
        "Read the file first."
    )
    input_schema = {
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "description": _PATH_HELP},
            "old_string": {
                "type": "string",
                "description": "The exact text to replace",
            },
            "new_string": {
                "type": "string",
                "description": "The text to put in its place",
            },
            "replace_all": {
                "type": "boolean",
                "description": "Replace every occurrence (default false)",
            },
        },
        "required": ["file_path", "old_string", "new_string"],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        path = workspace_relative(args["file_path"])
        old, new = args["old_string"], args["new_string"]
        shown = display_path(path)
        if old == "":
            raise ToolError(
                "old_string is empty: give the text to replace (use Write to create a file)"
            )
        if old == new:
            raise ToolError("old_string and new_string are the same: nothing to change")
        text = _text(ctx.sandbox.read_file(path), path)
        count = text.count(old)
        if count == 0:
            raise ToolError(f"old_string not found in {shown}")
        if count > 1 and not args.get("replace_all", False):
            raise ToolError(
                f"old_string occurs {count} times in {shown}: add context to make it unique or set replace_all"
            )
        text = text.replace(old, new) if count > 1 else text.replace(old, new, 1)
        ctx.sandbox.write_file(path, text.encode("utf-8"))
        what = f"{count} occurrences" if count > 1 else "1 occurrence"
        return ToolOutput(f"Edited {shown}: replaced {what}")
