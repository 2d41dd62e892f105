"""Scripted answers of the fake Messages API and how they go on the wire.

Builders (``reply``, ``text``, ``thinking``, ``tool_use``, ``stamped``, ``error``,
``stream_error``, ``cut``) are documented in ``fake_anthropic``, which re-exports them.
``echo_reply`` and ``demo_reply`` answer when no scripted answer is queued.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gevent

DEMO_MODEL = "agent-server-demo"
DEMO_SCRIPT = 'print("Hello from the agent-server offline demo!")\n'

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class Block:
    """One content block of a scripted reply."""

    type: str  # text | thinking | tool_use | stamped
    text: str = ""
    chunks: int | None = None
    signature: str = ""
    name: str = ""
    input: Any = None
    id: str = ""
    size: int = 0

    def content(self) -> dict:
        """The block as it appears in a non-streamed Message."""
        if self.type == "thinking":
            return {
                "type": "thinking",
                "thinking": self.text,
                "signature": self.signature,
            }
        if self.type == "tool_use":
            return {
                "type": "tool_use",
                "id": self.id,
                "name": self.name,
                "input": self.input,
            }
        if self.type == "stamped":
            stamps = (stamp(self.size) for _ in range(self.chunks or 0))
            return {"type": "text", "text": "".join(stamps)}
        return {"type": "text", "text": self.text}

    def start(self) -> dict:
        """The ``content_block`` of its content_block_start event."""
        if self.type == "tool_use":
            return {"type": "tool_use", "id": self.id, "name": self.name, "input": {}}
        if self.type == "thinking":
            return {"type": "thinking", "thinking": "", "signature": ""}
        return {"type": "text", "text": ""}

    def deltas(self) -> Iterator[dict]:
        """Its content_block_delta payloads, made as they are sent (for the stamps)."""
        if self.type == "tool_use":
            pieces = ["", *split(json.dumps(self.input), self.chunks)]
            for piece in pieces:
                yield {"type": "input_json_delta", "partial_json": piece}
        elif self.type == "thinking":
            for piece in split(self.text, self.chunks):
                yield {"type": "thinking_delta", "thinking": piece}
            yield {"type": "signature_delta", "signature": self.signature}
        elif self.type == "stamped":
            for _ in range(self.chunks or 0):
                yield {"type": "text_delta", "text": stamp(self.size)}
        else:
            for piece in split(self.text, self.chunks):
                yield {"type": "text_delta", "text": piece}

    def output_chars(self) -> int:
        if self.type == "tool_use":
            return len(json.dumps(self.input))
        if self.type == "stamped":
            return self.size * (self.chunks or 0)
        return len(self.text)


@dataclass(frozen=True)
class Reply:
    """A scripted successful answer (streamed or not, as the request asks)."""

    blocks: tuple[Block, ...]
    stop_reason: str | None = None
    stop_sequence: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    model: str | None = None
    tokens_per_second: float | None = None


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP error answer with Anthropic's JSON error body."""

    status: int
    type: str
    message: str
    retry_after: float | None = None
    should_retry: bool | None = None


@dataclass(frozen=True)
class BrokenReply:
    """A stream that fails after ``after_events`` events: an error event, or a cut."""

    reply: Reply
    after_events: int
    error_type: str | None = None  # None: drop the connection
    message: str = ""


# ---- builders -------------------------------------------------------------------


def text(s: str, *, chunks: int | None = None) -> Block:
    """A text block, streamed as ``chunks`` deltas (default: one per word)."""
    return Block("text", text=s, chunks=chunks)


def thinking(
    s: str, *, signature: str | None = None, chunks: int | None = None
) -> Block:
    """A thinking block: thinking deltas, then one signature_delta."""
    sig = signature if signature is not None else "sig_" + secrets.token_urlsafe(24)
    return Block("thinking", text=s, chunks=chunks, signature=sig)


