"""Training learned integrators from fine-resolution trajectories (``mdsr-train``).

Data
    Any trajectories the readers understand, all of one molecule (atom orders are
    matched by graph to the first file), with velocities, at a fine step that the
    requested output step (``fine_dt``, 1 fs by default) is a multiple of.  The final
    10 % of every trajectory is the validation set (:mod:`mdsr_plugin.neural.data`).

Samples
    A window is a gap of ``factor`` fine steps plus ``context`` coarse frames on each
    side, cut at a random place, moved into the canonical frame of its first coarse
    frame, and relabelled by a random automorphism of the molecular graph (so the
    network learns symmetry-equivalent atoms alike)
    (:class:`~mdsr_plugin.neural.data.WindowSampler`).

Stages
    1. *Force matching* (when the data have forces): the memoryless force of the
       architecture is fitted to the reference forces, frame by frame.
    2. *Rollout*: the whole bi-directional (or forward) reconstruction of each window
       is compared with the truth, positions and velocities, and every weight is
       trained through the integrator.

    Both use Adam with the paper's plateau schedule: the rate is halved after 3
    epochs without improvement of the validation loss, down to 1e-5.

Interruption
    After every epoch the complete training state (weights, optimiser, schedule,
    random generators, log) is written to ``OUTPUT.train.pt``; running the same
    command again resumes from it.  A progress log is appended to ``OUTPUT.log.jsonl``.
    The best model by validation loss is written to ``OUTPUT.safetensors`` and
    ``OUTPUT.json``, and the directory's ``manifest.json`` is updated.

Validation
    The card records the model's and cubic Hermite's errors on the validation
    windows, and the saved checkpoint against the classical methods on the
    validation part of every trajectory (:mod:`mdsr_plugin.evaluation.scoring`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import card as schema
from .training import optimise

__all__ = ["TrainingSettings", "train", "check_output_stem"]

log = logging.getLogger(__name__)


@dataclass
class TrainingSettings:
    """Everything that determines a training run (stored in the model card)."""

    factor: int = 20
    arch: str = "lstm"
    bidirectional: bool = True
    fine_dt: float = 1.0
    seed: int = 0
    force_epochs: int = 60
    force_samples_per_epoch: int = 400_000
    force_batch: int = 128
    rollout_epochs: int = 40
    rollout_windows_per_epoch: int = 2048
    rollout_batch: int = 64
    learning_rate: float = 1e-3
    rollout_learning_rate: float = 2e-4
    min_learning_rate: float = 1e-5
    patience: int = 3
    max_hours: float | None = None
    device: str = "cpu"
    dtype: str = "float32"  # training precision; inference runs in the upsampler's ``precision``
    width: int = 256
    depth: int = 3
    hidden: int = 128
    context: int | None = None
    substeps: int = 2
    validation_fraction: float = 0.1
    position_scale: float = 0.01  # Å: the rollout loss counts errors in units of this
    velocity_scale: float = 0.002  # Å/fs
    extra: dict = field(default_factory=dict)


def check_output_stem(output) -> Path:
    """The folder a checkpoint stem ``output`` will be written to, checked before any work.

    Raises
    ------
    OSError
        One line: the folder does not exist, is not a folder, or cannot be written to
        (a file is created there and removed at once, which also answers for root and
        for read-only mounts).
    """
    import tempfile

    folder = Path(output).parent
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: output folder does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: is a file, not an output folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise PermissionError(f"{folder}: output folder is not writable ({err.strerror or err})") from None
    from .registry import check_manifest_is_ours

    check_manifest_is_ours(folder)  # the folder's manifest.json is rewritten at the end
    return folder


def train(paths, output, settings: TrainingSettings, *, progress: bool = True, reader_options=None) -> Path:
    """Train (or resume training) a learned integrator; returns the model card's path.

    Parameters
    ----------
    paths : list of path-like
        Fine reference trajectories of one molecule.
    output : path-like
        Checkpoint stem: writes ``output.safetensors``, ``output.json``,
        ``output.train.pt`` (resumable state) and ``output.log.jsonl``.
    settings : TrainingSettings
    """
    import torch

    from .. import __version__
    from ..evaluation.scoring import score_hermite_windows, validate_against_classical
    from ..molecule import automorphisms
    from .checkpoint import read_card, save_checkpoint, write_card
    from .data import WindowSampler, load_training_data, set_normalisation
    from .coarse import fingerprint_of
    from .models import build_model, default_config
    from .registry import write_manifest
    from .training import Stage, epochs_by_stage, run_stages

    output = Path(output)
    if output.suffix in (".json", ".safetensors"):
        output = output.with_suffix("")
    check_output_stem(output)  # before the data are read or an epoch is run
    device = torch.device(settings.device)

    trajectories, bonds = load_training_data([Path(p) for p in paths], settings.fine_dt, **(reader_options or {}))
    numbers, masses = trajectories[0].numbers, trajectories[0].masses
    config = default_config(settings.arch, numbers, masses, bidirectional=settings.bidirectional)
    config.update(width=settings.width, depth=settings.depth, substeps=settings.substeps)
    if config["hidden"]:
        config["hidden"] = settings.hidden
    if settings.context is not None:
        config["context"] = settings.context
    weights = masses / masses.sum()
    reference = trajectories[0].positions[0] - weights @ trajectories[0].positions[0]
    symmetries = automorphisms(numbers, bonds)
    samplers = {
        split: WindowSampler(trajectories, settings.factor, config["context"], split, symmetries, reference,
                             masses, settings.validation_fraction)
        for split in ("train", "validation")
    }
    has_forces = all(t.forces is not None for t in trajectories)

    torch.manual_seed(settings.seed)
    dtype = getattr(torch, settings.dtype)
    model = build_model(config, dtype=dtype)
    set_normalisation(model, trajectories, reference)
    model.to(device)
    validation_rng_seed = settings.seed + 1  # the same validation samples every epoch
    validation = {"forces": samplers["validation"].frames(np.random.default_rng(validation_rng_seed), 4000)
                  if has_forces else None,
                  "rollout": samplers["validation"].windows(np.random.default_rng(validation_rng_seed), 512)}
    stages = [Stage("rollout", settings.rollout_epochs, settings.rollout_learning_rate,
                    lambda rng, optimizer: _rollout_epoch(model, samplers["train"], rng, settings, optimizer, device,
                                                          progress),
                    lambda: _rollout_validation(model, validation["rollout"], settings, device))]
    if has_forces and settings.force_epochs:
        stages.insert(0, Stage(
            "forces", settings.force_epochs, settings.learning_rate,
            lambda rng, optimizer: _force_epoch(model, samplers["train"], rng, settings, optimizer, device, progress),
            lambda: _force_validation(model, validation["forces"], device)))
    # What the result depends on (a state saved for other data or settings is not resumed).
    # (not how long it runs: more epochs or hours continue the same run)
    determining = {k: v for k, v in settings.__dict__.items()
                   if k not in ("max_hours", "device", "extra", "force_epochs", "rollout_epochs")}
    fingerprint = fingerprint_of([Path(p) for p in paths], reader_options, determining, model="train")
    run = run_stages(model, stages, output, settings, fingerprint=fingerprint, progress=progress, show_metrics=True,
                     max_seconds=None if settings.max_hours is None else settings.max_hours * 3600)
    state, complete = run.state, run.complete
    _, metrics = _rollout_validation(model, validation["rollout"], settings, device)
    *_, target_x, target_v = validation["rollout"]
    metrics.update(score_hermite_windows(target_x, target_v, settings.factor * settings.fine_dt))
    card = {
        schema.ID: output.name,
        schema.MODEL_VERSION: 1,
        schema.CODE_VERSION: __version__,
        schema.MOLECULE: settings.extra.get("molecule", ""),
        schema.NUMBERS: [int(z) for z in numbers],
        schema.BONDS: [list(b) for b in bonds],
        schema.FINE_DT_FS: settings.fine_dt,
        schema.COARSE_DT_FS: settings.fine_dt * settings.factor,
        schema.FACTORS: sorted(set(settings.extra.get("factors", [settings.factor]))),
        schema.INPUT_MODES: [schema.MODE_VELOCITIES, schema.MODE_POSITIONS],
        schema.TRAINING: {
            schema.FILES: [Path(p).name for p in paths],
            schema.SETTINGS: {k: v for k, v in settings.__dict__.items() if k != "extra"},
            schema.PROVENANCE: settings.extra.get("provenance", {}),
            schema.HISTORY_TAIL: state["history"][-3:],
            schema.COMPLETE: complete,
            schema.EPOCHS: epochs_by_stage(state["history"], [stage.name for stage in stages]),
        },
        schema.VALIDATION: metrics,
    }
    card[schema.NORMALISATION] = {
        "note": "inputs are standardised inverse distances (per-pair mean/std in the weights file); "
                "velocities are divided by velocity_std; learned accelerations are scaled by acceleration_std",
        "position_std_angstrom": float(model.position_std),
        "velocity_std_angstrom_per_fs": float(model.velocity_std),
        "acceleration_std_angstrom_per_fs2": float(model.acceleration_std),
    }
    card_file = save_checkpoint(model.cpu(), card, output)
    # Validation against the classical baselines, with the saved checkpoint itself.
    card = read_card(card_file)
    card[schema.VALIDATION] = {schema.WINDOWS: metrics, **validate_against_classical(
        card_file, trajectories, settings.factor, validation_fraction=settings.validation_fraction,
        device=settings.device)}
    write_card(card, card_file)
    write_manifest(card_file.parent)
    return card_file


def _force_loss(model, x, f):
    predicted = model.forces(x, create_graph=model.training)
    return ((predicted - f) ** 2).mean() / (f**2).mean()


def _force_epoch(model, sampler, rng, settings, optimizer, device, progress):
    import torch

    x, f = sampler.frames(rng, settings.force_samples_per_epoch)
    dtype = next(model.parameters()).dtype
    x, f = torch.as_tensor(x, device=device, dtype=dtype), torch.as_tensor(f, device=device, dtype=dtype)
    return optimise(model, optimizer, range(0, len(x), settings.force_batch),
                    lambda lo: _force_loss(model, x[lo:lo + settings.force_batch], f[lo:lo + settings.force_batch]),
                    "forces", progress)


def _force_validation(model, data, device):
    import torch

    dtype = next(model.parameters()).dtype
    x, f = (torch.as_tensor(a, device=device, dtype=dtype) for a in data)
    model.eval()
    predicted = torch.cat([model.forces(x[lo : lo + 1000]).detach() for lo in range(0, len(x), 1000)])
    relative = float((predicted - f).abs().mean() / f.abs().mean())
    return float(((predicted - f) ** 2).mean() / (f**2).mean()), {"force_relative_mae": relative}


def _rollout_loss(model, batch, settings, dt):
    sx, sv, ex, ev, tx, tv = batch
    x, v, _ = model.interpolate((sx, sv), (ex, ev), settings.factor, dt)
    inside = slice(1, -1)
    position = ((x[:, inside] - tx[:, inside]) / settings.position_scale) ** 2
    velocity = ((v[:, inside] - tv[:, inside]) / settings.velocity_scale) ** 2
    return position.mean() + velocity.mean(), x, v


def _rollout_epoch(model, sampler, rng, settings, optimizer, device, progress):
    import torch

    dtype = next(model.parameters()).dtype

    def loss_of(_):
        batch = [torch.as_tensor(a, device=device, dtype=dtype) for a in sampler.windows(rng, settings.rollout_batch)]
        return _rollout_loss(model, batch, settings, settings.fine_dt)[0]

    return optimise(model, optimizer, range(settings.rollout_windows_per_epoch // settings.rollout_batch), loss_of,
                    "rollout", progress, max_norm=10.0)


def _rollout_validation(model, data, settings, device):
    import torch

    model.eval()
    dtype = next(model.parameters()).dtype
    losses, position_errors, velocity_errors = [], [], []
    with torch.no_grad():
        for lo in range(0, len(data[0]), 128):
            batch = [torch.as_tensor(a[lo : lo + 128], device=device, dtype=dtype) for a in data]
            loss, x, v = _rollout_loss(model, batch, settings, settings.fine_dt)
            losses.append(float(loss))
            position_errors.append((x[:, 1:-1] - batch[4][:, 1:-1]).abs().mean().item())
            velocity_errors.append((v[:, 1:-1] - batch[5][:, 1:-1]).abs().mean().item())
    return float(np.mean(losses)), {schema.POSITION_MAE: float(np.mean(position_errors)),
                                    schema.VELOCITY_MAE: float(np.mean(velocity_errors))}
