"""Glob and Grep: finding files and text in the workspace."""

from __future__ import annotations

import shlex
from typing import Any

from agent_server.agent.tools.base import (
    Tool,
    ToolContext,
    ToolError,
    ToolOutput,
    display_path,
    truncate,
)
from agent_server.agent.tools.patterns import expand_braces, glob_regex
from agent_server.sandbox.base import DEFAULT_IGNORE, WORKSPACE_ROOT, workspace_relative

MAX_GLOB_RESULTS = 100
GREP_TIMEOUT = 60.0


class Glob(Tool):
    """Find files by name pattern."""

    name = "Glob"
    description = (
        "Finds files in the workspace by glob pattern (`*`, `?`, `[abc]`, `{a,b}`, `**` for "
        "any depth, e.g. `**/*.py` or `src/**/*.{ts,tsx}`). Returns paths, most recently "
        f"modified first, at most {MAX_GLOB_RESULTS}."
    )
    input_schema = {
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "description": "The glob pattern"},
            "path": {
                "type": "string",
                "description": "Directory to search in (default: the workspace root)",
            },
        },
        "required": ["pattern"],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        base = workspace_relative(args.get("path") or ".")
        pattern = args["pattern"]
        if pattern.startswith(WORKSPACE_ROOT + "/"):
            pattern = pattern[len(WORKSPACE_ROOT) + 1 :]
            base = "."
        regex = glob_regex(pattern)
        prefix = "" if base == "." else base + "/"
        found = [
            f
            for f in ctx.sandbox.list_files()
            if f.path.startswith(prefix) and regex.match(f.path[len(prefix) :])
        ]
        if not found:
            return ToolOutput(
                f"No files found matching {args['pattern']!r} in {display_path(base)}"
            )
        found.sort(key=lambda f: (-f.mtime, f.path))
        lines = [f"{WORKSPACE_ROOT}/{f.path}" for f in found[:MAX_GLOB_RESULTS]]
        if len(found) > MAX_GLOB_RESULTS:
            lines.append(
                f"({len(found) - MAX_GLOB_RESULTS} more files not shown: narrow the pattern)"
            )
        return ToolOutput("\n".join(lines))


class Grep(Tool):
    """Search file contents with a regular expression (grep -E in the sandbox)."""

    name = "Grep"
    description = (
        "Searches file contents with an extended regular expression (grep -E syntax). "
        "output_mode: 'files_with_matches' (default: matching file paths), 'content' "
        "(matching lines, with -n line numbers and -A/-B/-C context) or 'count'. Filter "
        "files with glob (e.g. '*.py', '*.{ts,tsx}'; matched on the file name)."
    )
    input_schema = {
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "description": "Extended regular expression"},
            "path": {
                "type": "string",
                "description": "File or directory to search (default: the workspace)",
            },
            "glob": {
                "type": "string",
                "description": "Only files whose name matches this glob",
            },
            "output_mode": {
                "type": "string",
                "enum": ["content", "files_with_matches", "count"],
            },
            "-i": {"type": "boolean", "description": "Case-insensitive"},
            "-n": {
                "type": "boolean",
                "description": "Line numbers in content mode (default true)",
            },
            "-A": {
                "type": "integer",
                "minimum": 0,
                "description": "Lines of context after",
            },
            "-B": {
                "type": "integer",
                "minimum": 0,
                "description": "Lines of context before",
            },
            "-C": {
                "type": "integer",
                "minimum": 0,
                "description": "Lines of context around",
            },
            "head_limit": {
                "type": "integer",
                "minimum": 1,
                "description": "Only the first N output lines",
            },
        },
        "required": ["pattern"],
        "additionalProperties": False,
    }

    def command(self, args: dict[str, Any]) -> str:
        """The grep command line for ``args`` (every argument shell-quoted)."""
        mode = args.get("output_mode", "files_with_matches")
        argv = ["grep", "-r", "-E", "-I", "-H", "--color=never"]
        argv += [
            f"--exclude-dir={d}" for d in (".git", *DEFAULT_IGNORE) if "/" not in d
        ]
        if args.get("-i"):
            argv.append("-i")
        if mode == "files_with_matches":
            argv.append("-l")
        elif mode == "count":
            argv.append("-c")
        else:
            if args.get("-n", True):
                argv.append("-n")
            for flag in ("-A", "-B", "-C"):
                if flag in args:
                    argv += [flag, str(args[flag])]
        if args.get("glob"):
            # grep matches --include on the file name only: keep the last segment
            for g in expand_braces(args["glob"]):
                argv.append(f"--include={g.rsplit('/', 1)[-1]}")
        argv += ["-e", args["pattern"], "--"]
        path = workspace_relative(args.get("path") or ".")
        argv.append(path)
        return " ".join(shlex.quote(a) for a in argv)

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        result = ctx.sandbox.exec(self.command(args), timeout=GREP_TIMEOUT)
        if result.timed_out:
            raise ToolError(
                f"grep timed out after {GREP_TIMEOUT:.0f}s: narrow the path or glob"
            )
        lines = [line for line in result.stdout.splitlines() if line]
        if args.get("output_mode") == "count":
            lines = [line for line in lines if not line.endswith(":0")]
        if result.exit_code not in (0, 1) and not lines:
            raise ToolError(
                f"grep failed: {result.stderr.strip() or f'exit code {result.exit_code}'}"
            )
        if not lines:
            return ToolOutput("No matches found")
        lines = [line if line == "--" else _absolute(line) for line in lines]
        limit = args.get("head_limit")
        if limit and len(lines) > limit:
            lines = lines[:limit] + [f"({len(lines) - limit} more lines not shown)"]
        return ToolOutput(truncate("\n".join(lines)))


def _absolute(line: str) -> str:
    if line.startswith("./"):
        line = line[2:]
    return f"{WORKSPACE_ROOT}/{line}"
