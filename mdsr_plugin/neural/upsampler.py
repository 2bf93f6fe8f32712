"""The learned upsampling methods: a checkpoint's bi-directional integrator applied to gaps.

One method, :class:`LearnedUpsampler`, runs every checkpoint, molecular or periodic.
For every gap the checkpoint's integrator runs forward from the gap's first coarse
frame and backward from its last, and the two paths are blended
(:mod:`mdsr_plugin.neural.integrator`).  What differs between a molecule and a box
is only the frame the gaps are integrated in, a *frame adapter*:

:class:`MoleculeFrame`
    permutes the atoms into the checkpoint's order (matched by molecular graph) and
    moves each gap, with ``context`` coarse frames on each side, into a canonical
    frame: centre of mass of its first frame at the origin, rotated onto the
    checkpoint's reference geometry (Kabsch); the result is moved back.  Without
    stored velocities they are first fitted by shooting: the coarse velocities that
    make the integrator started at each coarse frame reach its neighbours
    (:func:`mdsr_plugin.neural.shooting.estimate_velocities`).
:class:`BoxFrame`
    needs no atom matching or canonical frame (a local energy is invariant to
    rotations, translations and permutations of like atoms): each path runs in its
    own frame's cell, on the unwrapped coordinates the streaming driver hands over
    (it re-wraps the output when the input was wrapped, :mod:`mdsr_plugin.periodic`).

All gaps of a block go through the network together, in batches of ``batch_gaps``;
there is no Python loop over gaps or fine frames other than the integrator's time
steps.  The per-frame forward/backward disagreement (RMS over atoms, Å) is returned
as ``frame_data["disagreement"]``: the model's own estimate of where it is unsure.
"""

from __future__ import annotations

import copy
import logging

import numpy as np

from ..methods.base import FineFrames, Method, MethodError, Provenance
from ..trajectory import Trajectory
from . import card as schema

__all__ = ["LearnedUpsampler", "MoleculeFrame", "BoxFrame", "FORCE_ERROR_ON_OWN_DATA", "FORCE_MISMATCH"]

log = logging.getLogger(__name__)

#: Relative force error (MAE over mean |F|) of a shipped checkpoint on held-out data of
#: its own Hamiltonian (GFN2-xTB): measured 1.6-4.2 % for ethanol, uracil and aspirin
#: (``bench/force_check.py``, docs/benchmarks.md "Force check").
FORCE_ERROR_ON_OWN_DATA = 0.04
#: Above this the input's forces are taken to come from another Hamiltonian, and the user
#: is warned: on GFN1-xTB data the same checkpoints measured 7.8-14.5 %.
FORCE_MISMATCH = 0.07


