"""Each process's samples go to a numbered slot's files in the shared directory."""

from pathlib import Path

from agentflow_site.observability.multiprocess import _claim


def test_running_processes_get_distinct_slots_and_a_successor_continues_a_free_one(
    tmp_path: Path,
) -> None:
    first, first_lock = _claim(str(tmp_path))
    second, second_lock = _claim(str(tmp_path))
    assert (first, second) == ("s0", "s1")
    (tmp_path / "counter_s0.db").write_bytes(b"counts of s0")
    first_lock.close()  # the process holding s0 died
    successor, successor_lock = _claim(str(tmp_path))
    assert successor == "s0"
    assert (tmp_path / "counter_s0.db").read_bytes() == b"counts of s0"  # kept: s1 still runs
    second_lock.close()
    successor_lock.close()


def test_the_first_process_after_all_stopped_starts_from_empty_files(tmp_path: Path) -> None:
    slot, lock = _claim(str(tmp_path))
    (tmp_path / f"counter_{slot}.db").write_bytes(b"old counts")
    (tmp_path / "histogram_s7.db").write_bytes(b"old counts")
    lock.close()  # every process stopped
    slot, lock = _claim(str(tmp_path))
    assert slot == "s0"
    assert sorted(p.name for p in tmp_path.glob("*.db")) == []
    lock.close()
