"""(5) POST /sessions/create and GET /sessions/:id with many stored sessions."""

from __future__ import annotations

import random
import time

from agent_server.devtools.bench.client import Http, summary
from agent_server.persistence.peewee_persistence import PeeweePersistence
from agent_server.persistence.types import SessionRecord


def seed(database_url: str, count: int) -> list[str]:
    """Store ``count`` sessions through the adapter (before the server starts)."""
    store = PeeweePersistence(database_url)
    ids = [f"ses_bench{i:08d}" for i in range(count)]
    for sid in ids:
        store.create_session_record(
            SessionRecord(session_id=sid, agent_profile_id="default", name="stored")
        )
    store.close()
    return ids


def measure(server_url: str, stored: list[str], requests: int) -> dict:
    """Timed one at a time over a keep-alive connection."""
    http = Http(server_url)
    creates, gets = [], []
    for _ in range(requests):
        started = time.perf_counter()
        http.create_session(name="bench")
        creates.append(time.perf_counter() - started)
    for sid in random.Random(7).sample(stored, min(requests, len(stored))):
        started = time.perf_counter()
        status, _ = http.request("GET", f"/sessions/{sid}")
        gets.append(time.perf_counter() - started)
        if status != 200:
            raise RuntimeError(f"GET /sessions/{sid}: {status}")
    http.close()
    return {
        "stored_sessions": len(stored),
        "create": summary(creates),
        "get": summary(gets),
    }
