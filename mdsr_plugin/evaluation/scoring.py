"""Scoring a checkpoint against the classical methods on fine reference trajectories.

Every score is :func:`mdsr_plugin.metrics.compare` of a reconstruction of the coarse
frames (every ``factor``-th frame of the reference) against the reference itself.

:func:`score_methods`
    One reference, the checkpoint and every classical method that can run on it.
:func:`validate_against_classical`
    The validation part of each training trajectory, averaged: what ``mdsr-train``
    records in the card's ``validation``.
:func:`score_hermite_windows`
    Cubic Hermite on the training run's validation windows (``validation.windows``):
    the bar the model's rollout error must clear.

``bench/neural_accuracy.py`` records :func:`score_methods` on held-out data as the
card's ``validation.held_out.rows`` (:func:`mdsr_plugin.neural.card.held_out_row`).
To score another method, add its name where :func:`score_methods` lists them.
"""

from __future__ import annotations

import numpy as np

from ..neural import card as schema

__all__ = ["score_methods", "validate_against_classical", "score_hermite_windows"]


def score_methods(truth, factor: int, model, *, positions_only: bool = False, device: str = "cpu") -> dict:
    """A checkpoint and the classical methods reconstructing one fine reference.

    Parameters
    ----------
    truth : Trajectory
        Fine reference at the checkpoint's fine step; every ``factor``-th frame is
        the coarse input.
    factor : int
    model : path-like or str
        Checkpoint path or registered id.
    positions_only : bool
        Drop the coarse velocities (and forces): neural, linear and spline only.
    device : str
        Where the checkpoint runs.

    Returns
    -------
    dict
        Method name → :func:`mdsr_plugin.metrics.compare` metrics: ``neural``,
        ``linear``, ``spline`` and, with velocities, ``hermite`` and ``quintic``
        (when the reference has forces).
    """
    from ..metrics import compare
    from ..pipeline import upsample

    coarse = truth[::factor]
    methods = ["linear", "spline"]
    if positions_only:
        coarse = coarse.without("velocities", "forces")
    else:
        methods += ["hermite"] + (["quintic"] if coarse.forces is not None else [])
    scores = {}
    for name in [schema.NEURAL, *methods]:
        # through the method registry, as every entry point: a box checkpoint or a plugin is scored too
        options = {"model": str(model), "device": device} if name == schema.NEURAL else {}
        scores[name] = compare(upsample(coarse, factor, name, self_validate=False, **options), truth, factor)
    return scores


def validate_against_classical(card_file, trajectories, factor: int, *, validation_fraction: float = 0.1,
                               device: str = "cpu", gaps: int = 200, positions_gaps: int = 25) -> dict:
    """The checkpoint and the classical methods on the validation part of every trajectory.

    Parameters
    ----------
    card_file : path-like
        The checkpoint's card.
    trajectories : list of Trajectory
        Fine trajectories at the checkpoint's fine step; the final ``validation_fraction``
        of each is scored.
    factor : int
    validation_fraction : float
    device : str
    gaps, positions_gaps : int
        Coarse gaps scored per trajectory with velocities and with positions only.

    Returns
    -------
    dict
        Metrics (see :func:`mdsr_plugin.metrics.compare`) averaged over trajectories,
        per method: ``neural`` and ``neural_positions_only``, ``linear``, ``spline``,
        ``hermite``, ``quintic`` (when the data have forces); ``position_mae`` at the
        top level is the neural model's with velocities; ``gaps_per_trajectory``.
    """
    f = factor
    results: dict[str, list] = {}
    for traj in trajectories:
        tail = traj[int(round(traj.n_frames * (1 - validation_fraction))):]
        for positions_only, n_gaps in ((False, gaps), (True, positions_gaps)):
            n = min(n_gaps * f + 1, (tail.n_frames - 1) // f * f + 1)
            if n < 2 * f + 1:
                continue
            scores = score_methods(tail[:n], f, card_file, positions_only=positions_only, device=device)
            for name, metrics in scores.items():
                results.setdefault(name + schema.POSITIONS_ONLY_SUFFIX if positions_only else name, []).append(metrics)
    summary = {key: {m: float(np.mean([r[m] for r in rows])) for m in rows[0]} for key, rows in results.items()}
    summary[schema.POSITION_MAE] = summary[schema.NEURAL][schema.POSITION_MAE]
    summary[schema.GAPS_PER_TRAJECTORY] = {schema.MODE_VELOCITIES: gaps, schema.MODE_POSITIONS: positions_gaps}
    return summary


def score_hermite_windows(positions, velocities, coarse_dt: float) -> dict:
    """Cubic Hermite's errors inside windows whose true fine frames are known.

    Parameters
    ----------
    positions : ndarray, shape (B, F + 1, N, 3), Å
        The true fine frames of each gap, both coarse ends included.
    velocities : ndarray, shape (B, F + 1, N, 3), Å/fs
    coarse_dt : float
        The gap's length, fs (``F`` fine steps).

    Returns
    -------
    dict
        ``hermite_position_mae`` (Å) and ``hermite_velocity_mae`` (Å/fs) over the
        ``F - 1`` frames inside the gaps.
    """
    from ..methods.classical import CubicHermite
    from ..trajectory import Trajectory

    positions, velocities = np.asarray(positions), np.asarray(velocities)
    n_windows, n_fine, n_atoms, _ = positions.shape
    # Hermite interpolation is independent per atom: every window's atoms side by side
    # make one gap of B·N atoms between the windows' first and last frames.
    ends = [0, -1]
    coarse = Trajectory(numbers=np.zeros(n_windows * n_atoms, dtype=int), masses=np.ones(n_windows * n_atoms),
                        positions=positions[:, ends].transpose(1, 0, 2, 3).reshape(2, -1, 3),
                        velocities=velocities[:, ends].transpose(1, 0, 2, 3).reshape(2, -1, 3),
                        times=[0.0, coarse_dt])
    fine = CubicHermite().interpolate(coarse, n_fine - 1)

    def windows(a):  # (F + 1, B·N, 3) → (B, F + 1, N, 3)
        return a.reshape(n_fine, n_windows, n_atoms, 3).transpose(1, 0, 2, 3)

    inside = slice(1, -1)
    return {schema.HERMITE_POSITION_MAE: float(np.abs(windows(fine.positions)[:, inside] - positions[:, inside]).mean()),
            schema.HERMITE_VELOCITY_MAE: float(np.abs(windows(fine.velocities)[:, inside]
                                                      - velocities[:, inside]).mean())}
