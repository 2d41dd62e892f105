"""The sandbox contract: every provider (see conftest ``provider``) passes these."""

from __future__ import annotations

import time

import pytest

from agent_server.errors import PathOutsideWorkspace, SandboxGone
from agent_server.persistence.types import WorkspaceFile
from agent_server.sandbox.base import DEFAULT_OUTPUT_LIMIT

BINARY = bytes(range(256)) * 4

ESCAPES = ["../x", "a/../../x", "/etc/passwd", "/workspace/../etc/passwd"]


def restored_files():
    return [
        WorkspaceFile.from_bytes("notes.txt", b"hello\n"),
        WorkspaceFile.from_bytes("data/blob.bin", BINARY),
        WorkspaceFile.from_bytes("src/pkg/deep/mod.py", b"print('deep')\n"),
    ]


def test_create_restores_text_binary_and_nested_files(make_sandbox):
    sb = make_sandbox(files=restored_files())
    assert sb.read_file("notes.txt") == b"hello\n"
    assert sb.read_file("data/blob.bin") == BINARY
    assert sb.read_file("/workspace/src/pkg/deep/mod.py") == b"print('deep')\n"
    assert sb.poll().alive


def test_exec_sees_restored_files(make_sandbox):
    sb = make_sandbox(files=restored_files())
    r = sb.exec("cat notes.txt && wc -c < data/blob.bin && ls src/pkg/deep", timeout=10)
    assert r.exit_code == 0, r
    assert r.stdout.split() == ["hello", str(len(BINARY)), "mod.py"]


