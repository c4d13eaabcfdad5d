"""Cycle and reachability helpers: iterative, so a 1,000-node chain does not recurse."""

from __future__ import annotations

from runtime.graph import cycle_through, cyclic_components, reachable


def test_a_long_chain_has_no_cycle_and_is_all_reachable() -> None:
    succ = {i: [i + 1] for i in range(5000)}
    assert cyclic_components(range(5001), succ) == []
    assert len(reachable(0, succ)) == 5001


def test_it_finds_every_cycle_and_self_loops() -> None:
    succ = {"a": ["b"], "b": ["a", "c"], "c": ["d"], "d": ["c"], "e": ["e"], "f": ["a"]}
    components = sorted(sorted(c) for c in cyclic_components(list("abcdef"), succ))
    assert components == [["a", "b"], ["c", "d"], ["e"]]


def test_cycle_through_gives_a_closed_path() -> None:
    succ = {"a": ["b"], "b": ["c"], "c": ["a"]}
    assert cycle_through("a", {"a", "b", "c"}, succ) == ["a", "b", "c", "a"]
    assert cycle_through("e", {"e"}, {"e": ["e"]}) == ["e", "e"]


def test_a_big_cycle_is_found_without_recursion() -> None:
    succ = {i: [(i + 1) % 3000] for i in range(3000)}
    [component] = cyclic_components(range(3000), succ)
    assert len(component) == 3000
