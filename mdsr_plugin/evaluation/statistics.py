"""Streaming accumulators: everything ``mdsr-eval`` reports, computed chunk by chunk.

Memory does not grow with trajectory length, except for one float per fine frame
(the per-frame error and disagreement, for the uncertainty check) and the first
``trace_frames`` values of the plotted internal coordinates.

:class:`Observables` collects what is compared between reference and
reconstruction (pair-distance and speed histograms, the velocity spectrum, internal
coordinate traces, the torsion free-energy histogram); :class:`Errors` collects the
errors of one reconstruction against the reference over the reconstructed frames
only (coarse frames are exact by construction).
"""

from __future__ import annotations

import numpy as np

from ..metrics import CM1_PER_INV_FS, overlap_of_spectra
from .coordinates import dihedrals, evaluate_coordinates

__all__ = ["Binning", "Observables", "Errors"]


class Binning:
    """Histogram edges and the plotted coordinates shared by every trajectory of one evaluation.

    Parameters
    ----------
    first : Trajectory
        The reference's first chunk (ranges of distances and speeds).
    coordinates : list of InternalCoordinate
        Traced coordinates.
    torsions : list of InternalCoordinate
        The two main torsions (free-energy surface), or fewer (no surface).
    segment : int
        Frames per spectrum segment (the spectra are averaged over segments).
    """

    def __init__(self, first, coordinates, torsions, segment: int, trace_frames: int = 1000):
        x = first.positions[0]
        r_max = 1.3 * float(np.max(np.linalg.norm(x[:, None] - x[None], axis=-1)))
        self.distance_edges = np.linspace(0.0, max(r_max, 1.0), 301)
        speeds = np.linalg.norm(first.velocities, axis=-1) if first.velocities is not None else np.ones(1)
        self.speed_edges = np.linspace(0.0, 3.0 * float(np.max(speeds)) + 1e-12, 121)
        self.torsion_edges = np.linspace(-180.0, 180.0, 37)
        self.pairs = np.triu_indices(first.n_atoms, 1)
        self.coordinates = coordinates
        self.torsions = torsions if len(torsions) == 2 else []
        self.segment = segment
        self.trace_frames = trace_frames
        self.masses = first.masses


class Observables:
    """Distributions, velocity spectrum and coordinate traces of one trajectory, streamed."""

    def __init__(self, binning: Binning, dt: float):
        self.binning = binning
        self.dt = dt
        self.distance_counts = np.zeros(len(binning.distance_edges) - 1)
        self.speed_counts = np.zeros(len(binning.speed_edges) - 1)
        n_t = len(binning.torsion_edges) - 1
        self.torsion_counts = np.zeros((n_t, n_t))
        self.traces: list[np.ndarray] = []
        self._traced = 0
        self._spectrum = None
        self._segment_frames = 0
        self._pending: list[np.ndarray] = []  # velocities of the unfinished spectrum segment

    def add(self, positions, velocities) -> None:
        """Add frames: positions (F, N, 3) Å, velocities (F, N, 3) Å/fs or None."""
        b = self.binning
        i, j = b.pairs
        distances = np.linalg.norm(positions[:, i] - positions[:, j], axis=-1)
        self.distance_counts += np.histogram(distances, b.distance_edges)[0]
        if velocities is not None:
            self.speed_counts += np.histogram(np.linalg.norm(velocities, axis=-1), b.speed_edges)[0]
            self._add_spectrum(velocities)
        if b.torsions:
            phi, psi = dihedrals(positions, b.torsions[0].atoms), dihedrals(positions, b.torsions[1].atoms)
            self.torsion_counts += np.histogram2d(phi, psi, [b.torsion_edges, b.torsion_edges])[0]
        if self._traced < b.trace_frames and b.coordinates:
            take = positions[: b.trace_frames - self._traced]
            self.traces.append(evaluate_coordinates(take, b.coordinates))
            self._traced += len(take)

    def _add_spectrum(self, velocities):
        self._pending.append(np.asarray(velocities))
        pending = np.concatenate(self._pending)
        segment = self.binning.segment
        while len(pending) >= segment:
            self._accumulate(pending[:segment])
            pending = pending[segment:]
        self._pending = [pending] if len(pending) else []

    def _accumulate(self, v):
        v = v - v.mean(axis=0)
        power = np.abs(np.fft.rfft(v, axis=0)) ** 2  # (K, N, 3)
        density = np.einsum("kni,n->k", power, self.binning.masses)
        self._spectrum = density if self._spectrum is None else self._spectrum + density
        self._segment_frames = len(v)

    def spectrum(self):
        """Mass-weighted vibrational density of states, averaged over segments (Welch).

        Returns
        -------
        wavenumbers : ndarray, shape (K,), cm⁻¹
        density : ndarray, shape (K,), normalised to unit sum; None if no velocities.
        """
        if self._spectrum is None and self._pending:
            self._accumulate(np.concatenate(self._pending))  # shorter than a segment: one piece
            self._pending = []
        if self._spectrum is None:
            return None, None
        wavenumbers = np.fft.rfftfreq(self._segment_frames, d=self.dt) * CM1_PER_INV_FS
        return wavenumbers, self._spectrum / self._spectrum.sum()

    def trace(self) -> np.ndarray:
        """Coordinate values of the first frames, shape (T, n_coordinates)."""
        return np.concatenate(self.traces) if self.traces else np.empty((0, len(self.binning.coordinates)))


