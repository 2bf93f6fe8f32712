"""Error measures: direct numpy definitions, invariances, and a spectrum with a known peak."""

import numpy as np
import pytest

from mdsr_plugin.metrics import (
    distance_mae,
    position_mae,
    reconstructed_mask,
    spectral_overlap,
    vdos,
)


def test_mask_and_mae_match_direct_computation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(21, 4, 3)), rng.normal(size=(21, 4, 3))
    mask = reconstructed_mask(21, 5)
    assert mask.sum() == 21 - 5
    assert position_mae(a, b, mask) == pytest.approx(np.mean([np.abs(a[i] - b[i]).mean() for i in range(21) if i % 5]))


def test_distance_error_ignores_rigid_motion():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 6, 3))
    moved = x @ Rotation.random(random_state=2).as_matrix().T + 3.0
    assert distance_mae(moved, x) == pytest.approx(0.0, abs=1e-12)
    assert position_mae(moved, x) > 1.0


def test_vdos_peak_at_the_oscillator_frequency():
    dt, wavenumber = 1.0, 3000.0  # fs, cm⁻¹ (a C-H stretch)
    t = np.arange(4096) * dt
    omega = 2 * np.pi * wavenumber / 33356.40952  # rad/fs
    v = np.cos(omega * t)[:, None, None] * np.ones((1, 2, 3))
    w, density = vdos(v, dt)
    assert w[np.argmax(density)] == pytest.approx(wavenumber, abs=w[1] - w[0])
    assert density.sum() == pytest.approx(1.0)


def test_spectral_overlap_bounds():
    t = np.arange(2048.0)
    v1 = np.cos(2 * np.pi * t / 11.0)[:, None, None] * np.ones((1, 1, 3))
    v2 = np.cos(2 * np.pi * t / 30.0)[:, None, None] * np.ones((1, 1, 3))
    assert spectral_overlap(v1, v1, 1.0) == pytest.approx(1.0)
    assert spectral_overlap(v1, v2, 1.0) < 0.05
