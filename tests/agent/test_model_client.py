"""ModelClient against the fake Messages API: events, retries and every error class."""

from __future__ import annotations

import json
import socket
import time

import gevent
import pytest

from agent_server.agent.model import ModelClient
from agent_server.devtools.fake_anthropic import (
    FakeAnthropic,
    cut,
    error,
    reply,
    stream_error,
    text,
    thinking,
    tool_use,
)
from agent_server.errors import ModelError

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
def fake():
    with FakeAnthropic() as server:
        yield server


def make_client(fake, **overrides) -> ModelClient:
    options = {"api_key": "test-key", "base_url": fake.base_url, "max_retries": 0}
    return ModelClient(**(options | overrides))


def open_stream(client: ModelClient, messages=USER, **overrides):
    params = {"model": "claude-x", "max_tokens": 100, "system": "be brief"}
    return client.stream(messages=messages, **(params | overrides))


def collect(stream) -> tuple[list[dict], list[dict]]:
    """(events, content blocks) of a finished stream, built the way a loop would."""
    events, blocks = [], []
    with stream:
        for event in stream:
            events.append(event)
            if event["type"] == "content_block_start":
                blocks.append(dict(event["content_block"], partial=""))
            elif event["type"] == "content_block_delta":
                delta, block = event["delta"], blocks[event["index"]]
                for key in ("text", "thinking", "signature"):
                    if key in delta:
                        block[key] += delta[key]
                block["partial"] += delta.get("partial_json", "")
    for block in blocks:
        partial = block.pop("partial")
        if block["type"] == "tool_use":
            block["input"] = json.loads(partial)
    return events, blocks


def test_stream_yields_the_json_of_each_event(fake):
    fake.enqueue(
        reply(
            thinking("hmm", signature="sig"),
            text("Hello world"),
            tool_use("Write", {"file_path": "a.py", "content": "x"}, id="toolu_1"),
            cache_read_input_tokens=11,
        )
    )
    events, blocks = collect(open_stream(make_client(fake)))
    types = [e["type"] for e in events]
    assert types[0] == "message_start" and types[-2:] == [
        "message_delta",
        "message_stop",
    ]
    assert "ping" not in types
    assert blocks == [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "Hello world"},
        {
            "type": "tool_use",
            "id": "toolu_1",
            "name": "Write",
            "input": {"file_path": "a.py", "content": "x"},
        },
    ]
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    assert events[-2]["usage"]["cache_read_input_tokens"] == 11


def test_request_carries_system_tools_thinking_and_history(fake):
    client = make_client(fake)
    history = [
        {"role": "user", "content": "write it"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_9", "name": "Write", "input": {}}
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_9", "content": "ok"}
            ],
        },
    ]
    tools = [{"name": "Write", "description": "w", "input_schema": {"type": "object"}}]
    collect(
        open_stream(
            client,
            history,
            tools=tools,
            thinking={"type": "enabled", "budget_tokens": 1024},
            metadata={"user_id": "u1"},
        )
    )
    sent = fake.requests[-1]
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.json["stream"] is True and sent.json["system"] == "be brief"
    assert sent.json["messages"] == history
    assert sent.json["tools"] == tools
    assert sent.json["thinking"]["budget_tokens"] == 1024
    assert sent.json["metadata"] == {"user_id": "u1"}


@pytest.mark.parametrize(
    ("answer", "code", "status", "retryable"),
    [
        (error(400), "invalid_request", 400, False),
        (error(401), "authentication_error", 401, False),
        (error(403), "permission_error", 403, False),
        (error(429), "rate_limited", 429, True),
        (error(500), "api_error", 500, True),
        (error(529), "overloaded", 529, True),
    ],
)
def test_http_errors_map_to_model_errors(fake, answer, code, status, retryable):
    fake.enqueue(answer)
    with pytest.raises(ModelError) as info:
        open_stream(make_client(fake))
    assert (info.value.code, info.value.status, info.value.retryable) == (
        code,
        status,
        retryable,
    )
    if code == "authentication_error":
        assert "ANTHROPIC_API_KEY" in info.value.message


