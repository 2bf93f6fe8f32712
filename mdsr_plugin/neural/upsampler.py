"""The ``neural`` upsampling method: a checkpoint's learned integrator, applied to windows.

For every gap the method

1. permutes the atoms into the checkpoint's order (matched by molecular graph),
2. moves the gap's coarse frames (and ``context`` frames on each side) into a
   canonical frame: centre of mass of the gap's first frame at the origin,
   rotated onto the checkpoint's reference geometry (Kabsch),
3. runs the learned integrator forward from the first frame and backward from
   the last, blending the two (see :mod:`mdsr_plugin.neural.models`),
4. rotates, translates and permutes the result back.

All gaps of a block go through the network together, in batches of
``batch_gaps``; there is no Python loop over gaps or fine frames other than the
integrator's time steps.  When the input has no velocities, they are first
estimated by shooting: the coarse velocities are fitted so that the learned
integrator started at each coarse frame reaches the neighbouring coarse frames
(:func:`mdsr_plugin.neural.shooting.estimate_velocities`).

The per-frame forward/backward disagreement (RMS over atoms, Å) is returned as
``frame_data["disagreement"]``: it is the model's own estimate of where it is unsure.
"""

from __future__ import annotations

import copy
import logging

import numpy as np

from ..methods.base import FineFrames, Method, MethodError, Provenance
from ..trajectory import Trajectory
from .shooting import estimate_velocities

__all__ = ["CheckpointMethod", "NeuralUpsampler", "estimate_velocities", "FORCE_MISMATCH"]

log = logging.getLogger(__name__)

#: Relative force error (MAE over mean |F|) of a shipped checkpoint on held-out data of
#: its own Hamiltonian (GFN2-xTB): measured 1.6-4.2 % for ethanol, uracil and aspirin
#: (``bench/force_check.py``, docs/benchmarks.md "Force check").
FORCE_ERROR_ON_OWN_DATA = 0.04
#: Above this the input's forces are taken to come from another Hamiltonian, and the user
#: is warned: on GFN1-xTB data the same checkpoints measured 7.8-14.5 %.
FORCE_MISMATCH = 0.07


