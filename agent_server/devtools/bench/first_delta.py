"""(4) POST /message to the first block:delta (the fake answers at once): cold and warm."""

from __future__ import annotations

import time

from agent_server.devtools.bench.client import Http, Subscriber, summary
from agent_server.devtools.bench.fake import spec

MESSAGE = spec(3, 0)


def _one(http: Http, sub: Subscriber, session_id: str) -> float:
    started = time.perf_counter()
    http.message(session_id, MESSAGE)
    took = sub.first_delta() - started
    sub.until_turn_end()  # the next message must not queue behind this turn
    return took


def measure(server_url: str, cold: int, warm: int) -> dict:
    """``cold`` new sessions' first messages; ``warm`` more messages to one session."""
    http = Http(server_url)
    cold_times, warm_times = [], []
    for _ in range(cold):
        sid = http.create_session(name="first-delta")
        sub = Subscriber(server_url)
        sub.subscribe(sid)
        cold_times.append(_one(http, sub, sid))
        sub.close()
    sid = http.create_session(name="first-delta-warm")
    sub = Subscriber(server_url)
    sub.subscribe(sid)
    _one(http, sub, sid)  # the cold one, not counted
    for _ in range(warm):
        warm_times.append(_one(http, sub, sid))
    sub.close()
    http.close()
    return {"cold": summary(cold_times), "warm": summary(warm_times)}
