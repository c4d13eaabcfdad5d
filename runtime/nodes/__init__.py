"""Every node type, in one explicit registry (plugins join through entry points).

A type maps to a node class, or — for types with strategies — to a dict of classes keyed by the
metadata's `strategy`.
"""

from __future__ import annotations

from runtime.nodes.aggregator import AGGREGATOR_STRATEGIES
from runtime.nodes.approval import ApprovalNode
from runtime.nodes.base import Node, NodeOutput
from runtime.nodes.db import DBNode
from runtime.nodes.http import HTTPNode
from runtime.nodes.image import ImageNode
from runtime.nodes.input import InputNode
from runtime.nodes.llm import LLMNode
from runtime.nodes.router import ROUTER_STRATEGIES
from runtime.nodes.workflow import WorkflowNode

NODE_TYPES: dict[str, type[Node] | dict[str, type[Node]]] = {
    "input": InputNode,
    "router": ROUTER_STRATEGIES,
    "llm": LLMNode,
    "image": ImageNode,
    "aggregator": AGGREGATOR_STRATEGIES,
    "db": DBNode,
    "http": HTTPNode,
    "approval": ApprovalNode,
    "workflow": WorkflowNode,
}

__all__ = ["NODE_TYPES", "Node", "NodeOutput"]
