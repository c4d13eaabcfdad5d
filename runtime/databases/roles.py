"""What a source's database role may do beyond reading, learnt once per source and kept.

A PostgreSQL superuser can read and write the server's files and run programs whatever the
transaction says (`COPY … TO PROGRAM`, `pg_read_file`, `lo_export`), and so can members of
pg_read_server_files, pg_write_server_files and pg_execute_server_program; a MySQL user with
FILE writes files with a READ ONLY transaction open (INTO OUTFILE) and one with SUPER may change
the server. Such a role makes every other guard one bug away from failing, so a db node refuses
to run with one, and the source's test fails, unless the operator allows it
(`SQLPolicy.allow_privileged_roles`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime.databases.base import PrivilegedRole

PG_FILE_ROLES = ("pg_read_server_files", "pg_write_server_files", "pg_execute_server_program")
PG_FACTS = f"""
SELECT r.rolsuper,
       ARRAY(SELECT g.rolname::text FROM pg_roles g
             WHERE g.rolname IN {PG_FILE_ROLES!r} AND pg_has_role(current_user, g.oid, 'MEMBER')
             ORDER BY 1),
       current_user::text,
       ARRAY(SELECT DISTINCT ARRAY[n.nspname::text, p.proname::text]
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE p.prokind <> 'p' AND p.pronargs >= 1
               AND p.pronargs - p.pronargdefaults - (p.provariadic <> 0)::int <= 1)
FROM pg_roles r WHERE r.rolname = current_user
"""
"""The role's powers, and the functions `x.name` could call (one argument, the rest defaulted)."""
MYSQL_PRIVILEGED = ("ALL PRIVILEGES", "FILE", "SUPER")
_GRANT = re.compile(r"^GRANT (?P<privileges>.+?) ON (?P<target>\S+) TO ", re.IGNORECASE)
SETTING = "AGENTFLOW_ALLOW_PRIVILEGED_DB_ROLES"


@dataclass(frozen=True, slots=True)
class RoleFacts:
    role: str
    powers: tuple[str, ...]
    """What makes the role privileged ("superuser", "FILE on *.*", …); empty when it is not."""
    field_functions: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """PostgreSQL: the database's functions that `x.name` can call, by name, with the schemas
    that hold one so named."""

    def check(self, kind: str, allowed: bool) -> None:
        """Raise PrivilegedRole when the role is privileged and the operator did not allow it."""
        problem = self.problem(kind)
        if problem and not allowed:
            raise PrivilegedRole(problem)

    def problem(self, kind: str) -> str | None:
        if not self.powers:
            return None
        return (
            f"The {kind} source's role {self.role} holds {', '.join(self.powers)}: it can read "
            "or write the server's files or undo every other guard, so db nodes do not run "
            f"with it. Give the source a role that can only SELECT (or the operator sets {SETTING}"
            "=true)."
        )


def pg_role_facts(row: tuple[Any, ...]) -> RoleFacts:
    superuser, file_roles, role, functions = row
    powers = ("superuser",) if superuser else tuple(file_roles or ())
    schemas: dict[str, set[str]] = {}
    for schema, name in functions or ():
        schemas.setdefault(name, set()).add(schema)
    return RoleFacts(str(role), powers, {n: frozenset(s) for n, s in schemas.items()})


def mysql_role_facts(grants: list[str], user: str) -> RoleFacts:
    """From SHOW GRANTS (which, on MariaDB, also lists the grants of the user's roles)."""
    powers = []
    for line in grants:
        match = _GRANT.match(line)
        if not match or match["target"] != "*.*":
            continue
        privileges = match["privileges"].upper()
        powers += [f"{p} on *.*" for p in MYSQL_PRIVILEGED if re.search(rf"\b{p}\b", privileges)]
    return RoleFacts(user, tuple(dict.fromkeys(powers)))