def tool_use(
    name: str, input: dict, *, id: str | None = None, chunks: int = 3
) -> Block:
    """A tool_use block; its input JSON is streamed in ``chunks`` arbitrary pieces."""
    return Block(
        "tool_use", name=name, input=input, id=id or new_id("toolu_"), chunks=chunks
    )


def stamped(deltas: int = 20, size: int = 32) -> Block:
    """A text block of ``deltas`` time-stamped deltas of ``size`` characters each."""
    return Block("stamped", chunks=deltas, size=size)


def reply(
    *blocks: Block | str,
    stop_reason: str | None = None,
    stop_sequence: str | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cache_read_input_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
    model: str | None = None,
    tokens_per_second: float | None = None,
) -> Reply:
    """A successful reply made of ``blocks`` (strings are taken as text blocks)."""
    made = tuple(text(b) if isinstance(b, str) else b for b in blocks)
    if stop_reason is None:
        has_tool = any(b.type == "tool_use" for b in made)
        stop_reason = "tool_use" if has_tool else "end_turn"
    return Reply(
        made,
        stop_reason=stop_reason,
        stop_sequence=stop_sequence,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_input_tokens=cache_read_input_tokens,
        cache_creation_input_tokens=cache_creation_input_tokens,
        model=model,
        tokens_per_second=tokens_per_second,
    )


def error(
    status: int,
    message: str | None = None,
    *,
    type: str | None = None,
    retry_after: float | None = None,
    should_retry: bool | None = None,
) -> ErrorReply:
    """An HTTP error; ``type`` defaults to Anthropic's type for ``status``."""
    default = "api_error" if status >= 500 else "invalid_request_error"
    etype = type or ERROR_TYPES.get(status, default)
    return ErrorReply(
        status, etype, message or f"fake {etype}", retry_after, should_retry
    )


def stream_error(
    error_type: str = "overloaded_error",
    *,
    after_events: int = 3,
    message: str | None = None,
    reply: Reply | None = None,
) -> BrokenReply:
    """A stream that sends an ``event: error`` after ``after_events`` events."""
    if message is None:
        message = (
            "Overloaded" if error_type == "overloaded_error" else f"fake {error_type}"
        )
    return BrokenReply(reply or _long_reply(), after_events, error_type, message)


def cut(after_events: int = 5, *, reply: Reply | None = None) -> BrokenReply:
    """A stream whose connection drops after ``after_events`` events."""
    return BrokenReply(reply or _long_reply(), after_events)


def _long_reply() -> Reply:
    return reply(text("This reply will not arrive in full. " * 4))


# ---- the wire -------------------------------------------------------------------


def new_id(prefix: str) -> str:
    """An id in Anthropic's style: ``msg_…``, ``toolu_…``, ``req_…``."""
    return prefix + secrets.token_hex(12)


def stamp(size: int) -> str:
    """``<t:SECONDS>`` with the time now, right-padded with dots to ``size``."""
    return f"<t:{time.time():.6f}>".ljust(size, ".")


def split(s: str, chunks: int | None) -> list[str]:
    """``s`` in ``chunks`` pieces of equal length, or by word when ``chunks`` is None."""
    if not s:
        return []
    if chunks is None:
        return re.findall(r"\s*\S+\s*|\s+", s) or [s]
    step = -(-len(s) // max(1, min(chunks, len(s))))
    return [s[i : i + step] for i in range(0, len(s), step)]


def sse(event: str, data: dict) -> bytes:
    """One Server-Sent Event as the API writes it."""
    payload = json.dumps(data, separators=(",", ":"))
    return f"event: {event}\ndata: {payload}\n\n".encode()


def estimate_tokens(n_chars: int) -> int:
    return max(1, n_chars // 4)


def error_body(etype: str, message: str) -> dict:
    """Anthropic's JSON error shape."""
    error = {"type": etype, "message": message}
    return {"type": "error", "error": error, "request_id": new_id("req_")}


def _usage(rep: Reply, input_tokens: int, output_tokens: int) -> dict:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": rep.cache_creation_input_tokens,
        "cache_read_input_tokens": rep.cache_read_input_tokens,
    }


def _output_tokens(rep: Reply) -> int:
    if rep.output_tokens is not None:
        return rep.output_tokens
    return estimate_tokens(sum(b.output_chars() for b in rep.blocks))


def message_json(rep: Reply, model: str, input_tokens: int) -> dict:
    """The whole Message of a non-streamed answer."""
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [b.content() for b in rep.blocks],
        "stop_reason": rep.stop_reason,
        "stop_sequence": rep.stop_sequence,
        "usage": _usage(rep, input_tokens, _output_tokens(rep)),
    }


