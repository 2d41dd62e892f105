"""Batched event-log flushes and the hand-built delta wire."""

from __future__ import annotations

import json

import gevent

from agent_server.events.log import FLUSH_GROUP, Event, EventLog, _encode, flush_logs
from agent_server.events.names import BLOCK_DELTA
from agent_server.persistence.peewee_persistence import PeeweePersistence
from agent_server.persistence.types import SessionRecord, StoredEvent


def test_delta_wire_is_the_same_json_as_the_general_encoder():
    for text in ("plain", 'quo"te\\ \n\t', "é ✓ 🙂", "\x00\x1f"):
        data = {"conversationId": "main", "blockId": "blk_1", "delta": text}
        event = Event("ses_1", 7, BLOCK_DELTA, data)
        assert event.wire == _encode(event.to_dict())
        assert json.loads(event.wire)["data"]["delta"] == text


def test_flush_logs_stores_every_session_and_keeps_a_failed_ones_rows(tmp_path):
    store = PeeweePersistence(f"sqlite:///{tmp_path / 'db.sqlite'}")
    logs = []
    for i in range(3):
        sid = f"ses_{i}"
        store.create_session_record(SessionRecord(session_id=sid, agent_profile_id="d"))
        event_log = EventLog(sid, store)
        for n in range(5):
            event_log.append(
                BLOCK_DELTA, {"conversationId": "main", "blockId": "b", "delta": str(n)}
            )
        event_log.append("session:block:complete", {"blockId": "b"})
        logs.append(event_log)
    # ses_2 already has seq 6 stored: its batch clashes, the others must still land
    store.append_events("ses_2", [StoredEvent(6, "x", {})])

    written = flush_logs(logs)

    assert written == 4
    for event_log in logs[:2]:
        rows = store.list_events(event_log.session_id)
        assert [r.seq for r in rows] == [5, 6]
        assert rows[0].data["deltas"] == ["0", "1", "2", "3", "4"]
        assert not event_log.has_pending and event_log.writes == 1
    assert logs[2].has_pending and logs[2].writes == 0  # kept for the next flush
    store.close()


def test_a_large_flush_lets_other_greenlets_run_between_its_writes(tmp_path):
    # SQLite calls block the process: one call for every session would hold every
    # stream until it returns
    store = PeeweePersistence(f"sqlite:///{tmp_path / 'db.sqlite'}")
    logs = []
    for i in range(FLUSH_GROUP * 3):
        event_log = EventLog(f"ses_{i}", store)
        event_log.append(
            BLOCK_DELTA, {"conversationId": "main", "blockId": "b", "delta": "x"}
        )
        logs.append(event_log)
    ticks = []
    ticker = gevent.spawn(
        lambda: [(ticks.append(1), gevent.sleep(0)) for _ in range(100)]
    )

    assert flush_logs(logs) == len(logs)

    assert len(ticks) >= 2, "the ticker ran between the flush's writes"
    assert all(store.list_events(lg.session_id) for lg in logs)
    ticker.kill()
    store.close()
