"""prometheus-client's multiprocess mode, with one file set per process *slot* rather than per pid.

Every AgentFlow process on a host (each web process of `python -m agentflow_site.serving
--processes N`, each `manage.py runworker`) writes its samples to memory-mapped files in one
directory, `PROMETHEUS_MULTIPROC_DIR` (default `<AGENTFLOW_DATA_DIR>/metrics`: `var/metrics` in
the checkout); `/metrics`, on whichever web process answers, sums them all.

prometheus-client names those files by pid, so each restart leaves another set behind (the
scrape reads them all, forever), and emptying the directory while processes run loses their
samples. Here a process claims the lowest free slot instead: `slot-<n>.lock`, held with
`flock` for its lifetime (the kernel lets go when it dies, `kill -9` too), and its files are
`counter_s<n>.db` and so on:

- a process that replaces a dead one takes its slot and continues its counts, so the sums never
  go down (no false counter reset in Prometheus) and the files are as many as processes ever ran
  at once;
- the first process to start when no slot is held (every AgentFlow process on the host had
  stopped: a full restart) empties the directory, so counts restart from zero, as after any
  restart, and series no longer recorded (a renamed workflow) go away.

The slot is claimed at the first sample, not at start: a `manage.py migrate` claims nothing.
"""

import contextlib
import fcntl
import glob
import os
from pathlib import Path
from typing import IO, Any

from prometheus_client import values

ENV = "PROMETHEUS_MULTIPROC_DIR"

_state: dict[str, Any] = {"pid": None, "slot": "", "lock": None, "factory": None}


def directory() -> str:
    """Where this host's processes keep their samples (created when missing)."""
    from django.conf import settings

    found = os.environ.get(ENV) or str(Path(settings.DATA_DIR) / "metrics")
    os.environ[ENV] = found  # prometheus-client reads it; child processes inherit it
    Path(found).mkdir(parents=True, exist_ok=True)
    return found


def install() -> None:
    """Put prometheus-client in multiprocess mode, files named by slot (before any sample)."""
    values.ValueClass = _value


def _value(*args: Any, **kwargs: Any) -> Any:
    if _state["factory"] is None:
        directory()
        _state["factory"] = values.MultiProcessValue(process_identifier=slot)
    return _state["factory"](*args, **kwargs)


def slot() -> str:
    """This process's slot (claimed on the first call, again in a forked child)."""
    if _state["pid"] != os.getpid():
        _state["slot"], _state["lock"] = _claim(directory())
        _state["pid"] = os.getpid()
    return str(_state["slot"])


def _claim(where: str) -> tuple[str, IO[str]]:
    with open(os.path.join(where, ".lock"), "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # one process choosing at a time
        held, free = _slots(where)
        if not held:  # nobody runs: a fresh start
            for name in glob.glob(os.path.join(where, "*.db")):
                os.unlink(name)
        number = next(n for n in range(len(held) + len(free) + 1) if n not in held)
        mine = free.pop(number, None) or _try_lock(where, number)
        for other in free.values():
            other.close()
        assert mine is not None  # the lowest number nobody holds
        return f"s{number}", mine


def _slots(where: str) -> tuple[set[int], dict[int, IO[str]]]:
    """Slots held by running processes, and those free (locked by us for now)."""
    held: set[int] = set()
    free: dict[int, IO[str]] = {}
    for name in glob.glob(os.path.join(where, "slot-*.lock")):
        number = int(Path(name).stem.removeprefix("slot-"))
        lock = _try_lock(where, number)
        if lock is None:
            held.add(number)
        else:
            free[number] = lock
    return held, free


def _try_lock(where: str, number: int) -> IO[str] | None:
    handle = open(os.path.join(where, f"slot-{number}.lock"), "a")  # noqa: SIM115 (held)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def release() -> None:
    """Give the slot back (tests; a process's end does it by itself)."""
    lock = _state["lock"]
    _state.update(pid=None, slot="", lock=None)
    if lock is not None:
        with contextlib.suppress(OSError):
            lock.close()
