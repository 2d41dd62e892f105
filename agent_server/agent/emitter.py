"""BlockEmitter: sends block events, keeps the transcript's blocks, tracks open blocks.

A block is a live dict: the transcript keeps it by reference, and each event carries
a shallow copy so that later changes never rewrite an event already handed to the
event log. Deltas are sent by the stream code directly (the hot path); open blocks
register the list their deltas are collected in, so a block cut short (interrupt,
failure, retry) is completed with the content it had.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agent_server.agent import blocks as b
from agent_server.agent.transcript import Transcript
from agent_server.events import names

Emit = Callable[[str, dict], None]


class BlockEmitter:
    """The one place block:start / update / complete are sent from."""

    def __init__(self, emit: Emit, transcript: Transcript) -> None:
        self.emit = emit
        self.transcript = transcript
        self._open: dict[str, tuple[dict, list[str] | None, float]] = {}

    def start(self, block: dict, parts: list[str] | None = None) -> dict:
        """Send block:start; ``parts`` collects the block's streamed content, if any."""
        cid = block["conversationId"]
        self.transcript.conversation(cid).add_block(block)
        self._open[block["id"]] = (block, parts, time.monotonic())
        self.emit(names.BLOCK_START, {"conversationId": cid, "block": dict(block)})
        return block

    def update(self, block: dict, **updates) -> None:
        """Change fields of an open block and send block:update with just those."""
        block.update(updates)
        self.emit(
            names.BLOCK_UPDATE,
            {
                "conversationId": block["conversationId"],
                "blockId": block["id"],
                "updates": updates,
            },
        )

    def complete(self, block: dict, **final) -> None:
        """Set the final fields and send block:complete (once per block)."""
        block.update(final)
        if self._open.pop(block["id"], None) is None:
            return
        self.emit(
            names.BLOCK_COMPLETE,
            {"conversationId": block["conversationId"], "block": dict(block)},
        )

    def start_complete(self, block: dict) -> dict:
        """A block that is whole from the start (user message, note, error)."""
        self.start(block)
        self.complete(block)
        return block

    def elapsed_ms(self, block: dict) -> int:
        """Milliseconds since the open block started."""
        entry = self._open.get(block["id"])
        return 0 if entry is None else int((time.monotonic() - entry[2]) * 1000)

    def is_open(self, block: dict) -> bool:
        return block["id"] in self._open

    def cut_short(self, block: dict, reason: str) -> None:
        """Complete an open block that will not finish normally, keeping its content."""
        entry = self._open.get(block["id"])
        if entry is None:
            return
        _, parts, started = entry
        duration = int((time.monotonic() - started) * 1000)
        kind = block["type"]
        if kind in (b.ASSISTANT_TEXT, b.THINKING):
            self.complete(block, content="".join(parts or ()))
        elif kind == b.TOOL_USE:
            self.update(block, status=b.FAILED)
            self.complete(block)
        elif kind == b.TOOL_RESULT:
            so_far = "".join(parts or ())
            output = f"{so_far}\n[{reason}]" if so_far else reason
            self.complete(block, output=output, isError=True, durationMs=duration)
        elif kind == b.SUBAGENT:
            conv = self.transcript.conversations.get(block["subagentId"])
            if conv is not None:
                conv.status = b.FAILED
            self.update(block, status=b.FAILED)
            self.complete(block, output=reason, durationMs=duration)
            self.emit(
                names.SUBAGENT_COMPLETED,
                {
                    "subagentId": block["subagentId"],
                    "status": b.FAILED,
                    "durationMs": duration,
                },
            )
        else:
            self.complete(block)

    def cut_all(self, reason: str) -> None:
        """cut_short every open block, innermost (latest) first."""
        for block, _, _ in reversed(list(self._open.values())):
            self.cut_short(block, reason)
