"""Token usage and what it costs, per Claude model.

Prices are USD per million tokens. Cache writes (5-minute TTL) cost 1.25× input and
cache reads 0.1× input. Dated ids (``claude-sonnet-4-5-20250929``) match by prefix;
``-latest`` too; an unknown model has no price (``None``), never an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Price:
    """USD per million tokens for one model."""

    input: float
    output: float

    @property
    def cache_write(self) -> float:
        return self.input * 1.25

    @property
    def cache_read(self) -> float:
        return self.input * 0.1


# longest prefix wins, so "claude-opus-4-5" is tried before "claude-opus-4"
PRICES: dict[str, Price] = {
    "claude-opus-4-6": Price(5.0, 25.0),
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-opus-4-1": Price(15.0, 75.0),
    "claude-opus-4": Price(15.0, 75.0),
    "claude-sonnet-4-6": Price(3.0, 15.0),
    "claude-sonnet-4-5": Price(3.0, 15.0),
    "claude-sonnet-4": Price(3.0, 15.0),
    "claude-haiku-4-5": Price(1.0, 5.0),
    "claude-3-5-haiku": Price(0.80, 4.0),
}
_BY_LENGTH = sorted(PRICES, key=len, reverse=True)
# what may follow a known id: a date or "latest"; "claude-opus-4-7" is not "claude-opus-4"
_SUFFIX = re.compile(r"\d{8}|latest")


@dataclass(frozen=True)
class Usage:
    """Tokens of one or more model calls; ``a + b`` sums them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
        )

    @classmethod
    def from_api(cls, usage: Mapping[str, Any] | None) -> Usage:
        """From the snake_case ``usage`` object of the Messages API (nulls are 0)."""
        u = usage or {}
        return cls(
            int(u.get("input_tokens") or 0),
            int(u.get("output_tokens") or 0),
            int(u.get("cache_read_input_tokens") or 0),
            int(u.get("cache_creation_input_tokens") or 0),
        )

    def to_wire(self) -> dict[str, int]:
        """The camelCase shape clients see."""
        return {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "cacheReadInputTokens": self.cache_read_input_tokens,
            "cacheCreationInputTokens": self.cache_creation_input_tokens,
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any] | None) -> Usage:
        """The inverse of to_wire."""
        d = data or {}
        return cls(
            int(d.get("inputTokens") or 0),
            int(d.get("outputTokens") or 0),
            int(d.get("cacheReadInputTokens") or 0),
            int(d.get("cacheCreationInputTokens") or 0),
        )


def price_for(model: str | None) -> Price | None:
    """The price of ``model`` (exact id or dated id), or None if unknown."""
    if not model:
        return None
    for prefix in _BY_LENGTH:
        if model == prefix or (
            model.startswith(prefix + "-")
            and _SUFFIX.fullmatch(model[len(prefix) + 1 :])
        ):
            return PRICES[prefix]
    return None


def cost_usd(model: str | None, usage: Usage | Mapping[str, Any]) -> float | None:
    """What ``usage`` cost on ``model`` in USD, or None for an unknown model."""
    price = price_for(model)
    if price is None:
        return None
    if not isinstance(usage, Usage):
        usage = Usage.from_api(usage)
    return (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_creation_input_tokens * price.cache_write
        + usage.cache_read_input_tokens * price.cache_read
    ) / 1_000_000