class CheckpointMethod(Method):
    """What every method running a learned checkpoint shares: loading it, its provenance,
    and how its forces are judged against the input's.

    :class:`NeuralUpsampler` (molecules) and
    :class:`~mdsr_plugin.neural.box_upsampler.BoxUpsampler` (periodic boxes) both derive
    from it, so that the method protocol's ``prepare``/``provenance`` pair
    (:mod:`mdsr_plugin.methods.base`; ``auto`` asks a method it has already prepared for
    its ``provenance``) is one code path for both.  A subclass sets ``name``,
    ``device``, ``precision``, ``card`` (None until prepared) and ``force_check``.

    Attributes
    ----------
    fits_velocities : bool
        Whether the method fits the coarse velocities of positions-only input (shooting);
        a method that cannot never records ``velocities_fitted``.
    """

    fits_velocities = True
    card: dict | None = None
    force_check: dict | None = None
    #: Gaps integrated together by default, on a CPU and on a GPU.
    default_batch_gaps: tuple[int, int] = (1024, 8192)
    #: Batches per block the driver hands over (a block's fine frames are what memory holds).
    batches_per_block: int = 1

    def __init__(self, model: str | None = None, device: str = "cpu", batch_gaps: int | None = None,
                 precision: str = "float32", name: str | None = None):
        if precision not in ("float32", "float64"):
            raise MethodError(f"precision must be float32 or float64, got {precision!r}")
        if name is not None:
            self.name = name  # "adapted" for a checkpoint learned from the input itself
        self.model_spec = model
        self.device = device
        if batch_gaps is None:
            batch_gaps = self.default_batch_gaps[str(device).startswith("cuda")]
        self.batch_gaps = batch_gaps
        self.block_gaps = self.batches_per_block * batch_gaps
        self.precision = precision
        self.context = 0
        self.model = None
        self.card = None
        self.force_check = None  # check_forces() of the first chunk, once prepared

    def _load(self, entry) -> None:
        """Load ``entry``'s checkpoint (a registry record: ``card_path``, ``card_sha256``),
        verified, onto ``self.device`` in ``self.precision``; sets ``model`` and ``card``."""
        from .checkpoint import load_checkpoint

        if self.device == "cpu":
            from ..threads import apply_requested_limit

            apply_requested_limit()
        self.model, self.card = load_checkpoint(entry.card_path, expected_card_sha256=entry.card_sha256,
                                                device=self.device, dtype=self.precision)

    def provenance(self, fitted_velocities: bool) -> Provenance:
        """What produced the output: the method name, the checkpoint's id and weights sha256,
        whether the coarse velocities were fitted, and the force check of the first chunk.

        Parameters
        ----------
        fitted_velocities : bool
            The input has no velocities (recorded only for a method that fits them).
        """
        if self.card is None:
            raise RuntimeError(f"{type(self).__name__} {self.name!r}: provenance asked before prepare()")
        return Provenance(method=self.name, model=self.card["id"], model_sha256=self.card["weights_sha256"],
                          velocities_fitted=bool(fitted_velocities and self.fits_velocities),
                          force_check=self.force_check)

    def _own_force_error(self) -> tuple[float, float]:
        """The checkpoint's relative force error on data of its own Hamiltonian, and the
        threshold above which an input is taken to be of another.

        A checkpoint learned from coarse frames (``mdsr-train --from-coarse``, ``--adapt``)
        records its own on the frames it held out; a small model learned from scratch on a
        few hundred frames fits its forces less closely (glycine on GFN1-xTB: 11 %) than a
        shipped one (1.6-4.2 %), so its threshold scales with it.
        """
        held_out = self.card.get("validation", {}).get("held_out_gaps", {})
        own = held_out.get("force_relative_mae")
        if own is None:
            return FORCE_ERROR_ON_OWN_DATA, FORCE_MISMATCH
        return float(own), max(FORCE_MISMATCH, FORCE_MISMATCH / FORCE_ERROR_ON_OWN_DATA * float(own))

    def _force_report(self, predicted: np.ndarray, forces: np.ndarray, against: str, cause: str) -> dict:
        """The force check's record (see :meth:`NeuralUpsampler.check_forces`) of the model's
        ``predicted`` forces against the input's stored ``forces`` (F, N, 3), eV/Å.

        ``against`` names the data the checkpoint's own error was measured on, ``cause``
        what a mismatch probably means; both go into the warning line.
        """
        mae = float(np.abs(predicted - forces).mean())
        relative = mae / float(np.abs(forces).mean())
        own, threshold = self._own_force_error()
        warning = (f"checkpoint {self.card['id']}: its forces differ from the input's stored forces by "
                   f"{relative:.0%} (MAE {mae:.2g} eV/Å over {len(forces)} frames), against {against}: "
                   f"{cause}; --adapt learns from the input itself")
        return {"force_mae": mae, "relative": relative, "frames": int(len(forces)), "own_relative": own,
                "mismatch": bool(relative > threshold), "warning": warning}


def _spline_start(coarse: Trajectory, order) -> np.ndarray | None:
    """Where the velocity fit of positions-only input starts: with stored forces (VASP, CP2K
    without a velocity file) the quintic spline's velocities through positions and F/m,
    shape (n, N, 3) Å/fs in the checkpoint's atom order; else None (the cubic spline's)."""
    from .. import units
    from ..methods.classical import spline_velocities

    if coarse.forces is None:
        return None
    accelerations = coarse.forces / coarse.masses[:, None] * units.ACCEL_PER_FORCE_OVER_MASS
    return spline_velocities(coarse.positions, accelerations, coarse.dt)[:, order]


