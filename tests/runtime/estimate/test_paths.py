"""The dearest and the cheapest run, by dynamic programming over the graph."""

import time

from runtime.estimate.paths import Graph, Loop, cheapest, most_expensive


def w(cost: float, prompt: int = 0, completion: int = 0) -> tuple[float, int, int]:
    return (cost, prompt, completion)


def test_a_router_takes_its_dearest_or_its_cheapest_route() -> None:
    graph = Graph("in", {"in": [("r",)], "r": [("a",), ("b",), ()], "a": [()], "b": [()]})
    weights = {"a": w(2.0, 10, 5), "b": w(1.0, 3, 1)}
    dearest, cheap = most_expensive(graph, weights), cheapest(graph, weights)
    assert dearest.nodes == ["in", "r", "a"] and dearest.weight == w(2.0, 10, 5)
    assert cheap.nodes == ["in", "r"] and cheap.weight == w(0.0, 0, 0)  # an intent ends it


def test_a_fan_out_runs_every_branch_and_a_join_once() -> None:
    graph = Graph(
        "in",
        {"in": [("a", "b", "c")], "a": [("j",)], "b": [("j",)], "c": [("j",)], "j": [()]},
    )
    weights = {n: w(1.0, 1, 1) for n in "abcj"}
    run = most_expensive(graph, weights)
    assert run.nodes == ["in", "a", "b", "c", "j"]
    assert run.weight == w(4.0, 4, 4)  # j once, not three times
    assert cheapest(graph, weights).weight == w(4.0, 4, 4)


def test_a_router_shared_by_two_branches_chooses_once() -> None:
    graph = Graph(
        "in",
        {
            "in": [("a", "b")],
            "a": [("r",)],
            "b": [("r",)],
            "r": [("x",), ("y",)],
            "x": [()],
            "y": [()],
        },
    )
    weights = {"x": w(5.0), "y": w(1.0), "a": w(1.0), "b": w(1.0)}
    assert most_expensive(graph, weights).weight == w(7.0)
    assert cheapest(graph, weights).weight == w(3.0)


def test_a_loop_counts_its_passes_on_the_dearest_run_only() -> None:
    graph = Graph(
        "in",
        {"in": [("draft",)], "draft": [("critic",)], "critic": [("out",)], "out": [()]},
        [Loop("critic", "draft", 3)],
    )
    weights = {"draft": w(1.0, 10, 100), "critic": w(0.5, 5, 1)}
    dearest = most_expensive(graph, weights)
    assert dearest.weight == w(6.0, 60, 404)
    assert dearest.loop_passes == {"critic->draft": 3}
    assert cheapest(graph, weights).weight == w(1.5, 15, 101)


def test_ties_in_cost_go_to_the_run_with_more_tokens() -> None:
    graph = Graph("r", {"r": [("a",), ("b",)], "a": [()], "b": [()]})
    weights = {"a": w(0.0, 5, 0), "b": w(0.0, 50, 0)}
    assert most_expensive(graph, weights).nodes == ["r", "b"]
    assert cheapest(graph, weights).nodes == ["r", "a"]


def test_a_thousand_nodes_take_well_under_a_second() -> None:
    # A ladder: each router picks one of two nodes that meet again, 500 times over.
    branches: dict[str, list[tuple[str, ...]]] = {}
    for i in range(333):
        branches[f"r{i}"] = [(f"a{i}",), (f"b{i}",)]
        branches[f"a{i}"] = [(f"r{i + 1}",)]
        branches[f"b{i}"] = [(f"r{i + 1}",)]
    branches["r333"] = [()]
    weights = {f"a{i}": w(1.0, 1, 0) for i in range(333)}
    started = time.perf_counter()
    dearest = most_expensive(Graph("r0", branches), weights)
    cheap = cheapest(Graph("r0", branches), weights)
    assert time.perf_counter() - started < 1.0
    assert dearest.weight == w(333.0, 333, 0) and cheap.weight == w(0.0, 0, 0)
    assert len(dearest.nodes) == 667
