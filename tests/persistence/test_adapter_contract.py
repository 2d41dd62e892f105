"""The PersistenceAdapter contract, run against every bundled adapter."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from types import MappingProxyType

import pytest

from agent_server.persistence.memory_persistence import InMemoryPersistence
from agent_server.persistence.peewee_persistence import PeeweePersistence
from agent_server.persistence.types import (
    AgentProfile,
    SessionRecord,
    StoredEvent,
    SubagentDefinition,
    WorkspaceFile,
)

T0 = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=timezone.utc)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def kind(request):
    return request.param


@pytest.fixture
def open_adapter(kind, tmp_path, request):
    """A function that opens (or reopens) an adapter on this test's database."""
    opened = []
    if kind == "memory":
        store = InMemoryPersistence()
        url = None
    elif kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("pg_url")

    def open_():
        adapter = store if url is None else PeeweePersistence(url)
        opened.append(adapter)
        return adapter

    yield open_
    for adapter in opened:
        adapter.close()


@pytest.fixture
def store(open_adapter):
    return open_adapter()


def make_record(session_id="s1", **overrides) -> SessionRecord:
    values = dict(
        session_id=session_id,
        agent_profile_id="default",
        name="First session",
        created_at=T0,
        last_activity=T0 + timedelta(seconds=1),
        metadata={"user": "ada", "tags": ["a", "b"], "nested": {"n": 1.5}},
        options={"model": "claude-x", "maxTurns": 3},
    )
    values.update(overrides)
    return SessionRecord(**values)


# -- sessions ---------------------------------------------------------------------------


def test_created_record_loads_back_equal(store):
    record = make_record(name="Ünïcode ✓ 名前")
    store.create_session_record(record)

    data = store.load_session("s1")
    assert data.record == record
    assert data.record.created_at.tzinfo == timezone.utc
    assert data.record.created_at.microsecond == 123456
    assert data.raw_transcript is None
    assert data.workspace_files == ()


def test_unknown_session_loads_as_none(store):
    assert store.load_session("missing") is None


def test_creating_an_existing_id_raises_value_error(store):
    store.create_session_record(make_record())
    with pytest.raises(ValueError, match="s1"):
        store.create_session_record(make_record(name="again"))
    assert store.load_session("s1").record.name == "First session"


def test_sessions_are_listed_oldest_first(store):
    for i, minutes in enumerate([5, 1, 3, 0, 4]):
        store.create_session_record(
            make_record(f"s{i}", created_at=T0 + timedelta(minutes=minutes))
        )
    listed = store.list_all_sessions()
    assert [r.session_id for r in listed] == ["s3", "s1", "s2", "s4", "s0"]
    assert listed[0] == make_record("s3", created_at=T0)


def test_datetimes_in_other_zones_come_back_as_the_same_instant_in_utc(store):
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2025, 1, 1, 12, 0, 0, 999999, tzinfo=plus_two)
    store.create_session_record(make_record(created_at=local))
    created = store.load_session("s1").record.created_at
    assert created == local
    assert created.tzinfo == timezone.utc
    assert created.hour == 10


def test_update_changes_only_the_named_fields(store):
    store.create_session_record(make_record())
    later = T0 + timedelta(hours=1, microseconds=7)
    store.update_session_record("s1", last_activity=later, metadata={"x": [1, None]})

    record = store.load_session("s1").record
    assert record == make_record(last_activity=later, metadata={"x": [1, None]})

    store.update_session_record("s1", name=None, agent_profile_id="coder", options={})
    record = store.load_session("s1").record
    assert (record.name, record.agent_profile_id, record.options) == (None, "coder", {})
    assert record.metadata == {"x": [1, None]}
    assert record.last_activity == later


def test_update_of_an_unknown_session_raises_key_error(store):
    with pytest.raises(KeyError):
        store.update_session_record("missing", name="x")
    with pytest.raises(KeyError):
        store.update_session_record("missing")


@pytest.mark.parametrize("field", ["created_at", "transcript", "colour"])
def test_update_of_a_field_that_cannot_change_raises_value_error(store, field):
    store.create_session_record(make_record())
    with pytest.raises(ValueError, match=field):
        store.update_session_record("s1", **{field: "x"})
    assert store.load_session("s1").record == make_record()


def test_metadata_that_is_not_json_is_refused(store):
    with pytest.raises(ValueError, match="metadata"):
        store.create_session_record(make_record(metadata={"when": object()}))
    assert store.load_session("s1") is None


