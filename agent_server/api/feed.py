"""A client's outbox and its subscriptions: replay by seq, then live, no gap, no duplicate.

Shared by the WebSocket and the SSE transports. Each client has one bounded
``Outbox`` drained by one writer; a client too slow to keep up is closed with a reason
(it can resume by seq), so it never slows the agent or other clients.

A transport may give the outbox a ``direct`` sender: while nothing waits in the outbox,
a live item is handed to it first, and it writes at once if that cannot block (the
WebSocket writes the frame with one non-blocking send). Waking the writer greenlet for
every streamed delta cost about a fifth of the server's CPU per delta.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from gevent.event import Event as Signal

from agent_server.events import names
from agent_server.events.bus import EventBus
from agent_server.events.log import Event
from agent_server.sessions.manager import SessionManager

DEFAULT_OUTBOX_LIMIT = 10_000


class Outbox:
    """A bounded queue of events for one client; never blocks the producer."""

    def __init__(self, limit: int = DEFAULT_OUTBOX_LIMIT) -> None:
        self._items: deque = deque()
        # sends an item at once without blocking, or returns False to have it queued
        self.direct: Callable[[object], bool] | None = None
        self.sending = False  # the writer holds items it took and has not written yet
        self._signal = Signal()
        self.limit = limit
        self._replayed = 0  # replayed items waiting, not counted against the limit
        self.closed = False
        self.close_reason: str | None = None

    def put(self, item, *, replay: bool = False) -> None:
        """Queue an item; a live one over the limit closes the outbox instead.

        Replayed items (what a client asked for with ``after``) never count against
        the limit: a resume larger than it would otherwise be cut off at once.
        """
        if self.closed:
            return
        if (
            self.direct is not None
            and not replay
            and not self._items
            and not self.sending
            and self._send_directly(item)
        ):
            return
        if not replay and len(self._items) - self._replayed >= self.limit:
            self.close(
                f"too slow: more than {self.limit} events waited to be sent; reconnect and "
                "subscribe with after=<last seq you received> to resume"
            )
            return
        self._items.append(item)
        if replay:
            self._replayed += 1
        self._signal.set()

    def _send_directly(self, item) -> bool:
        try:
            return self.direct(item)
        except Exception:  # e.g. data that is not JSON: the writer reports it as usual
            return False

    def take(self, timeout: float | None = None) -> list:
        """Everything waiting (possibly nothing after ``timeout``); [] once closed.

        Until the writer calls ``sent()``, live items queue behind what it took.
        """
        if not self._items and not self.closed:
            self._signal.wait(timeout)
        self._signal.clear()
        items = list(self._items)
        self._items.clear()
        self._replayed = 0
        self.sending = bool(items)
        return items

    def sent(self) -> None:
        """The writer has written what it took (or given up on it)."""
        self.sending = False

    def wake(self) -> None:
        """Wake the writer with nothing queued (the transport has bytes of its own)."""
        self._signal.set()

    def close(self, reason: str | None = None) -> None:
        if not self.closed:
            self.closed = True
            self.close_reason = reason
            self._signal.set()


class SessionFeed:
    """One client's subscription to one session's events."""

    def __init__(self, outbox: Outbox, session_id: str) -> None:
        self.outbox = outbox
        self.session_id = session_id
        self.last_seq = 0
        self._held: list[Event] | None = None

    def deliver(self, event: Event) -> None:
        if self._held is not None:
            self._held.append(
                event
            )  # replay in progress: keep live events for after it
        elif event.seq is None or event.seq > self.last_seq:
            self.last_seq = event.seq or self.last_seq
            self.outbox.put(event)

    def start(self, bus: EventBus, manager: SessionManager, after: int | None) -> None:
        """Send the status snapshot, then what was missed after ``after``, then live events.

        ``after`` None means "from now on" (no replay).
        """
        self._held = []
        bus.subscribe(self.session_id, self)
        try:
            current = manager.last_seq(self.session_id)
            self.outbox.put(
                Event(
                    self.session_id,
                    None,
                    names.STATUS,
                    {
                        "runtime": manager.runtime_state(self.session_id),
                        "lastSeq": current,
                    },
                )
            )
            if after is None:
                self.last_seq = current
            else:
                self.last_seq = after
                for event in manager.events_after(self.session_id, after):
                    if event.seq > self.last_seq:
                        self.last_seq = event.seq
                        self.outbox.put(event, replay=True)
        except BaseException:
            bus.unsubscribe(self.session_id, self)
            raise
        held, self._held = self._held, None
        for event in held:
            self.deliver(event)

    def stop(self, bus: EventBus) -> None:
        bus.unsubscribe(self.session_id, self)


class BroadcastFeed:
    """Receives the events that belong to no session (sessions:list)."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def deliver(self, event: Event) -> None:
        self.outbox.put(event)
