"""AgentLoop: one session's turns: stream Claude's reply, run its tools, repeat.

A turn runs in the caller's greenlet and reports through ``emit(name, data)``:

    turn:started → user_message block → per model call: blocks (start, deltas,
    complete), metadata:update; per tool: tool_use running → tool_result block
    (Bash output streams onto it as deltas) → tool_use success|error
    → turn:completed | turn:failed (error block + error event) | turn:interrupted

How a turn ends (TurnOutcome.status / reason):
- completed: Claude stopped (reason = its stop_reason: end_turn, max_tokens, ...), or a
  limit stopped it before the next model call: reason "max_turns" (profile.max_turns
  model calls, subagents' included) or "max_budget" (the turn cost reached
  profile.max_budget_usd), with a system block saying which.
- failed: a model error that cannot be retried (reason = its code, e.g.
  authentication_error), the sandbox could not be had or is gone, or a bug
  (internal_error); an error block and an error event name the cause.
- interrupted: TurnInterrupted was raised in the greenlet (reason = its reason).
In every case open blocks are completed, every tool_use gets a tool_result and the
transcript is valid for the next message.

Retries: the SDK retries 429/529/5xx before a stream starts. A retryable error after
the stream started (stream_cut, an overloaded error event) is retried here after
``retry_delays``: the blocks of the failed attempt are completed with what they had,
a system block (subtype "retry") says the partial reply was discarded, and the new
attempt streams new blocks. Nothing has run by then: tools run after a reply ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent_server.agent import blocks as b
from agent_server.agent.emitter import BlockEmitter
from agent_server.agent.meter import LimitReached, TurnMeter
from agent_server.agent.pricing import Usage
from agent_server.agent.runs import Run, main_run
from agent_server.agent.stream import ReplyAssembler, ToolCall
from agent_server.agent.subagents import run_task
from agent_server.agent.tools import TASK, ToolContext, ToolOutput, run_tool
from agent_server.agent.transcript import Transcript
from agent_server.errors import ModelError, SandboxError, TurnInterrupted
from agent_server.events import names
from agent_server.persistence.types import AgentProfile
from agent_server.sandbox.base import Sandbox
from agent_server.settings import DEFAULT_MODEL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TurnOutcome:
    """How a turn ended; usage and cost are the turn's own (subagents included)."""

    status: str  # completed | failed | interrupted
    reason: str
    usage: Usage
    cost_usd: float | None
    stop_reason: str | None = None


