"""Fault injection for mdsr-batch: the real command killed with SIGKILL at seeded random
moments, then run again until the archive is complete.

Whatever the moment of the kill, these hold:

* after the kill: every output present under its real name is complete (equal, byte
  for byte, to a clean run's), and every file the manifest records as done is there
  with the recorded size;
* after the resume: every output is there once, complete and readable by ASE, no
  temporary ``.partial-`` file is left, the manifest's sizes match the disk, and no
  input was touched (sha256 of every file in the archive, before and after).

The moment is drawn from a seeded generator: wait for ``k`` new manifest lines (so that
the kill lands mid-archive on any machine), then a random delay.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mdsr_plugin.batch import BatchSettings, process_archive
from mdsr_plugin.batch.manifest import LOCK_NAME, MANIFEST_NAME, Manifest
from mdsr_plugin.io import write_trajectory
from mdsr_plugin.settings import UpsampleSettings
from mdsr_plugin.trajectory import Trajectory

N_FILES = 6
N_FRAMES = 600  # coarse frames per file: a few tenths of a second each, so kills land mid-file too
COARSE_DT = 20.0  # fs


def _oscillators(n_frames: int, seed: int) -> Trajectory:
    """Five atoms on independent sine motions (Å, Å/fs), exact velocities, 20 fs apart."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) * COARSE_DT
    omega, amplitude = rng.uniform(0.02, 0.2, (5, 3)), rng.uniform(0.02, 0.1, (5, 3))
    base = rng.normal(0, 1.5, (5, 3))
    return Trajectory(numbers=[6, 6, 8, 1, 1], times=t,
                      positions=base + amplitude * np.sin(omega * t[:, None, None]),
                      velocities=amplitude * omega * np.cos(omega * t[:, None, None]))


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """Six XYZ files with velocities in two folders."""
    root = tmp_path_factory.mktemp("faults") / "archive"
    for i in range(N_FILES):
        folder = root / f"run{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        write_trajectory(folder / f"md{i}.xyz", _oscillators(N_FRAMES, seed=i))
    return root


def _checksums(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, hidden ones included, by relative path."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _visible_files(root: Path) -> set[str]:
    if not root.is_dir():
        return set()
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(".")}


def _manifest_lines(out: Path) -> int:
    path = out / MANIFEST_NAME
    return len(path.read_bytes().splitlines()) if path.is_file() else 0


def _start(archive: Path, out: Path, factor: int, workers: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "mdsr_plugin.batch.cli", str(archive), "-o", str(out),
               "--factor", str(factor), "--method", "hermite", "--workers", str(workers), "--threads", "1", "-q"]
    # A session of its own, so that the kill reaches the batch and its workers at once,
    # as the out-of-memory killer or a node failure would: nobody gets to clean up.
    return subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _workers_of(pid: int) -> list[int]:
    """The worker processes of the batch ``pid`` (its spawned children, not the resource tracker)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                found.append(int(child))
    return found


def _partial_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if ".partial-" in p.name] if out.is_dir() else []


def _kill_at_random(process: subprocess.Popen, out: Path, rng: random.Random, target: str) -> None:
    """SIGKILL the whole batch (``target="all"``) or one of its workers (``"worker"``) at a
    moment drawn from ``rng``: after ``k`` more manifest lines, then either at once or
    while an output is being written, then after a short random delay.

    Waiting for the batch's progress rather than for a time makes the moments land in
    the same phases on a fast or a loaded machine.
    """
    wanted = _manifest_lines(out) + rng.randrange(0, N_FILES - 1)
    while_writing = rng.random() < 0.5
    # An XYZ output is written in a few tens of milliseconds, after the arithmetic.
    delay = rng.uniform(0.0, 0.01 if while_writing else 0.2)
    deadline = time.monotonic() + 60
    while process.poll() is None and _manifest_lines(out) < wanted and time.monotonic() < deadline:
        time.sleep(0.005)
    while process.poll() is None and while_writing and not _partial_files(out) and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    if process.poll() is not None:
        return  # finished first: the invariants hold all the same
    if target == "all":
        os.killpg(process.pid, signal.SIGKILL)
    else:
        workers = _workers_of(process.pid)
        if workers:
            os.kill(rng.choice(sorted(workers)), signal.SIGKILL)
    process.communicate(timeout=120)


def _assert_what_is_there_is_whole(out: Path, clean: Path) -> None:
    """Every output under its real name equals the clean run's; the manifest's done
    records match the disk."""
    for relative in _visible_files(out) - {MANIFEST_NAME}:
        assert (out / relative).read_bytes() == (clean / relative).read_bytes(), f"{relative} is incomplete"
    for record in Manifest(out).latest.values():
        if record["status"] == "done":
            for relative, size in record["outputs"].items():
                assert (out / relative).stat().st_size == size, relative


@pytest.mark.slow  # batch processes killed at random and resumed: 5-9 s each (make test runs it)
@pytest.mark.parametrize("seed, workers, target", [(0, 1, "all"), (1, 1, "all"), (2, 2, "all"), (3, 2, "worker")])
def test_killed_batches_resume_to_a_complete_consistent_archive(archive, tmp_path, seed, workers, target):
    rng = random.Random(seed)
    factor = rng.choice([2, 3, 4])
    inputs_before = _checksums(archive)
    clean = tmp_path / "clean"
    result = process_archive(archive, clean, BatchSettings(UpsampleSettings(factor=factor, method="hermite")))
    assert len(result.done) == N_FILES
    expected = set(_checksums(archive))  # outputs keep the inputs' names and folders

    out = tmp_path / "out"
    for _ in range(2 if workers == 1 else 1):  # a kill, then (single worker) a kill of the resumed run
        process = _start(archive, out, factor, workers)
        _kill_at_random(process, out, rng, target)
        assert process.wait() in (0, 1, -signal.SIGKILL)  # 1: a killed worker failed its files
        _assert_what_is_there_is_whole(out, clean)

    process = _start(archive, out, factor, workers=1)  # the resume: one worker starts faster
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr

    import ase.io

    assert _visible_files(out) == expected | {MANIFEST_NAME}  # each output once, nothing else
    assert not _partial_files(out)
    assert {p.name for p in out.iterdir() if p.name.startswith(".")} <= {LOCK_NAME}
    latest = Manifest(out).latest
    assert set(latest) == expected
    for relative, record in latest.items():
        assert record["status"] == "done", record
        assert record["frames_out"] == (N_FRAMES - 1) * factor + 1
        assert record["outputs"] == {relative: (out / relative).stat().st_size}
        assert (out / relative).read_bytes() == (clean / relative).read_bytes()
        assert len(ase.io.read(out / relative, index=":")) == (N_FRAMES - 1) * factor + 1
    assert _checksums(archive) == inputs_before


def test_a_worker_whose_scheduler_died_while_it_started_ends_at_once():
    """A scheduler killed in the second a spawned worker spends importing left the worker
    an orphan, writing files no manifest records: the parent-death signal was asked for
    only after the imports.  The worker now checks that its parent is still the scheduler."""
    code = ("import os; from mdsr_plugin.batch.runner import _die_with_parent; "
            "_die_with_parent(os.getppid() + 1); print('survived')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 128 + signal.SIGTERM and "survived" not in done.stdout
    code = "import os; from mdsr_plugin.batch.runner import _die_with_parent; _die_with_parent(os.getppid())"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
