"""Learning from the user's own coarse trajectory: no fine reference needed.

A checkpoint trained on GFN2-xTB loses most of its advantage on a DFT trajectory,
and most molecules of an archive have no checkpoint at all.  What a coarse AIMD
archive does hold is enough to fit a learned integrator to its own Hamiltonian:

Force matching (when the frames carry forces, as AIMD codes store them)
    The integrator's potential-energy network is fitted to the stored forces of
    every coarse frame, in the canonical frame of the molecule.
Gap consistency
    From every coarse frame the integrator runs one gap forward (``factor`` fine
    steps) and must land on the next frame's stored position and velocity; from
    the next frame it runs backward and must land on this one.  The forward and
    backward paths must also agree along the gap.  This is the only supervision
    the recurrent correction gets, and what tunes the potential between frames.

The model is warm-started from a registry checkpoint of the same molecule when
there is one (any factor; atoms matched by graph), otherwise built from scratch
for the molecule's elements.  Frames without forces get a *prior* when there is no
checkpoint (``prior="auto"``): gap consistency alone pins the potential only at
multiples of the coarse step, where every vibration faster than the frames is
aliased (a stretch of the wrong frequency lands on the same frames), so the
molecule is first run on a cheap Hamiltonian (:data:`AUTOMATIC_PRIOR`) and a
starting model learned from that (:mod:`mdsr_plugin.neural.prior`).  Measured on
GFN1-xTB alanine dipeptide at 20 fs from positions and velocities: 5.2x cubic
Hermite with it, 1.4x without (``docs/benchmarks.md``).

The last ``validation_fraction`` of the gaps is held out; the best weights by
held-out gap error are kept.  The state is saved after every epoch (``OUTPUT.train.pt``) and a run resumes from it; ``max_minutes``
bounds the time.  The result is an ordinary checkpoint (``OUTPUT.safetensors`` +
``OUTPUT.json``) whose card says it was adapted, from which files, starting from
which checkpoint, and its held-out gap errors.

Example
-------
::

    mdsr-train --from-coarse aimd_20fs.xyz -o models_mine/ethanol-pbe --max-minutes 10
    MDSR_MODELS_PATH=models_mine mdsr-upsample aimd_20fs.xyz --factor 20 -o fine.xyz
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..trajectory import Trajectory
from . import card as schema
from .coarse import (
    HELD_OUT_FRAMES, MIN_GAPS, MIN_HELD_OUT_GAPS, AdaptError, CoarseData, LearningSettings, check_enough_gaps,
    finished_card, fingerprint_of, held_out_split, hermite_midpoint_error, learn_stages, save_learned, step_factor,
)
from .prior import AUTO_PRIOR, AUTOMATIC_PRIOR, NO_PRIOR, tblite_available
from .training import kept_fitted_velocities

__all__ = ["AdaptSettings", "adapt", "AdaptError", "MIN_GAPS", "MIN_HELD_OUT_GAPS", "HELD_OUT_FRAMES",
           "AUTO_PRIOR", "NO_PRIOR", "AUTOMATIC_PRIOR", "resolved_prior"]

log = logging.getLogger(__name__)



@dataclass
class AdaptSettings(LearningSettings):
    """:class:`~mdsr_plugin.neural.coarse.LearningSettings` and what only a molecule has
    (stored in the card).

    Attributes
    ----------
    warm_start : str or None
        ``"auto"``: the registry's checkpoint of the molecule if any; a checkpoint id
        or path; None: from scratch.
    warm_learning_rate : float
        The forces stage's rate when a checkpoint is fine-tuned.
    arch : str
        Architecture of a model built from scratch (:mod:`~mdsr_plugin.neural.models`).
    hidden : int
        Its recurrent memory's size.
    prior : str or None
        With no checkpoint to warm-start from: a cheap Hamiltonian (``"gfn1-xtb"``,
        ``"gfn2-xtb"``; needs tblite) to run the molecule on first, from the first coarse
        frame, and to learn a starting model from (:mod:`mdsr_plugin.neural.prior`).
        It takes up to ``prior_share`` of ``max_minutes``.  :data:`AUTO_PRIOR`: one on
        :data:`AUTOMATIC_PRIOR` when the frames carry no forces and tblite is installed
        (see the module docstring); None or :data:`NO_PRIOR`: never.  A periodic box gets
        the prior's forces at its own coarse frames instead, where it has no forces
        (:mod:`~mdsr_plugin.neural.adapt_box`).
    prior_frames : int
        Frames of that trajectory, one coarse step apart.
    """

    warm_start: str | None = "auto"
    # glycine, 20 fs, scratch: 3.0e-3 Å after 25 epochs (0.9 min), 2.3e-3 after 100 (4.2 min).  With
    # 100 and a patience of 4 the learning rate reached its floor in 4-6 minutes of the default 10
    # while the held-out loss still fell; 250 and 8 gained 6-18 % on alanine dipeptide at 20 fs
    # (CSVR and Nosé–Hoover, with and without forces; docs/benchmarks.md, "A longer gap stage")
    gap_epochs: int = 250
    patience: int = 8
    # A started model is fine-tuned, not retrained: a lower rate keeps what it knows where the
    # few coarse frames say nothing (glycine PBE 1.25 ps from a GFN1-xTB model: held-out force
    # error 20 % at 1e-3, 16 % at 3e-4)
    warm_learning_rate: float = 3e-4
    arch: str = "lstm"
    hidden: int = 64
    prior: str | None = AUTO_PRIOR
    prior_frames: int = 500
    prior_share: float = 0.8  # the fine-tuning that follows it ends on its own in about a minute


def _load_coarse(paths, reader_options):
    from ..io import read_trajectory
    from ..molecule import match_atoms
    from .data import permute_atoms

    trajectories = [p if isinstance(p, Trajectory) else read_trajectory(p, **(reader_options or {}))
                    for p in paths]
    first = trajectories[0]
    ordered = [first]
    for path, traj in zip(paths[1:], trajectories[1:]):
        if first.is_periodic or traj.is_periodic:
            ordered.append(traj)  # a box keeps its atom order (adapt_box checks it)
            continue
        order = match_atoms(traj.numbers, traj.positions[0], first.numbers,
                            _bonds_of(first))
        ordered.append(permute_atoms(traj, order))
    names = _names(paths)
    for name, traj in zip(names, ordered):
        if (traj.velocities is None) != (ordered[0].velocities is None):
            has, lacks = (names[0], name) if traj.velocities is None else (name, names[0])
            raise AdaptError(f"{lacks} has no velocities and {has} has: learn from files that store the same "
                             "quantities")
        if traj.n_frames < 2:
            raise AdaptError(f"{name}: fewer than two frames")
        if abs(traj.dt - ordered[0].dt) > 1e-6 * ordered[0].dt:
            raise AdaptError(f"{name}: coarse step {traj.dt:g} fs, the first file's is {ordered[0].dt:g} fs")
    return ordered


def _names(paths) -> list[str]:
    """How errors and the card name each input: a file's name, or ``<trajectory i>``."""
    return [f"<trajectory {i}>" if isinstance(p, Trajectory) else Path(p).name for i, p in enumerate(paths)]


