"""(1) Added latency per streamed delta: server path minus the SDK-alone floor."""

from __future__ import annotations

import json
import subprocess
import sys

from agent_server.devtools.bench.client import summary
from agent_server.devtools.bench.procs import SERVER_CPUS, on_cpus
from agent_server.devtools.bench.streams import run_streams

RATE = 50.0  # deltas per second per session


def floor(model_url: str, sessions: int, deltas: int) -> list[float]:
    """Ages of the deltas as the SDK alone yields them, in a process of its own.

    It runs where the server runs (the servers' CPU when ``pin`` placed them), so that
    server minus floor compares the two paths on the same core.
    """
    argv = [sys.executable, "-m", "agent_server.devtools.bench.floor"]
    argv += [model_url, str(sessions), str(deltas), str(RATE)]
    out = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        preexec_fn=on_cpus(SERVER_CPUS),
    )
    return json.loads(out.stdout.splitlines()[-1])


def measure(server_url: str, model_url: str, sessions: int, deltas: int) -> dict:
    """p50 / p99 through the server and for the floor at the same concurrency."""
    run = run_streams(server_url, sessions, deltas, RATE)
    through = summary(run.latencies)
    base = summary(floor(model_url, sessions, deltas))
    added = {
        k: round(through[k] - base[k], 3)
        if through[k] is not None and base[k] is not None
        else None
        for k in ("p50_ms", "p99_ms")
    }
    return {
        "sessions": sessions,
        "deltas_per_session": deltas,
        "rate_per_session": RATE,
        "server": through,
        "floor": base,
        "added": added,
        "errors": len(run.errors),
        "missing_deltas": run.missing(),
        "error_samples": run.errors[:3],
    }
