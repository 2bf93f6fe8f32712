"""What learning from coarse frames shares, for a molecule and for a periodic box.

:mod:`~mdsr_plugin.neural.adapt` (a molecule, in its canonical frame) and
:mod:`~mdsr_plugin.neural.adapt_box` (a periodic box, unwrapped) learn the same way —
forces first, then gap consistency (each gap integrated forward and backward must
land on the stored frames and agree along the way), the last gaps held out — from
different data and models.  Their common settings, errors, loss, held-out split and
the bookkeeping that lets a finished run be reused live here, so that neither
imports the other's private names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..trajectory import Trajectory
from . import card as schema

__all__ = ["AdaptError", "LearningSettings", "MIN_GAPS", "MIN_HELD_OUT_GAPS", "HELD_OUT_FRAMES", "FINGERPRINT",
           "check_enough_gaps", "held_out_split", "gap_loss", "finished_card", "identity", "fingerprint_of", "step_factor"]

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