def message_events(
    rep: Reply, model: str, input_tokens: int, delay: float = 0.0
) -> Iterator[bytes]:
    """The SSE events of ``rep`` in the API's order; ``delay`` seconds per delta."""
    message = {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(rep, input_tokens, 1),
    }
    yield sse("message_start", {"type": "message_start", "message": message})
    for index, block in enumerate(rep.blocks):
        start = {
            "type": "content_block_start",
            "index": index,
            "content_block": block.start(),
        }
        yield sse("content_block_start", start)
        if index == 0:
            yield sse("ping", {"type": "ping"})
        for delta in block.deltas():
            if delay:
                gevent.sleep(delay)
                # a stamp is the send time: taken after the pause, not before it
                if block.type == "stamped":
                    delta = {"type": "text_delta", "text": stamp(block.size)}
            event = {"type": "content_block_delta", "index": index, "delta": delta}
            yield sse("content_block_delta", event)
        yield sse("content_block_stop", {"type": "content_block_stop", "index": index})
    delta = {"stop_reason": rep.stop_reason, "stop_sequence": rep.stop_sequence}
    usage = _usage(rep, input_tokens, _output_tokens(rep))
    yield sse(
        "message_delta", {"type": "message_delta", "delta": delta, "usage": usage}
    )
    yield sse("message_stop", {"type": "message_stop"})


# ---- answers without a script ---------------------------------------------------


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        b.get("text", "")
        for b in content or ()
        if isinstance(b, dict) and b.get("type") == "text"
    )


def _blocks_of(message: dict, type: str) -> list[dict]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == type]


def echo_reply(body: dict) -> Reply:
    """``You said: <the last user text>``."""
    said = ""
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user" and (said := _text_of(message.get("content"))):
            break
    return reply(text(f"You said: {said}"))


def demo_reply(body: dict) -> Reply:
    """The offline demo: write hello.py, run it, report its output."""
    messages = body.get("messages") or [{}]
    results = _blocks_of(messages[-1], "tool_result")
    intro = "I am the offline demo model of agent-server (no real Claude is involved). "
    if not results:
        offered = {t.get("name") for t in body.get("tools") or ()}
        if not {"Write", "Bash"} <= offered:
            note = (
                "Give me the Write and Bash tools and I will write and run a program."
            )
            return reply(text(intro + note), model=DEMO_MODEL)
        return reply(
            text(intro + "I will write a small Python program and run it."),
            tool_use("Write", {"file_path": "hello.py", "content": DEMO_SCRIPT}),
            model=DEMO_MODEL,
        )
    asked = _blocks_of(messages[-2], "tool_use") if len(messages) > 1 else []
    names = {b.get("id"): b.get("name") for b in asked}
    if names.get(results[0].get("tool_use_id")) == "Write":
        return reply(
            text("Now let me run it."),
            tool_use("Bash", {"command": "python3 hello.py"}),
            model=DEMO_MODEL,
        )
    output = results[0].get("content")
    output = _text_of(output) if isinstance(output, list) else str(output or "")
    answer = (
        f"The program ran and printed:\n\n```\n{output.strip()}\n```\n\n"
        "That was the offline demo model of agent-server; "
        "set ANTHROPIC_API_KEY to talk to Claude."
    )
    return reply(text(answer), model=DEMO_MODEL)
