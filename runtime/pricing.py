"""What a call cost, from the tokens the provider reported and a price table the operator sets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# USD per million tokens (input, output), November 2026 list prices. Operators override or
# extend this with the AGENTFLOW_PRICES setting; a model not listed costs 0 and says so nowhere
# else, so keep the table current.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5": (1.25, 10.00),
    "text-embedding-3-small": (0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.0),
    "gpt-image-1": (5.00, 40.00),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-opus-4-5": (5.00, 25.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-pro": (1.25, 10.00),
}


@dataclass(frozen=True)
class PriceTable:
    prices: Mapping[str, tuple[float, float]]
    """Model name (or a prefix of the dated names providers return) → USD per 1M tokens."""

    def price_of(self, model: str) -> tuple[float, float]:
        if model in self.prices:
            return self.prices[model]
        # "gpt-4o-mini-2024-07-18" is priced as "gpt-4o-mini": the longest listed prefix wins.
        best = max((name for name in self.prices if model.startswith(name)), key=len, default="")
        return self.prices.get(best, (0.0, 0.0))

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        price_in, price_out = self.price_of(model)
        return round((prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000, 8)


DEFAULT_PRICE_TABLE = PriceTable(DEFAULT_PRICES)
