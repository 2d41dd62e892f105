"""Model errors: SDK retries, loop retries of broken streams, failed turns that leave
the session usable."""

from __future__ import annotations

import pytest

from agent_server.devtools.fake_anthropic import cut, error, reply, stream_error, text
from agent_server.events import names


def assert_valid_messages(messages):
    """Roles alternate, starting with user, and no message is empty."""
    assert messages[0]["role"] == "user"
    for a, b in zip(messages, messages[1:], strict=False):
        assert a["role"] != b["role"]
    assert all(m["content"] for m in messages)


def assert_usable(loop, agent_fake):
    agent_fake.enqueue(reply(text("back again")))
    outcome = loop.run_turn("are you there?", message_id="later")
    assert outcome.status == "completed"
    sent = agent_fake.requests[-1].json["messages"]
    assert_valid_messages(sent)
    assert sent[-1]["content"][-1]["text"] == "are you there?"


@pytest.mark.parametrize("status", [429, 529, 500])
def test_sdk_retries_before_the_stream(loop_factory, agent_fake, status):
    agent_fake.enqueue(error(status, retry_after=0), reply(text("fine")))
    loop, rec = loop_factory(max_retries=2)

    outcome = loop.run_turn("hi", message_id="m1")

    assert outcome.status == "completed"
    assert len(agent_fake.requests) == 2
    assert rec.completed_blocks("assistant_text")[0]["content"] == "fine"
    assert rec.of(names.ERROR) == []


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (529, "overloaded"),
        (500, "api_error"),
        (429, "rate_limited"),
        (400, "invalid_request"),
    ],
)
def test_errors_after_sdk_retries_fail_the_turn(loop_factory, agent_fake, status, code):
    agent_fake.enqueue(error(status, retry_after=0))
    loop, rec = loop_factory(max_retries=0)

    outcome = loop.run_turn("hi", message_id="m1")

    assert outcome.status == "failed" and outcome.reason == code
    assert (
        len(agent_fake.requests) == 1
    )  # the loop does not retry what the SDK gave up on
    assert rec.names()[-1] == names.TURN_FAILED
    assert rec.of(names.TURN_FAILED)[0]["reason"] == code
    assert rec.completed_blocks("error")[0]["code"] == code
    assert_usable(loop, agent_fake)


def test_authentication_error_names_the_cause(loop_factory, agent_fake):
    agent_fake.enqueue(error(401, "invalid x-api-key"))
    loop, rec = loop_factory()

    outcome = loop.run_turn("hi", message_id="m1")

    assert outcome.status == "failed" and outcome.reason == "authentication_error"
    [err] = rec.of(names.ERROR)
    assert err["code"] == "authentication_error"
    assert (
        "invalid x-api-key" in err["message"] and "ANTHROPIC_API_KEY" in err["message"]
    )
    [block] = rec.completed_blocks("error")
    assert block["message"] == err["message"] and block["conversationId"] == "main"
    assert rec.names()[-3:] == [names.BLOCK_COMPLETE, names.ERROR, names.TURN_FAILED]
    assert_usable(loop, agent_fake)
    # the failed message is not lost: it goes with the next one
    first = agent_fake.requests[-1].json["messages"][0]["content"]
    assert [b["text"] for b in first] == ["hi", "are you there?"]


def test_mid_stream_overload_is_retried(loop_factory, agent_fake):
    agent_fake.enqueue(
        stream_error("overloaded_error", after_events=4), reply(text("whole answer"))
    )
    loop, rec = loop_factory()

    outcome = loop.run_turn("hi", message_id="m1")

    assert outcome.status == "completed"
    texts = rec.completed_blocks("assistant_text")
    assert texts[-1]["content"] == "whole answer"
    # the broken attempt's block was completed (not left dangling), then a note
    assert len(texts) == 2 and texts[0]["id"] != texts[1]["id"]
    [note] = rec.completed_blocks("system")
    assert note["subtype"] == "retry" and "overloaded" in note["message"]
    starts = {d["block"]["id"] for d in rec.of(names.BLOCK_START)}
    completes = {d["block"]["id"] for d in rec.of(names.BLOCK_COMPLETE)}
    assert starts == completes
    assert loop.transcript.main.messages[-1]["content"] == [
        {"type": "text", "text": "whole answer"}
    ]


def test_non_retryable_mid_stream_error_fails(loop_factory, agent_fake):
    agent_fake.enqueue(
        stream_error("invalid_request_error", after_events=4, message="bad thing")
    )
    loop, rec = loop_factory()

    outcome = loop.run_turn("hi", message_id="m1")

    assert outcome.status == "failed" and outcome.reason == "invalid_request"
    assert "bad thing" in rec.of(names.ERROR)[0]["message"]
    assert len(agent_fake.requests) == 1
    assert_usable(loop, agent_fake)


def test_cut_stream_is_retried_and_succeeds(loop_factory, agent_fake):
    agent_fake.enqueue(cut(after_events=4), reply(text("second try")))
    loop, rec = loop_factory()

    outcome = loop.run_turn("hi", message_id="m1")

    assert outcome.status == "completed"
    assert len(agent_fake.requests) == 2
    assert (
        agent_fake.requests[0].json["messages"]
        == agent_fake.requests[1].json["messages"]
    )
    assert rec.completed_blocks("assistant_text")[-1]["content"] == "second try"


def test_cut_stream_after_retries_exhausted_fails(loop_factory, agent_fake):
    agent_fake.enqueue(cut(after_events=4), cut(after_events=4), cut(after_events=4))
    loop, rec = loop_factory(retry_delays=(0, 0))

    outcome = loop.run_turn("hi", message_id="m1")

    assert outcome.status == "failed" and outcome.reason == "stream_cut"
    assert len(agent_fake.requests) == 3
    assert len(rec.completed_blocks("system")) == 2
    assert rec.completed_blocks("error")[0]["code"] == "stream_cut"
    assert_usable(loop, agent_fake)


def test_failure_after_tools_keeps_the_results(loop_factory, agent_fake):
    from agent_server.devtools.fake_anthropic import tool_use

    agent_fake.enqueue(
        reply(tool_use("Bash", {"command": "echo hi"}, id="tu_1")),
        error(400, "nope"),
    )
    loop, _ = loop_factory()

    assert loop.run_turn("go", message_id="m1").status == "failed"
    assert_usable(loop, agent_fake)
    last = agent_fake.requests[-1].json["messages"][-1]["content"]
    assert last[0] == {"type": "tool_result", "tool_use_id": "tu_1", "content": "hi"}