def test_sdk_retries_a_429_with_retry_after_then_succeeds(fake):
    fake.enqueue(error(429, retry_after=0), reply(text("after the wait")))
    _, blocks = collect(open_stream(make_client(fake, max_retries=3)))
    assert blocks == [{"type": "text", "text": "after the wait"}]
    assert len(fake.requests) == 2


def test_retries_give_up_after_max_retries(fake):
    fake.enqueue(*[error(529, retry_after=0.01)] * 3)
    with pytest.raises(ModelError) as info:
        open_stream(make_client(fake, max_retries=2))
    assert info.value.code == "overloaded"
    assert len(fake.requests) == 3


@pytest.mark.parametrize(
    ("error_type", "code", "retryable"),
    [
        ("overloaded_error", "overloaded", True),
        ("api_error", "api_error", True),
        ("invalid_request_error", "invalid_request", False),
    ],
)
def test_error_event_mid_stream(fake, error_type, code, retryable):
    fake.enqueue(stream_error(error_type, after_events=4))
    seen = []
    with pytest.raises(ModelError) as info, open_stream(make_client(fake)) as stream:
        seen.extend(e["type"] for e in stream)
    assert seen == ["message_start", "content_block_start", "content_block_delta"]
    assert (info.value.code, info.value.retryable) == (code, retryable)


def test_cut_stream_is_a_retryable_stream_cut(fake):
    fake.enqueue(cut(after_events=6))
    seen = []
    with pytest.raises(ModelError) as info, open_stream(make_client(fake)) as stream:
        seen.extend(e["type"] for e in stream)
    assert seen[0] == "message_start" and len(seen) == 5  # the ping is not yielded
    assert (info.value.code, info.value.retryable) == ("stream_cut", True)


def test_unreachable_base_url_is_a_connection_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens
    client = ModelClient(
        api_key="k", base_url=f"http://127.0.0.1:{port}", max_retries=0
    )
    with pytest.raises(ModelError) as info:
        open_stream(client)
    assert (info.value.code, info.value.retryable) == ("connection_error", True)
    assert "ANTHROPIC_BASE_URL" in info.value.message


def test_close_from_another_greenlet_stops_the_stream_quietly(fake):
    fake.enqueue(reply(text("word " * 200), tokens_per_second=100))
    stream = open_stream(make_client(fake))
    seen = []

    def read():
        for event in stream:
            seen.append(event)

    reader = gevent.spawn(read)
    gevent.sleep(0.1)
    stream.close()
    reader.join(timeout=5)
    assert reader.successful()
    assert 0 < len(seen) < 100
    assert seen[-1]["type"] != "message_stop"


def test_100_concurrent_streams_complete(fake):
    client = make_client(fake)
    fake.tokens_per_second = 100  # 10 deltas each: 0.1 s per stream
    words = " ".join(f"w{i}" for i in range(10))

    def one(n):
        _, blocks = collect(
            open_stream(client, [{"role": "user", "content": f"{n} {words}"}])
        )
        return blocks[0]["text"]

    began = time.monotonic()
    jobs = [gevent.spawn(one, n) for n in range(100)]
    gevent.joinall(jobs, timeout=30, raise_error=True)
    elapsed = time.monotonic() - began
    assert [job.value for job in jobs] == [f"You said: {n} {words}" for n in range(100)]
    assert elapsed < 8  # one after another would take 100 × 0.1 s = 10 s and more


def test_missing_api_key_is_an_authentication_error(fake):
    client = ModelClient(api_key=None, base_url=fake.base_url)
    with pytest.raises(ModelError) as info:
        open_stream(client)
    assert info.value.code == "authentication_error" and not info.value.retryable
    assert "ANTHROPIC_API_KEY" in info.value.message
    assert fake.requests == []
