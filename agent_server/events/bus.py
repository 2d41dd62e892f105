"""The event bus: who hears a session's events.

``LocalEventBus`` fans out within this process. The interface (publish / subscribe by
session, broadcast to everyone) is the seam for a multi-process bus (Redis pub/sub or
PostgreSQL LISTEN/NOTIFY): nothing assumes a client sits in the process that runs its
session.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Protocol

from agent_server.events.log import Event

log = logging.getLogger(__name__)


class Subscriber(Protocol):
    """A receiver of events. ``deliver`` must never block: queue or drop-and-close."""

    def deliver(self, event: Event) -> None: ...


class EventBus(ABC):
    @abstractmethod
    def publish(self, event: Event) -> None:
        """Hand a session event to every subscriber of its session."""

    @abstractmethod
    def broadcast(self, event: Event) -> None:
        """Hand an event that belongs to no session (sessions:list) to every listener."""

    @abstractmethod
    def subscribe(self, session_id: str, subscriber: Subscriber) -> None: ...

    @abstractmethod
    def unsubscribe(self, session_id: str, subscriber: Subscriber) -> None: ...

    @abstractmethod
    def listen(self, subscriber: Subscriber) -> None:
        """Receive broadcasts until ``unlisten``."""

    @abstractmethod
    def unlisten(self, subscriber: Subscriber) -> None: ...


class LocalEventBus(EventBus):
    """In-process fan-out."""

    def __init__(self) -> None:
        self._by_session: dict[str, set[Subscriber]] = {}
        self._listeners: set[Subscriber] = set()

    def publish(self, event: Event) -> None:
        subscribers = self._by_session.get(event.session_id)
        if subscribers:
            for subscriber in tuple(subscribers):
                subscriber.deliver(event)

    def broadcast(self, event: Event) -> None:
        for subscriber in tuple(self._listeners):
            subscriber.deliver(event)

    def subscribe(self, session_id: str, subscriber: Subscriber) -> None:
        self._by_session.setdefault(session_id, set()).add(subscriber)

    def unsubscribe(self, session_id: str, subscriber: Subscriber) -> None:
        subscribers = self._by_session.get(session_id)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._by_session[session_id]

    def listen(self, subscriber: Subscriber) -> None:
        self._listeners.add(subscriber)

    def unlisten(self, subscriber: Subscriber) -> None:
        self._listeners.discard(subscriber)
