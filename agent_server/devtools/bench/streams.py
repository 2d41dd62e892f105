"""N sessions streaming at once, one subscriber each: the driver behind (1), (2), (3)."""

from __future__ import annotations

import gevent
from gevent.event import Event as Flag

from agent_server.devtools.bench.client import Http, Subscriber, Turn
from agent_server.devtools.bench.fake import spec


class Streams:
    """Result of one concurrent run: every session's measured turn and the errors."""

    def __init__(self, turns: list[Turn], errors: list[str], expected: int) -> None:
        self.turns = turns
        self.errors = errors
        self.expected = expected

    @property
    def latencies(self) -> list[float]:
        return [x for t in self.turns for x in t.latencies]

    @property
    def delivered(self) -> int:
        return sum(t.deltas for t in self.turns)

    def missing(self) -> int:
        """Deltas the fake sent that no subscriber received."""
        return (
            self.expected * len(self.turns)
            - self.delivered
            + (self.expected * len(self.errors))
        )

    def rate(self) -> float:
        """Deltas per second from the first delta received to the last."""
        starts = [t.first_delta_at for t in self.turns if t.first_delta_at]
        ends = [t.last_delta_at for t in self.turns if t.last_delta_at]
        if not starts:
            return 0.0
        return self.delivered / max(1e-9, max(ends) - min(starts))

    def frame_size(self) -> int:
        frames = self.delivered
        return round(sum(t.frame_bytes for t in self.turns) / frames) if frames else 0


def run_streams(
    base_url: str,
    sessions: int,
    deltas: int,
    rate: float,
    *,
    spread: float = 1.0,
    on_go=None,
) -> Streams:
    """Each session: warm-up turn (sandbox, load), then all stream ``deltas`` at once.

    The measured turns start over ``spread`` seconds: clients do not all press send
    in the same millisecond (every session still streams at the same time).
    ``on_go()`` is called when every session is warm, just before the measured turns.
    """
    ready, go = [0], Flag()
    turns: list[Turn] = []
    errors: list[str] = []

    def one(index: int) -> None:
        http = Http(base_url)
        sub = None
        try:
            sid = http.create_session(name="bench")
            sub = Subscriber(base_url)
            sub.subscribe(sid)
            http.message(sid, spec(2, 0))
            sub.until_turn_end()
            ready[0] += 1
            if ready[0] == sessions:
                if on_go is not None:
                    on_go()
                go.set()
            go.wait()
            gevent.sleep(spread * index / sessions)
            http.message(sid, spec(deltas, rate))
            turn = sub.until_turn_end()
            if turn.end != "session:turn:completed":
                errors.append(f"{sid}: {turn.end}")
            turns.append(turn)
        except Exception as exc:  # counted and reported, never hidden
            errors.append(f"{type(exc).__name__}: {exc}")
            ready[0] += 1
            if ready[0] == sessions:
                go.set()
        finally:
            http.close()
            if sub is not None:
                sub.close()

    gevent.joinall([gevent.spawn(one, i) for i in range(sessions)])
    return Streams(turns, errors, deltas)
