"""Classical interpolators: exactness on polynomials, coarse frames reproduced, accuracy order."""

import numpy as np
import pytest

from mdsr_plugin.methods import MethodError, MethodPlugin, available_methods, get_method, register_method
from mdsr_plugin.resolve import choose_auto
from mdsr_plugin.trajectory import Trajectory
from mdsr_plugin.pipeline import upsample

METHODS = ["linear", "spline", "hermite", "quintic", "quintic-spline"]


def polynomial_motion(degree, times, n_atoms=3):
    """Positions, velocities and accelerations of a random polynomial path of ``degree``."""
    rng = np.random.default_rng(degree)
    coeffs = rng.normal(0, 1, (degree + 1, n_atoms, 3)) / 10.0 ** np.arange(degree + 1)[:, None, None]
    t = np.asarray(times)[:, None, None]
    x = sum(c * t**k for k, c in enumerate(coeffs))
    v = sum(k * c * t ** (k - 1) for k, c in enumerate(coeffs) if k)
    a = sum(k * (k - 1) * c * t ** (k - 2) for k, c in enumerate(coeffs) if k > 1)
    return x, v, np.zeros_like(x) + a


def coarse_and_truth(degree, factor=5, n_coarse=9, dt=4.0):
    fine_t = np.arange((n_coarse - 1) * factor + 1) * dt / factor
    x, v, a = polynomial_motion(degree, fine_t)
    masses = np.array([12.0, 1.0, 16.0])
    forces = a * masses[:, None] / 9.648533212331e-3  # a [Å/fs²] → F [eV/Å]
    fine = Trajectory(numbers=[6, 1, 8], masses=masses, positions=x, velocities=v, forces=forces, times=fine_t)
    return fine[::factor], fine


@pytest.mark.parametrize("method, degree", [("linear", 1), ("spline", 3), ("hermite", 3), ("quintic", 5),
                                            ("quintic-spline", 5)])
def test_exact_on_polynomials_of_its_degree(method, degree):
    coarse, truth = coarse_and_truth(degree)
    fine = upsample(coarse, 5, method)
    np.testing.assert_allclose(fine.positions, truth.positions, atol=1e-9)
    np.testing.assert_allclose(fine.velocities, truth.velocities, atol=1e-9)
    np.testing.assert_allclose(fine.times, truth.times)


@pytest.mark.parametrize("method", METHODS)
def test_reproduces_coarse_frames_exactly(method, xtb_fine):
    coarse = xtb_fine[::20]
    fine = upsample(coarse, 20, method)
    assert fine.n_frames == (coarse.n_frames - 1) * 20 + 1
    np.testing.assert_array_equal(fine.positions[::20], coarse.positions)
    np.testing.assert_array_equal(fine.times[::20], coarse.times)
    if method in ("hermite", "quintic"):
        np.testing.assert_array_equal(fine.velocities[::20], coarse.velocities)


@pytest.mark.parametrize("method", METHODS)
def test_velocities_are_the_derivative_of_positions(method, xtb_fine):
    factor = 100  # fine step 0.05 fs: central differences are then accurate to ~1e-6 Å/fs
    fine = upsample(xtb_fine[:201:10], factor, method)
    central = (fine.positions[2:] - fine.positions[:-2]) / (2 * fine.dt)
    # skip frames next to coarse frames, where a C1 (Hermite) or C0 (linear) curve has a kink
    inside = np.array([(i % factor) not in (0, 1, factor - 1) for i in range(1, fine.n_frames - 1)])
    error = np.abs(central - fine.velocities[1:-1])[inside]
    assert error.max() < 2e-5  # Å/fs, against velocities of ~1e-2 Å/fs


def test_accuracy_ranks_as_physics_expects(xtb_fine):
    """On real GFN2-xTB dynamics at a 5 fs gap, more information means a smaller error."""
    factor = 10
    n = (xtb_fine.n_frames - 1) // factor * factor + 1
    truth = xtb_fine[:n]
    inside = np.arange(n) % factor != 0
    mae = {
        m: np.abs(upsample(truth[::factor], factor, m).positions - truth.positions)[inside].mean()
        for m in METHODS
    }
    assert mae["quintic"] < mae["hermite"] < mae["spline"] < mae["linear"]
    assert mae["quintic"] < 1e-3  # Å
    # forces without velocities (VASP): the quintic spline beats the cubic one, though by little
    # at this gap (the X–H stretches are half-resolved: 2.8e-3 against 3.5e-3 Å)
    assert mae["quintic-spline"] < mae["spline"]


def test_auto_chooses_by_available_quantities(small_traj):
    assert choose_auto(small_traj) == "quintic"
    assert choose_auto(small_traj.without("forces")) == "hermite"
    assert choose_auto(small_traj.without("forces", "velocities")) == "spline"
    assert choose_auto(small_traj.without("velocities")) == "quintic-spline"


def test_method_missing_quantity_is_a_clear_error(small_traj):
    with pytest.raises(MethodError, match="needs velocities"):
        upsample(small_traj.without("velocities", "forces"), 4, "hermite")


def test_unknown_method_and_duplicate_registration():
    with pytest.raises(MethodError, match="unknown method 'cubic'"):
        get_method("cubic")
    with pytest.raises(ValueError, match="already registered"):
        register_method(MethodPlugin("hermite", "", object, lambda coarse, factor, settings: None))
    assert set(METHODS) <= set(available_methods())


def test_spline_window_equals_global_spline(xtb_fine):
    """The windowed spline (context 24) matches SciPy's global spline to float precision."""
    from scipy.interpolate import CubicSpline

    coarse = xtb_fine[::8].without("velocities", "forces")
    fine = upsample(coarse, 8, "spline")
    n = coarse.n_frames
    spline = CubicSpline(np.arange(n), coarse.positions.reshape(n, -1), axis=0)
    expected = spline(np.arange((n - 1) * 8 + 1) / 8).reshape(fine.positions.shape)
    np.testing.assert_allclose(fine.positions, expected, atol=1e-10)
