"""PyTorch's thread count follows the idle cores (mdsr_plugin/threads.py)."""

import os

import pytest
import torch

from mdsr_plugin import threads

STAT = """cpu  400 0 200 1400 0 0 0 0 0 0
cpu0 100 0 50 850 0 0 0 0 0 0
cpu1 300 0 150 550 0 0 0 0 0 0
intr 12345
"""
# 100 jiffies later: cpu0 idle the whole time, cpu1 busy the whole time
STAT_LATER = """cpu  500 0 200 1500 0 0 0 0 0 0
cpu0 100 0 50 950 0 0 0 0 0 0
cpu1 400 0 150 550 0 0 0 0 0 0
intr 12399
"""


def test_idle_cores_from_two_readings_of_proc_stat():
    assert threads._cpu_times(STAT, {0, 1}) == {0: (850, 1000), 1: (550, 1000)}
    assert threads.idle_between(STAT, STAT_LATER, cpus={0, 1}) == pytest.approx(1.0)
    assert threads.idle_between(STAT, STAT_LATER, cpus={1}) == pytest.approx(0.0)  # only the busy one allowed


@pytest.mark.parametrize("idle, allowed, expected", [(None, 4, 4), (0.1, 2, 1), (0.8, 2, 1), (1.0, 2, 1),
                                                     (1.8, 2, 2), (7.9, 4, 4), (2.6, 8, 2)])
def test_threads_for(idle, allowed, expected):
    assert threads.threads_for(idle, allowed) == expected


def test_measured_idle_capacity_is_within_the_allowed_cores():
    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc/stat")
    idle = threads.idle_cores(0.05)
    assert 0.0 <= idle <= len(os.sched_getaffinity(0)) + 1e-9


def test_limit_lowers_torch_threads_only_when_cores_are_busy_and_the_user_did_not_choose(monkeypatch):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(threads, "idle_cores", lambda interval=0.1: 0.9)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert threads.limit_torch_threads() is None and torch.get_num_threads() == 2  # the user's choice
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert threads.apply_requested_limit() is None  # nothing requested: a library user's settings stay
        with threads.limit_requested():
            assert threads.apply_requested_limit() == (1, 2) and torch.get_num_threads() == 1
            assert threads.apply_requested_limit() is None  # once
        torch.set_num_threads(2)
        assert threads.apply_requested_limit() is None  # the request ends with the block
        torch.set_num_threads(2)
        monkeypatch.setattr(threads, "idle_cores", lambda interval=0.1: 2.0)
        assert threads.limit_torch_threads() is None and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