class LearnedUpsampler(Method):
    """Upsample with a checkpoint's bi-directional learned integrator.

    Parameters
    ----------
    model : str, optional
        A registered checkpoint id or a checkpoint path; by default the best
        registered checkpoint that fits the input.
    device : str
        ``"cpu"`` or ``"cuda[:N]"``.
    batch_gaps : int, optional
        Gaps integrated together (memory vs speed); by default the frame adapter's:
        for a molecule 1024 on a CPU, where larger batches gain nothing, and 8192 on a
        GPU, which needs many windows in flight to be busy (the arrays of one block,
        ``batch_gaps × factor`` fine frames, are about 0.2 GB at 1024 gaps of a
        21-atom molecule at factor 20); for a box, a whole box per gap, 16 and 256.
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

    Attributes
    ----------
    frame : MoleculeFrame or BoxFrame
        The checkpoint's frame adapter, once prepared.
    card : dict or None
        The checkpoint's model card, once prepared.
    force_check : dict or None
        :meth:`check_forces` of the first chunk, once prepared.
    """

    name = "neural"
    description = "bi-directional learned integrator from a checkpoint (models/, --adapt)"

    def __init__(self, model: str | None = None, device: str = "cpu", batch_gaps: int | None = None,
                 precision: str = "float32", name: str = "neural"):
        if precision not in ("float32", "float64"):
            raise MethodError(f"precision must be float32 or float64, got {precision!r}")
        self.name = name  # "adapted" for a checkpoint learned from the input itself
        self.model_spec, self.device, self.precision = model, device, precision
        self._batch_gaps = batch_gaps
        self.model = self.card = self.frame = self.force_check = None

    def prepare(self, first: Trajectory, factor: int, found=None) -> Provenance:
        """Load the checkpoint for this input and fit its frame adapter to it (called once,
        by the driver, with the first chunk); returns what produced the output.

        Parameters
        ----------
        first : Trajectory
            The input's first chunk (at least two frames).
        factor : int
        found : CheckpointMatch, optional
            The match the plugin found when asked whether it suits this input; searched
            for here when not given.
        """
        from .checkpoint import load_checkpoint
        from .registry import match_checkpoint

        if found is None:
            found = match_checkpoint(first, factor, self.model_spec)
        if self.device == "cpu":
            from ..threads import apply_requested_limit

            apply_requested_limit()
        self.model, self.card = load_checkpoint(found.entry.card_path, expected_card_sha256=found.entry.card_sha256,
                                                device=self.device, dtype=self.precision)
        is_box = self.card[schema.CONFIG][schema.ARCH] == schema.LOCAL_ARCH
        self.frame = (BoxFrame if is_box else MoleculeFrame)(self.model, self.card, first, found.order)
        self.requires, self.context = self.frame.requires, self.frame.context
        on_gpu = str(self.device).startswith("cuda")
        self.batch_gaps = self._batch_gaps or self.frame.default_batch_gaps[on_gpu]
        self.block_gaps = self.frame.batches_per_block * self.batch_gaps
        log.info("learned method: checkpoint %s (%s) on %s", found.entry.id, type(self.frame).__name__, self.device)
        self.force_check = self.check_forces(first)  # the driver warns if this method is the one used
        return self.provenance(fitted_velocities=not first.has_velocities)

    def provenance(self, fitted_velocities: bool) -> Provenance:
        """What produced the output: the method name, the checkpoint's id and weights sha256,
        whether the coarse velocities were fitted, and the force check of the first chunk.

        Parameters
        ----------
        fitted_velocities : bool
            The input has no velocities (recorded only where the frame adapter fits them).
        """
        if self.card is None:
            raise RuntimeError(f"{type(self).__name__} {self.name!r}: provenance asked before prepare()")
        return Provenance(method=self.name, model=self.card["id"], model_sha256=self.card["weights_sha256"],
                          velocities_fitted=bool(fitted_velocities and self.frame.fits_velocities),
                          force_check=self.force_check)

    # ------------------------------------------------------------------ forces
    def check_forces(self, coarse: Trajectory) -> dict | None:
        """The checkpoint's force error on the input's stored forces: is this its Hamiltonian?

        The integrator's energy network was fitted to its training data's forces, so its
        forces at the input's own frames measure how far the input's Hamiltonian is from
        that one, before any reconstruction.

        Parameters
        ----------
        coarse : Trajectory
            With ``forces`` (eV/Å), shape (F, N, 3); the frame adapter's
            ``force_check_frames`` of them, spread evenly, are used.

        Returns
        -------
        dict or None
            ``force_mae`` (eV/Å, per Cartesian component), ``relative`` (that over the mean
            absolute stored force), ``frames``, ``own_relative`` (the checkpoint's on data of
            its own Hamiltonian), ``mismatch`` (``relative`` above :data:`FORCE_MISMATCH`, or
            above 1.75x ``own_relative`` when the card records it) and ``warning`` (the
            line to show); None when the input has no forces or the adapter cannot tell
            (a molecular checkpoint on wrapped input, or a neural ODE, which has no energy).
        """
        if coarse.forces is None:
            return None
        n = min(self.frame.force_check_frames, coarse.n_frames)
        pick = np.unique(np.linspace(0, coarse.n_frames - 1, n).astype(int))
        predicted = self.frame.forces(coarse, pick)
        if predicted is None:
            return None
        forces = coarse.forces[pick]
        mae = float(np.abs(predicted - forces).mean())
        relative = mae / float(np.abs(forces).mean())
        own, threshold = self._own_force_error()
        if self._held_out_force_error() is not None:
            against = f"{own:.0%} on the frames it held out"
        else:
            potential = self.card.get(schema.TRAINING, {}).get("provenance", {}).get("potential")
            against = f"about {own:.0%} on held-out data of its training Hamiltonian" + \
                (f" ({potential})" if potential else "")
        warning = (f"checkpoint {self.card['id']}: its forces differ from the input's stored forces by "
                   f"{relative:.0%} (MAE {mae:.2g} eV/Å over {len(forces)} frames), against {against}: "
                   "the input is probably from another Hamiltonian (or system), where the learned advantage "
                   "shrinks; --adapt learns from the input itself")
        mismatch = bool(relative > threshold)
        return {"force_mae": mae, "relative": relative, "frames": int(len(forces)), "own_relative": own,
                "mismatch": mismatch, "warning": warning if mismatch else None}  # stored in the output too

    def _held_out_force_error(self) -> float | None:
        own = self.card.get(schema.VALIDATION, {}).get("held_out_gaps", {}).get("force_relative_mae")
        return None if own is None else float(own)

    def _own_force_error(self) -> tuple[float, float]:
        """The checkpoint's relative force error on data of its own Hamiltonian, and the
        threshold above which an input is taken to be of another.

        A checkpoint learned from coarse frames (``mdsr-train --from-coarse``, ``--adapt``)
        records its own on the frames it held out; a small model learned from scratch on a
        few hundred frames fits its forces less closely (glycine on GFN1-xTB: 11 %) than a
        shipped one (1.6-4.2 %), so its threshold scales with it.
        """
        own = self._held_out_force_error()
        if own is None:
            return FORCE_ERROR_ON_OWN_DATA, FORCE_MISMATCH
        return own, max(FORCE_MISMATCH, FORCE_MISMATCH / FORCE_ERROR_ON_OWN_DATA * own)

    # ------------------------------------------------------------------ gaps
    def interpolate(self, coarse: Trajectory, factor: int) -> FineFrames:
        """Fine frames of ``coarse``, shape ``((n_coarse - 1) * factor + 1, N, 3)``, Å and
        Å/fs (a box's unwrapped), with the forward/backward ``disagreement`` (Å) per fine frame."""
        import torch

        if self.model is None:
            self.prepare(coarse, factor)  # used directly, outside the driver
        windows = self.frame.windows(coarse, factor, self.device, self.batch_gaps)
        n_gaps, n_atoms, dt_fine = coarse.n_frames - 1, coarse.n_atoms, coarse.dt / factor
        out_x = np.empty((n_gaps, factor + 1, n_atoms, 3))
        out_v = np.empty_like(out_x)
        out_d = np.empty((n_gaps, factor + 1))
        device, dtype = torch.device(self.device), getattr(torch, self.precision)

        def tensor(a):
            # a box's cells come from np.broadcast_to (read-only), which torch warns about: copy those
            return torch.as_tensor(np.require(a, requirements="CW"), device=device, dtype=dtype)

        with torch.no_grad():
            for lo in range(0, n_gaps, self.batch_gaps):
                hi = min(lo + self.batch_gaps, n_gaps)
                fx, fv, dis = windows.run([tensor(a[lo:hi]) for a in windows.arrays], factor, dt_fine)
                out_x[lo:hi], out_v[lo:hi], out_d[lo:hi] = fx.cpu().numpy(), fv.cpu().numpy(), dis.cpu().numpy()
        out_x, out_v = windows.back(out_x, out_v)

        def frames(a):  # (G, factor + 1, ...) → ((G * factor) + 1, ...): each gap's end is the next's start
            return np.concatenate([a[:, :-1].reshape(-1, *a.shape[2:]), a[-1:, -1]])

        return FineFrames(frames(out_x), frames(out_v), {"disagreement": frames(out_d)})


