"""What learning from coarse frames shares, for a molecule and for a periodic box.

:mod:`~mdsr_plugin.neural.adapt` (a molecule, in its canonical frame) and
:mod:`~mdsr_plugin.neural.adapt_box` (a periodic box, unwrapped) learn the same way —
forces first, then gap consistency (each gap integrated forward and backward must
land on the stored frames and agree along the way), the last gaps held out — from
different data and models.  The one trainer (:func:`learn_stages`), its settings,
losses, held-out split, card and the bookkeeping that lets a finished run be reused
live here; each side gives only its :class:`CoarseData` (how a batch of frames becomes
predicted and stored forces, a batch of gaps their misfits), as a new kind would.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..trajectory import Trajectory
from . import card as schema
from .training import optimise

__all__ = ["AdaptError", "LearningSettings", "CoarseData", "MIN_GAPS", "MIN_HELD_OUT_GAPS", "HELD_OUT_FRAMES",
           "FINGERPRINT", "check_enough_gaps", "held_out_split", "gap_loss", "finished_card", "identity",
           "fingerprint_of", "step_factor", "force_epoch", "force_validation", "gap_epoch", "gap_validation",
           "hermite_midpoint_error", "learn_stages", "save_learned"]

#: Gaps needed to train and hold out any (with the context on both sides).
MIN_GAPS = 20
#: Held-out gaps at the least (``validation_fraction`` of a short input holds out too few
#: to measure on; ``mdsr-upsample --adapt`` measures every candidate on them).
MIN_HELD_OUT_GAPS = 16
#: The card's key (under ``training``) for the coarse frames no training loss saw as a
#: target (as held-out data do, their gaps chose the learning-rate steps and the weights kept):
#: ``{"file": name, "start": i, "stop": j}``, frames ``i <= k < j`` of the last file.
HELD_OUT_FRAMES = "held_out_frames"
#: The card's key (under ``training``) for what the run depended on (files and settings):
#: a complete checkpoint with the same one is reused instead of learned again.
FINGERPRINT = "fingerprint"


class AdaptError(ValueError):
    """Coarse data that cannot be learned from (too few frames, no velocities...)."""


@dataclass
class LearningSettings:
    """The settings every learning-from-coarse-frames run has (stored in its card).

    Attributes
    ----------
    fine_dt : float
        Output step of the learned model, fs (the coarse step must be a multiple).
    force_epochs, gap_epochs : int
        Most epochs of each stage.
    force_batch, gap_batch : int
        Frames per force step, gaps per gap step.
    frames_per_epoch, gaps_per_epoch : int or None
        Frames drawn at random per epoch of the forces stage, gaps per epoch of the gap
        stage; None: all of the training ones.
    learning_rate, gap_learning_rate, min_learning_rate : float
        Adam's starting rate of the forces and the gaps stage, and the rate at which a
        stage ends.
    patience : int
        Epochs without improvement before the rate is halved.
    validation_fraction : float
        Share of the gaps held out (at the end).
    position_scale, velocity_scale : float
        Å and Å/fs: the gap loss counts errors in units of these.
    disagreement_weight : float
        Weight of the forward/backward disagreement in the gap loss.
    max_minutes : float or None
        Time budget of one call; the state is saved and a second call continues.
    width, depth : int
        The energy networks' hidden width and depth.
    """

    fine_dt: float = 1.0
    seed: int = 0
    force_epochs: int = 150
    gap_epochs: int = 100
    force_batch: int = 32
    gap_batch: int = 16
    frames_per_epoch: int | None = None
    gaps_per_epoch: int | None = None
    learning_rate: float = 1e-3
    gap_learning_rate: float = 2e-4
    min_learning_rate: float = 1e-5
    patience: int = 4
    validation_fraction: float = 0.1
    position_scale: float = 0.01
    velocity_scale: float = 0.002
    disagreement_weight: float = 0.5
    max_minutes: float | None = None
    device: str = "cpu"
    width: int = 128
    depth: int = 3


def step_factor(coarse_dt: float, fine_dt: float) -> int:
    """The factor ``coarse_dt / fine_dt``; :class:`AdaptError` unless it is an integer >= 2."""
    factor = int(round(coarse_dt / fine_dt))
    if factor < 2 or abs(factor * fine_dt - coarse_dt) > 1e-6 * coarse_dt:
        raise AdaptError(f"the coarse step {coarse_dt:g} fs is not a multiple (>= 2) of the output step "
                         f"{fine_dt:g} fs")
    return factor


def check_enough_gaps(n_gaps: int, context: int) -> None:
    """Refuse fewer than :data:`MIN_GAPS` usable gaps, molecule and box alike.

    A gap is usable with ``context`` coarse frames on each side of it inside the data,
    so ``MIN_GAPS + 2 * context - 1`` frames of one run are the least.

    Raises
    ------
    AdaptError
        One line: how many gaps there are, how many are needed, and the frames that makes.
    """
    if n_gaps < MIN_GAPS:
        raise AdaptError(f"{n_gaps} usable gaps; learning from coarse frames needs at least {MIN_GAPS} "
                         f"({MIN_GAPS + 2 * context - 1} coarse frames of one run)")


def held_out_split(n: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices of ``n`` items: the last ``fraction`` is held out, at least
    one, and at least :data:`MIN_HELD_OUT_GAPS` where that is no more than a quarter."""
    k = n - max(1, int(round(n * fraction)), min(MIN_HELD_OUT_GAPS, n // 4))
    return np.arange(k), np.arange(k, n)


def gap_loss(terms, settings: LearningSettings):
    """The gap-consistency loss of :func:`~mdsr_plugin.neural.integrator.gap_end_misfits`'
    ``terms``: squared end misfits in units of the scales, plus the weighted disagreement."""
    end_x, end_v, disagreement = terms
    return ((end_x / settings.position_scale) ** 2).mean() + ((end_v / settings.velocity_scale) ** 2).mean() \
        + settings.disagreement_weight * ((disagreement / settings.position_scale) ** 2).mean()


class CoarseData(ABC):
    """The coarse frames a run learns from, as the shared epochs and validations use them.

    ``pick`` indexes force frames or gaps; ``rng`` is the run's generator in training (a
    molecule relabels symmetry-equivalent atoms with it) and None when measuring;
    ``tensor`` turns an array into the model's.  ``validation_batch``: gaps (or force
    frames) measured at a time.
    """

    validation_batch: int

    @abstractmethod
    def force_pairs(self, model, pick, rng, tensor, create_graph: bool = False):
        """The model's and the stored forces at frames ``pick``: tensors (B, N, 3), eV/Å."""

    @abstractmethod
    def gap_terms(self, model, pick, rng, tensor, factor: int, fine_dt: float):
        """Gaps ``pick`` run both ways: :func:`~mdsr_plugin.neural.integrator.gap_end_misfits`."""

    @abstractmethod
    def hermite_frames(self, index):
        """(x_k, v_k, x_k+1, x_k+2, v_k+2), each (B, N, 3) Å or Å/fs: frames k, k + 1, k + 2 of
        one run around the gaps ``index``; None where there are none."""


def _batches(index, size: int) -> list:
    return [index[lo:lo + size] for lo in range(0, len(index), size)]


def force_epoch(data: CoarseData, model, index, rng, settings: LearningSettings, optimizer, tensor,
                progress: bool) -> float:
    """One epoch of force matching over the training frames ``index`` (``settings.frames_per_epoch``
    of them drawn, or all): squared force errors relative to the stored forces' mean square."""
    def loss_of(pick):
        predicted, stored = data.force_pairs(model, pick, rng, tensor, create_graph=True)
        return ((predicted - stored) ** 2).mean() / (stored ** 2).mean()

    order = rng.permutation(index)[:settings.frames_per_epoch]
    return optimise(model, optimizer, _batches(order, settings.force_batch), loss_of, "forces", progress)


def force_validation(data: CoarseData, model, index, tensor) -> tuple[float, dict]:
    """The force loss on held-out frames ``index``, and their mean absolute force error (eV/Å)
    absolute and relative to the stored forces' mean magnitude."""
    model.eval()
    sums, count = np.zeros(4), 0  # of the errors and the stored forces: squared, absolute
    for pick in _batches(index, data.validation_batch):
        predicted, stored = data.force_pairs(model, pick, None, tensor)
        error = predicted.detach() - stored
        sums += [float((error ** 2).sum()), float(error.abs().sum()), float((stored ** 2).sum()),
                 float(stored.abs().sum())]
        count += error.numel()
    squared, absolute, stored_squared, stored_absolute = sums
    return float(squared / stored_squared), {"force_mae": float(absolute / count),
                                             "force_relative_mae": float(absolute / stored_absolute)}


def gap_epoch(data: CoarseData, model, index, rng, settings: LearningSettings, optimizer, tensor, factor: int,
              progress: bool) -> float:
    """One epoch of gap consistency over the training gaps ``index`` (``settings.gaps_per_epoch``
    of them drawn, or all): :func:`gap_loss`, the gradient clipped to norm 10."""
    order = rng.permutation(index)[:settings.gaps_per_epoch]
    return optimise(model, optimizer, _batches(order, settings.gap_batch),
                    lambda pick: gap_loss(data.gap_terms(model, pick, rng, tensor, factor, settings.fine_dt), settings),
                    "gaps", progress, max_norm=10.0)


def gap_validation(data: CoarseData, model, index, settings: LearningSettings, tensor,
                   factor: int) -> tuple[float, dict]:
    """:func:`gap_loss` on held-out gaps ``index``, and their mean absolute end misfits (Å, Å/fs)
    and forward/backward disagreement (Å)."""
    import torch

    model.eval()
    sums = np.zeros(4)
    with torch.no_grad():
        for pick in _batches(index, data.validation_batch):
            terms = data.gap_terms(model, pick, None, tensor, factor, settings.fine_dt)
            sums += len(pick) * np.array([float(gap_loss(terms, settings)), *(t.abs().mean().item() for t in terms)])
    loss, end_x, end_v, disagreement = sums / len(index)
    return float(loss), {"gap_end_position_mae": float(end_x), "gap_end_velocity_mae": float(end_v),
                         "gap_disagreement_mae": float(disagreement)}


def hermite_midpoint_error(data: CoarseData, index, coarse_dt: float) -> dict:
    """For scale: where cubic Hermite through frames k and k + 2 puts frame k + 1, around the
    held-out gaps ``index`` (a classical method on the same frames, Å); {} with no such frames."""
    frames = data.hermite_frames(index)
    if frames is None:
        return {}
    x0, v0, x1, x2, v2 = frames
    midpoint = 0.5 * (x0 + x2) + 2 * coarse_dt / 8 * (v0 - v2)  # s = 1/2 of a gap of 2 coarse steps
    return {"hermite_2h_midpoint_mae": float(np.abs(midpoint - x1).mean())}


def learn_stages(model, data: CoarseData, split, output: Path, settings: LearningSettings, *, force_rate: float,
                 fingerprint: str, tensor, factor: int, progress: bool, max_minutes: float | None,
                 gap_data=None):
    """Learn forces (where the frames have them), then gaps; resumable, within ``max_minutes``.

    Parameters
    ----------
    split : tuple
        ``((gap_train, gap_held), (frame_train, frame_held))`` index arrays; frames None
        without stored forces.
    force_rate : float
        Adam's starting rate of the forces stage.
    gap_data : callable or None
        ``() -> CoarseData``: the gap stage's data where not ``data`` (a molecule's velocities
        fitted by the model after the forces stage).

    Returns
    -------
    run : TrainingRun
        The best weights loaded.
    stage_names : list of str
    held_out : dict
        The figures of :func:`gap_validation` and :func:`force_validation` on held-out data.
    """
    from .training import Stage, run_stages

    gap_data = gap_data or (lambda: data)
    (gap_train, gap_held), (frame_train, frame_held) = split
    stages = [Stage("gaps", settings.gap_epochs, settings.gap_learning_rate,
                    lambda rng, optimizer: gap_epoch(gap_data(), model, gap_train, rng, settings, optimizer, tensor,
                                                     factor, progress),
                    lambda: gap_validation(gap_data(), model, gap_held, settings, tensor, factor))]
    if frame_train is not None and settings.force_epochs:
        stages.insert(0, Stage(
            "forces", settings.force_epochs, force_rate,
            lambda rng, optimizer: force_epoch(data, model, frame_train, rng, settings, optimizer, tensor, progress),
            lambda: force_validation(data, model, frame_held, tensor)))
    run = run_stages(model, stages, output, settings, fingerprint=fingerprint, progress=progress,
                     max_seconds=None if max_minutes is None else max_minutes * 60)
    held_out = gap_validation(gap_data(), model, gap_held, settings, tensor, factor)[1]
    if frame_held is not None:
        held_out.update(force_validation(data, model, frame_held, tensor)[1])
    return run, [stage.name for stage in stages], held_out


def save_learned(model, output: Path, settings: LearningSettings, run, stage_names, *, manifest: bool,
                 molecule: str, numbers, bonds, coarse_dt: float, factor: int, input_modes, names, warm_start,
                 complete: bool, fingerprint: str, gaps, held_out_frames, held_out: dict, **training) -> Path:
    """Write a learned run's checkpoint (and its folder's manifest if ``manifest``); the card's path.

    ``run``, ``stage_names`` and ``held_out`` as :func:`learn_stages` gives them; ``gaps`` the
    (train, held-out) gap indices; ``training``: more entries of the card's training record.
    """
    from .. import __version__
    from .checkpoint import save_checkpoint
    from .registry import write_manifest
    from .training import epochs_by_stage

    history = run.state["history"]
    card = {
        schema.ID: output.name,
        schema.MODEL_VERSION: 1,
        schema.CODE_VERSION: __version__,
        schema.MOLECULE: molecule,
        schema.NUMBERS: [int(z) for z in numbers],
        schema.BONDS: [list(map(int, b)) for b in bonds],
        schema.FINE_DT_FS: settings.fine_dt,
        schema.COARSE_DT_FS: coarse_dt,
        schema.FACTORS: [factor],
        schema.INPUT_MODES: input_modes,
        schema.TRAINING: {
            schema.FILES: names,
            "from_coarse": True,
            "warm_start": warm_start,
            schema.SETTINGS: _recorded_settings(settings, warm_start),
            schema.HISTORY_TAIL: history[-3:],
            schema.COMPLETE: complete,
            FINGERPRINT: fingerprint,
            schema.EPOCHS: epochs_by_stage(history, stage_names),
            "gaps": {"train": int(len(gaps[0])), "held_out": int(len(gaps[1]))},
            **training,
            HELD_OUT_FRAMES: held_out_frames,
        },
        schema.VALIDATION: {"held_out_gaps": held_out, schema.POSITION_MAE: held_out["gap_end_position_mae"]},
    }
    card_file = save_checkpoint(model.cpu(), card, output)
    if manifest:
        write_manifest(card_file.parent)
    return card_file


#: Settings of a model built from scratch: a warm-started one has its checkpoint's (the card's config).
SCRATCH_ARCHITECTURE = ("arch", "hidden", "width", "depth")


def _recorded_settings(settings: LearningSettings, warm_start) -> dict:
    """The settings a card records: without the scratch architecture where the model started
    from a checkpoint, whose network (``config``) it kept (a card said width 128 of a width-256 model)."""
    recorded = asdict(settings)
    if warm_start is not None:
        for key in SCRATCH_ARCHITECTURE:
            recorded.pop(key, None)
    return recorded


def identity(source) -> str:
    """What a resumable state is keyed on: a file's name and content, or an in-memory
    trajectory's content."""
    import hashlib

    if not isinstance(source, Trajectory):
        from .checkpoint import sha256_of

        return f"{Path(source).name}:{sha256_of(source)[:16]}"
    digest = hashlib.sha256(np.ascontiguousarray(source.positions).tobytes())
    if source.velocities is not None:
        digest.update(np.ascontiguousarray(source.velocities).tobytes())
    return f"trajectory:{source.n_frames}:{digest.hexdigest()[:16]}"


def fingerprint_of(paths, reader_options, determining: dict, **extra) -> str:
    """What a run's result depends on, as one string: the inputs' identities, how they were
    read (companion files by identity), the settings that matter, and ``extra``."""
    read_with = {k: (identity(v) if k in ("velocities", "forces", "cell", "topology") else v)
                 for k, v in sorted((reader_options or {}).items()) if v is not None}
    return json.dumps({"files": [identity(p) for p in paths], "read_with": read_with, "settings": determining,
                       **extra}, sort_keys=True)


def finished_card(output: Path, fingerprint: str) -> Path | None:
    """The card at ``output`` if it is a complete run on the same data and settings (then
    nothing is left to learn, even with the resumable state deleted)."""
    from .checkpoint import card_path

    card_file = card_path(output)
    try:
        training = json.loads(card_file.read_text())[schema.TRAINING]
    except (OSError, ValueError, KeyError):
        return None
    if training.get(schema.COMPLETE) and training.get(FINGERPRINT) == fingerprint \
            and card_file.with_suffix(".safetensors").is_file():
        return card_file
    return None
