"""Reads about tenants."""

from collections.abc import Callable
from functools import cache
from typing import Any

import structlog
from django.conf import settings
from django.db import connection
from django.db.models import Field, Model

from runtime.grants import Grant, GrantError, Grants, parse_grant
from tenants.models import ApiKey, Tenant

logger = structlog.get_logger(__name__)


def tenant_grants(tenant: Tenant | None) -> Grants:
    """The variables a tenant's sources may name and where each may be sent: the operator-wide
    grants (AGENTFLOW_ALLOWED_ENV) plus the tenant's own `allowed_env` (runtime/grants.py).

    A tenant entry that does not parse grants nothing (and is logged); the operator's were
    checked at start. The platform's own variables stay refused by the validator regardless.
    """
    entries = [*settings.AGENTFLOW_ALLOWED_ENV, *(tenant.allowed_env if tenant else [])]
    grants = [grant for entry in entries if (grant := _grant(entry, tenant)) is not None]
    return Grants(tuple(grants), settings.AGENTFLOW_PROVIDER_BASE_URLS)


def _grant(entry: object, tenant: Tenant | None) -> Grant | None:
    try:
        return parse_grant(entry)
    except GrantError as exc:
        logger.warning("grant_ignored", tenant=tenant.slug if tenant else None, reason=str(exc))
        return None


def api_key_with_tenant(prefix: str) -> ApiKey | None:
    """The key with this prefix, its tenant loaded with it, as every API request reads it.

    The same row `ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()` gives,
    read fresh on every call (a revoked key fails at once, in every process), by a statement
    built once per process: building it through the ORM took 0.6 ms of each request, three
    times the query itself.
    """
    sql, key_fields, tenant_fields = _key_query()
    with connection.cursor() as cursor:
        cursor.execute(sql, [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    api_key = _model(ApiKey, key_fields, row[: len(key_fields)])
    api_key.tenant = _model(Tenant, tenant_fields, row[len(key_fields) :])
    return api_key


type _Converter = Callable[[Any, Any, Any], Any]
type _Columns = list[tuple[Field[Any, Any], Any, list[_Converter]]]


@cache
def _key_query() -> tuple[str, _Columns, _Columns]:
    key_fields, tenant_fields = _columns(ApiKey), _columns(Tenant)
    selected = [f"k.{_quote(f.column)}" for f, _, _ in key_fields]
    selected += [f"t.{_quote(f.column)}" for f, _, _ in tenant_fields]
    tenant_id, prefix = ApiKey._meta.get_field("tenant"), ApiKey._meta.get_field("prefix")
    sql = (
        f"SELECT {', '.join(selected)} FROM {_quote(ApiKey._meta.db_table)} k "
        f"JOIN {_quote(Tenant._meta.db_table)} t ON t.{_quote(Tenant._meta.pk.column)} = "
        f"k.{_quote(tenant_id.column)} WHERE k.{_quote(prefix.column)} = %s"
    )
    return sql, key_fields, tenant_fields


def _quote(name: object) -> str:
    return str(connection.ops.quote_name(str(name)))


def _columns(model: type[Model]) -> _Columns:
    """Each stored field, its column expression and the converters the ORM applies to it."""
    columns: _Columns = []
    for field in model._meta.concrete_fields:
        col = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(col) + field.get_db_converters(connection)
        columns.append((field, col, converters))
    return columns


def _model[M: Model](model: type[M], columns: _Columns, values: tuple[Any, ...]) -> M:
    converted = []
    for (_, col, converters), value in zip(columns, values, strict=True):
        for convert in converters:
            value = convert(value, col, connection)
        converted.append(value)
    return model.from_db(connection.alias, [f.attname for f, _, _ in columns], converted)
