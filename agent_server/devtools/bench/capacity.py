"""(3) Capacity: idle subscribers plus streaming sessions in one gevent worker."""

from __future__ import annotations

import gevent
from gevent.pool import Pool

from agent_server.devtools.bench.client import Http, Subscriber, summary
from agent_server.devtools.bench.latency import RATE
from agent_server.devtools.bench.procs import rss_mb
from agent_server.devtools.bench.streams import run_streams

IDLE_SESSIONS = 10  # the idle subscribers watch these (nothing happens in them)


def measure(server_url: str, worker: int, idle: int, active: int, deltas: int) -> dict:
    """Connect ``idle`` subscribers, stream ``active`` sessions, then check everyone."""
    http = Http(server_url)
    quiet = [http.create_session(name="idle") for _ in range(IDLE_SESSIONS)]
    http.close()
    rss_before = rss_mb(worker)
    subscribers: list[Subscriber] = []
    errors: list[str] = []

    def connect(i: int) -> None:
        try:
            sub = Subscriber(server_url)
            sub.subscribe(quiet[i % len(quiet)])
            subscribers.append(sub)
        except Exception as exc:
            errors.append(f"idle connect: {type(exc).__name__}: {exc}")

    Pool(100).map(connect, range(idle))
    rss_idle = rss_mb(worker)
    run = run_streams(server_url, active, deltas, RATE)
    rss_peak = rss_mb(worker)

    def check(sub: Subscriber) -> None:
        try:
            with gevent.Timeout(30):
                sub.ping()
        except (Exception, gevent.Timeout) as exc:
            errors.append(f"idle ping: {type(exc).__name__}: {exc}")
        finally:
            sub.close()

    Pool(100).map(check, subscribers)
    errors += run.errors
    return {
        "idle_subscribers": idle,
        "idle_connected": len(subscribers),
        "active_sessions": active,
        "deltas_per_session": deltas,
        "latency": summary(run.latencies),
        "errors": len(errors),
        "missing_deltas": run.missing(),
        "error_samples": errors[:3],
        "rss_mb": {
            "start": round(rss_before, 1),
            "idle_connected": round(rss_idle, 1),
            "after_streaming": round(rss_peak, 1),
        },
    }
