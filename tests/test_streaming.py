"""The chunked (streaming) path equals the in-memory path, bit for bit."""

from dataclasses import replace

import numpy as np
import pytest
from conftest import drifting_atoms

from mdsr_plugin.trajectory import Trajectory, TrajectoryError
from mdsr_plugin.pipeline import upsample, upsample_stream

FIELDS = ("positions", "velocities", "times", "cell")


def chunked(traj, size):
    return [traj[i : i + size] for i in range(0, traj.n_frames, size)]


def assert_identical(a, b):
    assert a.n_frames == b.n_frames
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.mark.parametrize("method", ["linear", "spline", "hermite", "quintic", "quintic-spline"])
@pytest.mark.parametrize("chunk_size", [1, 7, 64])
def test_chunked_equals_in_memory(xtb_fine, method, chunk_size):
    coarse = xtb_fine[::10]  # 121 coarse frames
    whole = upsample(coarse, 10, method)
    pieces = list(upsample_stream(chunked(coarse, chunk_size), 10, method))
    from mdsr_plugin.trajectory import concatenate

    assert_identical(concatenate(pieces), whole)


def test_chunked_equals_in_memory_periodic(triclinic_cell):
    times = np.arange(300) * 10.0
    x, v = drifting_atoms(times, triclinic_cell)
    coarse = Trajectory(numbers=[1] * 6, positions=x, velocities=v, times=times, cell=triclinic_cell, pbc=True)
    from mdsr_plugin.trajectory import concatenate

    for method in ("spline", "hermite"):
        whole = upsample(coarse, 5, method)
        streamed = concatenate(list(upsample_stream(chunked(coarse, 13), 5, method)))
        assert_identical(streamed, whole)


def test_stream_emits_blocks_before_the_input_ends():
    """Memory stays bounded: fine blocks leave as soon as their gaps and context are read."""
    n = 20000
    times = np.arange(n) * 10.0
    rng = np.random.default_rng(0)
    positions = np.cumsum(rng.normal(0, 0.01, (n, 3, 3)), axis=0)
    coarse = Trajectory(numbers=[1, 1, 1], positions=positions, velocities=np.zeros((n, 3, 3)), times=times)
    consumed = []

    def feed():
        for i, piece in enumerate(chunked(coarse, 500)):
            consumed.append(i)
            yield piece

    first_block_after = None
    total = 0
    for block in upsample_stream(feed(), 4, "hermite"):
        if first_block_after is None:
            first_block_after = len(consumed)
        assert block.n_frames <= 4096 * 4 + 1
        total += block.n_frames
    assert first_block_after <= 4096 // 500 + 2  # a 4096-gap block needs ~9 chunks of 500
    assert total == (n - 1) * 4 + 1


def test_blocks_of_a_large_system_hold_a_bounded_number_of_atom_frames():
    """A method's block_gaps is sized for a molecule: for many atoms the block shrinks so that
    one block holds at most MAX_BLOCK_ATOM_FRAMES fine atom-frames, and the result is unchanged."""
    from mdsr_plugin.pipeline import MAX_BLOCK_ATOM_FRAMES, gaps_per_block
    from mdsr_plugin.trajectory import concatenate

    n_atoms, factor, n = 2000, 20, 60
    gaps = gaps_per_block(type("Hermite", (), {"block_gaps": 4096}), n_atoms, factor)
    assert gaps == MAX_BLOCK_ATOM_FRAMES // (n_atoms * factor) == 26
    assert gaps_per_block(type("Small", (), {"block_gaps": 7}), 9, 20) == 7  # a molecule keeps its own
    assert gaps_per_block(type("Huge", (), {"block_gaps": 4096}), 10**6, 20) == 1
    rng = np.random.default_rng(1)
    times = np.arange(n) * 20.0
    x = np.cumsum(rng.normal(0, 0.01, (n, n_atoms, 3)), axis=0)
    v = rng.normal(0, 0.01, (n, n_atoms, 3))
    coarse = Trajectory(numbers=[8] * n_atoms, positions=x, velocities=v, times=times)
    blocks = list(upsample_stream(chunked(coarse, 40), factor, "hermite"))
    assert [b.n_frames for b in blocks] == [gaps * factor, gaps * factor, (n - 1 - 2 * gaps) * factor + 1]
    assert max(b.n_frames for b in blocks) * n_atoms <= MAX_BLOCK_ATOM_FRAMES
    whole = upsample(coarse, factor, "hermite")
    assert_identical(concatenate(blocks), whole)


def test_non_uniform_step_across_chunks_names_the_frame(xtb_fine):
    coarse = xtb_fine[::10]
    broken = coarse.times.copy()
    broken[70:] += 3.0
    pieces = chunked(replace(coarse, times=broken), 25)
    with pytest.raises(TrajectoryError, match="frame 70: non-uniform time step"):
        list(upsample_stream(pieces, 10, "hermite"))


def test_single_frame_is_refused(small_traj):
    with pytest.raises(TrajectoryError, match="at least two frames"):
        upsample(small_traj[:1], 4, "linear")


def test_bad_factor(small_traj):
    with pytest.raises(ValueError, match="factor must be an integer >= 2"):
        upsample(small_traj, 1, "linear")
