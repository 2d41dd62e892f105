"""The tools against a real local sandbox: what Claude reads back from each call."""

from __future__ import annotations

import os
import time

import pytest

from agent_server.agent.tools import BUILTIN_TOOLS, ToolContext, run_tool, select
from agent_server.agent.tools.patterns import glob_regex
from agent_server.agent.tools.schema import validate


def call(sandbox, name, **args):
    return run_tool(BUILTIN_TOOLS[name], args, ToolContext(sandbox))


def test_write_then_read_numbers_lines_like_cat_n(agent_sandbox):
    out = call(
        agent_sandbox,
        "Write",
        file_path="/workspace/src/a.py",
        content="x = 1\ny = 2\n",
    )
    assert not out.is_error and "/workspace/src/a.py" in out.output
    assert agent_sandbox.read_file("src/a.py") == b"x = 1\ny = 2\n"

    out = call(agent_sandbox, "Read", file_path="src/a.py")
    assert out.output == "     1\tx = 1\n     2\ty = 2"


def test_read_offset_limit_and_what_is_left(agent_sandbox):
    agent_sandbox.write_file(
        "n.txt", "".join(f"line{i}\n" for i in range(1, 11)).encode()
    )
    out = call(agent_sandbox, "Read", file_path="n.txt", offset=3, limit=2)
    assert out.output.splitlines()[:2] == ["     3\tline3", "     4\tline4"]
    assert "offset=5" in out.output


def test_read_binary_missing_and_outside(agent_sandbox):
    agent_sandbox.write_file("img.bin", b"\x89PNG\x00\x01\x02")
    out = call(agent_sandbox, "Read", file_path="img.bin")
    assert out.is_error and "binary file" in out.output

    out = call(agent_sandbox, "Read", file_path="nope.txt")
    assert out.is_error and "does not exist" in out.output and "nope.txt" in out.output

    out = call(agent_sandbox, "Read", file_path="/etc/passwd")
    assert out.is_error and "outside the workspace" in out.output
    out = call(agent_sandbox, "Write", file_path="../escape.txt", content="x")
    assert out.is_error and "workspace" in out.output


def test_edit_replaces_unique_string(agent_sandbox):
    agent_sandbox.write_file("a.txt", b"alpha beta gamma")
    out = call(
        agent_sandbox, "Edit", file_path="a.txt", old_string="beta", new_string="BETA"
    )
    assert not out.is_error
    assert agent_sandbox.read_file("a.txt") == b"alpha BETA gamma"


def test_edit_missing_and_non_unique_are_clear_errors(agent_sandbox):
    agent_sandbox.write_file("a.txt", b"x x x")
    out = call(agent_sandbox, "Edit", file_path="a.txt", old_string="y", new_string="z")
    assert out.is_error and out.output == "old_string not found in /workspace/a.txt"

    out = call(agent_sandbox, "Edit", file_path="a.txt", old_string="x", new_string="z")
    assert out.is_error
    assert out.output == (
        "old_string occurs 3 times in /workspace/a.txt: add context to make it "
        "unique or set replace_all"
    )
    assert agent_sandbox.read_file("a.txt") == b"x x x"

    out = call(
        agent_sandbox,
        "Edit",
        file_path="a.txt",
        old_string="x",
        new_string="z",
        replace_all=True,
    )
    assert not out.is_error and agent_sandbox.read_file("a.txt") == b"z z z"


def test_bad_input_is_an_error_result_not_a_crash(agent_sandbox):
    out = call(agent_sandbox, "Write", file_path=3)
    assert out.is_error
    assert "missing required parameter 'content'" in out.output
    assert "'file_path' must be of type string" in out.output
    out = call(agent_sandbox, "Bash", command="true", timeout=10**9)
    assert out.is_error and "at most 600000" in out.output
    out = call(agent_sandbox, "Read", path="a")
    assert out.is_error and "unexpected parameter 'path'" in out.output


def test_bash_output_exit_code_and_streaming(agent_sandbox):
    seen: list[str] = []
    out = run_tool(
        BUILTIN_TOOLS["Bash"],
        {"command": "echo out; echo err >&2; exit 3"},
        ToolContext(agent_sandbox, seen.append),
    )
    assert out.is_error
    assert out.output == "out\nerr\nExit code: 3"
    assert "".join(seen).split() == ["out", "err"] or sorted("".join(seen).split()) == [
        "err",
        "out",
    ]

    out = call(agent_sandbox, "Bash", command="echo hi > f.txt && cat f.txt")
    assert not out.is_error and out.output == "hi"
    assert agent_sandbox.read_file("f.txt") == b"hi\n"


