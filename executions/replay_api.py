import structlog
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentflow_site.auth import principal_of
from agentflow_site.errors import Conflict, FieldRefused, InvalidSpec, RunInterrupted
from agentflow_site.observability.errors import capture_exception
from executions.api import (
    EXECUTE_RESPONSES,
    LOCATION,
    _answer,
    _execution,
    _reason,
    _status_if_known,
)
from executions.replay import ReplayRefused, execution_replay
from executions.serializers import ReplayRequestSerializer
from executions.services import ExecutionCrashed, execution_run
from tenants.models import Role
from workflows.services import WorkflowInvalid

logger = structlog.get_logger(__name__)


class ReplayFieldRefused(FieldRefused):
    """422: a `version` or `from_node` the replayed run's workflow does not have, or a sync
    `mode` for a workflow that asks a person."""

    status_code = 422
    default_code = "replay_refused"
    default_detail = "The replay is refused."


class ExecutionReplayApi(APIView):
    """Run a finished execution again, on its spec or another version of its workflow, each
    provider call whose request it made before answered from its record (0 tokens, 0 cost,
    marked `replayed` in the trace); `from_node` keeps the results before that node."""

    write_role = Role.EXECUTOR
    problem_statuses = {"post": (404, 409, 422)}

    @extend_schema(
        request=ReplayRequestSerializer,
        parameters=[LOCATION],
        responses=EXECUTE_RESPONSES,
        operation_id="executions_replay",
    )
    def post(self, request: Request, execution_id: str) -> Response:
        original = _execution(request, execution_id)
        body = ReplayRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        asked = body.validated_data
        try:
            replay, validated = execution_replay(
                execution=original,
                created_by=principal_of(request).actor,
                version=asked.get("version"),
                from_node=asked.get("from_node", ""),
                mode=asked.get("mode"),
                initial_state=asked.get("initial_state"),
            )
        except ReplayRefused as exc:
            if exc.field:
                raise ReplayFieldRefused(exc.message, field=exc.field) from exc
            raise Conflict(exc.message) from exc
        except WorkflowInvalid as exc:
            raise InvalidSpec([dict(e.to_dict()) for e in exc.result.errors]) from exc
        if replay.mode == "async":
            return _answer(replay)
        try:
            ran = execution_run(execution_id=replay.id, validated=validated, claimed=True)
        except Exception as exc:
            logger.exception("sync_run_interrupted", execution_id=replay.id)
            if not isinstance(exc, ExecutionCrashed):
                capture_exception(exc, execution_id=replay.id)
            raise RunInterrupted(replay.id, _status_if_known(replay.id), _reason(exc)) from exc
        return _answer(ran)
