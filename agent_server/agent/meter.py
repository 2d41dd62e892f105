"""TurnMeter: what one turn has used (model calls, tokens, cost) against its limits."""

from __future__ import annotations

from agent_server.agent.pricing import Usage, cost_usd


class LimitReached(Exception):
    """The turn hit profile.max_turns or profile.max_budget_usd; ``reason`` says which."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # "max_turns" | "max_budget"
        self.message = message


class TurnMeter:
    """Counts a turn's model calls (subagents' included), tokens and cost."""

    def __init__(self, max_turns: int | None, max_budget_usd: float | None) -> None:
        self.max_turns = max_turns
        self.max_budget_usd = max_budget_usd
        self.calls = 0
        self.usage = Usage()
        self.cost: float | None = 0.0  # None once a call could not be priced

    def check(self) -> None:
        """Raise LimitReached if another model call would go past a limit.

        The budget is checked before a call, so the call that crosses it completes
        (and its tools run); the next one is not made. An unpriced model has no
        budget check.
        """
        if self.max_turns is not None and self.calls >= self.max_turns:
            raise LimitReached(
                "max_turns",
                f"Stopped after {self.calls} model calls: the profile's max_turns "
                f"is {self.max_turns}.",
            )
        budget, cost = self.max_budget_usd, self.cost
        if budget is not None and cost is not None and cost >= budget:
            raise LimitReached(
                "max_budget",
                f"Stopped: this turn cost ${cost:.4f}, reaching the profile's "
                f"max_budget_usd of ${budget:.4f}.",
            )

    def add(self, model: str, usage: Usage) -> float | None:
        """Count one call's tokens; return its cost (None for an unknown model)."""
        cost = cost_usd(model, usage)
        self.usage = self.usage + usage
        self.cost = None if cost is None or self.cost is None else self.cost + cost
        return cost