class Errors:
    """Errors of one reconstruction against the reference, over reconstructed frames only."""

    def __init__(self, n_atoms: int, factor: int):
        self.factor = factor
        self.abs = {"position": 0.0, "velocity": 0.0, "distance": 0.0}
        self.squares = {"position": 0.0, "velocity": 0.0}
        self.count = 0  # reconstructed frames
        self.pairs = np.triu_indices(n_atoms, 1)
        self.by_gap_position = np.zeros(factor)
        self.frames_by_gap_position = np.zeros(factor)
        self.by_atom = np.zeros(n_atoms)
        self.frame_errors: list[np.ndarray] = []
        self.frame_disagreement: list[np.ndarray] = []
        self.has_velocity = True

    def add(self, fine, reference, first_index: int) -> None:
        """Compare fine frames with reference frames; ``first_index`` is their global frame index."""
        s = (first_index + np.arange(fine.n_frames)) % self.factor
        keep = s != 0
        if not keep.any():
            return
        x, x_ref = fine.positions[keep], reference.positions[keep]
        dx = np.abs(x - x_ref)  # (F, N, 3)
        self.count += len(dx)
        self.abs["position"] += float(dx.sum())
        self.squares["position"] += float((dx**2).sum())
        if reference.velocities is not None:
            dv = np.abs(fine.velocities[keep] - reference.velocities[keep])
            self.abs["velocity"] += float(dv.sum())
            self.squares["velocity"] += float((dv**2).sum())
        else:
            self.has_velocity = False
        i, j = self.pairs
        dp = np.linalg.norm(x[:, i] - x[:, j], axis=-1)
        dr = np.linalg.norm(x_ref[:, i] - x_ref[:, j], axis=-1)
        self.abs["distance"] += float(np.abs(dp - dr).sum())
        per_frame = dx.mean(axis=(1, 2))
        np.add.at(self.by_gap_position, s[keep], per_frame)
        np.add.at(self.frames_by_gap_position, s[keep], 1)
        self.by_atom += dx.mean(axis=2).sum(axis=0)
        self.frame_errors.append(per_frame)
        disagreement = fine.frame_data.get("disagreement")
        if disagreement is not None:
            self.frame_disagreement.append(np.asarray(disagreement)[keep])

    def summary(self, n_atoms: int) -> dict:
        """The metrics (Å, Å/fs) as plain numbers and lists, for the JSON report."""
        components = self.count * n_atoms * 3
        n_pairs = len(self.pairs[0])
        result = {
            "reconstructed_frames": self.count,
            "position_mae": self.abs["position"] / components,
            "position_rmse": float(np.sqrt(self.squares["position"] / components)),
            "velocity_mae": self.abs["velocity"] / components if self.has_velocity else None,
            "velocity_rmse": float(np.sqrt(self.squares["velocity"] / components)) if self.has_velocity else None,
            "distance_mae": self.abs["distance"] / (self.count * n_pairs) if n_pairs else None,
            "position_mae_by_gap_position": (
                self.by_gap_position[1:] / np.maximum(self.frames_by_gap_position[1:], 1)).tolist(),
            "position_mae_by_atom": (self.by_atom / max(self.count, 1)).tolist(),
        }
        if self.frame_disagreement:
            result["uncertainty"] = _uncertainty(np.concatenate(self.frame_disagreement),
                                                 np.concatenate(self.frame_errors))
        return result

    def frame_arrays(self):
        """Per reconstructed frame: position MAE (Å) and the model's disagreement (Å, or None)."""
        errors = np.concatenate(self.frame_errors) if self.frame_errors else np.empty(0)
        disagreement = np.concatenate(self.frame_disagreement) if self.frame_disagreement else None
        return errors, disagreement


def _uncertainty(disagreement, errors) -> dict:
    """Is the forward/backward disagreement informative? Correlations with the actual error."""
    ranks_d = np.argsort(np.argsort(disagreement))
    ranks_e = np.argsort(np.argsort(errors))
    return {
        "mean_disagreement": float(disagreement.mean()),
        "pearson": float(np.corrcoef(disagreement, errors)[0, 1]),
        "spearman": float(np.corrcoef(ranks_d, ranks_e)[0, 1]),
        "ratio_mean_error_to_disagreement": float(errors.mean() / max(disagreement.mean(), 1e-300)),
    }


def spectral_overlap_of(observed: Observables, reference: Observables) -> float | None:
    """Overlap (0..1) of two accumulated spectra, or None without velocities."""
    w, p = observed.spectrum()
    _, q = reference.spectrum()
    if p is None or q is None or len(p) != len(q):
        return None
    return overlap_of_spectra(w, p, q)
