"""Periodic systems: unwrap before interpolating, write positions the way the input had them."""

import numpy as np
import pytest
from conftest import drifting_atoms

from mdsr_plugin.periodic import Unwrapper, is_wrapped, to_fractional
from mdsr_plugin.trajectory import Trajectory
from mdsr_plugin.pipeline import upsample


def periodic_case(cell, wrap, factor=10, n_coarse=41, dt=10.0):
    fine_t = np.arange((n_coarse - 1) * factor + 1) * dt / factor
    x, v = drifting_atoms(fine_t, cell, wrap=wrap)
    x_unwrapped, _ = drifting_atoms(fine_t, cell, wrap=False)
    fine = Trajectory(numbers=[1] * 6, positions=x, velocities=v, times=fine_t, cell=cell, pbc=True)
    return fine[::factor], fine, x_unwrapped


def test_atoms_really_cross_the_boundary(triclinic_cell):
    coarse, _, _ = periodic_case(triclinic_cell, wrap=True)
    frac = to_fractional(coarse.positions, coarse.cell)
    assert (np.abs(np.diff(frac, axis=0)) > 0.5).any()


def test_unwrapper_recovers_continuous_path_in_any_chunking(triclinic_cell):
    coarse, _, _ = periodic_case(triclinic_cell, wrap=True)
    _, _, truth = periodic_case(triclinic_cell, wrap=False)
    truth = truth[::10]
    whole = Unwrapper(coarse.pbc)(coarse.positions, coarse.cell)
    np.testing.assert_allclose(whole - whole[0] + truth[0], truth, atol=1e-9)
    unwrap = Unwrapper(coarse.pbc)
    pieces = [unwrap(coarse.positions[i : i + 7], coarse.cell[i : i + 7]) for i in range(0, coarse.n_frames, 7)]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)


@pytest.mark.parametrize("method", ["linear", "spline", "hermite"])
def test_wrapped_input_gives_wrapped_continuous_output(triclinic_cell, method):
    coarse, truth, truth_unwrapped = periodic_case(triclinic_cell, wrap=True)
    fine = upsample(coarse, 10, method)
    assert is_wrapped(fine.positions, fine.cell, fine.pbc).all()
    # no atom flies across the box: the minimum-image step between fine frames is small
    step = np.diff(to_fractional(fine.positions, fine.cell), axis=0)
    step -= np.round(step)
    assert np.abs(step).max() < 0.05
    # and the error against the true (wrapped) path is an interpolation error, not a box length
    diff = to_fractional(fine.positions - truth.positions, fine.cell)
    diff -= np.round(diff)
    error = np.linalg.norm(diff @ triclinic_cell, axis=-1)
    assert error.max() < 0.2


def test_unwrapped_input_stays_unwrapped(triclinic_cell):
    coarse, _, truth_unwrapped = periodic_case(triclinic_cell, wrap=False)
    fine = upsample(coarse, 10, "hermite")
    assert not is_wrapped(fine.positions, fine.cell, fine.pbc).all()
    np.testing.assert_allclose(fine.positions, truth_unwrapped, atol=0.2)
    np.testing.assert_array_equal(fine.positions[::10], coarse.positions)


def test_changing_cell_is_interpolated_linearly(triclinic_cell):
    times = np.arange(5) * 10.0
    cells = triclinic_cell * (1 + 0.01 * np.arange(5))[:, None, None]
    positions = np.tile(np.array([[1.0, 1.0, 1.0]]), (5, 1, 1))
    coarse = Trajectory(numbers=[1], positions=positions, times=times, cell=cells, pbc=True)
    fine = upsample(coarse, 4, "linear")
    np.testing.assert_allclose(fine.cell[2], 0.5 * (cells[0] + cells[1]))
    np.testing.assert_allclose(fine.cell[::4], cells)