def test_changing_a_returned_record_does_not_change_the_store(store):
    store.create_session_record(make_record())
    store.load_session("s1").record.metadata["user"] = "mallory"
    store.list_all_sessions()[0].options["model"] = "other"
    record = store.load_session("s1").record
    assert record.metadata["user"] == "ada"
    assert record.options["model"] == "claude-x"


# -- transcripts and files ------------------------------------------------------------------


def test_saving_a_transcript_replaces_the_previous_one(store):
    store.create_session_record(make_record())
    store.save_transcript("s1", '[{"role": "user", "content": "hi"}]')
    store.save_transcript("s1", '[{"role": "user", "content": "héllo ✓"}]')
    assert store.load_session("s1").raw_transcript == (
        '[{"role": "user", "content": "héllo ✓"}]'
    )


def test_saving_for_an_unknown_session_raises_key_error(store):
    with pytest.raises(KeyError):
        store.save_transcript("missing", "[]")
    with pytest.raises(KeyError):
        store.save_workspace_file("missing", WorkspaceFile("a.txt", "a"))


def test_workspace_files_round_trip_text_binary_and_large(store):
    store.create_session_record(make_record())
    binary = bytes(range(256)) + b"\x00\x00end"
    big = ("0123456789abcdef" * 65536).encode()  # 1 MiB
    files = [
        WorkspaceFile("notes/ünïcode.md", "# Títle ✓ 名前\n", "utf-8", 20, T0),
        WorkspaceFile.from_bytes("bin/data.bin", binary, modified_at=T0),
        WorkspaceFile.from_bytes("nul.txt", b"a\x00b", modified_at=T0),
        WorkspaceFile.from_bytes("big.txt", big, modified_at=T0),
    ]
    for file in files:
        store.save_workspace_file("s1", file)

    loaded = {f.path: f for f in store.load_session("s1").workspace_files}
    assert loaded == {f.path: f for f in files}
    assert loaded["bin/data.bin"].encoding == "base64"
    assert loaded["bin/data.bin"].data == binary
    assert loaded["nul.txt"].data == b"a\x00b"
    assert len(loaded["big.txt"].data) == 1024 * 1024


def test_saving_a_file_at_the_same_path_replaces_it(store):
    store.create_session_record(make_record())
    store.save_workspace_file("s1", WorkspaceFile("a.txt", "one", modified_at=T0))
    newer = WorkspaceFile.from_bytes("a.txt", b"\xff\xfe", modified_at=T0)
    store.save_workspace_file("s1", newer)
    assert store.load_session("s1").workspace_files == (newer,)


def test_deleting_files(store):
    store.create_session_record(make_record())
    store.save_workspace_file("s1", WorkspaceFile("a.txt", "a", modified_at=T0))
    store.save_workspace_file("s1", WorkspaceFile("b.txt", "b", modified_at=T0))
    store.delete_session_file("s1", "a.txt")
    store.delete_session_file("s1", "a.txt")  # already gone: not an error
    store.delete_session_file("missing", "b.txt")
    assert [f.path for f in store.load_session("s1").workspace_files] == ["b.txt"]


def test_files_of_one_session_stay_out_of_another(store):
    store.create_session_record(make_record("s1"))
    store.create_session_record(make_record("s2"))
    store.save_workspace_file("s1", WorkspaceFile("a.txt", "one", modified_at=T0))
    store.save_workspace_file("s2", WorkspaceFile("a.txt", "two", modified_at=T0))
    assert store.load_session("s1").workspace_files[0].content == "one"
    assert store.load_session("s2").workspace_files[0].content == "two"


# -- event log ---------------------------------------------------------------------------


def events(*seqs, name="session:block:delta"):
    return [StoredEvent(s, name, {"seq": s, "text": f"é{s}"}) for s in seqs]


def test_events_are_listed_after_a_seq_in_order(store):
    store.append_events("s1", events(1, 2, 3))
    store.append_events("s1", events(4, 5))
    store.append_events("s2", events(1))

    assert store.list_events("s1") == events(1, 2, 3, 4, 5)
    assert store.list_events("s1", after_seq=3) == events(4, 5)
    assert store.list_events("s1", after_seq=1, limit=2) == events(2, 3)
    assert store.list_events("s1", after_seq=5) == []
    assert store.list_events("s2") == events(1)
    assert store.list_events("missing") == []
    assert store.last_event_seq("s1") == 5
    assert store.last_event_seq("missing") == 0


def test_a_seq_already_stored_is_refused(store):
    store.append_events("s1", events(1, 2))
    with pytest.raises(ValueError):
        store.append_events("s1", events(2, 3))
    assert store.list_events("s1") == events(1, 2)