def _bonds_of(traj):
    from ..molecule import infer_bonds

    return infer_bonds(traj.numbers, traj.positions[0])


def _warm_start_entry(spec, traj):
    """The registry checkpoint to start from and the atom order into it, or (None, None)."""
    from ..molecule import GraphMismatch, match_atoms
    from .registry import get_model_entry, list_models

    if spec is None:
        return None, None
    entries = list_models() if spec == "auto" else [get_model_entry(spec)]
    for entry in sorted(entries, key=lambda e: e.card[schema.CONFIG][schema.ARCH] != "lstm"):
        card = entry.card
        if schema.NUMBERS not in card[schema.CONFIG]:
            continue  # a periodic box's integrator
        if sorted(card[schema.CONFIG][schema.NUMBERS]) != sorted(int(z) for z in traj.numbers):
            continue
        try:
            order = match_atoms(traj.numbers, traj.positions[0], card[schema.CONFIG][schema.NUMBERS],
                                card[schema.BONDS])
        except GraphMismatch:
            continue
        return entry, order
    if spec != "auto":
        raise AdaptError(f"checkpoint {spec} is of another molecule")
    return None, None


class _Gaps(CoarseData):
    """Every gap of the coarse data with its context, in the canonical frame of its first frame.

    The :class:`~mdsr_plugin.neural.coarse.CoarseData` of a molecule: in training each batch
    is relabelled at random among the molecule's symmetry-equivalent atomic orders.

    Attributes
    ----------
    before_x, before_v : ndarray, shape (G, K, N, 3)
        The K coarse frames ending at each gap's first frame (oldest first), Å, Å/fs.
    after_x, after_v : ndarray, shape (G, K, N, 3)
        The K coarse frames starting at each gap's last frame.
    frames_x, frames_f : ndarray, shape (M, N, 3) or None
        Coarse frames and their stored forces (eV/Å), canonical frame each.
    """

    validation_batch = 64

    def __init__(self, trajectories, context, reference, masses, automorphisms, rng_seed=0):
        from ..molecule import canonical_frames

        bx, bv, ax, av, fx, ff = [], [], [], [], [], []
        self.first_gap_of_last_file = 0  # gap index, within the last file, of its first usable gap
        for traj in trajectories:
            n = traj.n_frames
            gaps = np.arange(context - 1, n - context)  # gaps with their whole context inside
            self.first_gap_of_last_file = context - 1
            self.gaps_in_last_file = len(gaps)
            self.frames_in_last_file = n
            if not len(gaps):
                continue
            before = gaps[:, None] - (context - 1) + np.arange(context)
            after = gaps[:, None] + 1 + np.arange(context)
            x, v = traj.positions, traj.velocities
            centres, rotations = canonical_frames(x[gaps], reference, masses)

            def canonical(a, idx, shift):
                moved = a[idx] - (centres[:, None, None] if shift else 0)
                return np.einsum("gkni,gij->gknj", moved, rotations)

            bx.append(canonical(x, before, True))
            bv.append(canonical(v, before, False))
            ax.append(canonical(x, after, True))
            av.append(canonical(v, after, False))
            if traj.forces is not None:
                c, r = canonical_frames(x, reference, masses)
                fx.append(np.einsum("mni,mij->mnj", x - c[:, None], r))
                ff.append(np.einsum("mni,mij->mnj", traj.forces, r))
        if not bx:
            raise AdaptError("no gap has its context inside the data")
        self.before_x, self.before_v = np.concatenate(bx), np.concatenate(bv)
        self.after_x, self.after_v = np.concatenate(ax), np.concatenate(av)
        self.frames_x = np.concatenate(fx) if fx else None
        self.frames_f = np.concatenate(ff) if ff else None
        self.automorphisms = automorphisms

    @property
    def n_gaps(self) -> int:
        return len(self.before_x)

    def split(self, fraction):
        """Index arrays (train, held out) of gaps and of force frames (:func:`held_out_split`)."""
        frames = held_out_split(len(self.frames_x), fraction) if self.frames_x is not None else (None, None)
        return held_out_split(self.n_gaps, fraction), frames

    def force_pairs(self, model, pick, rng, tensor, create_graph=False):
        x, f = self.frames_x[pick], self.frames_f[pick]
        if rng is not None:  # in training, any of the equivalent labellings
            x, f = _relabel(rng, self.automorphisms, x, f)
        x, f = tensor(x), tensor(f)
        return model.forces(x, create_graph=create_graph), f

    def gap_terms(self, model, pick, rng, tensor, factor, fine_dt):
        from .integrator import gap_end_misfits, run_both_ways

        batch = [a[pick] for a in (self.before_x, self.before_v, self.after_x, self.after_v)]
        if rng is not None:
            batch = _relabel(rng, self.automorphisms, *batch)
        bx, bv, ax, av = [tensor(a) for a in batch]
        forward, backward = run_both_ways(
            lambda hx, hv: model.rollout(hx[:, -1], hv[:, -1], factor, fine_dt, history=(hx, hv)), (bx, bv), (ax, av))
        return gap_end_misfits(forward, backward, bx[:, -1], bv[:, -1], ax[:, 0], av[:, 0])

    def hermite_frames(self, index):
        if self.after_x.shape[1] < 2:  # frame k + 2 is outside the context
            return None
        return (self.before_x[index, -1], self.before_v[index, -1], self.after_x[index, 0], self.after_x[index, 1],
                self.after_v[index, 1])


