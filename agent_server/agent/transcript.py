"""The conversation state of a session, and its saved form.

A transcript holds one Conversation per id: "main" and one per subagent run. Each has
its Anthropic ``messages`` (exactly what the next request sends) and its ``blocks``
(what clients render, for GET /sessions/:id). Blocks are stored by reference when
they start, so updates made to the live dict during a turn show up here too.

``to_json()`` is the raw transcript PersistenceAdapter.save_transcript stores;
``Transcript.from_json()`` reads it back so the next request carries the prior
messages. ``repair()`` makes the messages valid for a next request after an
interrupt or a crash: every tool_use gets a tool_result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agent_server.agent.blocks import MAIN
from agent_server.agent.pricing import Usage
from agent_server.errors import PersistenceError

FORMAT_VERSION = 1


@dataclass
class Conversation:
    """One thread of messages: the main agent's, or one subagent run's."""

    id: str
    messages: list[dict] = field(default_factory=list)
    blocks: list[dict] = field(default_factory=list)
    name: str | None = None  # the subagent type; None for main
    description: str | None = None
    status: str | None = None  # subagents: running | success | error
    parent_id: str | None = None
    tool_use_id: str | None = None

    def add_block(self, block: dict) -> None:
        """Keep ``block`` (by reference: later mutations are what gets saved)."""
        self.blocks.append(block)

    def append_user(self, content: str | list[dict]) -> None:
        """Add what the user said, merged into a trailing user message if any.

        Merging keeps roles alternating when the previous turn ended on a user
        message (a failed model call, tool results after an interrupt).
        """
        parts = (
            [{"type": "text", "text": content}] if isinstance(content, str) else content
        )
        if self.messages and self.messages[-1]["role"] == "user":
            last = self.messages[-1]
            if isinstance(last["content"], str):
                last["content"] = [{"type": "text", "text": last["content"]}]
            last["content"].extend(parts)
        else:
            self.messages.append({"role": "user", "content": list(parts)})

    def final_text(self) -> str:
        """The text of the last assistant message (a subagent's answer)."""
        for message in reversed(self.messages):
            if message["role"] == "assistant":
                content = message["content"]
                if isinstance(content, str):
                    return content
                return "\n".join(b["text"] for b in content if b.get("type") == "text")
        return ""

    def repair(self, reason: str) -> int:
        """Pair every tool_use of the last assistant message; return how many results were added."""
        msgs = self.messages
        while msgs and not msgs[-1]["content"]:
            msgs.pop()  # an empty message (e.g. results not yet filled) is invalid
        if not msgs:
            return 0
        if msgs[-1]["role"] == "assistant":
            assistant, results = msgs[-1], None
        elif len(msgs) >= 2 and msgs[-2]["role"] == "assistant":
            assistant, results = msgs[-2], msgs[-1]
        else:
            return 0
        if isinstance(assistant["content"], str):
            return 0
        wanted = [b["id"] for b in assistant["content"] if b.get("type") == "tool_use"]
        if results is not None and isinstance(results["content"], str):
            results["content"] = [{"type": "text", "text": results["content"]}]
        have = {
            b.get("tool_use_id")
            for b in (results["content"] if results else [])
            if b.get("type") == "tool_result"
        }
        missing = [
            {
                "type": "tool_result",
                "tool_use_id": i,
                "content": reason,
                "is_error": True,
            }
            for i in wanted
            if i not in have
        ]
        if not missing:
            return 0
        if results is None:
            msgs.append({"role": "user", "content": missing})
        else:
            # tool_result blocks must come before any text in the user message
            n = sum(1 for b in results["content"] if b.get("type") == "tool_result")
            results["content"][n:n] = missing
        return len(missing)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "status": self.status,
            "parentId": self.parent_id,
            "toolUseId": self.tool_use_id,
            "messages": self.messages,
            "blocks": self.blocks,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Conversation:
        return cls(
            id=d["id"],
            messages=list(d.get("messages") or []),
            blocks=list(d.get("blocks") or []),
            name=d.get("name"),
            description=d.get("description"),
            status=d.get("status"),
            parent_id=d.get("parentId"),
            tool_use_id=d.get("toolUseId"),
        )


class Transcript:
    """Every conversation of a session, with session usage and cost totals."""

    def __init__(self) -> None:
        self.conversations: dict[str, Conversation] = {MAIN: Conversation(MAIN)}
        self.usage = Usage()
        self.cost_usd: float | None = 0.0  # None once a call could not be priced
        self.model: str | None = None  # the model of the last main call

    @property
    def main(self) -> Conversation:
        return self.conversations[MAIN]

    def conversation(self, conversation_id: str) -> Conversation:
        """The conversation with this id (KeyError if there is none)."""
        return self.conversations[conversation_id]

    def add_conversation(self, conversation: Conversation) -> Conversation:
        """Register a subagent's conversation."""
        self.conversations[conversation.id] = conversation
        return conversation

    def blocks(self, conversation_id: str = MAIN) -> list[dict]:
        """The blocks of one conversation, in the order they started."""
        return self.conversations[conversation_id].blocks

    def add_usage(self, usage: Usage, cost: float | None) -> None:
        """Add one model call to the session totals."""
        self.usage = self.usage + usage
        if cost is None or self.cost_usd is None:
            self.cost_usd = None
        else:
            self.cost_usd += cost

    def repair(self, reason: str = "interrupted by user") -> int:
        """Make every conversation valid for a next request; return the results added."""
        return sum(c.repair(reason) for c in self.conversations.values())

    def to_dict(self) -> dict[str, Any]:
        """The saved form (also what GET /sessions/:id can draw blocks from)."""
        return {
            "version": FORMAT_VERSION,
            "model": self.model,
            "usage": self.usage.to_wire(),
            "costUsd": self.cost_usd,
            "conversations": [c.to_dict() for c in self.conversations.values()],
        }

    def to_json(self) -> str:
        """The raw transcript for PersistenceAdapter.save_transcript."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | None) -> Transcript:
        """Read back what to_json wrote; None or "" is a new, empty transcript."""
        t = cls()
        if raw is None or raw.strip() == "":
            return t
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise PersistenceError(
                f"the saved transcript is not valid JSON: {exc}"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("version"), int):
            raise PersistenceError("the saved transcript has no format version")
        if data["version"] > FORMAT_VERSION:
            raise PersistenceError(
                f"the saved transcript has format version {data['version']}; "
                f"this server reads up to {FORMAT_VERSION}"
            )
        t.model = data.get("model")
        t.usage = Usage.from_wire(data.get("usage"))
        t.cost_usd = data.get("costUsd")
        for c in data.get("conversations") or []:
            conv = Conversation.from_dict(c)
            t.conversations[conv.id] = conv
        return t
