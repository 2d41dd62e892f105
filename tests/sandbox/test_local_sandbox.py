"""What only the local provider promises: isolation, process groups, gevent."""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import time

import gevent
import pytest

from agent_server.errors import (
    ConfigError,
    PathOutsideWorkspace,
    SandboxError,
    SandboxGone,
    TurnInterrupted,
)
from agent_server.persistence.types import WorkspaceFile
from agent_server.sandbox.local_sandbox import LocalSandboxProvider
from agent_server.sandbox.registry import create_provider
from agent_server.settings import Settings
from tests.sandbox.conftest import require_bwrap

SECRETS = {
    "ANTHROPIC_API_KEY": "sk-ant-secret-value",
    "DATABASE_URL": "postgresql://user:db-secret@host/db",
    "AGENT_SERVER_API_KEY": "server-secret-key",
}


@pytest.fixture(params=["bwrap", "plain"])
def local(request, tmp_path):
    """A local provider in each mode, workspaces inside a data dir it must hide."""
    if request.param == "bwrap":
        require_bwrap()
    data = tmp_path / "data"
    (data / "workspaces").mkdir(parents=True)
    (data / "agent-server.db").write_text("TOP-SECRET-ROWS")
    return LocalSandboxProvider(
        data / "workspaces",
        use_bwrap=request.param == "bwrap",
        hidden_paths=(data,),
    )


def sleeper_marker() -> str:
    """A sleep duration no other process uses, to find the command's processes."""
    return f"30.{random.randrange(10**8):08d}"