class _Windows:
    """What :meth:`LearnedUpsampler.interpolate` integrates: per-gap ``arrays`` (each
    indexed by gap first), ``run(tensors, factor, dt)`` on a batch of their rows giving the
    model's fine (x, v) of shape (B, factor + 1, N, 3) and disagreement (B, factor + 1), and
    ``back(x, v)`` taking all of them into the input's frame and atom order."""

    def __init__(self, arrays, run, back=lambda x, v: (x, v)):
        self.arrays, self.run, self.back = arrays, run, back


class MoleculeFrame:
    """A molecular checkpoint's frame: its atom order and each gap's canonical frame.

    Parameters
    ----------
    model : LearnedIntegrator
    card : dict
    first : Trajectory
        The input's first chunk: the atom order among graph automorphisms is chosen on
        its first frame.
    order : ndarray, shape (N,), int
        The graph match of the input's atoms onto the checkpoint's.
    """

    requires: tuple[str, ...] = ()
    fits_velocities = True
    default_batch_gaps = (1024, 8192)  # CPU, GPU
    batches_per_block = 1
    force_check_frames = 64

    def __init__(self, model, card, first: Trajectory, order):
        from ..molecule import automorphisms, best_order

        self.model, self.arch = model, card[schema.CONFIG][schema.ARCH]
        self.masses = np.asarray(card[schema.CONFIG]["masses"])
        self.reference = model.reference.cpu().double().numpy()  # (N, 3) Å, windows are aligned to it
        symmetries = automorphisms(card[schema.CONFIG][schema.NUMBERS], card[schema.BONDS])
        self.order = best_order(order, symmetries, first.positions[0], self.reference, self.masses)
        self.inverse = np.argsort(self.order)
        self.context = model.context - 1
        self._fitting_model = None  # float64 copy for the positions-only velocity fit

    def canonical(self, x: np.ndarray):
        """Centres (G, 3) and rotations (G, 3, 3) taking each of ``x`` (G, N, 3) onto the reference."""
        from ..molecule import canonical_frames

        return canonical_frames(x, self.reference, self.masses)

    def forces(self, coarse: Trajectory, pick) -> np.ndarray | None:
        """The model's forces (len(pick), N, 3), eV/Å, at frames ``pick`` in the input's
        frame and order; None on wrapped input (no canonical frame) or for the neural ODE."""
        import torch

        if coarse.is_periodic or self.arch == "node":
            return None
        x = coarse.positions[pick][:, self.order]
        centres, rotations = self.canonical(x)
        canonical = np.einsum("gni,gij->gnj", x - centres[:, None], rotations)
        parameter = next(self.model.parameters())
        predicted = self.model.forces(torch.as_tensor(canonical, dtype=parameter.dtype, device=parameter.device))
        return np.einsum("gnj,gij->gni", predicted.detach().cpu().double().numpy(), rotations)[:, self.inverse]

    def _float64_model(self):
        """The integrator in float64 for the shooting fit (:func:`_float64`), copied once."""
        if self._fitting_model is None:
            self._fitting_model = _float64(self.model)
        return self._fitting_model

    def windows(self, coarse: Trajectory, factor: int, device, batch_gaps: int) -> _Windows:
        """Each gap's ``context`` frames before (ending at its first) and after (starting at
        its last), (G, K, N, 3) positions and velocities in the gap's canonical frame."""
        from .shooting import estimate_velocities, first_guess

        k = self.model.context
        x = coarse.positions[:, self.order]
        gaps = np.arange(len(x) - 1)[:, None]
        before = np.clip(gaps - (k - 1) + np.arange(k), 0, len(x) - 1)  # clipped at the ends
        after = np.clip(gaps + 1 + np.arange(k), 0, len(x) - 1)
        centres, rotations = self.canonical(x[before[:, -1]])
        if coarse.velocities is not None:
            v = coarse.velocities[:, self.order]
        else:  # fitted with every gap in the frame it is reconstructed in
            v = estimate_velocities(self._float64_model(), x, coarse.dt, factor, device=device, centres=centres,
                                    rotations=rotations, batch_rollouts=2 * batch_gaps,
                                    initial=first_guess(coarse.positions, coarse.forces, coarse.masses,
                                                        coarse.dt)[:, self.order])

        def canonical(a, idx, shift):
            return np.einsum("gkni,gij->gknj", a[idx] - (centres[:, None, None] if shift else 0), rotations)

        def back(fine_x, fine_v):
            fine_x = np.einsum("gtnj,gij->gtni", fine_x, rotations) + centres[:, None, None]
            fine_v = np.einsum("gtnj,gij->gtni", fine_v, rotations)
            return fine_x[:, :, self.inverse], fine_v[:, :, self.inverse]

        arrays = [canonical(x, before, True), canonical(v, before, False),
                  canonical(x, after, True), canonical(v, after, False)]
        return _Windows(arrays, lambda t, n, dt: self.model.interpolate(t[:2], t[2:], n, dt), back)



