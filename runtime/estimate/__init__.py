"""The dry run's cost estimate (`POST /api/v1/workflows/validate?estimate=true`)."""

from runtime.estimate.report import Estimate, estimate_workflow

__all__ = ["Estimate", "estimate_workflow"]
