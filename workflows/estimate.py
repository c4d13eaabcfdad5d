"""The dry run's cost estimate, with the operator's price table."""

from typing import Any

from agentflow_site.runtime_config import price_table
from runtime.estimate import Estimate, estimate_workflow
from runtime.validation import ValidationResult


def workflow_estimate(
    *, validated: ValidationResult | None, initial_state: dict[str, Any]
) -> Estimate | None:
    """What running the validated spec from `initial_state` may cost; None when it is not a
    valid whole spec. Calls no provider, database or HTTP service."""
    if validated is None or not validated.valid or validated.spec is None:
        return None
    return estimate_workflow(validated, initial_state, prices=price_table())