def adapt(paths, output, settings: AdaptSettings | None = None, *, progress: bool = True,
          reader_options=None, manifest: bool = True) -> Path:
    """Learn a bi-directional integrator from coarse frames (see the module docstring).

    Parameters
    ----------
    paths : list of path-like or Trajectory
        Coarse trajectories of one molecule with velocities (forces used when present),
        all at one coarse step; files are read with ``reader_options``.
    output : path-like
        Checkpoint stem: writes ``output.safetensors``, ``output.json``, ``output.train.pt``
        (resumable state), ``output.log.jsonl``.
    settings : AdaptSettings
    manifest : bool
        Update the folder's ``manifest.json`` (a registry folder); ``mdsr-upsample --adapt``
        writes its checkpoint beside the user's output and leaves no manifest there.

    Returns
    -------
    Path of the model card.

    Raises
    ------
    AdaptError
        Too few coarse frames, no velocities, a step that is no multiple of ``fine_dt``;
        nothing is written then.
    """
    import torch

    from ..molecule import automorphisms
    from .checkpoint import load_checkpoint
    from .data import permute_atoms, set_normalisation
    from .models import build_model, default_config

    settings = settings or AdaptSettings()
    paths = [p if isinstance(p, Trajectory) else Path(p) for p in paths]
    names = _names(paths)
    output = Path(output)
    if output.suffix in (".json", ".safetensors"):
        output = output.with_suffix("")
    prior = getattr(settings, "prior", None)  # a box's settings have none
    if prior not in (None, AUTO_PRIOR, NO_PRIOR):
        from .prior import PRIOR_HAMILTONIANS

        if prior not in PRIOR_HAMILTONIANS:
            raise AdaptError(f"a prior runs on one of {', '.join(PRIOR_HAMILTONIANS)}, not {prior!r}")
    trajectories = _load_coarse(paths, reader_options)
    if any(t.is_periodic for t in trajectories):
        from .adapt_box import adapt_box

        return adapt_box(trajectories, names, paths, output, settings, progress=progress,
                         reader_options=reader_options, manifest=manifest)
    if not isinstance(settings, AdaptSettings):
        raise AdaptError(f"{names[0]} is a molecule (no periodic cell): give AdaptSettings, not "
                         f"{type(settings).__name__}")
    coarse_dt = trajectories[0].dt
    factor = step_factor(coarse_dt, settings.fine_dt)

    started = time.perf_counter()
    entry, order = _warm_start_entry(settings.warm_start, trajectories[0])
    # what the automatic prior resolves to is what the fingerprint and the card record
    settings = replace(settings, prior=resolved_prior(settings.prior, trajectories, entry is not None))
    prior = settings.prior
    # Without stored velocities they are fitted (see _fitted_velocities): from the stored
    # forces' potential, or from a model to start from; positions alone with neither is refused.
    fit_velocities = trajectories[0].velocities is None
    if fit_velocities and any(t.forces is None for t in trajectories) and entry is None and prior is None:
        raise AdaptError(f"{names[0]}: positions only: learning from coarse frames without velocities needs "
                         f"their forces, or a model of the molecule to start from (a registry checkpoint, or "
                         f"--adapt-prior {AUTOMATIC_PRIOR}, automatic where tblite is installed)")
    if fit_velocities:
        from .shooting import first_guess

        trajectories = [replace(t, velocities=first_guess(t.positions, t.forces, t.masses, t.dt))
                        for t in trajectories]
    prior_complete = True
    if entry is None and settings.prior is not None:
        # refuse input too short to learn from before minutes of work on the prior
        context = int(default_config(settings.arch, trajectories[0].numbers, trajectories[0].masses)["context"])
        check_enough_gaps(sum(max(t.n_frames - 2 * context + 1, 0) for t in trajectories), context)
        entry, order = _learn_prior(trajectories[0], output, settings, progress)
        prior_complete = bool(entry.card[schema.TRAINING][schema.COMPLETE])
    max_minutes = settings.max_minutes
    if max_minutes is not None:  # what the prior left of the budget
        max_minutes = max(max_minutes - (time.perf_counter() - started) / 60, 0.0)
    torch.manual_seed(settings.seed)
    if entry is not None:
        trajectories = [permute_atoms(t, order) for t in trajectories]
        model, base_card = load_checkpoint(entry.card_path, expected_card_sha256=entry.card_sha256, dtype="float32")
        import copy

        model = copy.deepcopy(model)  # the loader's copy is cached and frozen
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        numbers, bonds = np.asarray(base_card[schema.CONFIG][schema.NUMBERS]), base_card[schema.BONDS]
        reference = model.reference.cpu().double().numpy()
    else:
        numbers = trajectories[0].numbers
        bonds = _bonds_of(trajectories[0])
        config = default_config(settings.arch, numbers, trajectories[0].masses)
        config.update(width=settings.width, depth=settings.depth)
        if config.get("hidden"):
            config["hidden"] = settings.hidden
        model = build_model(config, dtype=torch.float32)
        masses = trajectories[0].masses
        reference = trajectories[0].positions[0] - (masses / masses.sum()) @ trajectories[0].positions[0]
        set_normalisation(model, trajectories, reference)
        base_card = None
    masses = trajectories[0].masses
    symmetries = automorphisms(numbers, bonds)
    gaps = _Gaps(trajectories, model.context, reference, masses, symmetries)
    check_enough_gaps(gaps.n_gaps, model.context)
    device = torch.device(settings.device)
    model.to(device)
    split = gaps.split(settings.validation_fraction)
    (_, gap_held), (_, frame_held) = split

    output.parent.mkdir(parents=True, exist_ok=True)  # only now: bad input has written nothing
    # What the result depends on: not the time budget or the device.
    determining = {k: v for k, v in asdict(settings).items() if k not in ("max_minutes", "device")}
    fingerprint = fingerprint_of(paths, reader_options, determining,
                                 # its weights too: a starting model that learned more since (an
                                 # unfinished prior, continued) is a reason to learn again from it
                                 warm_start=None if entry is None else [entry.id, entry.card[schema.WEIGHTS_SHA256]])
    finished = finished_card(output, fingerprint)
    if finished is not None:
        log.info("%s: already learned from these data with these settings", finished.name)
        return finished
    tensor = functools.partial(torch.as_tensor, device=device, dtype=next(model.parameters()).dtype)

    @functools.cache
    def fitted_gaps() -> _Gaps:
        """The gaps with velocities fitted by the model as it is when first asked (after the
        forces stage), or as an earlier call of this run fitted them."""
        velocities = kept_fitted_velocities(
            output, fingerprint,
            lambda: [_fitted_velocities(model, t, factor, reference, masses, settings.device) for t in trajectories])
        refined = [replace(t, velocities=v) for t, v in zip(trajectories, velocities)]
        return _Gaps(refined, model.context, reference, masses, symmetries)

    force_rate = settings.warm_learning_rate if entry is not None else settings.learning_rate
    run, stage_names, held_out = learn_stages(
        model, gaps, split, output, settings, force_rate=force_rate, fingerprint=fingerprint, tensor=tensor,
        factor=factor, progress=progress, max_minutes=max_minutes, gap_data=fitted_gaps if fit_velocities else None)
    if not fit_velocities:
        held_out.update(hermite_midpoint_error(gaps, gap_held, coarse_dt))
    return save_learned(
        model, output, settings, run, stage_names, manifest=manifest, numbers=numbers, bonds=bonds,
        molecule=(base_card or {}).get(schema.MOLECULE, ""), coarse_dt=coarse_dt, factor=factor,
        input_modes=[schema.MODE_VELOCITIES, schema.MODE_POSITIONS], names=names,
        warm_start=None if entry is None else entry.id,
        complete=run.complete and prior_complete,  # run again: the prior goes on, then this learns from it anew
        fingerprint=fingerprint, gaps=split[0], held_out=held_out,
        held_out_frames=_held_out_frames(gaps, len(gap_held), 0 if frame_held is None else len(frame_held), names[-1]),
        # the coarse velocities were not stored: fitted, the gap errors are against the fit
        velocities_fitted=fit_velocities)


