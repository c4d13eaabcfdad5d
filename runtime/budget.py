"""A tenant's daily budget of tokens and cost, checked before each provider call.

The caller works out what is left today when a run starts; the run spends from that. Runs that
overlap can each spend what was left when they started, so the budget is a bound per run start,
not a lock: the overshoot is at most one call per concurrent run.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.errors import NodeError


class BudgetExceeded(NodeError):
    code = "budget_exceeded"


@dataclass
class Budget:
    tokens_left: int | None = None
    """Tokens the tenant may still use today; None: no limit."""
    cost_left: float | None = None
    """USD the tenant may still spend today; None: no limit."""

    def check(self, node_id: str) -> None:
        """Refuse a call once today's tokens or cost are used up."""
        if self.tokens_left is not None and self.tokens_left <= 0:
            raise BudgetExceeded(
                "The tenant's daily token budget is used up; the call was not made. "
                "It resets at midnight UTC, or an admin can raise it.",
                node_id=node_id,
            )
        if self.cost_left is not None and self.cost_left <= 0:
            raise BudgetExceeded(
                "The tenant's daily cost budget is used up; the call was not made. "
                "It resets at midnight UTC, or an admin can raise it.",
                node_id=node_id,
            )

    def spend(self, tokens: int, cost: float) -> None:
        if self.tokens_left is not None:
            self.tokens_left -= tokens
        if self.cost_left is not None:
            self.cost_left -= cost


UNLIMITED = Budget()
