"""Upsampling a periodic box with a local learned integrator (:mod:`mdsr_plugin.neural.local`).

The box counterpart of :class:`~mdsr_plugin.neural.upsampler.NeuralUpsampler`, with
none of its molecular steps: the energy is invariant to rotations, translations and
permutations of like atoms, so no atom matching and no canonical frame are needed.
For every gap the integrator runs forward from its first coarse frame (in that
frame's cell) and backward from its last (in its own), and the two paths are
blended.  The streaming driver hands over unwrapped coordinates and re-wraps the
output when the input was wrapped (:mod:`mdsr_plugin.periodic`).

Gaps are integrated ``batch_gaps`` at a time (both directions in one batch); a block
of ``block_gaps`` gaps is what memory holds, so memory does not grow with the
trajectory's length.

Loading the checkpoint, the provenance (``prepare`` / ``provenance``, the method
protocol of :mod:`mdsr_plugin.methods.base`) and the judgement of its forces are
the molecular method's, inherited from
:class:`~mdsr_plugin.neural.upsampler.CheckpointMethod`.
"""

from __future__ import annotations

import logging

import numpy as np

from ..methods.base import FineFrames, MethodError, Provenance
from ..trajectory import Trajectory
from .upsampler import CheckpointMethod

__all__ = ["BoxUpsampler", "is_box_card"]

log = logging.getLogger(__name__)


def is_box_card(spec) -> bool:
    """Whether checkpoint ``spec`` (id or path) is a local periodic integrator."""
    from . import card as schema
    from .registry import get_model_entry

    if spec is None:
        return False
    try:
        return get_model_entry(str(spec)).card[schema.CONFIG][schema.ARCH] == schema.LOCAL_ARCH
    except (schema.CheckpointError, OSError, KeyError):
        return False  # a missing or bad checkpoint is reported by the method that loads it


class BoxUpsampler(CheckpointMethod):
    """Upsample a periodic box with a local learned integrator.

    Parameters
    ----------
    model : str
        Checkpoint id or path (a card whose ``config.arch`` is ``"local"``).
    device : str
    batch_gaps : int, optional
        Gaps integrated together (default 16 on a CPU, 256 on a GPU).
    precision : {"float32", "float64"}
    name : str
        The method name it is recorded under.
    """

    name = "adapted"
    requires: tuple[str, ...] = ("velocities",)
    fits_velocities = False  # a box needs its coarse velocities: it never fits them
    # a whole box per gap: fewer gaps at once, and a block of 16 batches
    default_batch_gaps = (16, 256)
    batches_per_block = 16

    def prepare(self, first: Trajectory, factor: int, found=None) -> Provenance:
        """Load the checkpoint and check it against the input (once, with the first chunk).

        Returns the :meth:`provenance`, which ``auto`` asks for again once it has chosen
        this method among the prepared candidates.
        """
        from .registry import match_checkpoint

        if found is None:
            found = match_checkpoint(first, factor, self.model_spec)
        if not first.is_periodic:
            raise MethodError(f"checkpoint {found.entry.id} is for periodic boxes; this input has no cell")
        self._load(found.entry)
        self._atoms = None
        self._use_atoms(first)
        log.info("adapted box integrator %s on %s", found.entry.id, self.device)
        self.force_check = self.check_forces(first)
        return self.provenance(fitted_velocities=not first.has_velocities)

    def _use_atoms(self, coarse: Trajectory) -> None:
        key = (tuple(coarse.numbers.tolist()), tuple(np.round(coarse.masses, 6).tolist()))
        if key != self._atoms:  # the loaded model is shared (cached): tell it whose atoms it moves
            try:
                self.model.set_atoms(coarse.numbers, coarse.masses)
            except ValueError as err:
                raise MethodError(f"checkpoint {self.card['id']}: {err}") from None
            self._atoms = key

    def check_forces(self, coarse: Trajectory, max_frames: int = 16) -> dict | None:
        """The model's force error on the input's stored forces (keys as
        :meth:`~mdsr_plugin.neural.upsampler.NeuralUpsampler.check_forces`); None without forces."""
        import torch

        if coarse.forces is None:
            return None
        self._use_atoms(coarse)
        pick = np.unique(np.linspace(0, coarse.n_frames - 1, min(max_frames, coarse.n_frames)).astype(int))
        parameter = self.model.feature_mean
        predicted = []
        for lo in range(0, len(pick), 4):
            at = pick[lo:lo + 4]
            x = torch.as_tensor(coarse.positions[at], dtype=parameter.dtype, device=parameter.device)
            cell = torch.as_tensor(np.broadcast_to(coarse.cell[at], (len(at), 3, 3)).copy(),
                                   dtype=parameter.dtype, device=parameter.device)
            predicted.append(self.model.forces(x, cell, pbc=coarse.pbc).detach().cpu().double().numpy())
        own, _ = self._own_force_error()
        return self._force_report(np.concatenate(predicted), coarse.forces[pick],
                                  against=f"{own:.0%} on the frames it held out",
                                  cause="the input is probably another system or Hamiltonian")

    def interpolate(self, coarse: Trajectory, factor: int) -> FineFrames:
        """Fine frames of ``coarse`` (unwrapped positions, velocities, cells), shape
        ``((n_coarse - 1) * factor + 1, N, 3)``, Å and Å/fs, with the forward/backward
        ``disagreement`` (Å) per fine frame."""
        import torch

        if self.model is None:
            self.prepare(coarse, factor)
        if coarse.velocities is None:
            raise MethodError(f"checkpoint {self.card['id']}: a box needs the coarse velocities")
        if not coarse.is_periodic:
            raise MethodError(f"checkpoint {self.card['id']} is for periodic boxes; this input has no cell")
        self._use_atoms(coarse)
        dt_fine = coarse.dt / factor
        x, v = coarse.positions, coarse.velocities
        cell = np.broadcast_to(coarse.cell, (coarse.n_frames, 3, 3))
        n_gaps = coarse.n_frames - 1
        out_x = np.empty((n_gaps, factor + 1, coarse.n_atoms, 3))
        out_v = np.empty_like(out_x)
        out_d = np.empty((n_gaps, factor + 1))
        device, dtype = torch.device(self.device), getattr(torch, self.precision)

        def tensor(a):
            # the cells come from np.broadcast_to (read-only), which torch warns about: copy those
            return torch.as_tensor(np.require(a, requirements="CW"), device=device, dtype=dtype)

        with torch.no_grad():
            for lo in range(0, n_gaps, self.batch_gaps):
                hi = min(lo + self.batch_gaps, n_gaps)
                fx, fv, dis = self.model.interpolate(
                    (tensor(x[lo:hi]), tensor(v[lo:hi])), (tensor(x[lo + 1:hi + 1]), tensor(v[lo + 1:hi + 1])),
                    factor, dt_fine, (tensor(cell[lo:hi]), tensor(cell[lo + 1:hi + 1])), pbc=coarse.pbc)
                out_x[lo:hi], out_v[lo:hi], out_d[lo:hi] = fx.cpu().numpy(), fv.cpu().numpy(), dis.cpu().numpy()
        positions = np.concatenate([out_x[:, :-1].reshape(-1, *x.shape[1:]), out_x[-1:, -1]])
        velocities = np.concatenate([out_v[:, :-1].reshape(-1, *x.shape[1:]), out_v[-1:, -1]])
        disagreement = np.concatenate([out_d[:, :-1].reshape(-1), out_d[-1:, -1]])
        return FineFrames(positions, velocities, {"disagreement": disagreement})