class BoxFrame:
    """A periodic box's local checkpoint: its atoms as they come, each path in its own cell.

    Parameters as for :class:`MoleculeFrame`; ``order`` is the identity (a local energy
    does not care which like atom is which).
    """

    requires: tuple[str, ...] = ()
    fits_velocities = True  # without stored velocities: estimate_box_velocities
    default_batch_gaps = (16, 256)  # a whole box per gap: fewer gaps at once
    batches_per_block = 16
    force_check_frames = 16
    context = 0

    def __init__(self, model, card, first: Trajectory, order):
        self.model, self.card_id = model, card[schema.ID]
        self._atoms = None
        self._fitting_model = None
        self._check(first)

    def _check(self, coarse: Trajectory) -> None:
        """Refuse input without a cell; tell the (shared, cached) model whose atoms it moves."""
        if not coarse.is_periodic:
            raise MethodError(f"checkpoint {self.card_id} is for periodic boxes; this input has no cell")
        key = (tuple(coarse.numbers.tolist()), tuple(np.round(coarse.masses, 6).tolist()))
        if key != self._atoms:
            try:
                self.model.set_atoms(coarse.numbers, coarse.masses)
            except ValueError as err:
                raise MethodError(f"checkpoint {self.card_id}: {err}") from None
            self._atoms = key

    def _float64_model(self, coarse: Trajectory):
        """The integrator in float64 for the velocity fit (:func:`_float64`), copied once and
        told the atoms of ``coarse`` each time (the cached model may meet another box)."""
        if self._fitting_model is None:
            self._fitting_model = _float64(self.model)
        self._fitting_model.set_atoms(coarse.numbers, coarse.masses)
        return self._fitting_model

    def forces(self, coarse: Trajectory, pick) -> np.ndarray:
        """The model's forces (len(pick), N, 3), eV/Å, at frames ``pick``, four boxes at a time."""
        import torch

        self._check(coarse)
        parameter = self.model.feature_mean
        predicted = []
        for lo in range(0, len(pick), 4):
            at = pick[lo:lo + 4]
            x = torch.as_tensor(coarse.positions[at], dtype=parameter.dtype, device=parameter.device)
            cell = torch.as_tensor(np.broadcast_to(coarse.cell[at], (len(at), 3, 3)).copy(),
                                   dtype=parameter.dtype, device=parameter.device)
            predicted.append(self.model.forces(x, cell, pbc=coarse.pbc).detach().cpu().double().numpy())
        return np.concatenate(predicted)

    def windows(self, coarse: Trajectory, factor: int, device, batch_gaps: int) -> _Windows:
        """Each gap's first and last frame, (G, N, 3) positions and velocities, and their cells;
        without stored velocities they are fitted (:func:`~mdsr_plugin.neural.shooting.
        estimate_box_velocities`), from the quintic or the cubic spline's where forces are
        stored (whichever lands closer), else from the cubic spline's."""
        self._check(coarse)
        x, v = coarse.positions, coarse.velocities
        cell = np.broadcast_to(coarse.cell, (coarse.n_frames, 3, 3))
        if v is None:
            from .shooting import estimate_box_velocities, first_guesses

            v = estimate_box_velocities(self._float64_model(coarse), x, cell, coarse.masses, coarse.dt, factor,
                                        pbc=coarse.pbc, device=device, batch_gaps=batch_gaps,
                                        initial=first_guesses(x, coarse.forces, coarse.masses, coarse.dt))
        arrays = [x[:-1], v[:-1], x[1:], v[1:], cell[:-1], cell[1:]]
        return _Windows(arrays, lambda t, n, dt: self.model.interpolate(t[0:2], t[2:4], n, dt, t[4:6],
                                                                        pbc=coarse.pbc))


def _float64(model):
    """``model`` itself if it is float64, else a float64 copy: the velocity fits run in float64.

    ``bench/shooting.py`` (ethanol, uracil; 100 held-out gaps at factor 20): rotating the
    input changed float32 fits' output by up to 3e-3 Å, float64 fits' by 1e-8 Å; the
    position error is the same to 1 %, the fit takes 1.4-2x as long.
    """
    import torch

    return model if next(model.parameters()).dtype == torch.float64 else copy.deepcopy(model).double()
