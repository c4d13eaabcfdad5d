"""An operator's aggregation function with a bug (AGENTFLOW_AGGREGATIONS), for the Sentry tests:
it fails quoting the run's input and a credential it read."""

import os
from typing import Any

CANARY_ENV = "AGENTFLOW_T_ACME_CRM_TOKEN"


def explode(state: dict[str, Any]) -> Any:
    token = os.environ.get(CANARY_ENV, "")
    raise RuntimeError(f"the vault refused {state.get('user_input')!r} with token {token}")
