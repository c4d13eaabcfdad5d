"""What AgentFlow adds over a hand-written LangGraph graph, and how long compiling takes.

Run: `python bench/bench_runtime.py [--repeat N]`. In one process, the same three workflows run
as AgentFlow specs and as hand-written LangGraph graphs whose nodes do the same trivial work
(render a short string): a 5-node chain, a fan-out of 3 joined by an aggregator, and a keyword
router with two branches. Then validate+compile and compile alone for 50- and 1,000-node specs.
"""

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from langgraph.graph import END, START, StateGraph  # noqa: E402

from runtime import compiler  # noqa: E402
from runtime.context import RunContext  # noqa: E402
from runtime.runner import run_workflow  # noqa: E402
from runtime.sandbox.templates import render_template  # noqa: E402
from runtime.validation import validate_spec  # noqa: E402


def _template(node_id: str, text: str) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "aggregator",
        "metadata": {"strategy": "template", "template": text},
    }


def _spec(name: str, nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "start_node": "input",
        "nodes": [{"id": "input", "type": "input"}, *nodes],
        "edges": edges,
    }


def _edge(a: str, b: str, condition: str | None = None) -> dict[str, Any]:
    return {"from": a, "to": b, **({"condition": condition} if condition else {})}


def agentflow_specs() -> dict[str, dict[str, Any]]:
    chain = [_template(f"n{i}", f"step {i}: {{{{ user_input }}}}") for i in range(4)]
    chain_edges = [_edge("input", "n0"), *(_edge(f"n{i}", f"n{i + 1}") for i in range(3))]
    fan = [_template(x, f"{x}: {{{{ user_input }}}}") for x in ("a", "b", "c")]
    fan.append(_template("join", "{{ outputs.a }} {{ outputs.b }} {{ outputs.c }}"))
    fan_edges = [*(_edge("input", x) for x in "abc"), *(_edge(x, "join") for x in "abc")]
    router = {
        "id": "router",
        "type": "router",
        "metadata": {"strategy": "keyword", "routes": {"x": ["hello"]}, "default": "y"},
    }
    routed = [router, _template("x", "X {{ user_input }}"), _template("y", "Y {{ user_input }}")]
    routed_edges = [_edge("input", "router"), _edge("router", "x", "x"), _edge("router", "y", "y")]
    return {
        "chain of 5": _spec("chain", chain, chain_edges),
        "fan-out 3 + join": _spec("fan", fan, fan_edges),
        "router, 2 branches": _spec("routed", routed, routed_edges),
    }


def _last(_old: Any, new: Any) -> Any:
    return new


