"""ModelStream's direct read of the chunked SSE body: splits, read timeout, reuse."""

from __future__ import annotations

import json
import time

import pytest

from agent_server.agent.model import ModelClient, _ChunkedSSE
from agent_server.devtools.fake_anthropic import FakeAnthropic, reply, text
from agent_server.errors import ModelError

USER = [{"role": "user", "content": "hi there"}]


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def test_events_survive_any_split_of_the_wire_bytes():
    events = [{"type": "message_start", "n": i, "text": "é\n"} for i in range(3)]
    sse = [
        b"event: a\ndata: " + json.dumps(events[0]).encode() + b"\n\n",
        b"event: b\r\ndata: " + json.dumps(events[1]).encode() + b"\r\n\r\n",
        b": comment\n\n",
        b"data: "
        + json.dumps(events[2]).encode()[:1]
        + b"\ndata:"
        + json.dumps(events[2]).encode()[1:]
        + b"\n\n",
    ]
    wire = chunked(sse[0][:7], sse[0][7:] + sse[1], sse[2], sse[3])
    for size in (1, 2, 3, 7, 64, len(wire)):
        body = _ChunkedSSE(None, None, b"")
        got = []
        for i in range(0, len(wire), size):
            body.feed(wire[i : i + size])
            got.extend(json.loads(d) for d in body.events())
        assert got == events, size
        assert body.ended


def test_a_stalled_stream_fails_after_the_read_timeout():
    with FakeAnthropic() as fake:
        fake.enqueue(reply(text("one two three four"), tokens_per_second=0.5))
        client = ModelClient(
            api_key="k", base_url=fake.base_url, max_retries=0, read_timeout=0.3
        )
        began = time.monotonic()
        with (
            pytest.raises(ModelError) as info,
            client.stream(
                model="m", max_tokens=10, system=None, messages=USER
            ) as stream,
        ):
            assert stream.direct
            list(stream)
        assert (info.value.code, info.value.retryable) == ("connection_error", True)
        assert time.monotonic() - began < 1.9  # the 2 s gap is not waited out


def test_streams_reuse_one_connection_and_read_directly():
    with FakeAnthropic() as fake:
        client = ModelClient(api_key="k", base_url=fake.base_url, max_retries=0)
        for _ in range(3):
            with client.stream(
                model="m", max_tokens=10, system=None, messages=USER
            ) as stream:
                kinds = [e["type"] for e in stream]
                # httpx2 internals moved if this fails: the slow path is in use
                assert stream.direct
            assert kinds[-1] == "message_stop"
        pool = client._client._client._transport._pool
        assert len(pool.connections) == 1
