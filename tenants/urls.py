from django.urls import path

from tenants.api import (
    ApiKeyDetailApi,
    ApiKeyListCreateApi,
    ApiKeyRevokeApi,
    AuditListApi,
    BudgetApi,
    MeApi,
)

urlpatterns = [
    path("me", MeApi.as_view(), name="me"),
    path("keys", ApiKeyListCreateApi.as_view(), name="keys"),
    path("keys/<keyprefix:prefix>", ApiKeyDetailApi.as_view(), name="key-detail"),
    path("keys/<keyprefix:prefix>/revoke", ApiKeyRevokeApi.as_view(), name="key-revoke"),
    path("audit", AuditListApi.as_view(), name="audit"),
    path("budget", BudgetApi.as_view(), name="budget"),
]