class AgentLoop:
    """Runs a session's turns against the Messages API and the session's sandbox."""

    def __init__(
        self,
        model_client,
        profile: AgentProfile,
        *,
        emit: Callable[[str, dict], None],
        get_sandbox: Callable[[], Sandbox],
        transcript: Transcript | None = None,
        model: str | None = None,
        default_model: str = DEFAULT_MODEL,
        max_subagent_depth: int = 2,
        retry_delays: Sequence[float] = (1, 2, 4),
    ) -> None:
        self.client = model_client
        self.profile = profile
        self.transcript = transcript if transcript is not None else Transcript()
        self.model = model or profile.model or default_model
        self.max_subagent_depth = max_subagent_depth
        self.retry_delays = tuple(retry_delays)
        self._emit = emit
        self._get_sandbox = get_sandbox
        self.blocks = BlockEmitter(emit, self.transcript)
        self._sandbox: Sandbox | None = None
        self.meter = TurnMeter(profile.max_turns, profile.max_budget_usd)

    # ---- the turn ------------------------------------------------------------------

    def run_turn(self, content: str, *, message_id: str) -> TurnOutcome:
        """Run one turn for the user's ``content``; never raises for a failed turn."""
        self._sandbox = None
        self.meter = TurnMeter(self.profile.max_turns, self.profile.max_budget_usd)
        # a crash may have left a tool_use unpaired; the API would refuse the next call
        self.transcript.repair("not finished: the previous turn ended abnormally")
        self.transcript.main.append_user(content)
        status, reason, stop, error, note = "completed", "end_turn", None, None, None
        try:
            self._emit(names.TURN_STARTED, {"messageId": message_id})
            self.blocks.start_complete(b.user_message(content))
            stop = self.converse(main_run(self.profile, self.model))
            reason = stop or "end_turn"
        except LimitReached as exc:
            reason, note = exc.reason, exc.message
        except TurnInterrupted as exc:
            status, reason = "interrupted", exc.reason
        except (ModelError, SandboxError) as exc:
            status, reason, error = "failed", exc.code, exc.message
        except Exception as exc:
            log.exception("turn %s failed", message_id)
            status, reason, error = (
                "failed",
                "internal_error",
                f"{type(exc).__name__}: {exc}",
            )
        except BaseException:
            self.transcript.repair("interrupted")  # GreenletExit & co: leave it valid
            raise
        return self._finish(message_id, status, reason, stop, error, note)

    def _finish(self, message_id, status, reason, stop, error, note) -> TurnOutcome:
        """Close the turn; a second interrupt during this only skips the step it hits."""
        if status == "interrupted":
            cut = reason
        elif status == "failed":
            cut = f"turn failed: {error}"
        else:
            cut = f"not run: the turn stopped ({reason})"
        end_event = {
            "completed": names.TURN_COMPLETED,
            "failed": names.TURN_FAILED,
            "interrupted": names.TURN_INTERRUPTED,
        }[status]

        def end() -> None:
            self._emit(
                end_event,
                {
                    "messageId": message_id,
                    "reason": reason,
                    "stopReason": stop,
                    "usage": self.meter.usage.to_wire(),
                    "costUsd": self.meter.cost,
                },
            )

        steps = [
            lambda: self.blocks.cut_all(cut),
            lambda: self.transcript.repair(cut),
            lambda: (
                note
                and self.blocks.start_complete(
                    b.system("limit", note, {"limit": reason})
                )
            ),
            lambda: error and self._report_error(reason, error),
            end,
        ]
        for step in steps:
            try:
                step()
            except TurnInterrupted:
                continue
        return TurnOutcome(status, reason, self.meter.usage, self.meter.cost, stop)

    def _report_error(
        self, code: str, message: str, conversation_id: str = b.MAIN
    ) -> None:
        self.blocks.start_complete(
            b.error(code, message, conversation_id=conversation_id)
        )
        if conversation_id == b.MAIN:
            self._emit(names.ERROR, {"code": code, "message": message})

    # ---- one conversation ----------------------------------------------------------

    def converse(self, run: Run) -> str | None:
        """Call the model and run its tools until it stops; return its stop_reason."""
        conv = self.transcript.conversation(run.conversation_id)
        while True:
            self.meter.check()
            reply = self._call_model(run, conv)
            if reply.stop_reason == "tool_use" and reply.tool_calls:
                results: list[dict] = []
                conv.messages.append({"role": "user", "content": results})
                for call in reply.tool_calls:
                    out = self._run_tool(run, call)
                    result = {
                        "type": "tool_result",
                        "tool_use_id": call.id,
                        "content": out.output,
                    }
                    if out.is_error:
                        result["is_error"] = True
                    results.append(result)
                continue
            if (
                reply.tool_calls
            ):  # e.g. cut by max_tokens: nothing runs, all get results
                why = f"not run: the reply ended with stop_reason {reply.stop_reason}"
                for call in reply.tool_calls:
                    self.blocks.cut_short(call.block, why)
                conv.repair(why)
            return reply.stop_reason

    def _call_model(self, run: Run, conv) -> ReplyAssembler:
        """One model call, retried after a retryable mid-stream error; its reply is kept."""
        params = run.request(self.profile, conv.messages)
        attempts = len(self.retry_delays) + 1
        for attempt in range(1, attempts + 1):
            reply = ReplyAssembler(self.blocks, run.conversation_id, run.model)
            try:
                with self.client.stream(**params) as stream:
                    for event in stream:
                        reply.feed(event)
            except ModelError as exc:
                reply.abandon(f"{exc.code}: {exc.message}")
                self._account(run, reply)
                started = reply.started or exc.code == "stream_cut"
                if not (exc.retryable and started) or attempt == attempts:
                    raise
                self.blocks.start_complete(
                    b.system(
                        "retry",
                        f"The model's reply broke off ({exc.code}); the partial reply is "
                        f"discarded and the request retried (attempt {attempt + 1} of {attempts}).",
                        {"code": exc.code, "attempt": attempt + 1},
                        conversation_id=run.conversation_id,
                    )
                )
                time.sleep(self.retry_delays[attempt - 1])
                continue
            except BaseException:
                partial = reply.partial_content()  # an interrupt keeps what was said
                if partial:
                    conv.messages.append({"role": "assistant", "content": partial})
                self._account(run, reply)
                raise
            self.meter.calls += 1
            message = reply.message()
            if message["content"]:  # the API refuses an empty assistant message
                conv.messages.append(message)
            self._account(run, reply)
            return reply
        raise AssertionError("unreachable")

    def _account(self, run: Run, reply: ReplyAssembler) -> None:
        if not reply.usage_seen:
            return
        usage = reply.usage
        cost = self.meter.add(reply.model, usage)
        self.transcript.add_usage(usage, cost)
        if run.conversation_id == b.MAIN:
            self.transcript.model = reply.model
        self._emit(
            names.METADATA_UPDATE,
            {
                "conversationId": run.conversation_id,
                "model": reply.model,
                "usage": self.transcript.usage.to_wire(),
                "costUsd": self.transcript.cost_usd,
                "turnUsage": self.meter.usage.to_wire(),
                "turnCostUsd": self.meter.cost,
            },
        )

    # ---- tools ---------------------------------------------------------------------

    def _run_tool(self, run: Run, call: ToolCall) -> ToolOutput:
        """Run one tool call, with its blocks; a tool's failure is an error result."""
        self.blocks.update(call.block, status=b.RUNNING)
        cid = run.conversation_id
        is_task = call.name == TASK and run.subagents_allowed
        parts: list[str] = []
        result = b.tool_result(call.id, conversation_id=cid)
        if not is_task:  # Task shows a subagent block while it runs instead
            self.blocks.start(result, parts)
        started = time.monotonic()
        if call.input_error:
            out = ToolOutput(call.input_error, True)
        elif is_task:
            out = run_task(self, run, call)
        elif call.name not in run.by_name:
            offered = ", ".join(run.offered())
            out = ToolOutput(
                f"Unknown tool {call.name!r}. Available tools: {offered}.", True
            )
        else:
            tool = run.by_name[call.name]
            emit, block_id = self._emit, result["id"]

            def on_output(text: str) -> None:
                parts.append(text)
                emit(
                    names.BLOCK_DELTA,
                    {"conversationId": cid, "blockId": block_id, "delta": text},
                )

            ctx = ToolContext(self.sandbox() if tool.needs_sandbox else None, on_output)
            out = run_tool(tool, call.input, ctx)
        duration = int((time.monotonic() - started) * 1000)
        if is_task:
            self.blocks.start(result)
        self.blocks.complete(
            result, output=out.output, isError=out.is_error, durationMs=duration
        )
        self.blocks.update(call.block, status=b.FAILED if out.is_error else b.SUCCESS)
        self.blocks.complete(call.block)
        return out

    def sandbox(self) -> Sandbox:
        """The session's sandbox, asked for once per turn when the first tool needs it."""
        if self._sandbox is None:
            self._sandbox = self._get_sandbox()
        return self._sandbox