def resolved_prior(prior, trajectories, has_checkpoint: bool):
    """The prior's Hamiltonian, or None, for ``prior`` as given (see :class:`AdaptSettings`).

    Parameters
    ----------
    prior : str or None
        :data:`AUTO_PRIOR`, a Hamiltonian name, :data:`NO_PRIOR` or None.
    trajectories : list of Trajectory
        The coarse input.
    has_checkpoint : bool
        Whether a registry checkpoint of the molecule is the starting model.
    """
    if prior != AUTO_PRIOR:
        return None if prior == NO_PRIOR else prior
    if has_checkpoint or all(t.forces is not None for t in trajectories):
        return None  # a model of the molecule, or its forces, already pin the potential
    if not tblite_available():
        log.warning("learning without stored forces and without a model of the molecule: the potential is "
                    "pinned only at the coarse frames, where fast vibrations are aliased; install tblite "
                    "(pip install 'mdsr_plugin[reference]') for a prior on %s", AUTOMATIC_PRIOR)
        return None
    log.info("no stored forces and no checkpoint of the molecule: a prior on %s first", AUTOMATIC_PRIOR)
    return AUTOMATIC_PRIOR


def _fitted_velocities(model, traj: Trajectory, factor: int, reference, masses, device) -> np.ndarray:
    """Coarse velocities (F, N, 3), Å/fs, that make ``model`` run from every frame onto its
    neighbours (:func:`~mdsr_plugin.neural.shooting.estimate_velocities`), each gap in the
    canonical frame of its first frame, starting from ``traj.velocities`` (the first guess)."""
    import copy

    from ..molecule import canonical_frames
    from .shooting import estimate_velocities

    started = time.perf_counter()
    fitting = copy.deepcopy(model).double()  # float64: see the upsampler's fit
    centres, rotations = canonical_frames(traj.positions[:-1], reference, masses)
    v = estimate_velocities(fitting, traj.positions, traj.dt, factor, device=device, centres=centres,
                            rotations=rotations, initial=traj.velocities)
    log.info("fitted the velocities of %d coarse frames in %.0f s", traj.n_frames, time.perf_counter() - started)
    return v


