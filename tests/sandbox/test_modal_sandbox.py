"""Modal-specific behaviour, through the real modal client and the fake Modal."""

from __future__ import annotations

import socket
import sys
import time

import gevent
import pytest

from agent_server.errors import ConfigError, SandboxError, SandboxGone
from agent_server.persistence.types import WorkspaceFile
from agent_server.sandbox.modal_sandbox import ModalSandboxProvider, sandbox_name
from agent_server.settings import Settings
from tests.sandbox.modal_support import fake_modal_provider


@pytest.fixture
def provider():
    with fake_modal_provider() as p:
        yield p


def running(sb, command: str) -> bool:
    """Whether a process with this command line runs in the sandbox."""
    # "[s]leep 1" matches "sleep 1" but not the command line of this check itself
    pattern = f"[{command[0]}]{command[1:]}"
    return sb.exec(f"pgrep -fx '{pattern}' >/dev/null", timeout=10).exit_code == 0


def test_create_failure_is_a_clear_sandbox_error(provider):
    provider.fake.fail_next_create = True
    with pytest.raises(SandboxError, match="creating a sandbox.*no capacity"):
        provider.create("s-fail")
    assert provider.create("s-fail").exec("echo ok", timeout=10).stdout == "ok\n"


def test_exec_timeout_kills_the_whole_group(provider):
    sb = provider.create("s-timeout")
    start = time.monotonic()
    r = sb.exec("sleep 31.25 & sleep 31.5; echo never", timeout=1)
    assert r.timed_out and r.exit_code is None and "never" not in r.stdout
    assert time.monotonic() - start < 10
    assert not running(sb, "sleep 31.25")  # the background child too
    assert not running(sb, "sleep 31.5")


def test_killing_the_caller_kills_the_command(provider):
    sb = provider.create("s-kill-caller")
    g = gevent.spawn(sb.exec, "sleep 32.5", timeout=60)
    gevent.sleep(1)
    assert running(sb, "sleep 32.5")
    g.kill(timeout=15)
    assert g.dead
    assert not running(sb, "sleep 32.5")


def test_sandbox_dying_mid_command_is_sandbox_gone(provider):
    sb = provider.create("s-dies")
    g = gevent.spawn(sb.exec, "sleep 30", timeout=60)
    gevent.sleep(0.5)
    provider.fake.kill_sandbox(sb.id)
    with pytest.raises(SandboxGone, match=sb.id):
        g.get(timeout=15)
    status = sb.poll()
    assert status.alive is False and status.exit_code == 137
    with pytest.raises(SandboxGone):
        sb.read_file("anything.txt")


@pytest.mark.parametrize("server", ["closed port", "silent server"])
def test_unreachable_modal_fails_within_call_timeout(monkeypatch, server):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    if server == "silent server":
        listener.listen(8)  # accepts connections, never answers
    else:
        listener.close()
    monkeypatch.setenv("MODAL_SERVER_URL", f"http://127.0.0.1:{port}")
    p = ModalSandboxProvider(
        app_name="t", token_id="ak-x", token_secret="as-y", call_timeout=2
    )
    start = time.monotonic()
    with pytest.raises(SandboxError, match="within 2 s.*MODAL_TOKEN_ID"):
        p.create("s-unreachable")
    assert time.monotonic() - start < 6  # not modal's own minute of retries
    listener.close()


def test_second_create_for_a_session_reuses_its_sandbox(provider):
    first = provider.create("s-reuse", files=[WorkspaceFile.from_bytes("a.txt", b"1")])
    first.write_file("a.txt", b"newer")
    again = provider.create("s-reuse", files=[WorkspaceFile.from_bytes("a.txt", b"1")])
    assert again.id == first.id
    assert again.read_file("a.txt") == b"newer"  # the running one is kept as it is
    assert provider.fake.sandbox_ids() == [first.id]
    other = provider.create("s-other")
    assert other.id != first.id


def test_attach_finds_running_sandboxes_only(provider):
    sb = provider.create("s-attach")
    sb.write_file("kept.txt", b"here")
    attached = provider.attach(sb.id)
    assert attached is not None and attached.read_file("kept.txt") == b"here"
    sb.terminate()
    assert provider.attach(sb.id) is None
    assert provider.attach("sb-doesnotexist") is None


def test_gevent_hub_stays_free_during_a_modal_exec(provider):
    sb = provider.create("s-hub")
    ticks = []

    def ticker():
        while True:
            ticks.append(time.monotonic())
            gevent.sleep(0.05)

    t = gevent.spawn(ticker)
    try:
        r = sb.exec("sleep 1", timeout=10)
    finally:
        t.kill()
    assert r.exit_code == 0
    assert len(ticks) >= 10  # ~20 when nothing blocks the hub


def test_sandbox_names_are_modal_safe_and_stable():
    assert sandbox_name("abc-123") == "session-abc-123"
    long_odd = "ü/" * 50
    name = sandbox_name(long_odd)
    assert len(name) < 64 and name == sandbox_name(long_odd)
    assert all(c.isalnum() or c in "-._" for c in name)
    assert sandbox_name("a/b") != sandbox_name("a-b")


def test_from_settings_needs_a_token():
    settings = Settings(sandbox_provider="local", modal_token_id="ak-only")
    with pytest.raises(ConfigError, match="MODAL_TOKEN_ID and MODAL_TOKEN_SECRET"):
        ModalSandboxProvider.from_settings(settings)
    ok = Settings(
        modal_token_id="ak-x", modal_token_secret="as-y", modal_app_name="my-app"
    )
    assert ModalSandboxProvider.from_settings(ok).app_name == "my-app"


def test_missing_modal_extra_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "modal", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'agent-server\[modal\]'"):
        ModalSandboxProvider(app_name="t", token_id="ak-x", token_secret="as-y")


def test_a_failing_on_output_stops_the_command_and_is_raised(provider):
    sb = provider.create("s-callback")

    def on_output(stream, text):
        raise ValueError("the client went away")

    start = time.monotonic()
    with pytest.raises(ValueError, match="went away"):
        sb.exec("echo hi; sleep 33.5", timeout=60, on_output=on_output)
    assert time.monotonic() - start < 15
    assert not running(sb, "sleep 33.5")
