"""Reading an uploaded document: JSON, or YAML (a Dify DSL) with no aliases."""

from typing import Any

import yaml


class _NoAliases(yaml.SafeLoader):
    """SafeLoader refusing anchors' aliases: a few lines of them can stand for billions of
    nodes (the "billion laughs"), which every later walk over the document would visit."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases (*name) are not accepted; write the value out.")
        return super().compose_node(parent, index)


def load_yaml(text: str) -> Any:
    """Parse YAML text with plain types only.

    Raises:
        ValueError: it is not YAML, or uses an alias, or nests too deep to follow.
    """
    try:
        return yaml.load(text, Loader=_NoAliases)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ValueError(f"The document is not YAML: {exc}") from None
    except RecursionError:
        raise ValueError("The document nests too deep to read.") from None
