"""Checks and normalisation shared by the bundled adapters, so they answer alike."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from agent_server.persistence.types import (
    UPDATABLE_FIELDS,
    SessionRecord,
    StoredEvent,
    WorkspaceFile,
)


def as_utc(value: datetime, field: str) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if not isinstance(value, datetime):
        raise ValueError(f"{field} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def to_json(value: Any, field: str) -> str:
    """``value`` as JSON text; ValueError naming the field if it is not JSON."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{field} must be JSON-serialisable: {exc}") from None


def json_dict(value: Any, field: str) -> dict[str, Any]:
    """A fresh dict equal to what a JSON round trip of ``value`` gives back."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{field} must be a mapping, not {type(value).__name__}")
    return json.loads(to_json(dict(value), field))


def check_record(record: SessionRecord) -> SessionRecord:
    """The record as the adapters store it: UTC datetimes, JSON dicts."""
    if not isinstance(record.session_id, str) or not record.session_id:
        raise ValueError("session_id must be a non-empty string")
    values = {k: v for k, v in vars(record).items() if k != "session_id"}
    return record.replace(**{k: _clean(k, v) for k, v in values.items()})


def check_updates(updates: Mapping[str, Any]) -> dict[str, Any]:
    """Validated, normalised values for update_session_record."""
    unknown = [name for name in updates if name not in UPDATABLE_FIELDS]
    if unknown:
        raise ValueError(
            f"cannot update {', '.join(map(repr, unknown))}: updatable fields are "
            f"{', '.join(UPDATABLE_FIELDS)}"
        )
    return {name: _clean(name, value) for name, value in updates.items()}


def _clean(name: str, value: Any) -> Any:
    if name in ("created_at", "last_activity"):
        return as_utc(value, name)
    if name in ("metadata", "options"):
        return json_dict(value, name)
    if name == "agent_profile_id":
        if not isinstance(value, str) or not value:
            raise ValueError("agent_profile_id must be a non-empty string")
        return value
    if name == "name":
        if value is not None and not isinstance(value, str):
            raise ValueError("name must be a string or None")
        return value
    raise ValueError(f"unknown session field {name!r}")


def check_file(file: WorkspaceFile) -> WorkspaceFile:
    """The file as the adapters store it: a relative path, a UTC modified_at."""
    if not isinstance(file.path, str) or not file.path.strip("/"):
        raise ValueError("a workspace file needs a non-empty path")
    if not isinstance(file.content, str):
        raise ValueError(f"content of {file.path!r} must be a string")
    return replace(file, modified_at=as_utc(file.modified_at, "modified_at"))


def check_events(events: Sequence[StoredEvent]) -> list[StoredEvent]:
    """The rows with JSON-copied data; ValueError if seqs repeat within the batch."""
    return [
        StoredEvent(e.seq, e.name, json_dict(e.data, "event data"))
        for e in _checked(events)
    ]


def event_rows(events: Sequence[StoredEvent]) -> list[tuple[int, str, str]]:
    """Each event as (seq, name, its data as JSON text), checked as by check_events."""
    rows = []
    for e in _checked(events):
        if not isinstance(e.data, Mapping):
            raise ValueError(
                f"event data must be a mapping, not {type(e.data).__name__}"
            )
        rows.append((e.seq, e.name, to_json(dict(e.data), "event data")))
    return rows


def _checked(events: Sequence[StoredEvent]) -> Sequence[StoredEvent]:
    seqs = set()
    for event in events:
        if not isinstance(event.seq, int) or isinstance(event.seq, bool):
            raise ValueError(f"event seq must be an integer, not {event.seq!r}")
        if not isinstance(event.name, str) or not event.name:
            raise ValueError("event name must be a non-empty string")
        seqs.add(event.seq)
    if len(seqs) != len(events):
        raise ValueError("event seqs in one append must all be different")
    return events
