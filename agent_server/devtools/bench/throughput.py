"""(2) End-to-end delta throughput as a share of this machine's raw fan-out limit."""

from __future__ import annotations

import json

import gevent
from gevent.event import Event as Flag

from agent_server.devtools.bench.client import Subscriber, Turn
from agent_server.devtools.bench.streams import Streams, run_streams


def raw_limit(raw_url: str, clients: int, frames: int, size: int) -> Streams:
    """The baseline server pushing ``frames`` frames of ``size`` bytes to each client."""
    go, ready = Flag(), [0]
    turns: list[Turn] = []
    errors: list[str] = []

    def one() -> None:
        try:
            sub = Subscriber(raw_url)
            ready[0] += 1
            if ready[0] == clients:
                go.set()
            go.wait()
            sub.conn.send(json.dumps({"frames": frames, "size": size}))
            turns.append(sub.until_turn_end())
            sub.close()
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            ready[0] += 1
            if ready[0] == clients:
                go.set()

    gevent.joinall([gevent.spawn(one) for _ in range(clients)])
    return Streams(turns, errors, frames)


def measure(server_url: str, raw_url: str, sessions: int, deltas: int) -> dict:
    """Deltas/s through agent-server vs frames/s from the baseline, same clients."""
    run = run_streams(server_url, sessions, deltas, 0, spread=0)
    size = run.frame_size()
    raw = raw_limit(raw_url, sessions, deltas, size)
    through, limit = run.rate(), raw.rate()
    return {
        "sessions": sessions,
        "deltas_per_session": deltas,
        "frame_bytes": size,
        "raw_frame_bytes": raw.frame_size(),
        "deltas_per_s": round(through),
        "raw_limit_per_s": round(limit),
        "ratio": round(through / limit, 3) if limit else None,
        "errors": len(run.errors) + len(raw.errors),
        "missing_deltas": run.missing() + raw.missing(),
        "error_samples": (run.errors + raw.errors)[:3],
    }
