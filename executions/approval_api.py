"""`POST /executions/{id}/resume`: answer the question a waiting run asks (executor keys)."""

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentflow_site.auth import principal_of
from agentflow_site.errors import Conflict, FieldRefused
from executions.api import ExecuteAcceptedSerializer, _execution
from executions.approvals import InvalidAnswer, NotWaiting, execution_resume
from executions.models import Status
from tenants.models import Role


class ResumeRequestSerializer(serializers.Serializer[dict[str, Any]]):
    answer = serializers.CharField(
        max_length=128, help_text="one of the options the run's `waiting_for` lists"
    )
    comment = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=2000, trim_whitespace=False
    )
    node_id = serializers.CharField(
        required=False,
        max_length=64,
        help_text="the node whose question this answers: a 409 when the run waits on another",
    )


class AnswerRefused(FieldRefused):
    """422: an answer that is not one of the question's options."""

    status_code = 422
    default_code = "invalid_answer"
    default_detail = "The answer is not one of the question's options."
    field = "answer"


class ExecutionResumeApi(APIView):
    """Answer the question a `waiting` run asks: it is queued again and goes on from where it
    waited, its answer in the state (`approval`, and `intent` for the node's edges). The same
    answer sent again changes nothing."""

    write_role = Role.EXECUTOR
    problem_statuses = {"post": (409, 422)}

    @extend_schema(
        request=ResumeRequestSerializer,
        responses={
            202: OpenApiResponse(
                ExecuteAcceptedSerializer, description="queued to go on; poll `location`"
            )
        },
        operation_id="executions_resume",
    )
    def post(self, request: Request, execution_id: str) -> Response:
        execution = _execution(request, execution_id)
        body = ResumeRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        asked = execution.waiting_for or {}
        node_id = body.validated_data.get("node_id")
        if execution.status == Status.WAITING and node_id and node_id != asked.get("node_id"):
            raise Conflict(f"Execution {execution.id} waits on node '{asked.get('node_id')}'.")
        try:
            execution = execution_resume(
                execution=execution,
                answer=body.validated_data["answer"],
                comment=body.validated_data["comment"],
                actor=principal_of(request).actor,
            )
        except InvalidAnswer as exc:
            raise AnswerRefused(str(exc)) from exc
        except NotWaiting as exc:
            raise Conflict(str(exc)) from exc
        location = f"/api/v1/executions/{execution.id}"
        answer = {"status": execution.status, "execution_id": execution.id, "location": location}
        return Response(answer, status=status.HTTP_202_ACCEPTED, headers={"Location": location})