def _merge(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
    return {**(old or {}), **(new or {})}


class State(TypedDict, total=False):
    user_input: Annotated[str, _last]
    intent: Annotated[str, _last]
    final_output: Annotated[str, _last]
    outputs: Annotated[dict[str, Any], _merge]


def _node(node_id: str, template: str) -> Any:
    """The same work an AgentFlow template node does: render its Jinja template (sandboxed,
    cached) against the state."""

    async def run(state: State) -> dict[str, Any]:
        text = render_template(template, state) if template else None
        return {"final_output": text, "outputs": {node_id: text}}

    return run


def langgraph_graphs() -> dict[str, Any]:
    chain = StateGraph(State)
    chain.add_node("input", _node("input", ""))
    for i in range(4):
        chain.add_node(f"n{i}", _node(f"n{i}", f"step {i}: {{{{ user_input }}}}"))
    chain.add_edge(START, "input")
    chain.add_edge("input", "n0")
    for i in range(3):
        chain.add_edge(f"n{i}", f"n{i + 1}")
    chain.add_edge("n3", END)

    fan = StateGraph(State)
    fan.add_node("input", _node("input", ""))
    for x in "abc":
        fan.add_node(x, _node(x, f"{x}: {{{{ user_input }}}}"))
        fan.add_edge("input", x)
    fan.add_node(
        "join", _node("join", "{{ outputs.a }} {{ outputs.b }} {{ outputs.c }}"), defer=True
    )
    for x in "abc":
        fan.add_edge(x, "join")
    fan.add_edge(START, "input")
    fan.add_edge("join", END)

    async def route(state: State) -> dict[str, Any]:
        intent = "x" if "hello" in state["user_input"].lower() else "y"
        return {"intent": intent, "outputs": {"router": intent}}

    routed = StateGraph(State)
    routed.add_node("input", _node("input", ""))
    routed.add_node("router", route)
    routed.add_node("x", _node("x", "X {{ user_input }}"))
    routed.add_node("y", _node("y", "Y {{ user_input }}"))
    routed.add_edge(START, "input")
    routed.add_edge("input", "router")
    routed.add_conditional_edges("router", lambda s: s["intent"], ["x", "y"])
    routed.add_edge("x", END)
    routed.add_edge("y", END)
    return {
        "chain of 5": chain.compile(),
        "fan-out 3 + join": fan.compile(),
        "router, 2 branches": routed.compile(),
    }


def _median_ms(run: Callable[[], Any], repeat: int) -> float:
    for _ in range(10):
        run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def compare(repeat: int) -> None:
    graphs = langgraph_graphs()
    print(
        f"{'workflow':22} {'LangGraph':>10} {'AgentFlow':>10} {'ratio':>6} {'per node':>9}"
        "   (median ms/run; per node: AgentFlow's extra time per node step)"
    )
    for name, raw in agentflow_specs().items():
        workflow = compiler.compile_workflow(validate_spec(raw))
        state = {"user_input": "hello world", "outputs": {}}

        def agentflow(workflow: Any = workflow, state: Any = state) -> None:
            outcome = asyncio.run(run_workflow(workflow, state, RunContext(providers={})))
            assert outcome.status == "succeeded", outcome.error

        def langgraph(graph: Any = graphs[name], state: Any = state) -> None:
            asyncio.run(graph.ainvoke(state))

        lg, af = _median_ms(langgraph, repeat), _median_ms(agentflow, repeat)
        steps = len(raw["nodes"])
        print(f"{name:22} {lg:10.2f} {af:10.2f} {af / lg:5.2f}x {(af - lg) / steps:+9.3f}")


def _chain(n: int) -> dict[str, Any]:
    """n nodes in all: input, then rounds of a keyword router choosing between two template
    nodes that join again (a → b), each round starting from the last b."""
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    last, i = "input", 0
    while len(nodes) + 3 <= n - 1:
        i += 1
        nodes += [
            {
                "id": f"r{i}",
                "type": "router",
                "metadata": {"strategy": "keyword", "routes": {"a": ["x"]}, "default": "b"},
            },
            _template(f"a{i}", "A {{ user_input }}"),
            _template(f"b{i}", "B {{ user_input }}"),
        ]
        edges += [
            _edge(last, f"r{i}"),
            _edge(f"r{i}", f"a{i}", "a"),
            _edge(f"r{i}", f"b{i}", "b"),
            _edge(f"a{i}", f"b{i}"),
        ]
        last = f"b{i}"
    while len(nodes) < n - 1:
        nodes.append(_template(f"t{len(nodes)}", "T {{ user_input }}"))
        edges.append(_edge(last, nodes[-1]["id"]))
        last = nodes[-1]["id"]
    return _spec(f"chain-{n}", nodes, edges)


def compile_times() -> None:
    print(
        f"\n{'spec':12} {'validate+compile':>17} {'compile only':>13} {'cached':>8}   (median ms)"
    )
    for n in (50, 1000):
        raw = _chain(n)
        validated = validate_spec(raw)
        repeat = 20 if n == 50 else 5

        def cold(raw: Any = raw) -> None:
            compiler.clear_cache()
            compiler.compile_workflow(validate_spec(raw))

        def compile_only(validated: Any = validated) -> None:
            compiler.clear_cache()
            compiler.compile_workflow(validated)

        def cached(validated: Any = validated) -> None:
            compiler.compile_workflow(validated)

        full, only, hit = (_median_ms(f, repeat) for f in (cold, compile_only, cached))
        print(f"{f'{n} nodes':12} {full:17.1f} {only:13.1f} {hit:8.2f}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    compare(args.repeat)
    compile_times()
    return 0


if __name__ == "__main__":
    sys.exit(main())
