"""The training data of ``mdsr-train``: trajectories in one atom order, and random windows of them.

:func:`load_training_data` reads fine trajectories of one molecule and matches every
file's atom order to the first's by graph.  :class:`WindowSampler` cuts random
windows (a gap of ``factor`` fine steps with ``context`` coarse frames on each side)
and single frames from the training or the validation part of each trajectory,
relabels them by a random automorphism of the molecular graph and moves them into
the canonical frame (:func:`mdsr_plugin.molecule.canonical_frames`).
:func:`set_normalisation` sets a model's input and output scales from the data.
"""

from __future__ import annotations

import numpy as np

from ..molecule import canonical_frames

__all__ = ["load_training_data", "permute_atoms", "WindowSampler", "set_normalisation"]


def load_training_data(paths, fine_dt: float, **reader_options):
    """Read fine trajectories of one molecule at the ``fine_dt`` (fs) step, in one atom order.

    Returns
    -------
    list of Trajectory
    bonds : list of (int, int)
        The molecular graph, in the first file's order.
    """
    from ..io import read_trajectory
    from ..molecule import GraphMismatch, infer_bonds, match_atoms

    trajectories, bonds, numbers = [], None, None
    for path in paths:
        traj = read_trajectory(path, **reader_options)
        if traj.velocities is None:
            raise ValueError(f"{path}: training needs velocities")
        stride = fine_dt / traj.dt
        if abs(stride - round(stride)) > 1e-6 or round(stride) < 1:
            raise ValueError(f"{path}: its step {traj.dt:g} fs does not divide the output step {fine_dt:g} fs")
        traj = traj[:: int(round(stride))]
        if bonds is None:
            numbers = traj.numbers
            bonds = infer_bonds(numbers, traj.positions[0])
        else:
            try:
                order = match_atoms(traj.numbers, traj.positions[0], numbers, bonds)
            except GraphMismatch:
                raise ValueError(f"{path}: not the same molecule as {paths[0]}") from None
            traj = permute_atoms(traj, order)
        trajectories.append(traj)
    return trajectories, bonds


def permute_atoms(traj, order):
    """``traj`` with its atoms in ``order`` (shape (N,), int): atom ``k`` of the result is ``traj``'s ``order[k]``."""
    from dataclasses import replace

    def pick(a):
        return None if a is None else a[:, order]

    return replace(traj, numbers=traj.numbers[order], masses=traj.masses[order], positions=traj.positions[:, order],
                   velocities=pick(traj.velocities), forces=pick(traj.forces), names=None)


class WindowSampler:
    """Random windows and frames from the training or validation part of each trajectory.

    Parameters
    ----------
    trajectories : list of Trajectory
        At the fine step, one atom order.
    factor, context : int
    split : {"train", "validation"}
    automorphisms : ndarray, shape (A, N)
        Atom relabellings applied at random.
    reference : ndarray, shape (N, 3), Å
        Canonical geometry windows are aligned to.
    masses : ndarray, shape (N,)
    """

    def __init__(self, trajectories, factor, context, split, automorphisms, reference, masses,
                 validation_fraction=0.1):
        self.factor, self.context = factor, context
        self.automorphisms = automorphisms
        self.reference, self.masses = reference, masses
        self.parts = []
        for traj in trajectories:
            cut = int(round(traj.n_frames * (1 - validation_fraction)))
            part = traj[:cut] if split == "train" else traj[cut:]
            if part.n_frames > (2 * context + 1) * factor + 1:
                self.parts.append(part)
        if not self.parts:
            raise ValueError(f"no trajectory is long enough for {split} windows of factor {factor}")
        self.lengths = np.array([p.n_frames for p in self.parts])

    def _draw(self, rng, n, fields, span=None):
        """The arrays ``fields`` (Trajectory attributes) at ``n`` random starts, parts drawn
        by length: ``span`` frames from each, shape (n, span, N, 3), or one frame (``span``
        None), shape (n, N, 3); atoms relabelled by a random automorphism."""
        which = rng.choice(len(self.parts), size=n, p=self.lengths / self.lengths.sum())
        picked = []
        for i, part in enumerate(self.parts):
            count = int((which == i).sum())
            if count:
                starts = rng.integers(0, part.n_frames - (span or 0), size=count)
                index = starts if span is None else starts[:, None] + np.arange(span)
                picked.append([getattr(part, field)[index] for field in fields])
        perm = self.automorphisms[rng.integers(0, len(self.automorphisms), size=n)]
        perm = perm[:, :, None] if span is None else perm[:, None, :, None]
        return [np.take_along_axis(np.concatenate(arrays), perm, axis=-2) for arrays in zip(*picked)]

    def windows(self, rng, n):
        """n windows: positions and velocities, shape (n, (2K - 1) F + F + 1... ) split as
        (start_x, start_v, end_x, end_v, target_x, target_v), canonical frame."""
        k, f = self.context, self.factor
        span = (2 * k - 1) * f + 1  # frames from the first context frame to the last
        x, v = self._draw(rng, n, ("positions", "velocities"), span)
        gap0 = (k - 1) * f  # the gap's first frame: its canonical frame is the window's
        centres, rotations = canonical_frames(x[:, gap0], self.reference, self.masses)
        x = np.einsum("btni,bij->btnj", x - centres[:, None, None], rotations)
        v = np.einsum("btni,bij->btnj", v, rotations)
        coarse = np.arange(2 * k) * f  # coarse frames inside the window
        return (x[:, coarse[:k]], v[:, coarse[:k]], x[:, coarse[k:]], v[:, coarse[k:]],
                x[:, gap0 : gap0 + f + 1], v[:, gap0 : gap0 + f + 1])

    def frames(self, rng, n):
        """n single frames with forces, canonical frame: positions (n, N, 3), forces (n, N, 3)."""
        x, f = self._draw(rng, n, ("positions", "forces"))
        centres, rotations = canonical_frames(x, self.reference, self.masses)
        return (np.einsum("bni,bij->bnj", x - centres[:, None], rotations),
                np.einsum("bni,bij->bnj", f, rotations))


def set_normalisation(model, trajectories, reference):
    """Set the data statistics ``model``'s inputs and outputs are scaled by.

    Parameters
    ----------
    model : LearnedIntegrator
    trajectories : list of Trajectory
        The training data, one atom order (every 2000th-or-so frame is used).
    reference : ndarray, shape (N, 3), Å
        The centred canonical geometry.
    """
    import torch

    x = np.concatenate([t.positions[:: max(1, t.n_frames // 2000)] for t in trajectories])
    v = np.concatenate([t.velocities[:: max(1, t.n_frames // 2000)] for t in trajectories])
    i, j = np.triu_indices(x.shape[1], 1)
    inverse = 1.0 / np.linalg.norm(x[:, i] - x[:, j], axis=-1)
    model.inverse_distance_mean.copy_(torch.as_tensor(inverse.mean(0)))
    model.inverse_distance_std.copy_(torch.as_tensor(inverse.std(0) + 1e-6))
    model.reference.copy_(torch.as_tensor(reference))
    centred = x - x.mean(axis=1, keepdims=True)
    model.position_std.fill_(float(centred.std()))
    model.velocity_std.fill_(float(v.std()))
    if trajectories[0].forces is not None:
        f = np.concatenate([t.forces[:: max(1, t.n_frames // 2000)] for t in trajectories])
        accel = f * model.accel_per_force.cpu().numpy()[None]
        model.acceleration_std.fill_(float(accel.std()))
