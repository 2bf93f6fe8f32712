"""Learning a periodic box's integrator from its own coarse frames.

The periodic counterpart of :mod:`mdsr_plugin.neural.adapt` (whose module docstring
explains the two losses): :func:`~mdsr_plugin.neural.adapt.adapt` hands a periodic
input here.  The model is a :class:`~mdsr_plugin.neural.local.LocalIntegrator`,
always learned from scratch (a box has no registry checkpoint to start from):

1. **Forces**: the atomic-energy networks are fitted to the stored forces of the
   training frames (AIMD codes store them).  Frames with neither velocities nor
   forces (XDATCAR, an XYZ or DCD archive of a box) get a *prior*'s forces instead: a
   cheap Hamiltonian's, computed at the frames themselves
   (:func:`~mdsr_plugin.neural.prior.prior_forces`; ``prior``, automatic where tblite
   is installed).  A box with velocities but no forces skips this stage unless a
   prior is asked for.
2. **Gaps**: from each training frame the integrator runs one gap forward and from
   the next frame one gap backward; both must land on the stored positions and
   velocities, and agree along the way.  Without stored velocities (VASP writes
   positions, forces and cells) they are fitted once, after the forces stage, by the
   model as it then is (:func:`~mdsr_plugin.neural.shooting.estimate_box_velocities`).
   A gap costs ``4 × factor × substeps`` force
   evaluations of the whole box with their second derivatives, so an epoch here is
   ``gaps_per_epoch`` gaps drawn at random, not all of them (and a forces epoch
   ``frames_per_epoch`` frames).

Coordinates are unwrapped first (the files are usually wrapped), so a gap's end
continues its start.  The last gaps are held out as in the molecular case, and the
card records the held-out coarse frames for ``auto`` to measure every candidate on.
Each stage stops at its number of epochs or when its learning rate has decayed to
``min_learning_rate``; ``max_minutes`` bounds each call, and the next call continues.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from . import card as schema
from .coarse import (
    AdaptError, CoarseData, LearningSettings, check_enough_gaps, finished_card, fingerprint_of, held_out_split,
    hermite_midpoint_error, learn_stages, save_learned, step_factor,
)
from ..periodic import unwrapped_positions
from .prior import AUTO_PRIOR, AUTOMATIC_PRIOR, NO_PRIOR, prior_forces, tblite_available
from .shooting import first_guess
from .training import kept_fitted_velocities

__all__ = ["BoxAdaptSettings", "adapt_box", "box_settings"]

log = logging.getLogger(__name__)

#: The fewest frames a prior's forces may be computed at (``prior_frames``): about a tenth
#: of them fall in the held-out part, which validates the forces stage.
MIN_PRIOR_FRAMES = 16


@dataclass
class BoxAdaptSettings(LearningSettings):
    """:class:`~mdsr_plugin.neural.coarse.LearningSettings` and what only a box has.

    Attributes
    ----------
    cutoff : float
        Neighbourhood radius of the local energy, Å.
    n_radial, n_angular : int
        Gaussians per neighbour element of the radial densities and of the moments
        (on a 24-atom GFN1-xTB water box, 16 and 6 fitted held-out forces to 10.8 %
        where 8 and 4 gave 12.7 %: the O–H bond needs a fine radial grid).
    prior : str or None
        The cheap Hamiltonian (``"gfn1-xtb"`` or ``"gfn2-xtb"``; tblite) whose forces at the
        coarse frames stand in for forces the frames do not have.  :data:`~mdsr_plugin.
        neural.prior.AUTO_PRIOR`: :data:`~mdsr_plugin.neural.prior.AUTOMATIC_PRIOR` for
        frames with neither velocities nor forces, where tblite is installed; None or
        ``"none"``: never.
    prior_frames : int
        The prior's single points per file at most: a longer file gets them at every k-th
        frame (the force stage learns from those; the gaps from all).  A single point
        costs seconds on a large box (GFN2-xTB, 96 waters' atoms: 5.4 s on one core).
    prior_share : float
        The share of ``max_minutes`` the prior's single points may take; those left over are
        computed by the next call (they are kept, see :func:`~mdsr_plugin.neural.prior.
        prior_forces`), and this call learns from the frames that have them, as an
        unfinished run.  Half: the box is learned from scratch, which takes the rest.
    frames_per_epoch, gaps_per_epoch : int
        Frames drawn per epoch of the forces stage, gaps per epoch of the gap stage: not all,
        so that an epoch is bounded in time however long the archive (a frame is a whole box).
    force_batch, gap_batch : int
        Frames per force step, gaps per gap step (a frame is a whole box).
    """

    force_epochs: int = 150
    # 40 epochs of 8 gaps ended the 8 ps water box's learning after 6.4 of 10 minutes; 80 of 16
    # gave 9 % better positions from positions + forces in 8.6 (docs/benchmarks.md, "A longer gap stage")
    gap_epochs: int = 80
    force_batch: int = 4
    gap_batch: int = 2
    frames_per_epoch: int = 64
    gaps_per_epoch: int = 16
    learning_rate: float = 2e-3
    gap_learning_rate: float = 2e-4
    patience: int = 3
    prior: str | None = AUTO_PRIOR
    prior_frames: int = 256
    prior_share: float = 0.5
    cutoff: float = 4.5
    n_radial: int = 16
    n_angular: int = 6
    width: int = 64
    depth: int = 2


def box_settings(settings: LearningSettings) -> BoxAdaptSettings:
    """The box settings of a molecular ``settings``: the box's own defaults, and every shared
    field (output step, budget, seed, device, epochs, rates...) the user set to other than
    the molecular default, so that nothing asked for is dropped silently."""
    if isinstance(settings, BoxAdaptSettings):
        return settings
    molecular_defaults = type(settings)()
    chosen = {f.name: getattr(settings, f.name) for f in fields(LearningSettings)
              if getattr(settings, f.name) != getattr(molecular_defaults, f.name)
              or f.name in ("fine_dt", "seed", "max_minutes", "device")}
    return BoxAdaptSettings(**chosen, prior=getattr(settings, "prior", AUTO_PRIOR))


class _BoxData(CoarseData):
    """The coarse frames of one or more runs of one box, unwrapped, as arrays: the
    :class:`~mdsr_plugin.neural.coarse.CoarseData` of a box (each batch with its cells).

    Attributes
    ----------
    x, v : ndarray, shape (M, N, 3)
        Unwrapped positions (Å) and velocities (Å/fs) of every frame.
    f : ndarray, shape (M, N, 3) or None
        Stored forces, eV/Å.
    cell : ndarray, shape (M, 3, 3), Å
    gap_start : ndarray, shape (G,), int
        Frame index (into the arrays) of each gap's first frame; its last is the next.
    """

    validation_batch = 8  # a frame is a whole box

    def __init__(self, trajectories, forces=None):
        xs, vs, fs, cells, starts, offset = [], [], [], [], [], 0
        for k, traj in enumerate(trajectories):
            xs.append(unwrapped_positions(traj))
            vs.append(traj.velocities)
            fs.append(traj.forces if forces is None else forces[k])
            cells.append(np.broadcast_to(traj.cell, (traj.n_frames, 3, 3)))
            starts.append(offset + np.arange(traj.n_frames - 1))
            offset += traj.n_frames
        self.x, self.v, self.cell = np.concatenate(xs), np.concatenate(vs), np.concatenate(cells)
        self.f = np.concatenate(fs) if all(f is not None for f in fs) else None
        # frames with forces (a prior's may be at every k-th frame only, NaN elsewhere)
        self.force_frames = None if self.f is None else np.flatnonzero(np.isfinite(self.f).all(axis=(1, 2)))
        self.gap_start = np.concatenate(starts)
        self.pbc = trajectories[0].pbc
        self.frames_in_last_file = trajectories[-1].n_frames
        self.first_frame_of_last_file = offset - trajectories[-1].n_frames

    def split(self, fraction):
        """(train, held-out) gap indices and force-frame indices; the last gaps are held out,
        and no training force frame lies in the held-out part."""
        gaps = held_out_split(len(self.gap_start), fraction)
        first_held_frame = self.gap_start[gaps[1][0]]
        if self.f is None:
            return gaps, (None, None)
        held = self.force_frames >= first_held_frame
        return gaps, (self.force_frames[~held], self.force_frames[held])

    def force_pairs(self, model, pick, rng, tensor, create_graph=False):
        x, cell, f = tensor(self.x[pick]), tensor(self.cell[pick]), tensor(self.f[pick])
        return model.forces(x, cell, pbc=self.pbc, create_graph=create_graph), f

    def gap_terms(self, model, pick, rng, tensor, factor, fine_dt):
        import torch

        from .integrator import gap_end_misfits, run_both_ways

        i, j = self.gap_start[pick], self.gap_start[pick] + 1
        x0, v0, x1, v1 = tensor(self.x[i]), tensor(self.v[i]), tensor(self.x[j]), tensor(self.v[j])
        cells = torch.cat([tensor(self.cell[i]), tensor(self.cell[j])])
        forward, backward = run_both_ways(
            lambda hx, hv: model.rollout(hx[:, -1], hv[:, -1], cells, factor, fine_dt, self.pbc),
            (x0[:, None], v0[:, None]), (x1[:, None], v1[:, None]))
        return gap_end_misfits(forward, backward, x0, v0, x1, v1)

    def hermite_frames(self, index):
        k = self.gap_start[index]
        k = k[np.isin(k + 1, self.gap_start)]  # frames k, k + 1, k + 2 of one file
        return (self.x[k], self.v[k], self.x[k + 1], self.x[k + 2], self.v[k + 2]) if len(k) else None


def adapt_box(trajectories, names, paths, output: Path, settings: LearningSettings, *, progress: bool,
              reader_options, manifest: bool) -> Path:
    """Learn a local periodic integrator (see the module docstring); arguments as for
    :func:`~mdsr_plugin.neural.adapt.adapt`, with the trajectories already read."""
    import torch

    from .local import LocalIntegrator, default_local_config

    settings = box_settings(settings)
    settings = replace(settings, prior=_resolved_box_prior(settings.prior, trajectories))
    first = trajectories[0]
    # Without stored velocities (VASP) they are fitted from the stored forces' potential, as for
    # a molecule; positions alone take a prior's forces, and without one are refused.
    fit_velocities = first.velocities is None
    for name, traj in zip(names, trajectories):
        if traj.velocities is None and traj.forces is None and settings.prior is None:
            raise AdaptError(f"{name}: positions only: learning a periodic box from coarse frames needs their "
                             f"velocities or their forces, or a prior's forces (--adapt-prior {AUTOMATIC_PRIOR}; "
                             f"automatic where tblite is installed)")
        if not traj.is_periodic:
            raise AdaptError(f"{name}: not periodic, and {names[0]} is: learn a box and a molecule separately")
        if traj.numbers.tolist() != first.numbers.tolist():
            raise AdaptError(f"{name}: other atoms than {names[0]} (a box's files must list the same atoms)")
    coarse_dt = first.dt
    factor = step_factor(coarse_dt, settings.fine_dt)
    forces, missing = None, 0  # where a prior gives them (see _prior_forces)
    if settings.prior is not None:
        if settings.prior_frames < MIN_PRIOR_FRAMES:
            raise AdaptError(f"prior_frames must be at least {MIN_PRIOR_FRAMES}, got {settings.prior_frames}")
        # refuse input too short to learn from before minutes of single points
        check_enough_gaps(sum(t.n_frames - 1 for t in trajectories), context=1)
        deadline = None if settings.max_minutes is None else \
            time.perf_counter() + 60 * settings.max_minutes * settings.prior_share
        forces, seconds, missing = _prior_forces(trajectories, output, settings.prior, settings.prior_frames,
                                                 progress, deadline)
        # the splines' first guesses take forces at every frame (a subsampled prior's are not)
        trajectories = [t if t.forces is not None or not np.isfinite(f).all() else replace(t, forces=f)
                        for t, f in zip(trajectories, forces)]
        if settings.max_minutes is not None:  # what the prior left of the budget
            settings = replace(settings, max_minutes=max(settings.max_minutes - seconds / 60, 0.0))
    if fit_velocities:
        trajectories = [replace(t, velocities=first_guess(unwrapped_positions(t), t.forces, t.masses, t.dt))
                        for t in trajectories]
    data = _BoxData(trajectories, forces)
    check_enough_gaps(len(data.gap_start), context=1)
    split = data.split(settings.validation_fraction)
    (gap_train, gap_held), (frame_train, _) = split

    torch.manual_seed(settings.seed)
    config = default_local_config(first.numbers, cutoff=settings.cutoff, n_radial=settings.n_radial,
                                  n_angular=settings.n_angular, width=settings.width, depth=settings.depth)
    model = LocalIntegrator(config).to(torch.float32)
    model.set_atoms(first.numbers, first.masses)
    device = torch.device(settings.device)
    tensor = functools.partial(torch.as_tensor, device=device, dtype=torch.float32)  # arrays indexed: contiguous
    _set_normalisation(model, data, gap_train if frame_train is None else frame_train, tensor)
    model.to(device)

    output.parent.mkdir(parents=True, exist_ok=True)  # only now: bad input has written nothing
    determining = {k: v for k, v in asdict(settings).items() if k not in ("max_minutes", "device")}
    if settings.prior is None:
        determining.pop("prior")  # as before the setting existed: earlier runs' fingerprints still match
    determining.pop("prior_share")  # like the budget it shares out, it does not change a finished result
    if missing:  # learned from part of the prior: a later call with more of it starts afresh
        determining["prior_frames_missing"] = missing
    fingerprint = fingerprint_of(paths, reader_options, determining, model="local")
    finished = finished_card(output, fingerprint)
    if finished is not None:
        log.info("%s: already learned from these data with these settings", finished.name)
        return finished

    @functools.cache
    def fitted_data() -> _BoxData:
        """The frames with velocities fitted by the model as it is when first asked (after the
        forces stage), or as an earlier call of this run fitted them."""
        velocities = kept_fitted_velocities(output, fingerprint,
                                            lambda: [_fitted_velocities(model, t, factor) for t in trajectories])
        return _BoxData([replace(t, velocities=v) for t, v in zip(trajectories, velocities)], forces)

    run, stage_names, held_out = learn_stages(model, data, split, output, settings, force_rate=settings.learning_rate,
                                              fingerprint=fingerprint, tensor=tensor, factor=factor,
                                              progress=progress, max_minutes=settings.max_minutes,
                                              gap_data=fitted_data if fit_velocities else None)
    if not fit_velocities:
        held_out.update(hermite_midpoint_error(data, gap_held, coarse_dt))
    start = data.gap_start[gap_held[0]] - data.first_frame_of_last_file
    held_frames = {schema.ROW_FILE: names[-1], "start": int(start), "stop": int(data.frames_in_last_file)} \
        if start >= 0 else None
    return save_learned(model, output, settings, run, stage_names, manifest=manifest,
                        molecule="periodic box " + _formula(first.numbers), numbers=first.numbers, bonds=[],
                        coarse_dt=coarse_dt, factor=factor, input_modes=[schema.MODE_VELOCITIES, schema.MODE_POSITIONS],
                        names=names, warm_start=None, complete=run.complete and not missing, fingerprint=fingerprint,
                        gaps=split[0],
                        held_out_frames=held_frames, held_out=held_out,
                        # the coarse velocities were not stored: fitted, the gap errors are against the fit
                        velocities_fitted=fit_velocities,
                        # the forces learned from were the prior's, not the input's
                        forces_from_prior=settings.prior)


def _resolved_box_prior(prior, trajectories) -> str | None:
    """The Hamiltonian whose forces the box's frames without forces get, or None.

    An explicit name is used where a file has no forces (a box with stored forces needs
    none); :data:`AUTO_PRIOR` picks :data:`AUTOMATIC_PRIOR` only for frames that carry
    neither velocities nor forces (those could not be learned from otherwise), and only
    where tblite is installed.
    """
    if prior in (None, NO_PRIOR) or all(t.forces is not None for t in trajectories):
        return None
    if prior == AUTO_PRIOR:
        if all(t.velocities is not None for t in trajectories) or not tblite_available():
            return None
        prior = AUTOMATIC_PRIOR
        log.info("a box with neither velocities nor forces: forces on %s at its coarse frames first", prior)
    stored = sum(t.forces is not None for t in trajectories)
    if stored:  # a user's DFT forces beside a tight-binding prior's: one potential is fitted to both
        log.warning("%d of %d files store forces and the others get %s's: the forces stage learns from both "
                    "Hamiltonians (give files of one kind for one)", stored, len(trajectories), prior)
    return prior


def _prior_forces(trajectories, output: Path, hamiltonian: str, max_frames: int, progress: bool,
                  deadline: float | None = None):
    """Each file's forces (F, N, 3), eV/Å: its stored ones, else ``hamiltonian``'s at its
    frames (:func:`~mdsr_plugin.neural.prior.prior_forces`, kept in ``OUTPUT.prior.h5md``
    and ``OUTPUT.prior-K.h5md`` for the K-th file after the first), at every k-th frame
    where the file has more than ``max_frames`` (NaN at the others); the seconds it took;
    and how many of those frames ``deadline`` (``time.perf_counter()``) left without forces
    (each call computes at least :data:`MIN_PRIOR_FRAMES` of a file's, or all it has left,
    however late: every call makes progress)."""
    started = time.perf_counter()
    forces, missing = [], 0
    for k, traj in enumerate(trajectories):
        if traj.forces is not None:
            forces.append(traj.forces)
            continue
        path = output.with_name(output.name + (".prior.h5md" if k == 0 else f".prior-{k}.h5md"))
        at = np.arange(0, traj.n_frames, -(-traj.n_frames // max_frames))  # every k-th, at most max_frames
        try:
            computed = prior_forces(traj[at], path, hamiltonian=hamiltonian, progress=progress, deadline=deadline,
                                    min_frames=MIN_PRIOR_FRAMES)
        except ValueError as err:
            raise AdaptError(str(err)) from None
        missing += int((~np.isfinite(computed).all(axis=(1, 2))).sum())
        full = np.full(traj.positions.shape, np.nan)
        full[at] = computed
        forces.append(full)
    if missing:
        log.info("the prior's single points took their share of the time budget; %d are left for the next call",
                 missing)
    return forces, time.perf_counter() - started, missing


def _fitted_velocities(model, traj, factor: int) -> np.ndarray:
    """Coarse velocities (F, N, 3), Å/fs, that make ``model`` run from every frame of the box
    onto its neighbours (:func:`~mdsr_plugin.neural.shooting.estimate_box_velocities`, in
    float64), starting from the quintic or the cubic spline's (:func:`~mdsr_plugin.neural.
    shooting.first_guesses`), whichever lands closer."""
    import copy

    from .shooting import estimate_box_velocities, first_guesses

    started = time.perf_counter()
    fitting = copy.deepcopy(model).double()
    fitting.set_atoms(traj.numbers, traj.masses)
    device = str(next(model.parameters()).device)
    x = unwrapped_positions(traj)
    v = estimate_box_velocities(fitting, x, np.broadcast_to(traj.cell, (traj.n_frames, 3, 3)), traj.masses, traj.dt,
                                factor, pbc=traj.pbc, device=device,
                                initial=first_guesses(x, traj.forces, traj.masses, traj.dt))
    log.info("fitted the velocities of %d coarse frames of the box in %.0f s", traj.n_frames,
             time.perf_counter() - started)
    return v


def _formula(numbers) -> str:
    from collections import Counter

    from ..elements import symbols_of

    counts = Counter(symbols_of(numbers))
    return "".join(f"{el}{counts[el]}" for el in sorted(counts))


def _set_normalisation(model, data, frames, tensor, max_frames: int = 16):
    """Per-element descriptor statistics and the energy unit from the training frames."""
    import torch

    pick = np.asarray(frames)[np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).astype(int)]
    x, cell = tensor(data.x[pick]), tensor(data.cell[pick])
    with torch.no_grad():
        features = model.descriptors(x, cell, model.neighbours(x, cell, data.pbc))
        species = model._species.repeat(len(pick))
        for k in range(len(model.elements)):
            mine = features[species == k]
            if len(mine):
                model.feature_mean[k] = mine.mean(0)
                # features constant in the data (an absent neighbour element) are left unscaled
                std = mine.std(0)
                model.feature_std[k] = torch.where(std > 1e-6 * std.max().clamp_min(1e-30), std,
                                                   torch.ones_like(std))
        if data.f is not None:
            # forces of order the stored ones from weights of order one
            model.energy_scale.fill_(float(np.sqrt((data.f[pick] ** 2).mean())))

