"""One streaming run with the CPU each process spent in it: the profiling driver.

``scripts/bench window SESSIONS DELTAS [--share-cpus]`` starts
the fake and a server as ``scripts/bench`` does, streams DELTAS deltas at 50/s in each
of SESSIONS sessions, and prints the latency summary and the CPU seconds the server's
worker, the fake and this driver used from the start of the measured turns to their
end. Attach ``py-spy record -p <worker pid>`` (printed first) while it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from agent_server.devtools.bench.client import summary
from agent_server.devtools.bench.latency import RATE
from agent_server.devtools.bench.procs import (
    pin,
    raise_file_limit,
    start_fake,
    start_server,
    worker_pid,
)
from agent_server.devtools.bench.streams import run_streams


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench window", description=__doc__.splitlines()[0]
    )
    parser.add_argument("sessions", type=int)
    parser.add_argument("deltas", type=int)
    parser.add_argument("--share-cpus", action="store_true")
    args = parser.parse_args(argv)
    raise_file_limit()
    placement = None if args.share_cpus else pin()
    fake, model_url = start_fake()
    server, url = start_server(
        Path(tempfile.mkdtemp(prefix="bench-window-")), model_url
    )
    try:
        worker = worker_pid(server)
        print(f"worker pid {worker}", flush=True)
        pids = {"server": worker, "fake": fake.popen.pid, "driver": os.getpid()}
        start: dict = {}

        def go() -> None:
            start.update({k: cpu_seconds(p) for k, p in pids.items()})
            start["wall"] = time.monotonic()

        run = run_streams(url, args.sessions, args.deltas, RATE, on_go=go)
        report = {
            "placement": placement or "shared",
            "latency": summary(run.latencies),
            "errors": len(run.errors),
            "missing_deltas": run.missing(),
            "window_s": round(time.monotonic() - start["wall"], 2),
            "cpu_s": {k: round(cpu_seconds(p) - start[k], 2) for k, p in pids.items()},
        }
        print(json.dumps(report, indent=2))
    finally:
        server.stop()
        fake.stop()
    return 0
