"""ReplyAssembler: one model call's raw stream events → live blocks + an assistant message.

The loop iterates the raw Messages API events (not the SDK's snapshot-building
helper, which costs about twice as much per delta) and feeds them here. A text or
thinking delta costs one list append and one emit of a four-key dict; content is
joined once, at content_block_stop.

Tool input JSON streams to the client as deltas on its tool_use block; the parsed
input arrives as a block:update ``{input}`` when the block stops. tool_use blocks stay
open (status pending) until the loop runs the tool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agent_server.agent import blocks as b
from agent_server.agent.emitter import BlockEmitter
from agent_server.agent.pricing import Usage
from agent_server.events.names import BLOCK_DELTA


@dataclass
class ToolCall:
    """A complete tool_use block of a reply, ready to run."""

    id: str
    name: str
    input: Any
    block: dict  # the tool_use block clients see
    input_error: str | None = None  # the input was not valid JSON


@dataclass
class _Slot:
    kind: str
    start: dict  # the content_block of content_block_start
    block: dict | None = None  # the client block, if this kind has one
    parts: list[str] = field(default_factory=list)
    signature: str = ""
    done: bool = False


class ReplyAssembler:
    """Builds blocks and the assistant message of one streamed model call."""

    def __init__(self, emitter: BlockEmitter, conversation_id: str, model: str) -> None:
        self.emitter = emitter
        self.cid = conversation_id
        self.model = model
        self.started = False  # any event arrived
        self.usage_seen = False
        self.stop_reason: str | None = None
        self.tool_calls: list[ToolCall] = []
        self._emit = emitter.emit
        self._slots: dict[int, _Slot] = {}
        self._content: dict[int, dict] = {}  # index -> finished API content block
        self._usage: dict[str, Any] = {}

    def feed(self, event: dict) -> None:
        """Take one raw stream event."""
        etype = event["type"]
        if etype == "content_block_delta":  # the hot path
            delta = event["delta"]
            slot = self._slots[event["index"]]
            dtype = delta["type"]
            if dtype == "text_delta":
                piece = delta["text"]
            elif dtype == "thinking_delta":
                piece = delta["thinking"]
            elif dtype == "input_json_delta":
                piece = delta["partial_json"]
            elif dtype == "signature_delta":
                slot.signature += delta["signature"]
                return
            else:
                return
            slot.parts.append(piece)
            if slot.block is not None and piece:
                self._emit(
                    BLOCK_DELTA,
                    {
                        "conversationId": self.cid,
                        "blockId": slot.block["id"],
                        "delta": piece,
                    },
                )
            return
        self.started = True
        if etype == "content_block_start":
            self._start(event["index"], event["content_block"])
        elif etype == "content_block_stop":
            self._stop(event["index"])
        elif etype == "message_start":
            message = event.get("message") or {}
            self.model = message.get("model") or self.model
            self._take_usage(message.get("usage"))
        elif etype == "message_delta":
            self.stop_reason = (event.get("delta") or {}).get(
                "stop_reason"
            ) or self.stop_reason
            self._take_usage(event.get("usage"))

    @property
    def usage(self) -> Usage:
        return Usage.from_api(self._usage)

    def message(self) -> dict:
        """The assistant message for the transcript (content may be empty)."""
        return {
            "role": "assistant",
            "content": [self._content[i] for i in sorted(self._content)],
        }

    def partial_content(self) -> list[dict]:
        """What can be kept of a reply cut short: finished blocks and partial text.

        Unfinished thinking (no signature) and tool_use (incomplete input) are dropped,
        as the API would reject them; finished tool_use blocks stay and need results.
        """
        content = dict(self._content)
        for i, slot in self._slots.items():
            if not slot.done and slot.kind == "text" and slot.parts:
                content[i] = {"type": "text", "text": "".join(slot.parts)}
        return [content[i] for i in sorted(content) if _keepable(content[i])]

    def abandon(self, reason: str) -> None:
        """Complete every block of this reply still open (a failed or retried call)."""
        for i in sorted(self._slots):
            slot = self._slots[i]
            if slot.block is not None:
                self.emitter.cut_short(slot.block, reason)

    def _take_usage(self, usage: dict | None) -> None:
        if usage:
            self.usage_seen = True
            self._usage.update({k: v for k, v in usage.items() if v is not None})

    def _start(self, index: int, cb: dict) -> None:
        kind = cb.get("type", "")
        slot = _Slot(kind, cb)
        self._slots[index] = slot
        if kind == "text":
            block = b.assistant_text(model=self.model, conversation_id=self.cid)
            if cb.get("text"):
                slot.parts.append(cb["text"])
        elif kind == "thinking":
            block = b.thinking(conversation_id=self.cid)
            if cb.get("thinking"):
                slot.parts.append(cb["thinking"])
        elif kind == "tool_use":
            block = b.tool_use(
                cb.get("name", ""), cb.get("id", ""), conversation_id=self.cid
            )
        else:
            return  # redacted_thinking and others: kept for the API, not shown
        slot.block = block
        self.emitter.start(block, slot.parts)

    def _stop(self, index: int) -> None:
        slot = self._slots.get(index)
        if slot is None:
            return
        slot.done = True
        kind = slot.kind
        if kind == "text":
            text = "".join(slot.parts)
            self.emitter.complete(slot.block, content=text)
            if text:  # the API rejects empty text blocks
                self._content[index] = {"type": "text", "text": text}
        elif kind == "thinking":
            text = "".join(slot.parts)
            self.emitter.complete(slot.block, content=text)
            self._content[index] = {
                "type": "thinking",
                "thinking": text,
                "signature": slot.signature,
            }
        elif kind == "tool_use":
            raw = "".join(slot.parts)
            args, error = {}, None
            if raw.strip():
                try:
                    args = json.loads(raw)
                except ValueError as exc:
                    error = (
                        f"The tool input was not valid JSON ({exc}); nothing was run."
                    )
                if not isinstance(args, dict):  # the API wants an object back
                    args = {}
                    error = (
                        error
                        or "The tool input was not a JSON object; nothing was run."
                    )
            tid, name = slot.start.get("id", ""), slot.start.get("name", "")
            self._content[index] = {
                "type": "tool_use",
                "id": tid,
                "name": name,
                "input": args,
            }
            self.emitter.update(slot.block, input=args)
            self.tool_calls.append(ToolCall(tid, name, args, slot.block, error))
        else:
            self._content[index] = slot.start


def _keepable(block: dict) -> bool:
    if block.get("type") == "thinking":
        return bool(block.get("signature"))
    return True
