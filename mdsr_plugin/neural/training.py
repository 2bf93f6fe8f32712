"""The one training loop: stages of epochs, resumable, within a time budget, best weights kept.

Every way this package learns an integrator — from fine reference trajectories
(:mod:`~mdsr_plugin.neural.train`), from a molecule's own coarse frames
(:mod:`~mdsr_plugin.neural.adapt`), from a periodic box's
(:mod:`~mdsr_plugin.neural.adapt_box`), and the prior learned on a cheap Hamiltonian
(:mod:`~mdsr_plugin.neural.prior`) — supplies only its data and losses, as
:class:`Stage` objects, and this loop does the rest the same way for all:

* Adam, with the paper's plateau schedule: the rate is halved after ``patience``
  epochs without improvement of the validation loss, down to ``min_learning_rate``;
* a stage ends after its epochs or when its rate has decayed; the next stage starts
  from the best weights of the one before;
* after every epoch the complete state (weights, optimiser, schedule, random
  generators, history) is written atomically to ``OUTPUT.train.pt`` and a line is
  appended to ``OUTPUT.log.jsonl``; a second call resumes from the state, but only
  when its ``fingerprint`` (the data and settings it depended on) is the same;
* a time budget ends a call after at least one epoch (every call makes progress),
  with the state saved for the next;
* at the end the best weights by validation loss are loaded.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["Stage", "TrainingRun", "run_stages", "optimise", "state_path", "log_path", "save_state",
           "fitted_velocities_path", "kept_fitted_velocities"]

log = logging.getLogger(__name__)


@dataclass
class Stage:
    """One stage of training.

    Attributes
    ----------
    name : str
        Recorded in the history (``"forces"``, ``"gaps"``, ``"rollout"``).
    epochs : int
        Most epochs.
    learning_rate : float
        Adam's starting rate for this stage.
    train_epoch : callable
        ``(rng, optimizer) -> float``: one epoch of updates, its mean training loss.
        Draws its samples from ``rng`` (a numpy Generator whose state is saved).
    validate : callable
        ``() -> (loss, metrics)``: the validation loss that the schedule and the best
        weights follow, and named figures for the log.
    """

    name: str
    epochs: int
    learning_rate: float
    train_epoch: Callable
    validate: Callable


@dataclass
class TrainingRun:
    """What a call of :func:`run_stages` leaves: ``state`` (``history``: one record per
    epoch; ``seconds``: per stage) and whether every stage ended (not the budget)."""

    state: dict
    complete: bool


def state_path(output: Path) -> Path:
    """The resumable state of checkpoint stem ``output``: ``OUTPUT.train.pt``."""
    return output.with_name(output.name + ".train.pt")


def log_path(output: Path) -> Path:
    """The progress log of checkpoint stem ``output``: ``OUTPUT.log.jsonl``."""
    return output.with_name(output.name + ".log.jsonl")


def save_state(path: Path, obj) -> None:
    """``torch.save`` to a temporary name, then renamed: never a half-written state."""
    import torch

    from ..io.atomic import AtomicFiles

    with AtomicFiles(path) as (temporary,):
        torch.save(obj, temporary)


def fitted_velocities_path(output: Path) -> Path:
    """Where a run of checkpoint stem ``output`` keeps the coarse velocities it fitted:
    ``OUTPUT.train-velocities.npz`` (resumable state, like ``OUTPUT.train.pt``)."""
    return output.with_name(output.name + ".train-velocities.npz")


def kept_fitted_velocities(output: Path, fingerprint: str, fit: Callable) -> list:
    """``fit()``, the coarse velocities a run fits for its gap stage (a list of (F, N, 3)
    arrays, Å/fs, one per input file), or what an earlier call of the same run (same
    ``fingerprint``) saved of them.

    A run without stored velocities fits them once, with the model just after its forces
    stage.  A resumed run must not fit them again: for a box that costs minutes, and its
    model is then part-way through the gap stage, so the velocities would differ from those
    the saved gap epochs learned on.  Saved as plain arrays (``allow_pickle=False``).
    """
    from ..io.atomic import AtomicFiles

    path = fitted_velocities_path(output)
    if path.exists():
        with np.load(path, allow_pickle=False) as saved:
            if str(saved["fingerprint"]) == fingerprint:
                log.info("%s: the fitted velocities of an earlier call", path.name)
                return [saved[f"file_{k}"] for k in range(int(saved["files"]))]
        log.warning("%s: saved for other data or settings; fitting afresh", path)
    velocities = [np.asarray(v, dtype=np.float64) for v in fit()]
    with AtomicFiles(path) as (temporary,):
        with open(temporary, "wb") as handle:  # a handle: np.savez would append ".npz" to the name
            np.savez(handle, fingerprint=np.array(fingerprint), files=np.array(len(velocities)),
                     **{f"file_{k}": v for k, v in enumerate(velocities)})
    return velocities


def _optimizer(model, stage: Stage, settings):
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=stage.learning_rate)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=settings.patience,
                                                           min_lr=settings.min_learning_rate)
    return optimizer, scheduler


def optimise(model, optimizer, batches, loss_of, desc: str, progress: bool, max_norm=None) -> float:
    """One optimizer step on ``loss_of(batch)`` for each of ``batches``; their mean loss.

    The inner loop of every epoch: ``max_norm`` clips the gradient's norm (the rollout and
    gap losses, whose gradients through many integrator steps can spike).
    """
    import torch
    from tqdm.auto import tqdm

    losses = []
    for batch in tqdm(batches, desc=desc, leave=False, disable=not progress):
        loss = loss_of(batch)
        optimizer.zero_grad()
        loss.backward()
        if max_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()
        losses.append(float(loss.detach()))
    return sum(losses) / len(losses)


def run_stages(model, stages: list[Stage], output: Path, settings, *, fingerprint: str, max_seconds=None,
               progress: bool = True, show_metrics: bool = False) -> TrainingRun:
    """Train ``model`` through ``stages`` (see the module docstring).

    Parameters
    ----------
    model : torch.nn.Module
    stages : list of Stage
    output : Path
        Checkpoint stem: the state and the log are written beside it.
    settings
        Any settings object with ``seed``, ``patience`` and ``min_learning_rate``.
    fingerprint : str
        What the run depends on; a saved state with another is not resumed.
    max_seconds : float, optional
        Time budget of this call.
    show_metrics : bool
        Print each epoch's metrics with its losses.
    """
    import torch
    from tqdm.auto import tqdm

    path, log_file = state_path(output), log_path(output)
    by_name = {stage.name: stage for stage in stages}
    names = [stage.name for stage in stages]
    state = {"stage": names[0], "epoch": 0, "best": float("inf"), "best_weights": None, "history": [],
             "fingerprint": fingerprint, "rng": np.random.default_rng(settings.seed).bit_generator.state,
             "seconds": {}}
    optimizer, scheduler = _optimizer(model, by_name[state["stage"]], settings)
    if path.exists():
        saved = torch.load(path, weights_only=True, map_location="cpu")
        if saved["state"].get("fingerprint") == fingerprint and saved["state"].get("stage") in by_name:
            model.load_state_dict(saved["model"])
            state.update(saved["state"])
            optimizer, scheduler = _optimizer(model, by_name[state["stage"]], settings)
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            if "torch_rng" in saved:
                torch.set_rng_state(saved["torch_rng"])
            log.info("resuming %s at stage %s epoch %d", output.name, state["stage"], state["epoch"])
        else:
            log.warning("%s: saved for other data or settings; starting afresh", path)
    state.setdefault("seconds", {})
    rng = np.random.default_rng()
    rng.bit_generator.state = state["rng"]
    started = time.perf_counter()
    complete, epochs_this_call = True, 0
    while True:
        stage = by_name[state["stage"]]
        lr = optimizer.param_groups[0]["lr"]
        if state["epoch"] >= stage.epochs or (lr <= settings.min_learning_rate * 1.0001 and state["epoch"] > 0):
            if stage.name == names[-1]:
                break
            if state["best_weights"] is not None:  # the next stage starts from this one's best weights
                model.load_state_dict(state["best_weights"])
            state.update(stage=names[names.index(stage.name) + 1], epoch=0, best=float("inf"), best_weights=None)
            optimizer, scheduler = _optimizer(model, by_name[state["stage"]], settings)
            continue
        if max_seconds is not None and epochs_this_call and time.perf_counter() - started > max_seconds:
            log.info("time budget reached; state saved, run again to continue")
            complete = False
            break
        epoch_started = time.perf_counter()
        model.train()
        train_loss = stage.train_epoch(rng, optimizer)
        val_loss, metrics = stage.validate()
        scheduler.step(val_loss)
        state["epoch"] += 1
        epochs_this_call += 1
        state["seconds"][stage.name] = state["seconds"].get(stage.name, 0.0) + time.perf_counter() - epoch_started
        record = {"stage": stage.name, "epoch": state["epoch"], "train_loss": train_loss, "val_loss": val_loss,
                  "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - started, **metrics}
        state["history"].append(record)
        with open(log_file, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if progress:
            # progress, like the bars: stderr, so that stdout keeps only what was written
            tqdm.write(f"{output.name} {stage.name} epoch {state['epoch']}: train {train_loss:.4g} "
                       f"val {val_loss:.4g}" + (f" {metrics}" if show_metrics else ""), file=sys.stderr)
        else:
            log.info("%s", record)
        if val_loss < state["best"]:
            state["best"] = val_loss
            state["best_weights"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        state["rng"] = rng.bit_generator.state
        save_state(path, {"model": model.state_dict(), "state": state, "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state()})
    if state["best_weights"] is not None:
        model.load_state_dict(state["best_weights"])
    model.eval()
    return TrainingRun(state, complete)


def epochs_by_stage(history, names) -> dict:
    """Epochs run in each stage, from a run's history (for the card)."""
    return {name: sum(1 for record in history if record["stage"] == name) for name in names}