def test_many_events_in_one_append(store):
    store.append_events("s1", events(*range(1, 1201)))
    rows = store.list_events("s1", after_seq=1000)
    assert [e.seq for e in rows] == list(range(1001, 1201))


def test_event_data_may_be_any_mapping_and_comes_back_a_dict(store):
    data = MappingProxyType({"text": "hé", "nested": {"n": [1, 2]}})
    store.append_events("s1", [StoredEvent(1, "x", data)])
    store.append_events_many({"s2": [StoredEvent(1, "x", data)]})
    for sid in ("s1", "s2"):
        assert store.list_events(sid)[0].data == {"text": "hé", "nested": {"n": [1, 2]}}


# -- deleting a session --------------------------------------------------------------------


def test_delete_session_purges_record_transcript_files_and_events(store):
    store.create_session_record(make_record("s1"))
    store.create_session_record(make_record("s2"))
    for sid in ("s1", "s2"):
        store.save_transcript(sid, "[]")
        store.save_workspace_file(sid, WorkspaceFile("a.txt", "a", modified_at=T0))
        store.append_events(sid, events(1, 2))

    store.delete_session("s1")
    store.delete_session("never-existed")

    assert store.load_session("s1") is None
    assert store.list_events("s1") == []
    assert [r.session_id for r in store.list_all_sessions()] == ["s2"]
    assert store.load_session("s2").raw_transcript == "[]"
    assert store.list_events("s2") == events(1, 2)

    # the id is free again, and nothing of the old session comes back with it
    store.create_session_record(make_record("s1", name="new"))
    data = store.load_session("s1")
    assert (data.record.name, data.raw_transcript, data.workspace_files) == (
        "new",
        None,
        (),
    )


# -- agent profiles ------------------------------------------------------------------------


def make_profile(profile_id="coder", **overrides) -> AgentProfile:
    values = dict(
        id=profile_id,
        name="Coder",
        description="Writes code",
        system_prompt="You write code in /workspace.",
        model="claude-x",
        tools=("Read", "Task"),
        subagents=(SubagentDefinition("helper", "Helps", "Help.", ("Read",)),),
        default_workspace_files=(
            WorkspaceFile("README.md", "hi ✓", size=6, modified_at=T0),
            WorkspaceFile(
                "logo.bin",
                base64.b64encode(b"\x00\x01").decode(),
                "base64",
                size=2,
                modified_at=T0,
            ),
        ),
        environment_variables={"MODE": "strict"},
        max_turns=7,
        max_budget_usd=1.25,
        agent_md="# Rules",
        max_tokens=4096,
        thinking_budget_tokens=2048,
    )
    values.update(overrides)
    return AgentProfile(**values)


def test_stored_profiles_are_listed_and_loaded(store):
    assert store.list_agent_profiles() == []
    assert store.load_agent_profile("coder") is None

    store.save_agent_profile(make_profile())
    store.save_agent_profile(make_profile("basic", name="Basic", description=None))

    listed = sorted(store.list_agent_profiles(), key=lambda s: s.id)
    assert [(s.id, s.name, s.description) for s in listed] == [
        ("basic", "Basic", None),
        ("coder", "Coder", "Writes code"),
    ]
    loaded = store.load_agent_profile("coder")
    expected = make_profile()
    # modified_at of a profile's default files is not part of the profile
    assert _without_file_times(loaded) == _without_file_times(expected)


def _without_file_times(profile: AgentProfile) -> AgentProfile:
    files = tuple(replace(f, modified_at=T0) for f in profile.default_workspace_files)
    return replace(profile, default_workspace_files=files)


def test_memory_adapter_serves_the_profiles_it_was_given():
    store = InMemoryPersistence(profiles=[make_profile()])
    assert [s.id for s in store.list_agent_profiles()] == ["coder"]
    assert store.load_agent_profile("coder") == make_profile()


# -- reopening -------------------------------------------------------------------------------


def test_a_reopened_store_sees_everything(kind, open_adapter):
    if kind == "memory":
        pytest.skip("an in-memory store does not outlive its process")
    first = open_adapter()
    first.create_session_record(make_record())
    first.save_transcript("s1", '["turn"]')
    first.save_workspace_file("s1", WorkspaceFile("a.txt", "a", modified_at=T0))
    first.append_events("s1", events(1, 2))
    first.save_agent_profile(make_profile())
    first.close()

    second = open_adapter()
    data = second.load_session("s1")
    assert data.record == make_record()
    assert data.raw_transcript == '["turn"]'
    assert [f.content for f in data.workspace_files] == ["a"]
    assert second.list_events("s1") == events(1, 2)
    assert second.load_agent_profile("coder").name == "Coder"
