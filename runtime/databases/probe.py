"""What `POST /sources/{id}/test` learns from a database source: it answers, and what its role
could do beyond reading. The role is the last line of defence, and the operator's to set: a
role that can write gets a warning; a privileged one (runtime/databases/roles.py) fails the
test, as it fails every db node, unless the operator allows such roles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from runtime.databases.functions import SQLPolicy
from runtime.databases.roles import PG_FACTS, RoleFacts, mysql_role_facts, pg_role_facts
from runtime.errors import NodeError

PG_ROLE_CHECK = """
SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls,
       has_database_privilege(current_database(), 'CREATE'),
       ARRAY(SELECT n.nspname FROM pg_namespace n
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg\\_%' AND has_schema_privilege(n.oid, 'CREATE')
             ORDER BY 1 LIMIT 5),
       ARRAY(SELECT format('%I.%I', n.nspname, c.relname)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg\\_%'
               AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
             ORDER BY 1 LIMIT 5),
       current_user
FROM pg_roles r WHERE r.rolname = current_user
"""
MYSQL_WRITE_PRIVILEGES = (
    "ALL PRIVILEGES",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "ALTER",
    "INDEX",
    "CREATE TEMPORARY TABLES",
    "LOCK TABLES",
    "EXECUTE",
    "CREATE ROUTINE",
    "ALTER ROUTINE",
    "TRIGGER",
    "EVENT",
    "FILE",
    "SUPER",
    "GRANT OPTION",
    "CREATE USER",
    "SHUTDOWN",
    "RELOAD",
    "PROCESS",
)
MYSQL_SUPER_PRIVILEGES = ("ALL PRIVILEGES ON *.*", "SUPER")
GRANT_LINE = re.compile(r"^GRANT (?P<privileges>.+?) ON (?P<target>\S+) TO ", re.IGNORECASE)


class AdminQueries(Protocol):
    kind: str
    policy: SQLPolicy

    async def run_admin(self, sql: str) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True, slots=True)
class ProbeReport:
    ok: bool
    message: str
    warnings: list[str] = field(default_factory=list)
    role_ok: bool = True
    """Whether db nodes run with this role (not privileged, or the operator allows it)."""
    role_detail: str = ""


async def probe(adapter: AdminQueries) -> ProbeReport:
    """Connect, run SELECT 1, fail for a privileged role (unless the operator allows one), and
    warn about a role that could write."""
    try:
        await adapter.run_admin("SELECT 1")
        if adapter.kind == "postgres":
            warnings = postgres_warnings((await adapter.run_admin(PG_ROLE_CHECK))[0])
            facts = pg_role_facts((await adapter.run_admin(PG_FACTS))[0])
        else:
            grants = [str(row[0]) for row in await adapter.run_admin("SHOW GRANTS")]
            warnings = mysql_warnings(grants)
            user = await adapter.run_admin("SELECT CURRENT_USER()")
            facts = mysql_role_facts(grants, str(user[0][0]))
    except NodeError as exc:
        return ProbeReport(ok=False, message=exc.message)
    role_ok, detail = _role_verdict(facts, adapter)
    answered = f"The {adapter.kind} source answered."
    return ProbeReport(True, answered, warnings, role_ok=role_ok, role_detail=detail)


def _role_verdict(facts: RoleFacts, adapter: AdminQueries) -> tuple[bool, str]:
    problem = facts.problem(adapter.kind)
    if problem is None:
        return True, f"The role {facts.role} is not privileged: db nodes run with it."
    if adapter.policy.allow_privileged_roles:
        return True, f"The role {facts.role} is privileged; the operator allows such roles."
    return False, problem


def postgres_warnings(row: tuple[Any, ...]) -> list[str]:
    superuser, create_role, create_db, bypass_rls, db_create, schemas, tables, role = row
    fix = f"give this source a role that can only SELECT (not {role})"
    warnings = []
    if superuser:
        warnings.append(f"The role {role} is a superuser: it can undo any safeguard; {fix}.")
    if create_role or create_db or bypass_rls:
        warnings.append(f"The role {role} can create roles or databases or bypass RLS; {fix}.")
    if db_create or schemas:
        where = ", ".join(schemas) if schemas else "the database"
        warnings.append(f"The role {role} can create objects in {where}; {fix}.")
    if tables:
        warnings.append(f"The role {role} can write to tables such as {', '.join(tables)}; {fix}.")
    return warnings


def mysql_warnings(grants: list[str]) -> list[str]:
    warnings = []
    for line in grants:
        match = GRANT_LINE.match(line)
        if not match:
            continue
        privileges = match["privileges"].upper()
        target = match["target"]
        if any(p in f"{privileges} ON {target}" for p in MYSQL_SUPER_PRIVILEGES):
            warnings.append(f"The user holds {privileges} on {target}: it is an administrator.")
        elif held := [p for p in MYSQL_WRITE_PRIVILEGES if p in privileges]:
            warnings.append(f"The user can {', '.join(held)} on {target}.")
    if warnings:
        warnings.append("Give this source a user that holds only SELECT.")
    return warnings
