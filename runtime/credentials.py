"""Where a source's adapter reads its credentials during a run.

`SourceCredentials` is the `EnvLookup` a run hands each adapter: it gives out a variable only
when the source names it and the tenant's grants bind it to where the source sends it (checked
as the value is read, before any request), and it hands every value read to the run's redactor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runtime.errors import ForbiddenSecretRef
from runtime.grants import CredentialUse, Grants
from runtime.providers.base import EnvLookup
from runtime.redaction import Redactor


class SourceCredentials:
    """The credentials one source may read (see the module docstring)."""

    def __init__(
        self,
        source_id: str,
        kind: str,
        config: Mapping[str, Any],
        env: EnvLookup,
        grants: Grants | None,
        redactor: Redactor,
    ) -> None:
        self.source_id = source_id
        self._env = env
        self._grants = grants
        self._redactor = redactor
        self._uses = grants.uses(kind, config) if grants is not None else []

    def __call__(self, name: str) -> str | None:
        """The variable's value, once the grants allow every use the source makes of it.

        Raises:
            ForbiddenSecretRef: the source does not name it, or would send it where its grant
                does not bind it.
        """
        if self._grants is not None:
            self._check(name, [use for use in self._uses if use.name == name])
        value = self._env(name)
        if value:
            self._redactor.add(name, value)
        return value

    def note(self, name: str, value: str) -> None:
        """Redact a value derived from the variable `name` (see runtime.redaction.note_derived)."""
        self._redactor.add(name, value)

    def _check(self, name: str, uses: list[CredentialUse]) -> None:
        assert self._grants is not None
        if not uses:
            raise ForbiddenSecretRef(
                f"The source '{self.source_id}' asked for the environment variable '{name}', "
                "which its config does not name; nothing was sent."
            )
        for use in uses:
            refusal = self._grants.refusal(use)
            if refusal is not None:
                raise ForbiddenSecretRef(
                    f"The source '{self.source_id}' may not read '{name}': {refusal}. Nothing was "
                    "sent. Point the source where the grant allows, or ask the operator to bind "
                    f"the variable to it ({use.binding()})."
                )