class NeuralUpsampler(CheckpointMethod):
    """Upsample with a pretrained bi-directional learned integrator.

    Parameters
    ----------
    model : str, optional
        A registered checkpoint id or a checkpoint path; by default the best
        registered checkpoint that fits the input.
    device : str
        ``"cpu"`` or ``"cuda[:N]"``.
    batch_gaps : int, optional
        Gaps integrated together, and handed over by the pipeline at a time (memory
        vs speed); by default 1024 on a CPU, where larger batches gain nothing, and
        8192 on a GPU, which needs many windows in flight to be busy.  The arrays of
        one block, ``batch_gaps × factor`` fine frames, are what memory holds: about
        0.2 GB at 1024 gaps of a 21-atom molecule at factor 20.
    precision : {"float32", "float64"}
        Arithmetic of the integrator over the windows.  float32 is about twice as
        fast on a CPU and its positions differ from float64's by ~1e-6 Å, far below
        the models' error (docs/benchmarks.md); the coarse frames are reproduced
        exactly either way.  The velocity fit of positions-only input always runs in
        float64: near convergence its misfit changes by less than float32 rounding, so
        in float32 where the fit stopped, and with it the output (by up to 3e-3 Å),
        depended on the input's orientation and the machine.
    name : str
        The method name it is registered and recorded under (``"neural"``, ``"adapted"``).
    """

    name = "neural"
    description = "bi-directional learned integrator from a pretrained checkpoint (models/)"
    requires: tuple[str, ...] = ()

    def __init__(self, model: str | None = None, device: str = "cpu", batch_gaps: int | None = None,
                 precision: str = "float32", name: str = "neural"):
        super().__init__(model, device, batch_gaps, precision, name)
        self._fitting_model = None  # float64 copy for the positions-only velocity fit
        self.order = None

    # ------------------------------------------------------------------ setup
    def prepare(self, first: Trajectory, factor: int, found=None) -> Provenance:
        """Load the checkpoint for this input (called once, by the driver, with the first chunk).

        Parameters
        ----------
        first : Trajectory
            The input's first chunk (at least two frames).
        factor : int
        found : CheckpointMatch, optional
            The match the plugin found when asked whether it suits this input; searched
            for here when not given.
        """
        from .geometry import automorphisms, best_order
        from .registry import match_checkpoint

        if found is None:
            found = match_checkpoint(first, factor, self.model_spec)
        entry, order = found.entry, found.order
        self._load(entry)
        self._fitting_model = None
        self.masses = np.asarray(self.card["config"]["masses"])
        symmetries = automorphisms(self.card["config"]["numbers"], self.card["bonds"])
        self.reference = self.model.reference.cpu().double().numpy()  # (N, 3) Å, windows are aligned to it
        self.order = best_order(order, symmetries, first.positions[0], self.reference, self.masses)
        self.inverse = np.argsort(self.order)
        self.context = self.model.context - 1
        log.info("neural method: checkpoint %s on %s", entry.id, self.device)
        self.force_check = self.check_forces(first)  # the driver warns if this method is the one used
        return self.provenance(fitted_velocities=not first.has_velocities)

    def check_forces(self, coarse: Trajectory, max_frames: int = 64) -> dict | None:
        """The checkpoint's force error on the input's stored forces: is this its Hamiltonian?

        The integrator's energy network was fitted to its training data's forces, so its
        forces at the input's own frames measure how far the input's Hamiltonian is from
        that one, before any reconstruction.

        Parameters
        ----------
        coarse : Trajectory
            With ``forces`` (eV/Å), shape (F, N, 3); ``max_frames`` of them, spread evenly,
            are used.

        Returns
        -------
        dict or None
            ``force_mae`` (eV/Å, per Cartesian component), ``relative`` (that over the mean
            absolute stored force), ``frames``, ``own_relative`` (the checkpoint's on data of
            its own Hamiltonian), ``mismatch`` (``relative`` above :data:`FORCE_MISMATCH`, or
            above 1.75x ``own_relative`` when the card records it) and ``warning`` (the
            line to show); None when the input has no forces or a cell (wrapped molecules
            have no canonical frame).
        """
        import torch

        if coarse.forces is None or coarse.is_periodic or self.model.arch == "node":
            return None
        pick = np.unique(np.linspace(0, coarse.n_frames - 1, min(max_frames, coarse.n_frames)).astype(int))
        x = coarse.positions[pick][:, self.order]
        forces = coarse.forces[pick][:, self.order]
        centres, rotations = self._canonical(x)  # the windows' canonical frame, one per frame here
        canonical = np.einsum("gni,gij->gnj", x - centres[:, None], rotations)
        parameter = next(self.model.parameters())
        predicted = self.model.forces(torch.as_tensor(canonical, dtype=parameter.dtype, device=parameter.device))
        predicted = np.einsum("gnj,gij->gni", predicted.detach().cpu().double().numpy(), rotations)
        own, _ = self._own_force_error()
        potential = self.card.get("training", {}).get("provenance", {}).get("potential")
        trained_on = (f"held-out data of its training Hamiltonian ({potential})" if potential
                      else "held-out data of its training Hamiltonian")
        return self._force_report(predicted, forces, against=f"about {own:.0%} on {trained_on}",
                                  cause="the input is probably from another Hamiltonian, where the learned "
                                        "advantage shrinks")

    def _float64_model(self):
        """The integrator in float64, for the shooting fit (see ``precision``), copied once.

        ``bench/shooting.py`` (ethanol, uracil; 100 held-out gaps at factor 20): rotating
        the input changed float32 fits' output by up to 3e-3 Å, float64 fits' by 1e-8 Å;
        the position error is the same to 1 %, the fit takes 1.4-2x as long.
        """
        if self._fitting_model is None:
            self._fitting_model = self.model if self.precision == "float64" else copy.deepcopy(self.model).double()
        return self._fitting_model

    # ------------------------------------------------------------------ windows
    def _canonical(self, x):
        """Centres (G, 3) and rotations (G, 3, 3) taking each gap's first frame onto the reference."""
        from .geometry import kabsch_rotations

        weights = self.masses / self.masses.sum()
        centres = np.einsum("gni,n->gi", x, weights)
        rotations = kabsch_rotations(x - centres[:, None], self.reference, weights)
        return centres, rotations

    def _histories(self, n_frames):
        """Frame indices (G, K) of the context before each gap (ending at its first frame)
        and after it (starting at its last frame), clipped at the trajectory's ends."""
        k = self.model.context
        gaps = np.arange(n_frames - 1)[:, None]
        before = np.clip(gaps - (k - 1) + np.arange(k), 0, n_frames - 1)
        after = np.clip(gaps + 1 + np.arange(k), 0, n_frames - 1)
        return before, after

    def interpolate(self, coarse: Trajectory, factor: int) -> FineFrames:
        import torch

        if self.model is None:
            self.prepare(coarse, factor)  # used directly, outside the driver
        dt_fine = coarse.dt / factor
        x = coarse.positions[:, self.order]
        before, after = self._histories(len(x))
        centres, rotations = self._canonical(x[before[:, -1]])
        if coarse.velocities is not None:
            v = coarse.velocities[:, self.order]
        else:  # fitted with every gap in the frame it is reconstructed in below
            v = estimate_velocities(self._float64_model(), x, coarse.dt, factor, device=self.device,
                                    centres=centres, rotations=rotations, batch_rollouts=2 * self.batch_gaps,
                                    initial=_spline_start(coarse, self.order))

        def canonical(idx):  # (G, K) frame indices → canonical positions, velocities (G, K, N, 3)
            return (np.einsum("gkni,gij->gknj", x[idx] - centres[:, None, None], rotations),
                    np.einsum("gkni,gij->gknj", v[idx], rotations))

        start, end = canonical(before), canonical(after)
        n_gaps = len(before)
        out_x = np.empty((n_gaps, factor + 1, x.shape[1], 3))
        out_v = np.empty_like(out_x)
        out_d = np.empty((n_gaps, factor + 1))
        device = torch.device(self.device)
        dtype = getattr(torch, self.precision)
        with torch.no_grad():
            for lo in range(0, n_gaps, self.batch_gaps):
                hi = min(lo + self.batch_gaps, n_gaps)
                tensors = [torch.as_tensor(a[lo:hi], device=device, dtype=dtype) for a in (*start, *end)]
                fx, fv, dis = self.model.interpolate(tensors[:2], tensors[2:], factor, dt_fine)
                out_x[lo:hi], out_v[lo:hi], out_d[lo:hi] = fx.cpu().numpy(), fv.cpu().numpy(), dis.cpu().numpy()
        # back to the input's frame and atom order
        out_x = np.einsum("gtnj,gij->gtni", out_x, rotations) + centres[:, None, None]
        out_v = np.einsum("gtnj,gij->gtni", out_v, rotations)
        positions = np.concatenate([out_x[:, :-1].reshape(-1, *x.shape[1:]), out_x[-1:, -1]])
        velocities = np.concatenate([out_v[:, :-1].reshape(-1, *x.shape[1:]), out_v[-1:, -1]])
        disagreement = np.concatenate([out_d[:, :-1].reshape(-1), out_d[-1:, -1]])
        return FineFrames(positions[:, self.inverse], velocities[:, self.inverse],
                          {"disagreement": disagreement})

