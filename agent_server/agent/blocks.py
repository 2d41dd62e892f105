"""Blocks: the structured pieces of a conversation that clients render.

Blocks are plain dicts with camelCase keys because they go straight to JSON on the
hot path. Every block has ``id`` (stable from ``block:start`` through every delta,
update and ``block:complete``, and after a reload), ``type``, ``timestamp`` (ISO 8601
UTC, when the block started) and ``conversationId`` ("main" or a subagent id).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Any

MAIN = "main"

USER_MESSAGE = "user_message"
ASSISTANT_TEXT = "assistant_text"
THINKING = "thinking"
TOOL_USE = "tool_use"
TOOL_RESULT = "tool_result"
SUBAGENT = "subagent"
SYSTEM = "system"
ERROR = "error"

# tool_use / subagent status values
PENDING = "pending"
RUNNING = "running"
SUCCESS = "success"
FAILED = "error"


def new_id(prefix: str = "blk") -> str:
    """A short random id such as ``blk_3f2a...``."""
    return f"{prefix}_{secrets.token_hex(8)}"


def now_iso() -> str:
    """The current time as ISO 8601 UTC with milliseconds and a ``Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"


def _base(type_: str, conversation_id: str, block_id: str | None) -> dict[str, Any]:
    return {
        "id": block_id or new_id(),
        "type": type_,
        "timestamp": now_iso(),
        "conversationId": conversation_id,
    }


def user_message(content: str, *, conversation_id: str = MAIN, block_id=None) -> dict:
    """What the user (or the parent agent, for a subagent) said."""
    block = _base(USER_MESSAGE, conversation_id, block_id)
    block["content"] = content
    return block


def assistant_text(
    content: str = "", *, model: str, conversation_id: str = MAIN, block_id=None
) -> dict:
    """Text Claude wrote."""
    block = _base(ASSISTANT_TEXT, conversation_id, block_id)
    block["content"] = content
    block["model"] = model
    return block


def thinking(content: str = "", *, conversation_id: str = MAIN, block_id=None) -> dict:
    """Claude's extended thinking (the signature stays in the transcript, not here)."""
    block = _base(THINKING, conversation_id, block_id)
    block["content"] = content
    return block


def tool_use(
    tool_name: str,
    tool_use_id: str,
    input: Any = None,
    *,
    status: str = PENDING,
    conversation_id: str = MAIN,
    block_id=None,
) -> dict:
    """A tool call: status goes pending (input streaming) → running → success|error."""
    block = _base(TOOL_USE, conversation_id, block_id)
    block["toolName"] = tool_name
    block["toolUseId"] = tool_use_id
    block["input"] = {} if input is None else input
    block["status"] = status
    return block


def tool_result(
    tool_use_id: str,
    output: str = "",
    *,
    is_error: bool = False,
    duration_ms: int | None = None,
    conversation_id: str = MAIN,
    block_id=None,
) -> dict:
    """What a tool returned (for Bash, its output streams onto this block)."""
    block = _base(TOOL_RESULT, conversation_id, block_id)
    block["toolUseId"] = tool_use_id
    block["output"] = output
    block["isError"] = is_error
    block["durationMs"] = duration_ms
    return block


def subagent(
    subagent_id: str,
    name: str,
    input: Any,
    tool_use_id: str,
    *,
    status: str = RUNNING,
    output: str | None = None,
    duration_ms: int | None = None,
    conversation_id: str = MAIN,
    block_id=None,
) -> dict:
    """A subagent run started by the Task tool, shown in its parent's conversation."""
    block = _base(SUBAGENT, conversation_id, block_id)
    block.update(
        subagentId=subagent_id,
        name=name,
        input=input,
        status=status,
        output=output,
        durationMs=duration_ms,
        toolUseId=tool_use_id,
    )
    return block


def system(
    subtype: str,
    message: str,
    metadata: dict | None = None,
    *,
    conversation_id: str = MAIN,
    block_id=None,
) -> dict:
    """A note from the server (a limit reached, a retry, an interrupt)."""
    block = _base(SYSTEM, conversation_id, block_id)
    block["subtype"] = subtype
    block["message"] = message
    block["metadata"] = metadata or {}
    return block


def error(
    code: str, message: str, *, conversation_id: str = MAIN, block_id=None
) -> dict:
    """Why a turn failed, with the error code of errors.py or the model adapter."""
    block = _base(ERROR, conversation_id, block_id)
    block["code"] = code
    block["message"] = message
    return block
