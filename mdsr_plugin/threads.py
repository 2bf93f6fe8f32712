"""How many threads PyTorch may use without fighting other processes for cores.

PyTorch's CPU kernels run OpenMP parallel regions whose threads spin while they
wait for each other.  When another process already keeps one of the cores busy,
each region waits for a thread that is not running: on the two-core development
machine an upsampling run took 12–60× longer with two threads than with one
(docs/benchmarks.md, "Threads").  Passive waiting (``OMP_WAIT_POLICY=PASSIVE``)
avoids that but halves the speed on an idle machine, so instead the command-line
tools measure how many of their allowed cores are idle and use that many threads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

__all__ = ["idle_cores", "idle_between", "threads_for", "limit_torch_threads", "limit_requested", "apply_requested_limit"]

log = logging.getLogger(__name__)

_requested = False


def _cpu_times(stat_text: str, cpus) -> dict[int, tuple[int, int]]:
    """(idle, total) jiffies per CPU in ``cpus`` from the text of ``/proc/stat``."""
    times = {}
    for line in stat_text.splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
            times[int(name[3:])] = (values[3] + values[4], sum(values))
    return times


def idle_cores(interval: float = 0.1, stat_path: str = "/proc/stat") -> float | None:
    """Idle capacity, in cores, of the CPUs this process may run on, measured over
    ``interval`` seconds; None where ``/proc/stat`` cannot be read (not Linux)."""
    try:
        with open(stat_path) as f:
            before = f.read()
        time.sleep(interval)
        with open(stat_path) as f:
            after = f.read()
    except OSError:
        return None
    return idle_between(before, after)


def idle_between(before: str, after: str, cpus=None) -> float:
    """Idle cores between two readings of ``/proc/stat``, over ``cpus`` (default: the
    CPUs this process may run on)."""
    if cpus is None:
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    first, second = _cpu_times(before, cpus), _cpu_times(after, cpus)
    idle = 0.0
    for cpu, (idle_after, total_after) in second.items():
        idle_before, total_before = first.get(cpu, (idle_after, total_after))
        elapsed = total_after - total_before
        idle += (idle_after - idle_before) / elapsed if elapsed > 0 else 1.0
    return idle


def threads_for(idle: float | None, allowed: int) -> int:
    """Threads to use: the idle cores (a core counts when at least 3/4 of it is idle),
    at least one and at most ``allowed``; ``allowed`` when unknown."""
    if idle is None:
        return allowed
    return max(1, min(allowed, int(idle + 0.25)))


def limit_torch_threads(interval: float = 0.1) -> tuple[int, int] | None:
    """Lower PyTorch's thread count to the idle cores unless the user chose it.

    Does nothing when ``OMP_NUM_THREADS`` is set.  Returns (threads used, threads
    PyTorch would have used) when it lowered the count, else None.
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    import torch

    allowed = torch.get_num_threads()
    idle = idle_cores(interval)
    threads = threads_for(idle, allowed)
    if threads >= allowed:
        return None
    torch.set_num_threads(threads)
    log.warning("only %.1f of %d cores are idle: PyTorch uses %d thread(s) (set OMP_NUM_THREADS to choose)",
                idle, allowed, threads)
    return threads, allowed


@contextlib.contextmanager
def limit_requested():
    """Within this block, :func:`limit_torch_threads` runs when PyTorch is first needed
    (the command-line tools use it; a Python user's own thread settings are left alone)."""
    global _requested
    _requested = True
    try:
        yield
    finally:
        _requested = False


def apply_requested_limit() -> tuple[int, int] | None:
    """Run :func:`limit_torch_threads` once if it was requested (called by the neural method)."""
    global _requested
    if not _requested:
        return None
    _requested = False
    return limit_torch_threads()