def test_exec_exit_codes_and_separate_streams(make_sandbox):
    sb = make_sandbox()
    r = sb.exec("echo out; echo err >&2; exit 3", timeout=10)
    assert (r.exit_code, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert not r.timed_out and not r.truncated
    assert sb.exec("true", timeout=10).exit_code == 0
    assert sb.exec("false", timeout=10).exit_code == 1


def test_exec_runs_in_the_workspace(make_sandbox):
    sb = make_sandbox()
    sb.write_file("marker.txt", b"m")
    r = sb.exec('ls "$HOME" && ls', timeout=10)
    assert r.stdout.split() == ["marker.txt", "marker.txt"]


def test_write_file_then_exec_cat(make_sandbox):
    sb = make_sandbox()
    sb.write_file("dir/sub/new.txt", b"written by the API\n")
    assert sb.exec("cat dir/sub/new.txt", timeout=10).stdout == "written by the API\n"
    sb.write_file("dir/sub/new.txt", b"shorter\n")  # replaced, not appended
    assert sb.exec("cat dir/sub/new.txt", timeout=10).stdout == "shorter\n"


def test_exec_writes_then_read_file_sees_it(make_sandbox):
    sb = make_sandbox()
    r = sb.exec("mkdir -p out && printf 'from the shell' > out/result.txt", timeout=10)
    assert r.exit_code == 0, r
    assert sb.read_file("out/result.txt") == b"from the shell"


def test_list_files_recursive_with_dotfiles_and_ignore_list(make_sandbox):
    sb = make_sandbox()
    for path in [
        ".env",
        "a.txt",
        "sub/b.txt",
        ".git/HEAD",
        ".git/objects/ab/cdef",
        "node_modules/lib/index.js",
        "__pycache__/m.cpython-311.pyc",
        "sub/__pycache__/n.cpython-311.pyc",
    ]:
        sb.write_file(path, b"12345")
    sb.exec("mkdir -p emptydir", timeout=10)
    infos = sb.list_files()
    assert [f.path for f in infos] == [".env", ".git/HEAD", "a.txt", "sub/b.txt"]
    assert all(f.size == 5 and f.mtime > 0 for f in infos)


def test_delete_file(make_sandbox):
    sb = make_sandbox(files=restored_files())
    sb.delete_file("notes.txt")
    assert "notes.txt" not in [f.path for f in sb.list_files()]
    with pytest.raises(FileNotFoundError):
        sb.read_file("notes.txt")
    with pytest.raises(FileNotFoundError):
        sb.delete_file("notes.txt")


def test_read_missing_file_and_directory(make_sandbox):
    sb = make_sandbox(files=restored_files())
    with pytest.raises(FileNotFoundError):
        sb.read_file("nope.txt")
    with pytest.raises(FileNotFoundError):
        sb.read_file("no/such/dir/file.txt")
    with pytest.raises(IsADirectoryError):
        sb.read_file("src/pkg")


@pytest.mark.parametrize("path", ESCAPES)
def test_paths_outside_the_workspace_are_refused(make_sandbox, path):
    sb = make_sandbox()
    with pytest.raises(PathOutsideWorkspace):
        sb.read_file(path)
    with pytest.raises(PathOutsideWorkspace):
        sb.write_file(path, b"pwned")
    with pytest.raises(PathOutsideWorkspace):
        sb.delete_file(path)


def test_symlinks_pointing_out_are_refused(make_sandbox):
    sb = make_sandbox()
    r = sb.exec("ln -s /etc/passwd link && ln -s /etc linkdir", timeout=10)
    assert r.exit_code == 0, r
    before = sb.exec("cat /etc/passwd", timeout=10).stdout
    for path in ["link", "linkdir/passwd", "/workspace/link"]:
        with pytest.raises(PathOutsideWorkspace):
            sb.read_file(path)
        with pytest.raises(PathOutsideWorkspace):
            sb.write_file(path, b"pwned\n")
    with pytest.raises(PathOutsideWorkspace):
        sb.write_file("linkdir/new-file", b"pwned\n")
    assert sb.exec("cat /etc/passwd", timeout=10).stdout == before
    assert "pwned" not in before


def test_timeout_kills_the_command_quickly(make_sandbox):
    sb = make_sandbox()
    start = time.monotonic()
    r = sb.exec("echo started; sleep 30", timeout=1)
    assert r.timed_out and r.exit_code is None
    assert time.monotonic() - start < 10
    sb.exec("true", timeout=10)  # still usable afterwards


def test_output_is_truncated_at_the_limit_and_still_drained(provider, make_sandbox):
    limit = getattr(provider, "output_limit", DEFAULT_OUTPUT_LIMIT)
    sb = make_sandbox()
    # far more than the limit: if the rest were not drained the writer would block
    r = sb.exec(
        f"head -c {limit * 20} /dev/zero | tr '\\0' a; echo end >&2", timeout=20
    )
    assert r.exit_code == 0 and not r.timed_out, r.stderr
    assert r.truncated
    assert 0 < len(r.stdout.encode()) + len(r.stderr.encode()) <= limit
    assert set(r.stdout) == {"a"}


def test_on_output_streams_chunks_as_they_arrive(make_sandbox):
    sb = make_sandbox()
    chunks = []

    def on_output(stream, text):
        chunks.append((time.monotonic(), stream, text))

    r = sb.exec(
        "echo first; sleep 0.3; echo oops >&2; sleep 0.3; echo second",
        timeout=10,
        on_output=on_output,
    )
    ended = time.monotonic()
    assert r.exit_code == 0
    assert r.stdout == "first\nsecond\n" and r.stderr == "oops\n"
    assert "".join(t for _, s, t in chunks if s == "stdout") == r.stdout
    assert "".join(t for _, s, t in chunks if s == "stderr") == r.stderr
    first_at = next(at for at, _, text in chunks if "first" in text)
    assert ended - first_at > 0.3  # it came while the command was still running


def test_env_from_create_and_per_exec(make_sandbox):
    sb = make_sandbox(env={"PROFILE_VAR": "from-profile", "SHARED": "create"})
    r = sb.exec(
        'echo "$PROFILE_VAR|$EXEC_VAR|$SHARED"',
        timeout=10,
        env={"EXEC_VAR": "from-exec", "SHARED": "exec"},
    )
    assert r.stdout == "from-profile|from-exec|exec\n"
    r = sb.exec('echo "$PROFILE_VAR|${EXEC_VAR-unset}"', timeout=10)
    assert r.stdout == "from-profile|unset\n"


def test_terminate_then_gone(make_sandbox):
    sb = make_sandbox()
    sb.terminate()
    assert sb.poll().alive is False
    with pytest.raises(SandboxGone):
        sb.exec("true", timeout=10)
    sb.terminate()  # twice is fine


def test_unicode_file_names_and_content(make_sandbox):
    sb = make_sandbox()
    text = "héllo wörld ✓ 日本語 🙂\n"
    sb.write_file("dossier/résumé 📄.txt", text.encode())
    r = sb.exec("cat 'dossier/résumé 📄.txt'; ls dossier", timeout=10)
    assert r.stdout == text + "résumé 📄.txt\n"
    sb.exec("printf 'ünïcode ✓' > 'naïve ☃.txt'", timeout=10)
    assert sb.read_file("naïve ☃.txt").decode() == "ünïcode ✓"
    paths = [f.path for f in sb.list_files()]
    assert paths == ["dossier/résumé 📄.txt", "naïve ☃.txt"]
