from django.urls import path

from schedules.api import ScheduleDetailApi, ScheduleListCreateApi

urlpatterns = [
    path(
        "workflows/<wf:workflow_id>/schedules",
        ScheduleListCreateApi.as_view(),
        name="workflow-schedules",
    ),
    path(
        "workflows/<wf:workflow_id>/schedules/<sch:schedule_id>",
        ScheduleDetailApi.as_view(),
        name="workflow-schedule-detail",
    ),
]
