"""Checkpoints are data: safetensors weights plus a JSON model card, verified by sha256.

A checkpoint ``ID`` is two files side by side:

``ID.safetensors``
    Every parameter and buffer of the :class:`~mdsr_plugin.neural.models.LearnedIntegrator`
    (tensors in the training precision, no code, nothing to unpickle; inference
    casts them to float64).
``ID.json``
    The model card: id and version, the architecture's configuration (from which
    the code builds the network), species and bond graph in the checkpoint's atom
    order, the time steps and factors it serves, its input modes, training data
    provenance, validation metrics against the classical baselines, and the sha256
    of the weights file.

Loading checks the weights' sha256 against the card (and the card's against the
registry manifest, see :mod:`mdsr_plugin.neural.registry`) and refuses a mismatch.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "read_card", "sha256_of", "card_path"]

CARD_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that is missing, altered or incompatible."""


def sha256_of(path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def card_path(path) -> Path:
    """The card of a checkpoint given by its card, its weights or its stem."""
    path = Path(path)
    if path.suffix == ".json":
        return path
    if path.suffix == ".safetensors":
        return path.with_suffix(".json")
    return path.with_name(path.name + ".json")


def read_card(path) -> dict:
    path = card_path(path)
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such model card") from None
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: not a valid model card ({err})") from None
    for key in ("id", "config", "weights", "weights_sha256", "fine_dt_fs", "factors"):
        if key not in card:
            raise CheckpointError(f"{path}: model card lacks {key!r}")
    return card


def save_checkpoint(model, card: dict, path) -> Path:
    """Write ``path``'s weights and card atomically; returns the card's path.

    ``card`` gets ``weights``, ``weights_sha256``, ``config`` and ``card_version`` filled in.
    """
    from safetensors.torch import save_file

    from ..io.atomic import AtomicFiles

    card_file = card_path(path)
    weights_file = card_file.with_suffix(".safetensors")
    with AtomicFiles(weights_file, card_file) as (weights_temp, card_temp):
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(weights_temp))
        card = dict(card)
        card.update(
            card_version=CARD_VERSION,
            config=model.config,
            weights=weights_file.name,
            weights_sha256=sha256_of(weights_temp),
        )
        card_temp.write_text(json.dumps(card, indent=1, sort_keys=True) + "\n")
    return card_file


def load_checkpoint(path, *, expected_card_sha256: str | None = None, device="cpu", dtype="float64"):
    """Build the model of a checkpoint and load its verified weights.

    Parameters
    ----------
    path : path-like
        The card (``.json``), the weights (``.safetensors``) or their common stem.
    expected_card_sha256 : str, optional
        The registry manifest's hash of the card.
    device : str or torch.device
    dtype : {"float64", "float32"}
        Floating-point type of the weights and of the arithmetic.

    Returns
    -------
    model : LearnedIntegrator
        In evaluation mode, parameters frozen, on ``device``, in ``dtype``.
    card : dict
    """
    card_file = card_path(path)
    # A process that upsamples many files (a batch worker) loads each checkpoint once:
    # the cache key includes both files' size and modification time, so an edited or
    # replaced checkpoint is verified and loaded again.  The model is frozen, so sharing
    # it between upsamplers is safe.
    try:
        weights_stat = card_file.with_name(read_card(card_file)["weights"]).stat()
        key = (str(card_file.resolve()), _signature(card_file.stat()), _signature(weights_stat),
               expected_card_sha256, str(device), str(dtype))
    except (OSError, KeyError, CheckpointError):
        key = None  # let the full load below report what is wrong
    if key is not None and key in _LOADED:
        model, card = _LOADED[key]
        return model, copy.deepcopy(card)
    model, card = _load_verified(card_file, expected_card_sha256, device, dtype)
    if key is not None:
        if len(_LOADED) >= 8:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = (model, copy.deepcopy(card))
    return model, card


_LOADED: dict = {}


def _signature(stat) -> tuple[int, int]:
    return stat.st_size, stat.st_mtime_ns


def _load_verified(card_file: Path, expected_card_sha256, device, dtype="float64"):
    from safetensors.torch import load_file

    from .models import build_model

    if expected_card_sha256 is not None and sha256_of(card_file) != expected_card_sha256:
        raise CheckpointError(f"{card_file.name}: sha256 does not match the registry manifest; refusing it")
    card = read_card(card_file)
    weights = card_file.with_name(card["weights"])
    if not weights.is_file():
        raise CheckpointError(f"{weights}: weights file missing")
    if sha256_of(weights) != card["weights_sha256"]:
        raise CheckpointError(f"{weights.name}: sha256 does not match its model card; refusing it")
    from .. import __version__

    if card.get("code_version") not in (None, __version__):
        import warnings

        warnings.warn(
            f"checkpoint {card['id']} was made by mdsr_plugin {card['code_version']}, this is {__version__}",
            stacklevel=2,
        )
    model = build_model(card["config"])
    state = load_file(str(weights), device="cpu")  # onto the CPU first, then move
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{weights.name}: weights do not fit the architecture (missing {missing}, unexpected {unexpected})"
        )
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    import torch

    return model.to(device=device, dtype=getattr(torch, dtype)), card


def default_user_dirs() -> list[Path]:
    """Directories named by ``MDSR_MODELS_PATH`` (``os.pathsep``-separated)."""
    value = os.environ.get("MDSR_MODELS_PATH", "")
    return [Path(p) for p in value.split(os.pathsep) if p]
