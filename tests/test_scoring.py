"""Scoring against the classical methods (mdsr_plugin.evaluation.scoring)."""

import numpy as np

from mdsr_plugin.evaluation.scoring import score_hermite_windows
from mdsr_plugin.methods.classical import CubicHermite


def hermite_on_windows_by_hand(tx, tv, factor, fine_dt):
    """The cubic Hermite baseline as mdsr-train computed it by hand before it used the method."""
    s = np.arange(factor + 1) / factor
    powers = np.vander(s, 4, increasing=True)
    weights = powers @ CubicHermite.basis.T
    slopes = powers[:, :-1] @ np.polynomial.polynomial.polyder(CubicHermite.basis.T, axis=0)
    h = factor * fine_dt
    terms = np.stack([tx[:, 0], h * tv[:, 0], tx[:, -1], h * tv[:, -1]], axis=1)
    x = np.einsum("tj,bjni->btni", weights, terms)
    v = np.einsum("tj,bjni->btni", slopes, terms) / h
    inside = slice(1, -1)
    return {"hermite_position_mae": float(np.abs(x[:, inside] - tx[:, inside]).mean()),
            "hermite_velocity_mae": float(np.abs(v[:, inside] - tv[:, inside]).mean())}


def test_hermite_windows_score_as_the_hand_written_baseline_did(xtb_fine):
    rng = np.random.default_rng(3)
    factor, fine_dt = 10, xtb_fine.dt
    starts = rng.integers(0, xtb_fine.n_frames - factor - 1, size=17)
    index = starts[:, None] + np.arange(factor + 1)
    tx, tv = xtb_fine.positions[index], xtb_fine.velocities[index]  # (17, 11, N, 3)
    found = score_hermite_windows(tx, tv, factor * fine_dt)
    expected = hermite_on_windows_by_hand(tx, tv, factor, fine_dt)
    assert found.keys() == expected.keys()
    for key in expected:
        assert expected[key] > 0
        np.testing.assert_allclose(found[key], expected[key], rtol=1e-12, atol=0)


def test_hermite_windows_are_scored_each_on_its_own():
    rng = np.random.default_rng(4)
    tx, tv = rng.normal(size=(5, 9, 4, 3)), rng.normal(size=(5, 9, 4, 3))
    together = score_hermite_windows(tx, tv, 4.0)
    alone = [score_hermite_windows(tx[i : i + 1], tv[i : i + 1], 4.0) for i in range(5)]
    for key, value in together.items():
        np.testing.assert_allclose(value, np.mean([a[key] for a in alone]), rtol=1e-12)