def processes_with(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def spawn_and_wait(sb, command: str, marker: str, processes: int) -> gevent.Greenlet:
    """Run ``command`` in a greenlet; return once ``processes`` of it are running."""
    g = gevent.spawn(sb.exec, command, timeout=60)
    deadline = time.monotonic() + 5
    while len(processes_with(marker)) < processes and time.monotonic() < deadline:
        gevent.sleep(0.02)
    assert len(processes_with(marker)) >= processes
    return g


def wait_until_gone(marker: str, within: float = 5.0) -> list[int]:
    deadline = time.monotonic() + within
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        gevent.sleep(0.05)
    return left


def test_server_secrets_are_invisible_to_commands(local, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    sb = local.create("s1", env={"PROFILE_VAR": "visible"})
    out = sb.exec("env", timeout=10).stdout
    names = {line.split("=", 1)[0] for line in out.splitlines() if "=" in line}
    for name, value in SECRETS.items():
        assert name not in names and value not in out
    assert {"PATH", "HOME", "LANG", "TERM", "WORKSPACE", "PROFILE_VAR"} <= names
    assert "TERM=dumb" in out.splitlines() and "LANG=C.UTF-8" in out.splitlines()


def test_bwrap_hides_the_data_dir_and_the_host(tmp_path):
    require_bwrap()
    data = tmp_path / "data"
    (data / "workspaces").mkdir(parents=True)
    (data / "agent-server.db").write_text("TOP-SECRET-ROWS")
    provider = LocalSandboxProvider(
        data / "workspaces", use_bwrap=True, hidden_paths=(data,)
    )
    sb = provider.create("s1")
    sb.exec("echo mine > /workspace/own.txt", timeout=10)
    r = sb.exec(
        f"cat {data}/agent-server.db; ls {data}; ls /workspace/..; cat /etc/shadow;"
        " ls /workspace; echo $HOME",
        timeout=10,
    )
    assert "TOP-SECRET-ROWS" not in r.stdout
    assert "own.txt\n/workspace\n" in r.stdout
    listing = set(sb.exec("ls /", timeout=10).stdout.split())
    assert "workspace" in listing and not listing & {"work", "root", "home", "srv"}
    # no network: only loopback exists
    r = sb.exec("cat /proc/net/dev", timeout=10)
    ifaces = {line.split(":")[0].strip() for line in r.stdout.splitlines()[2:]}
    assert ifaces <= {"lo"}


def test_bwrap_masks_a_hidden_path_inside_something_bound(tmp_path):
    require_bwrap()
    ws = tmp_path / "workspaces"
    secret = ws / "s1" / "secret-dir"
    secret.mkdir(parents=True)
    (secret / "key").write_text("HIDDEN")
    provider = LocalSandboxProvider(ws, use_bwrap=True, hidden_paths=(secret,))
    sb = provider.create("s1")
    r = sb.exec("ls secret-dir; cat secret-dir/key", timeout=10)
    assert "HIDDEN" not in r.stdout and r.exit_code != 0


def test_timeout_kills_the_whole_process_group(local):
    sb = local.create("s1")
    marker = sleeper_marker()
    start = time.monotonic()
    r = sb.exec(f"sleep {marker} & sleep {marker} & sleep {marker}; ", timeout=1)
    assert r.timed_out and r.exit_code is None
    assert time.monotonic() - start < 5
    assert wait_until_gone(marker) == []


def test_background_children_end_with_the_command(local):
    sb = local.create("s1")
    marker = sleeper_marker()
    r = sb.exec(f"(sleep {marker} &) ; echo done", timeout=10)
    assert r.stdout == "done\n" and not r.timed_out
    assert wait_until_gone(marker) == []


@pytest.mark.parametrize("exc", [TurnInterrupted("stop"), gevent.GreenletExit])
def test_killing_the_calling_greenlet_kills_the_command(local, exc):
    sb = local.create("s1")
    marker = sleeper_marker()
    g = spawn_and_wait(sb, f"sleep {marker} & sleep {marker}; ", marker, 2)
    g.kill(exc)
    assert g.dead
    if isinstance(exc, BaseException):
        assert g.exception is exc  # it propagated after the cleanup
    assert wait_until_gone(marker) == []
    assert sb.exec("echo still usable", timeout=10).exit_code == 0


def test_under_bwrap_a_child_in_its_own_session_ends_with_the_command(tmp_path):
    # outside bwrap setsid escapes the process group; inside, the sandbox's pid
    # namespace ends with it
    require_bwrap()
    sb = LocalSandboxProvider(tmp_path, use_bwrap=True).create("s1")
    marker = sleeper_marker()
    g = spawn_and_wait(sb, f"(setsid sleep {marker} &); sleep {marker}", marker, 3)
    g.kill(TurnInterrupted("stop"))
    assert wait_until_gone(marker) == []


def test_a_running_command_does_not_block_other_greenlets(local):
    sb = local.create("s1")
    g = gevent.spawn(sb.exec, "sleep 2", timeout=10)
    ticks = 0
    while not g.ready():
        gevent.sleep(0.05)
        ticks += 1
    assert g.get().exit_code == 0
    assert ticks >= 20  # ~40 if the hub ran freely; 1 if the command blocked it


def test_multibyte_characters_split_across_reads_survive(local):
    sb = local.create("s1")
    chunks = []
    r = sb.exec(
        r"printf '\xc3'; sleep 0.2; printf '\xa9t\xe2\x9c'; sleep 0.2; printf '\x93\n'",
        timeout=10,
        on_output=lambda stream, text: chunks.append(text),
    )
    assert r.stdout == "ét✓\n"
    assert chunks == ["ét", "✓\n"]  # each character whole, as soon as it was


def test_symlinks_to_another_session_are_refused(local):
    other = local.create("other", files=[WorkspaceFile.from_bytes("secret.txt", b"x")])
    sb = local.create("s1")
    sb.exec("ln -s ../other/secret.txt link && ln -s ../other odir", timeout=10)
    sb.exec("echo inside > real.txt && ln -s real.txt alias", timeout=10)
    for path in ["link", "odir/secret.txt"]:
        with pytest.raises(PathOutsideWorkspace):
            sb.read_file(path)
        with pytest.raises(PathOutsideWorkspace):
            sb.write_file(path, b"overwritten")
    assert other.read_file("secret.txt") == b"x"
    assert sb.read_file("alias") == b"inside\n"  # a link that stays inside works
    sb.delete_file("link")  # removes the link itself, never its target
    assert other.read_file("secret.txt") == b"x"
    assert [f.path for f in sb.list_files()] == ["real.txt"]


def test_fifo_does_not_hang_read_file(local):
    sb = local.create("s1")
    sb.exec("mkfifo pipe", timeout=10)
    with gevent.Timeout(5), pytest.raises(SandboxError):
        sb.read_file("pipe")


def test_write_file_keeps_the_mode_of_an_existing_file(local):
    sb = local.create("s1")
    sb.exec("printf 'echo old' > run.sh && chmod +x run.sh", timeout=10)
    sb.write_file("run.sh", b"echo new")
    assert sb.exec("./run.sh", timeout=10).stdout == "new\n"


def test_failing_on_output_stops_the_command_and_is_raised(local):
    sb = local.create("s1")
    marker = sleeper_marker()

    def on_output(stream, text):
        raise ValueError("client went away")

    with pytest.raises(ValueError, match="client went away"):
        sb.exec(f"echo hi; sleep {marker}", timeout=30, on_output=on_output)
    assert wait_until_gone(marker) == []


def test_terminate_kills_running_commands_and_keeps_the_workspace(local):
    sb = local.create("s1", files=[WorkspaceFile.from_bytes("keep.txt", b"k")])
    marker = sleeper_marker()
    g = gevent.spawn(sb.exec, f"sleep {marker}", timeout=60)
    gevent.sleep(0.3)
    sb.terminate()
    with pytest.raises(SandboxGone):
        g.get(timeout=5)
    assert wait_until_gone(marker) == []
    assert sb.poll().alive is False
    for call in (lambda: sb.read_file("keep.txt"), sb.list_files):
        with pytest.raises(SandboxGone):
            call()
    assert (local.workspaces_dir / "s1" / "keep.txt").read_bytes() == b"k"
    local.destroy("s1")
    assert not (local.workspaces_dir / "s1").exists()


def test_attach_after_a_restart(local):
    sb = local.create("s1", env={"PROFILE_VAR": "kept"})
    sb.write_file("work.txt", b"in progress")
    assert sb.id == "local-s1"
    restarted = LocalSandboxProvider(
        local.workspaces_dir, use_bwrap=local.isolated, hidden_paths=local.hidden_paths
    )
    again = restarted.attach(sb.id)
    assert again is not None and again.id == sb.id
    r = again.exec('cat work.txt; echo " $PROFILE_VAR"', timeout=10)
    assert r.stdout == "in progress kept\n"
    assert restarted.attach("local-never-created") is None
    assert restarted.attach("sb-modal-id") is None


def test_session_ids_cannot_name_other_directories(local):
    for bad in ["..", "../x", "a/b", "", ".hidden"]:
        with pytest.raises(SandboxError):
            local.create(bad)


def test_signal_deaths_are_reported_like_a_shell(local):
    sb = local.create("s1")
    assert sb.exec("kill -9 $$", timeout=10).exit_code == 137


@pytest.mark.parametrize(("command", "code"), [("exit 7", 7), ("kill -9 $$", 137)])
def test_exec_returns_even_when_gevent_misses_the_exit(local, command, code):
    # a SIGCHLD gevent never handles leaves the child a zombie (seen with bwrap);
    # blocking the signal here reproduces that
    sb = local.create("s1")
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    try:
        start = time.monotonic()
        r = sb.exec(f"echo hi; {command}", timeout=20)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    assert (r.exit_code, r.stdout, r.timed_out) == (code, "hi\n", False)
    assert time.monotonic() - start < 10


def test_registry_warns_once_when_not_isolated(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("PATH", str(tmp_path / "no-bwrap-here"))
    with caplog.at_level(logging.WARNING, logger="agent_server.sandbox"):
        provider = create_provider(Settings(data_dir=tmp_path / "data"))
    assert isinstance(provider, LocalSandboxProvider) and not provider.isolated
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "local sandbox is not isolated: bubblewrap (bwrap) not found; commands run as "
        "plain subprocesses with the server's user. Install bubblewrap for isolation."
    ]
    assert provider.create("s1").exec("echo ok", timeout=10).stdout == "ok\n"


def test_registry_isolated_local_provider_is_quiet(tmp_path, caplog):
    require_bwrap()
    settings = Settings(data_dir=tmp_path / "data", exec_output_limit_bytes=1234)
    with caplog.at_level(logging.WARNING, logger="agent_server.sandbox"):
        provider = create_provider(settings)
    assert provider.isolated and provider.output_limit == 1234
    assert provider.hidden_paths == (os.path.realpath(tmp_path / "data"),)
    assert not caplog.records


def test_use_bwrap_true_without_bwrap_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-bwrap-here"))
    with pytest.raises(SandboxError, match="bwrap"):
        LocalSandboxProvider(tmp_path, use_bwrap=True)


def test_registry_refuses_an_unknown_provider(tmp_path):
    with pytest.raises(ConfigError, match="local, modal"):
        create_provider(Settings(data_dir=tmp_path, sandbox_provider="docker"))


def test_registry_imports_modal_only_when_chosen(tmp_path):
    code = (
        "import sys\n"
        "from agent_server.settings import Settings\n"
        "from agent_server.sandbox.registry import create_provider\n"
        f"create_provider(Settings(data_dir={str(tmp_path)!r}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'modal'"
        " or m.endswith('modal_sandbox')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_registry_builds_the_modal_provider_from_settings(tmp_path):
    pytest.importorskip("agent_server.sandbox.modal_sandbox")
    settings = Settings(
        data_dir=tmp_path,
        sandbox_provider="modal",
        modal_token_id="ak-test",
        modal_token_secret="as-test",
        exec_output_limit_bytes=777,
    )
    provider = create_provider(settings)
    try:
        assert type(provider).__name__ == "ModalSandboxProvider"
        assert provider.output_limit == 777
    finally:
        provider.close()
