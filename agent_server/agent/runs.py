"""Run: what one conversation is driven with (model, prompt, tools, depth) and the
request it makes of the Messages API."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent_server.agent.blocks import MAIN
from agent_server.agent.tools import TASK, Tool, select, task_spec
from agent_server.persistence.types import AgentProfile, SubagentDefinition

# prompt caching: one breakpoint after the system prompt (tools and system are a
# stable prefix), one on the newest message (the conversation so far)
_CACHE = {"type": "ephemeral"}


@dataclass
class Run:
    """One conversation being driven: the main agent's, or a subagent's."""

    conversation_id: str
    model: str
    system: str
    tools: list[Tool]
    subagents_allowed: bool  # Task is offered
    depth: int = 0  # 0 for main, 1 for a subagent it starts, ...
    by_name: dict[str, Tool] = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = {t.name: t for t in self.tools}

    def request(self, profile: AgentProfile, messages: list[dict]) -> dict:
        """The parameters of ModelClient.stream for the next call of this run."""
        tools = [t.spec() for t in self.tools]
        if self.subagents_allowed and profile.subagents:
            tools.append(task_spec(profile.subagents))
        params = {
            "model": self.model,
            "max_tokens": profile.max_tokens,
            "system": [{"type": "text", "text": self.system, "cache_control": _CACHE}]
            if self.system
            else None,
            "messages": _with_cache_mark(messages),
            "tools": tools or None,
        }
        budget = profile.thinking_budget_tokens
        if budget:
            params["thinking"] = {"type": "enabled", "budget_tokens": budget}
            # max_tokens must exceed the thinking budget or the API refuses the call
            params["max_tokens"] = max(profile.max_tokens, budget + 1024)
        return params

    def offered(self) -> list[str]:
        """The tool names this run offers Claude."""
        return [*self.by_name, *([TASK] if self.subagents_allowed else [])]


def main_run(profile: AgentProfile, model: str) -> Run:
    """The main agent: the profile's prompt (plus agent_md), tools and subagents."""
    system = profile.system_prompt + (
        f"\n\n{profile.agent_md}" if profile.agent_md else ""
    )
    return Run(MAIN, model, system, select(profile.tools), bool(profile.subagents))


def subagent_run(
    parent: Run, definition: SubagentDefinition, subagent_id: str, has_subagents: bool
) -> Run:
    """A subagent: its own prompt; its tools or the parent's minus Task; its model or the parent's."""
    if definition.tools is None:
        tools, nested = list(parent.tools), False
    else:
        tools, nested = (
            select(definition.tools),
            TASK in definition.tools and has_subagents,
        )
    return Run(
        subagent_id,
        definition.model or parent.model,
        definition.prompt,
        tools,
        nested,
        parent.depth + 1,
    )


def _with_cache_mark(messages: list[dict]) -> list[dict]:
    """The messages with a cache breakpoint on the last block (copies: the
    transcript is never changed)."""
    if not messages:
        return messages
    last = messages[-1]
    content = last["content"]
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if not content:
        return messages
    marked = [*content[:-1], {**content[-1], "cache_control": _CACHE}]
    return [*messages[:-1], {"role": last["role"], "content": marked}]
