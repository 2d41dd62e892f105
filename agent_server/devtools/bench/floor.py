"""The latency floor: the SDK alone reading the fake's stream, N streams at once.

Runs in its own process (as the server does) and prints one JSON line: the seconds
from the fake writing each stamped delta to the project's ModelClient yielding it.
``python -m agent_server.devtools.bench.floor URL SESSIONS DELTAS RATE``
"""

from __future__ import annotations

import json
import sys
import time

import gevent

from agent_server.agent.model import ModelClient
from agent_server.devtools.bench.client import stamp_age
from agent_server.devtools.bench.fake import spec


def measure(url: str, sessions: int, deltas: int, rate: float) -> list[float]:
    client = ModelClient(api_key="bench", base_url=url)
    ages: list[float] = []

    def one() -> None:
        messages = [{"role": "user", "content": spec(deltas, rate)}]
        with client.stream(
            model="claude-sonnet-4-6", max_tokens=1024, system=None, messages=messages
        ) as stream:
            for event in stream:
                if event["type"] == "content_block_delta":
                    age = stamp_age(event["delta"].get("text", ""), time.time())
                    if age is not None:
                        ages.append(age)

    gevent.joinall([gevent.spawn(one) for _ in range(sessions)], raise_error=True)
    return ages


if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()
    url, n, d, r = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    measure(url, n, 2, 0)  # warm the connection pool, as the server's warm-up turns do
    print(json.dumps(measure(url, n, d, r)))
