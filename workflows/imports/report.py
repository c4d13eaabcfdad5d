"""What an import did with each node of the original document."""

from dataclasses import dataclass, field
from typing import Any, TypedDict


class Mapped(TypedDict):
    id: str
    kind: str
    node_id: str
    type: str


class NotMapped(TypedDict):
    id: str
    kind: str
    reason: str


@dataclass
class ImportReport:
    mapped: list[Mapped] = field(default_factory=list)
    not_mapped: list[NotMapped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def map(self, original: str, kind: str, node_id: str, node_type: str) -> None:
        self.mapped.append({"id": original, "kind": kind, "node_id": node_id, "type": node_type})

    def skip(self, original: str, kind: str, reason: str) -> None:
        self.not_mapped.append({"id": original, "kind": kind, "reason": reason})

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)

    def to_dict(self) -> dict[str, Any]:
        return {"mapped": self.mapped, "not_mapped": self.not_mapped, "notes": self.notes}


@dataclass
class Conversion:
    """A converted document: the spec to store, and the report."""

    spec: dict[str, Any]
    report: ImportReport

    @property
    def runnable(self) -> bool:
        """Something besides the input node and plain text came across."""
        return any(n["type"] not in ("input", "aggregator") for n in self.spec["nodes"])


@dataclass(frozen=True)
class ImportOptions:
    """What the caller said about the target: stored sources to use per provider, and the
    environment variable inline LLM sources read their key from."""

    source_map: dict[str, str] = field(default_factory=dict)
    api_key_env: str | None = None


class NotConvertible(ValueError):
    """The document is not the format it claims; `field` names where (a JSON Pointer)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