def test_bash_timeout_in_milliseconds(agent_sandbox):
    started = time.monotonic()
    out = call(agent_sandbox, "Bash", command="sleep 5", timeout=300)
    assert time.monotonic() - started < 4
    assert out.is_error and "timed out after 0.3s" in out.output


def test_glob_with_double_star_and_braces(agent_sandbox):
    paths = ("a.py", "src/b.py", "src/deep/c.py", "src/d.ts", "src/e.tsx", "README.md")
    for path in paths:
        agent_sandbox.write_file(path, b"x")
        os.utime(os.path.join(agent_sandbox.root, path), (1_000_000, 1_000_000))
    later = time.time()
    os.utime(os.path.join(agent_sandbox.root, "src/deep/c.py"), (later, later))

    out = call(agent_sandbox, "Glob", pattern="**/*.py")
    assert out.output.splitlines() == [
        "/workspace/src/deep/c.py",  # most recently modified first, then by path
        "/workspace/a.py",
        "/workspace/src/b.py",
    ]
    out = call(agent_sandbox, "Glob", pattern="*.{ts,tsx}", path="/workspace/src")
    assert sorted(out.output.splitlines()) == [
        "/workspace/src/d.ts",
        "/workspace/src/e.tsx",
    ]
    out = call(agent_sandbox, "Glob", pattern="*.go")
    assert not out.is_error and out.output.startswith("No files found")


def test_glob_regex_semantics():
    assert glob_regex("*.py").match("a.py") and not glob_regex("*.py").match("x/a.py")
    assert glob_regex("src/**/*.py").match("src/a.py")
    assert glob_regex("src/**/*.py").match("src/x/y/a.py")
    assert glob_regex("[!a]?.txt").match("bc.txt") and not glob_regex(
        "[!a]?.txt"
    ).match("ac.txt")
    assert not glob_regex("a.py").match("a.pyc")


def test_grep_modes(agent_sandbox):
    agent_sandbox.write_file("src/a.py", b"def Foo():\n    return 1\n")
    agent_sandbox.write_file("src/b.txt", b"foo bar\nnothing\nfoo again\n")
    agent_sandbox.write_file("c.py", b"nothing here\n")

    out = call(agent_sandbox, "Grep", pattern="foo", **{"-i": True})
    assert sorted(out.output.splitlines()) == [
        "/workspace/src/a.py",
        "/workspace/src/b.txt",
    ]

    out = call(agent_sandbox, "Grep", pattern="fo+ (bar|again)", output_mode="content")
    assert out.output.splitlines() == [
        "/workspace/src/b.txt:1:foo bar",
        "/workspace/src/b.txt:3:foo again",
    ]
    out = call(agent_sandbox, "Grep", pattern="foo", output_mode="count", path="src")
    assert out.output == "/workspace/src/b.txt:2"
    out = call(agent_sandbox, "Grep", pattern="def|nothing", glob="*.py")
    assert sorted(out.output.splitlines()) == ["/workspace/c.py", "/workspace/src/a.py"]
    out = call(agent_sandbox, "Grep", pattern="zzz")
    assert not out.is_error and out.output == "No matches found"


def test_grep_pattern_is_quoted_not_run(agent_sandbox):
    out = call(agent_sandbox, "Grep", pattern="'; touch pwned; echo '")
    assert out.output == "No matches found"
    with pytest.raises(FileNotFoundError):
        agent_sandbox.read_file("pwned")


def test_select_picks_profile_tools_in_order():
    assert [t.name for t in select(["Bash", "Read", "Task", "Nope"])] == [
        "Bash",
        "Read",
    ]


@pytest.mark.parametrize(
    ("value", "schema", "problem"),
    [
        (True, {"type": "integer"}, "must be of type integer, not boolean"),
        ("x", {"enum": ["a", "b"]}, "must be one of 'a', 'b'"),
        ({}, {"type": "object", "required": ["q"]}, "missing required parameter 'q'"),
        (
            [1, "2"],
            {"type": "array", "items": {"type": "integer"}},
            "input[1] must be of type integer",
        ),
    ],
)
def test_schema_validator(value, schema, problem):
    assert any(problem in p for p in validate(value, schema))
    assert validate(3.0, {"type": "integer"}) == []
