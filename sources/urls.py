from django.urls import path

from sources.api import SourceDetailApi, SourceListCreateApi, SourceTestApi, SourceVersionsApi

urlpatterns = [
    path("sources", SourceListCreateApi.as_view(), name="sources"),
    path("sources/<src:source_id>", SourceDetailApi.as_view(), name="source-detail"),
    path("sources/<src:source_id>/versions", SourceVersionsApi.as_view(), name="source-versions"),
    path("sources/<src:source_id>/test", SourceTestApi.as_view(), name="source-test"),
]
