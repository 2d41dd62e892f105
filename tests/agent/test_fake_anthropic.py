"""The fake Messages API speaks the real protocol: the real anthropic SDK agrees."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import anthropic
import httpx2
import pytest

from agent_server.devtools.fake_anthropic import (
    DEMO_MODEL,
    FakeAnthropic,
    error,
    reply,
    stamped,
    text,
    thinking,
    tool_use,
)

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
def fake():
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
def sdk(fake):
    client = anthropic.Anthropic(
        api_key="test-key", base_url=fake.base_url, max_retries=0
    )
    yield client
    client.close()


def raw_events(fake, body: dict, **headers) -> list[tuple[str, dict]]:
    """POST a streamed request with plain httpx and return (event, data) pairs."""
    headers.setdefault("x-api-key", "k")
    response = httpx2.post(f"{fake.base_url}/v1/messages", json=body, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for chunk in response.text.split("\n\n"):
        if chunk.strip():
            name, data = chunk.split("\n")
            events.append((name.removeprefix("event: "), json.loads(data[6:])))
    return events


def test_stream_helper_accumulates_text_thinking_and_tool_use(fake, sdk):
    fake.enqueue(
        reply(
            thinking("let me think", signature="sig-abc"),
            text("Hello there, world", chunks=3),
            tool_use("Write", {"file_path": "a.py", "content": "print(1)"}, chunks=4),
            input_tokens=120,
            output_tokens=45,
            cache_read_input_tokens=100,
            cache_creation_input_tokens=7,
        )
    )
    with sdk.messages.stream(model="claude-x", max_tokens=100, messages=USER) as stream:
        deltas = list(stream.text_stream)
        message = stream.get_final_message()

    assert len(deltas) == 3 and "".join(deltas) == "Hello there, world"
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[0].thinking == "let me think"
    assert message.content[0].signature == "sig-abc"
    assert message.content[1].text == "Hello there, world"
    assert message.content[2].name == "Write"
    assert message.content[2].input == {"file_path": "a.py", "content": "print(1)"}
    assert message.content[2].id.startswith("toolu_")
    assert message.stop_reason == "tool_use"
    assert message.model == "claude-x"
    assert message.id.startswith("msg_")
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (120, 45)
    assert usage.cache_read_input_tokens == 100
    assert usage.cache_creation_input_tokens == 7


def test_non_streamed_create_returns_a_full_message(fake, sdk):
    fake.enqueue(
        reply(text("Done."), tool_use("Bash", {"command": "ls"}, id="toolu_given"))
    )
    message = sdk.messages.create(model="claude-x", max_tokens=100, messages=USER)
    assert message.content[0].text == "Done."
    assert message.content[1].id == "toolu_given"
    assert message.content[1].input == {"command": "ls"}
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens > 0


def test_wire_sequence_matches_the_protocol(fake):
    fake.enqueue(
        reply(
            text("ab cd"),
            tool_use("Edit", {"old": "x" * 40, "new": "y"}, chunks=5),
            stop_reason="tool_use",
            output_tokens=9,
        )
    )
    events = raw_events(
        fake, {"model": "m", "max_tokens": 5, "messages": USER, "stream": True}
    )

    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert all(name == data["type"] for name, data in events)
    start = events[0][1]["message"]
    assert start["content"] == [] and start["role"] == "assistant"
    assert start["stop_reason"] is None and "input_tokens" in start["usage"]
    pieces = [
        d["delta"]["partial_json"]
        for _, d in events
        if d["type"] == "content_block_delta" and d["index"] == 1
    ]
    assert len(pieces) >= 5
    assert json.loads("".join(pieces)) == {"old": "x" * 40, "new": "y"}
    final = events[-2][1]
    assert final["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert final["usage"]["output_tokens"] == 9


@pytest.mark.parametrize(
    ("status", "etype"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
    ],
)
def test_errors_have_anthropics_shape(fake, status, etype):
    fake.enqueue(error(status, "nope", retry_after=3))
    response = httpx2.post(
        f"{fake.base_url}/v1/messages",
        json={"model": "m", "max_tokens": 5, "messages": USER},
        headers={"x-api-key": "k"},
    )
    assert response.status_code == status
    assert response.headers["retry-after"] == "3"
    body = response.json()
    assert body["type"] == "error"
    assert body["error"] == {"type": etype, "message": "nope"}
    assert body["request_id"].startswith("req_")


def test_sdk_raises_its_own_error_types(fake, sdk):
    fake.enqueue(error(400), error(529))
    with pytest.raises(anthropic.BadRequestError):
        sdk.messages.create(model="m", max_tokens=5, messages=USER)
    with pytest.raises(anthropic.InternalServerError) as info:
        sdk.messages.create(model="m", max_tokens=5, messages=USER)
    assert info.value.status_code == 529


def test_bearer_and_x_api_key_are_both_accepted(fake):
    fake.api_key = "secret"
    body = {"model": "m", "max_tokens": 5, "messages": USER, "stream": True}
    assert raw_events(fake, body, **{"x-api-key": "secret"})[-1][0] == "message_stop"
    bearer = raw_events(
        fake, body, **{"x-api-key": "", "authorization": "Bearer secret"}
    )
    assert bearer[-1][0] == "message_stop"
    wrong = anthropic.Anthropic(api_key="wrong", base_url=fake.base_url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        wrong.messages.create(model="m", max_tokens=5, messages=USER)
    assert fake.requests[-1].headers["authorization"] == "Bearer wrong"


def test_beta_query_string_is_accepted(fake, sdk):
    # Claude Code and older SDKs call POST /v1/messages?beta=true
    message = sdk.beta.messages.create(
        model="m", max_tokens=5, messages=USER, extra_query={"beta": "true"}
    )
    assert message.content[0].text == "You said: hi"
    assert fake.requests[-1].path == "/v1/messages"
    assert fake.requests[-1].query == {"beta": "true"}


def test_requests_are_recorded_and_reset(fake, sdk):
    tools = [{"name": "Bash", "description": "run", "input_schema": {"type": "object"}}]
    sdk.messages.create(
        model="m", max_tokens=5, system="be brief", messages=USER, tools=tools
    )
    recorded = fake.requests[-1]
    assert recorded.method == "POST"
    assert recorded.json["system"] == "be brief"
    assert recorded.json["tools"][0]["name"] == "Bash"
    assert recorded.headers["content-type"] == "application/json"
    fake.enqueue(reply(text("unused")))
    fake.reset()
    assert fake.requests == [] and fake.pending == 0


def test_echo_mode_quotes_the_last_user_text(fake, sdk):
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
    ]
    message = sdk.messages.create(model="m", max_tokens=5, messages=messages)
    assert message.content[0].text == "You said: second"


def test_demo_mode_writes_runs_and_answers(sdk, fake):
    fake.mode = "demo"
    tools = [
        {"name": n, "description": n, "input_schema": {"type": "object"}}
        for n in ("Write", "Bash")
    ]
    messages: list = [{"role": "user", "content": "show me something"}]
    first = sdk.messages.create(
        model="m", max_tokens=50, messages=messages, tools=tools
    )
    assert first.model == DEMO_MODEL and "offline demo model" in first.content[0].text
    write = first.content[1]
    assert (write.name, write.input["file_path"]) == ("Write", "hello.py")
    assert first.stop_reason == "tool_use"

    messages += [
        {
            "role": "assistant",
            "content": [b.model_dump(exclude_none=True) for b in first.content],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": write.id, "content": "ok"}
            ],
        },
    ]
    second = sdk.messages.create(
        model="m", max_tokens=50, messages=messages, tools=tools
    )
    bash = second.content[-1]
    assert (bash.name, bash.input) == ("Bash", {"command": "python3 hello.py"})

    messages += [
        {
            "role": "assistant",
            "content": [b.model_dump(exclude_none=True) for b in second.content],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": bash.id, "content": "Hello 42\n"}
            ],
        },
    ]
    third = sdk.messages.create(
        model="m", max_tokens=50, messages=messages, tools=tools
    )
    assert third.stop_reason == "end_turn"
    assert "Hello 42" in third.content[0].text
    assert "offline demo model" in third.content[0].text


def test_stamped_deltas_carry_their_send_time_at_the_set_rate(fake):
    fake.enqueue(reply(stamped(deltas=5, size=40), tokens_per_second=50))
    began = time.time()
    events = raw_events(
        fake, {"model": "m", "max_tokens": 5, "messages": USER, "stream": True}
    )
    deltas = [
        d["delta"]["text"] for _, d in events if d["type"] == "content_block_delta"
    ]
    assert len(deltas) == 5 and all(len(d) == 40 for d in deltas)
    stamps = [float(re.match(r"<t:([0-9.]+?)>", d)[1]) for d in deltas]
    assert began <= stamps[0] <= stamps[-1] <= time.time()
    assert stamps[-1] - stamps[0] >= 4 * 0.02 * 0.8  # 50/s: 20 ms apart


def test_cli_serves_the_demo_from_its_own_process(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent_server.devtools.fake_anthropic", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().split()[-1]
        assert url.startswith("http://127.0.0.1:")
        client = anthropic.Anthropic(api_key="k", base_url=url, max_retries=0)
        with client.messages.stream(
            model="m",
            max_tokens=50,
            messages=USER,
            tools=[
                {"name": "Write", "input_schema": {"type": "object"}},
                {"name": "Bash", "input_schema": {"type": "object"}},
            ],
        ) as stream:
            message = stream.get_final_message()
        assert message.model == DEMO_MODEL
        assert message.content[-1].name == "Write"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize(
    ("path", "headers", "body", "status", "etype"),
    [
        ("/v1/complete", {"x-api-key": "k"}, {}, 404, "not_found_error"),
        (
            "/v1/messages",
            {},
            {"model": "m", "max_tokens": 5, "messages": USER},
            401,
            "authentication_error",
        ),
        (
            "/v1/messages",
            {"x-api-key": "k"},
            {"model": "m"},
            400,
            "invalid_request_error",
        ),
    ],
)
def test_requests_the_real_api_would_refuse(fake, path, headers, body, status, etype):
    response = httpx2.post(f"{fake.base_url}{path}", json=body, headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["type"] == etype
    assert fake.pending == 0 and len(fake.requests) == 1
