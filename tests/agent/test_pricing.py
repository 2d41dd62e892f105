"""Prices per model, dated ids, cache tokens, unknown models."""

from __future__ import annotations

import pytest

from agent_server.agent.pricing import Usage, cost_usd

MILLION = 1_000_000


@pytest.mark.parametrize(
    ("model", "input_price", "output_price"),
    [
        ("claude-opus-4-5", 5, 25),
        ("claude-opus-4-5-20251101", 5, 25),
        ("claude-opus-4-1", 15, 75),
        ("claude-opus-4-20250514", 15, 75),
        ("claude-sonnet-4-5-20250929", 3, 15),
        ("claude-sonnet-4-20250514", 3, 15),
        ("claude-haiku-4-5", 1, 5),
        ("claude-3-5-haiku-latest", 0.8, 4),
    ],
)
def test_input_and_output_prices(model, input_price, output_price):
    assert cost_usd(model, Usage(input_tokens=MILLION)) == pytest.approx(input_price)
    assert cost_usd(model, Usage(output_tokens=MILLION)) == pytest.approx(output_price)


def test_cache_tokens_cost_1_25x_and_0_1x_input():
    usage = Usage(cache_creation_input_tokens=MILLION, cache_read_input_tokens=MILLION)
    assert cost_usd("claude-sonnet-4-5", usage) == pytest.approx(3 * 1.25 + 3 * 0.1)


def test_unknown_models_have_no_price():
    assert cost_usd("gpt-4", Usage(input_tokens=10)) is None
    assert cost_usd("claude-opus-4-7", Usage(input_tokens=10)) is None  # not opus-4
    assert cost_usd(None, Usage()) is None


def test_usage_adds_and_reads_api_dicts():
    a = Usage.from_api(
        {"input_tokens": 3, "output_tokens": 4, "cache_read_input_tokens": None}
    )
    total = a + Usage(1, 1, 1, 1)
    assert total == Usage(4, 5, 1, 1)
    assert total.to_wire() == {
        "inputTokens": 4,
        "outputTokens": 5,
        "cacheReadInputTokens": 1,
        "cacheCreationInputTokens": 1,
    }
    assert Usage.from_wire(total.to_wire()) == total
    assert cost_usd("claude-haiku-4-5", {"input_tokens": MILLION}) == pytest.approx(1)
