"""How close a reconstruction is to the truth: the error measures used in benchmarks and model cards.

All functions take arrays in internal units and compare only the frames that were
reconstructed (``mask``), since coarse frames are exact by construction.
"""

from __future__ import annotations

import numpy as np

__all__ = ["reconstructed_mask", "position_mae", "velocity_mae", "distance_mae", "vdos", "spectral_overlap",
           "overlap_of_spectra", "compare"]

CM1_PER_INV_FS = 33356.40952  # 1/fs → cm⁻¹ (1e15 / c[cm/s])


def reconstructed_mask(n_frames: int, factor: int) -> np.ndarray:
    """True for the fine frames between coarse frames, shape (n_frames,)."""
    return np.arange(n_frames) % factor != 0


def position_mae(predicted, reference, mask=None) -> float:
    """Mean absolute error per Cartesian component, Å, of positions (F, N, 3)."""
    diff = np.abs(np.asarray(predicted) - np.asarray(reference))
    return float((diff if mask is None else diff[mask]).mean())


velocity_mae = position_mae  # same formula, Å/fs


def distance_mae(predicted, reference, mask=None) -> float:
    """Mean absolute error of all interatomic distances, Å (invariant to rotation and translation)."""
    predicted, reference = np.asarray(predicted), np.asarray(reference)
    if mask is not None:
        predicted, reference = predicted[mask], reference[mask]
    i, j = np.triu_indices(predicted.shape[1], 1)
    dp = np.linalg.norm(predicted[:, i] - predicted[:, j], axis=-1)
    dr = np.linalg.norm(reference[:, i] - reference[:, j], axis=-1)
    return float(np.abs(dp - dr).mean())


def vdos(velocities, dt: float, masses=None):
    """Vibrational density of states from the velocity autocorrelation (Wiener–Khinchin).

    Parameters
    ----------
    velocities : ndarray, shape (F, N, 3), Å/fs
    dt : float
        Frame spacing, fs.
    masses : ndarray, shape (N,), optional
        Mass-weights each atom's spectrum.

    Returns
    -------
    wavenumbers : ndarray, shape (F // 2 + 1,), cm⁻¹
    density : ndarray, same shape, normalised to unit sum
    """
    v = np.asarray(velocities) - np.asarray(velocities).mean(axis=0)
    spectrum = np.abs(np.fft.rfft(v, axis=0)) ** 2  # (K, N, 3)
    weights = np.ones(v.shape[1]) if masses is None else np.asarray(masses)
    density = np.einsum("kni,n->k", spectrum, weights)
    density /= density.sum()
    wavenumbers = np.fft.rfftfreq(len(v), d=dt) * CM1_PER_INV_FS
    return wavenumbers, density


def spectral_overlap(velocities, reference_velocities, dt, masses=None, smoothing_cm1=10.0) -> float:
    """Overlap ∑ min(p, q) of two normalised vibrational spectra (1: identical, 0: disjoint).

    Both spectra are smoothed with a Gaussian of ``smoothing_cm1`` (cm⁻¹) so that the
    measure reflects band positions and intensities, not periodogram noise.
    """
    w, p = vdos(velocities, dt, masses)
    _, q = vdos(reference_velocities, dt, masses)
    return overlap_of_spectra(w, p, q, smoothing_cm1)


def overlap_of_spectra(w, p, q, smoothing_cm1=10.0) -> float:
    """Overlap ∑ min(p, q) of two spectra ``p``, ``q`` on the wavenumber grid ``w`` (cm⁻¹),
    after Gaussian smoothing of ``smoothing_cm1``; see :func:`spectral_overlap`."""
    spacing = w[1] - w[0]
    sigma = max(smoothing_cm1 / spacing, 1e-9)
    half = int(4 * sigma) + 1
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    p, q = np.convolve(p, kernel, mode="same"), np.convolve(q, kernel, mode="same")
    return float(np.minimum(p / p.sum(), q / q.sum()).sum())


def compare(fine, reference, factor: int) -> dict:
    """Every metric for a reconstruction ``fine`` against ``reference`` (both Trajectory, same frames)."""
    mask = reconstructed_mask(fine.n_frames, factor)
    return {
        "position_mae": position_mae(fine.positions, reference.positions, mask),
        "velocity_mae": velocity_mae(fine.velocities, reference.velocities, mask),
        "distance_mae": distance_mae(fine.positions, reference.positions, mask),
        "spectral_overlap": spectral_overlap(fine.velocities, reference.velocities, reference.dt, reference.masses),
    }