def _learn_prior(coarse: Trajectory, output: Path, settings: AdaptSettings, progress: bool):
    """Run the molecule on ``settings.prior`` and learn a starting model from that
    (:mod:`~mdsr_plugin.neural.prior`); its registry entry and atom order, as
    :func:`_warm_start_entry` gives them."""

    from .prior import prior_trajectory

    stem = output.with_name(output.name + ".prior")
    started = time.perf_counter()
    try:
        prior = prior_trajectory(coarse, output.with_name(output.name + ".prior.h5md"), hamiltonian=settings.prior,
                                 n_frames=settings.prior_frames, seed=settings.seed, progress=progress)
    except ValueError as err:
        raise AdaptError(str(err)) from None
    budget = None
    if settings.max_minutes is not None:
        budget = max(settings.max_minutes * settings.prior_share - (time.perf_counter() - started) / 60, 0.0)
    log.info("learning a starting model from %d frames on %s", prior.n_frames, settings.prior)
    card = adapt([prior], stem, replace(settings, prior=None, warm_start=None, max_minutes=budget),
                 progress=progress, manifest=False)
    return _warm_start_entry(str(card), coarse)


def _held_out_frames(gaps, n_held_gaps, n_held_frames, name) -> dict | None:
    """The last file's coarse frames that no loss saw as a target (see :data:`HELD_OUT_FRAMES`).

    The held-out gaps are the last ``n_held_gaps``: a training gap ``g`` aims at frames
    ``g`` and ``g + 1``, so frames after the last training gap's end were never targets
    (those past the last usable gap were context only).  Of the force frames the last
    ``n_held_frames`` were held out; frames before them had their forces fitted.
    """
    n = gaps.frames_in_last_file
    if n_held_gaps > gaps.gaps_in_last_file or n_held_frames > n:
        return None  # the held-out part reaches into an earlier file
    after_gaps = gaps.first_gap_of_last_file + gaps.gaps_in_last_file - n_held_gaps + 1
    start = max(after_gaps, n - n_held_frames if n_held_frames else 0)
    return {schema.ROW_FILE: name, "start": int(start), "stop": int(n)}


def _relabel(rng, automorphisms, *arrays):
    """The same random relabelling of symmetry-equivalent atoms for every item of a batch."""
    perm = automorphisms[rng.integers(0, len(automorphisms), size=len(arrays[0]))]  # (B, N)
    # each array (B, N, 3) or (B, K, N, 3): its atom axis is the one before last
    return [np.take_along_axis(a, perm.reshape(len(perm), *(1,) * (a.ndim - 3), -1, 1), axis=a.ndim - 2)
            for a in arrays]

