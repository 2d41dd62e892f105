"""The benchmarks' model: the fake Messages API, its reply chosen by the user's text.

A user message ``bench deltas=N rate=R size=S`` gets a stamped text reply of N deltas
of S characters at R deltas/s (R=0: as fast as possible); anything else gets 20.
One process serves every measurement, so a server needs one ANTHROPIC_BASE_URL.
Run: ``python -m agent_server.devtools.bench.fake`` (prints its URL on the first line).
"""

from __future__ import annotations

import re

from agent_server.devtools.fake_anthropic import FakeAnthropic, reply, stamped

_SPEC = re.compile(r"bench deltas=(\d+) rate=([0-9.]+)(?: size=(\d+))?")


def spec(deltas: int, rate: float, size: int = 32) -> str:
    """The user message that asks the bench fake for this reply."""
    return f"bench deltas={deltas} rate={rate:g} size={size}"


def _last_user_text(body: dict) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [
            b.get("text", "")
            for b in content or ()
            if isinstance(b, dict) and b.get("type") == "text"
        ]
        if texts:
            return texts[-1]
    return ""


class BenchFake(FakeAnthropic):
    """A stamped-mode fake whose reply size and rate come from the request."""

    def _fallback(self, body: dict):
        match = _SPEC.search(_last_user_text(body))
        if match is None:
            return super()._fallback(body)
        deltas, rate, size = int(match[1]), float(match[2]), int(match[3] or 32)
        return reply(stamped(deltas, size), tokens_per_second=rate or None)


def main() -> None:
    """Serve until killed; the first line printed is the URL."""
    fake = BenchFake(mode="stamped")
    print(fake.start(), flush=True)
    import gevent

    while True:
        gevent.sleep(3600)


if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()
    main()
