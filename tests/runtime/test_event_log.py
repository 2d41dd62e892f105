"""The event log: seq numbering, delta coalescing in storage, replay without gap or duplicate."""

import gc

import gevent

from agent_server.errors import TurnInterrupted
from agent_server.events import names
from agent_server.events.log import Event, EventLog, stored_events_after
from agent_server.events.names import BLOCK_DELTA
from agent_server.persistence.memory_persistence import InMemoryPersistence
from agent_server.persistence.peewee_persistence import PeeweePersistence


def _emit_turn(log, block="b1", deltas=10):
    log.append(names.BLOCK_START, {"conversationId": "main", "block": {"id": block}})
    for i in range(deltas):
        log.append(
            names.BLOCK_DELTA,
            {"conversationId": "main", "blockId": block, "delta": f"t{i} "},
        )
    log.append(names.BLOCK_COMPLETE, {"conversationId": "main", "block": {"id": block}})


def test_seq_rises_by_one_per_event_and_continues_after_reload():
    store = InMemoryPersistence()
    log = EventLog("s1", store)
    _emit_turn(log)
    assert log.last_seq == 12
    log.flush()
    again = EventLog("s1", store, last_seq=store.last_event_seq("s1"))
    assert again.append(names.STATUS, {}).seq == 13


def test_deltas_are_coalesced_into_one_stored_row_per_run():
    store = InMemoryPersistence()
    log = EventLog("s1", store)
    _emit_turn(log, deltas=1000)
    log.flush()
    rows = store.list_events("s1")
    assert [r.name for r in rows] == [
        names.BLOCK_START,
        names.BLOCK_DELTA,
        names.BLOCK_COMPLETE,
    ]
    assert len(rows[1].data["deltas"]) == 1000
    assert log.writes == 1


def test_replay_from_storage_yields_every_delta_with_its_own_seq():
    store = InMemoryPersistence()
    log = EventLog("s1", store)
    _emit_turn(log, "b1", 5)
    _emit_turn(log, "b2", 5)
    log.flush()
    for after in range(0, 15):
        replay = stored_events_after("s1", store, after)
        assert [e.seq for e in replay] == list(range(after + 1, 15))
    deltas = [
        e.data["delta"]
        for e in stored_events_after("s1", store, 0)
        if e.name == names.BLOCK_DELTA
    ]
    assert deltas == [f"t{i} " for i in range(5)] * 2


def test_replay_spans_storage_and_ring_when_the_ring_has_moved_on():
    store = InMemoryPersistence()
    log = EventLog("s1", store, ring_size=8)
    _emit_turn(
        log, "b1", 30
    )  # 32 events; the ring keeps the last 8, flushes as it goes
    _emit_turn(log, "b2", 3)
    for after in (0, 1, 5, 20, 31, 35, 36):
        assert [e.seq for e in log.events_after(after)] == list(range(after + 1, 38))


def test_a_flush_in_the_middle_of_a_delta_run_loses_nothing():
    store = InMemoryPersistence()
    log = EventLog("s1", store)
    log.append(names.BLOCK_START, {"conversationId": "main", "block": {"id": "b"}})
    log.append(
        names.BLOCK_DELTA, {"conversationId": "main", "blockId": "b", "delta": "a"}
    )
    log.flush()
    log.append(
        names.BLOCK_DELTA, {"conversationId": "main", "blockId": "b", "delta": "b"}
    )
    log.flush()
    replay = stored_events_after("s1", store, 0)
    assert [(e.seq, e.data.get("delta")) for e in replay] == [
        (1, None),
        (2, "a"),
        (3, "b"),
    ]


def test_wire_form_is_the_documented_envelope():
    import json

    log = EventLog("s1", InMemoryPersistence())
    event = log.append(names.ERROR, {"code": "x", "message": "y"})
    assert json.loads(event.wire) == {
        "event": "error",
        "sessionId": "s1",
        "seq": 1,
        "data": {"code": "x", "message": "y"},
    }


def test_a_full_ring_of_text_deltas_adds_nothing_for_the_garbage_collector():
    # every object the collector tracks makes each full collection (a pause of the
    # whole server) longer; 100 streaming sessions keep ~400,000 events in rings
    log = EventLog("ses_gc", InMemoryPersistence(), ring_size=2000)
    gc.collect()
    before = len(gc.get_objects())
    for i in range(2000):
        log.append(
            BLOCK_DELTA, {"conversationId": "main", "blockId": "b", "delta": f"d{i}"}
        )
    gc.collect()
    assert len(gc.get_objects()) - before < 100
    replayed = log.events_after(1990)
    assert [e.data["delta"] for e in replayed] == [f"d{i}" for i in range(1990, 2000)]
    assert replayed[0].wire == Event("ses_gc", 1991, BLOCK_DELTA, replayed[0].data).wire


def test_subscribers_get_events_in_seq_order_while_a_forced_flush_waits(pg_url):
    # PostgreSQL writes wait cooperatively: another greenlet appends meanwhile
    store = PeeweePersistence(pg_url)
    published = []
    log = EventLog(
        "s1", store, on_event=lambda e: published.append(e.seq), ring_size=16
    )

    def turn():
        for i in range(8):  # the 8th append has to store the 8 (half the ring)
            log.append(names.BLOCK_COMPLETE, {"i": i})

    def other():  # e.g. a sandbox status or a workspace scan
        log.append(names.STATUS, {})

    try:
        gevent.joinall([gevent.spawn(turn), gevent.spawn(other)], raise_error=True)
        assert published == list(range(1, 10))
    finally:
        store.close()


class SlowToConfirm(InMemoryPersistence):
    """Stores at once, then takes a while to return (a COMMIT whose reply is slow)."""

    def append_events(self, session_id, events):
        super().append_events(session_id, events)
        gevent.sleep(0.05)


def test_a_flush_whose_caller_is_killed_still_counts_its_rows_as_stored():
    store = SlowToConfirm()
    log = EventLog("s1", store)
    for i in range(3):
        log.append(names.BLOCK_COMPLETE, {"i": i})
    flusher = gevent.spawn(log.flush)
    gevent.sleep(0.01)
    flusher.kill(TurnInterrupted("interrupted by user"))  # the turn is interrupted

    log.append(names.BLOCK_COMPLETE, {"i": 3})
    log.flush()  # rows put back as unstored would clash with the stored ones here
    assert [r.seq for r in store.list_events("s1")] == [1, 2, 3, 4]
    assert not log.has_pending
