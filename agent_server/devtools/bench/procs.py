"""Start and stop the benchmark's processes: the fake model, servers, the baseline."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


# CPUs for the servers under test (set by ``pin``); empty: they share every CPU
SERVER_CPUS: set[int] = set()


def pin() -> dict | None:
    """Give the servers (and the floor process) the first CPU, this driver and the
    fake the others.

    On a machine where everything shares two cores, the fake model and the driver
    otherwise take CPU from the server in the bursts that set its p99. Returns the
    placement, or None with fewer than two CPUs.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    SERVER_CPUS.clear()
    SERVER_CPUS.add(cpus[0])
    os.sched_setaffinity(0, set(cpus[1:]))  # the fake inherits this
    return {"servers": [cpus[0]], "driver_and_fake": cpus[1:]}


def on_cpus(cpus: set[int] | None):
    """A child's ``preexec_fn`` that keeps it on ``cpus``; None when there are none.

    (The driver is one gevent thread: preexec_fn is safe here.)
    """
    if not cpus:
        return None
    cpus = set(cpus)
    return lambda: os.sched_setaffinity(0, cpus)


def raise_file_limit(wanted: int = 65536) -> int:
    """Raise this process's (and its children's) open-file limit; returns the new one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process in its own process group, stopped with the group."""

    def __init__(
        self,
        argv: list[str],
        *,
        env: dict | None = None,
        name: str = "",
        cpus: set[int] | None = None,
    ) -> None:
        self.name = name or argv[0]
        self.argv = argv
        # stderr to a file: a full pipe nobody reads would stall the child
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (lives with the child)
        self.popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            start_new_session=True,
            preexec_fn=on_cpus(cpus),
        )

    def errors(self) -> str:
        """The end of what the process wrote to stderr."""
        self.log.seek(0)
        return self.log.read()[-3000:]

    @property
    def command(self) -> str:
        return " ".join(self.argv)

    def first_line(self) -> str:
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} exited: {self.errors()}")
        return line.strip()

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, 15)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, 9)
                self.popen.wait()


def start_fake() -> tuple[Proc, str]:
    """The bench fake model in its own process; returns it and its URL."""
    proc = Proc([sys.executable, "-m", "agent_server.devtools.bench.fake"], name="fake")
    return proc, proc.first_line()


def gunicorn(app: str, port: int, env: dict, *, connections: int = 4000) -> Proc:
    """``gunicorn -k gevent --workers 1`` serving ``app`` on 127.0.0.1:port."""
    argv = [
        str(BIN / "gunicorn"),
        "-k",
        "gevent",
        "--workers",
        "1",
        "--worker-connections",
        str(connections),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        app,
    ]
    return Proc(argv, env=env, name=app, cpus=SERVER_CPUS or None)


def start_server(
    data_dir: Path, model_url: str, database_url: str | None = None
) -> tuple[Proc, str]:
    """agent-server (wsgi:app) with the local sandbox; returns it and its base URL."""
    port = free_port()
    env = {
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url or f"sqlite:///{data_dir}/agent-server.db",
        "ANTHROPIC_BASE_URL": model_url,
        "ANTHROPIC_API_KEY": "bench",
        "SANDBOX_PROVIDER": "local",
        "LOG_LEVEL": "WARNING",
        "IDLE_TIMEOUT_SECONDS": "3600",
    }
    os.environ.pop("AGENT_SERVER_API_KEY", None)  # the bench runs without auth
    proc = gunicorn("wsgi:app", port, env)
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, url + "/health")
    return proc, url


def start_raw_server() -> tuple[Proc, str]:
    """The baseline: a minimal flask-sock app pushing frames (raw_server.py)."""
    port = free_port()
    proc = gunicorn("agent_server.devtools.bench.raw_server:app", port, {})
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, url + "/health")
    return proc, url


def wait_ready(proc: Proc, url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited: {proc.errors()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                json.loads(resp.read() or b"{}")
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not answer {url} within {timeout:g}s")


def worker_pid(proc: Proc) -> int:
    """The pid of gunicorn's (single) worker."""
    master = proc.popen.pid
    for task in Path(f"/proc/{master}/task").iterdir():
        children = (task / "children").read_text().split()
        if children:
            return int(children[0])
    raise RuntimeError("gunicorn has no worker")


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
