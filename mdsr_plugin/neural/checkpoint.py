"""Checkpoints are data: safetensors weights plus a JSON model card, verified by sha256.

A checkpoint ``ID`` is two files side by side:

``ID.safetensors``
    Every parameter and buffer of the :class:`~mdsr_plugin.neural.models.LearnedIntegrator`
    (tensors in the training precision, no code, nothing to unpickle; loading casts
    them to the precision asked for, the upsampler's ``precision``).
``ID.json``
    The model card: id and version, the architecture's configuration (from which
    the code builds the network), species and bond graph in the checkpoint's atom
    order, the time steps and factors it serves, its input modes, training data
    provenance, validation metrics against the classical baselines, and the sha256
    of the weights file.  Its schema (keys, types, version) is
    :mod:`mdsr_plugin.neural.card`.

Loading checks the card against that schema and the weights' sha256 against the
card (and the card's against the registry manifest, see
:mod:`mdsr_plugin.neural.registry`), and refuses a mismatch.  The weights must
also *be* a safetensors file (:func:`verify_checkpoint` reads its header before
anything parses the tensors): a pickle or anything else under that name is refused
in one line, never unpickled, even when whoever put it there updated the hashes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import warnings
from pathlib import Path

from . import card as schema
from .card import CARD_VERSION, CheckpointError, validate_card

__all__ = ["CheckpointError", "CARD_VERSION", "save_checkpoint", "load_checkpoint", "verify_checkpoint",
           "read_card", "write_card", "sha256_of", "readable_sha256", "card_path"]


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
    """The model card of a checkpoint (card, weights or stem), checked against the schema.

    Raises
    ------
    CheckpointError
        No card, not JSON, or not a valid card (:func:`mdsr_plugin.neural.card.validate_card`).
    """
    path = card_path(path)
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such model card") from None
    except OSError as err:
        raise CheckpointError(f"{path}: model card cannot be read ({err.strerror or err})") from None
    except ValueError as err:  # not JSON, or not UTF-8
        raise CheckpointError(f"{path}: not a valid model card ({err})") from None
    return validate_card(card, path)


def save_checkpoint(model, card: dict, path) -> Path:
    """Write ``path``'s weights and card atomically; returns the card's path.

    ``card`` gets ``weights``, ``weights_sha256``, ``config`` and ``card_version`` filled in;
    a card that would not pass :func:`~mdsr_plugin.neural.card.validate_card` is refused
    (:class:`CheckpointError`) and nothing is written.
    """
    from safetensors.torch import save_file

    from ..io.atomic import AtomicFiles

    card_file = card_path(path)
    weights_file = card_file.with_suffix(".safetensors")
    with AtomicFiles(weights_file, card_file) as (weights_temp, card_temp):
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(weights_temp))
        card = dict(card)
        card.update({
            schema.CARD_VERSION_KEY: CARD_VERSION,
            schema.CONFIG: model.config,
            schema.WEIGHTS: weights_file.name,
            schema.WEIGHTS_SHA256: sha256_of(weights_temp),
        })
        card_temp.write_text(_card_text(card, card_file), encoding="utf-8")
    return card_file


def write_card(card: dict, path) -> Path:
    """Rewrite the model card of checkpoint ``path`` atomically; returns the card's path.

    The weights are untouched; the card is checked against the schema first (a
    :class:`CheckpointError` leaves the old card as it was).  The card's sha256
    changes: :func:`mdsr_plugin.neural.registry.write_manifest` records the new one.
    """
    from ..io.atomic import write_text_atomically

    card_file = card_path(path)
    return write_text_atomically(card_file, _card_text(card, card_file))


def _card_text(card: dict, card_file: Path) -> str:
    """The card as it is stored (sorted keys), once it has passed the schema as it will be read back."""
    text = json.dumps(card, indent=1, sort_keys=True) + "\n"
    validate_card(json.loads(text), card_file)
    return text


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
        Floating-point type of the weights and of the arithmetic (the upsampler
        passes its ``precision``).

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
        stats = (card_file.stat(), card_file.with_name(read_card(card_file)[schema.WEIGHTS]).stat())
        key = (str(card_file.resolve()), *((stat.st_size, stat.st_mtime_ns) for stat in stats),
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


def verify_checkpoint(path, *, expected_card_sha256: str | None = None) -> dict:
    """Check a checkpoint without loading it (no torch); returns its card.

    Checks, in order: the card's sha256 against ``expected_card_sha256`` (the registry
    manifest's), the card against the schema (its ``weights`` a bare file name beside
    it), the weights' sha256 against the card, and that the weights are a safetensors
    file: an 8-byte header length, a JSON header, tensors inside the file.

    Raises
    ------
    CheckpointError
        One line naming the file and what is wrong with it.
    """
    card_file = card_path(path)
    if expected_card_sha256 is not None and readable_sha256(card_file) != expected_card_sha256:
        raise CheckpointError(f"{card_file.name}: sha256 does not match the registry manifest; refusing it")
    card = read_card(card_file)
    weights = card_file.with_name(card[schema.WEIGHTS])
    if not weights.is_file():
        raise CheckpointError(f"{weights}: weights file missing")
    if readable_sha256(weights) != card[schema.WEIGHTS_SHA256]:
        raise CheckpointError(f"{weights.name}: sha256 does not match its model card; refusing it")
    _check_safetensors(weights)
    return card


def readable_sha256(path: Path) -> str:
    """:func:`sha256_of`, a file that cannot be read refused as a :class:`CheckpointError`."""
    try:
        return sha256_of(path)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err.strerror or err})") from None


#: The largest safetensors header read (bytes); real ones are a few kB.
_MAX_HEADER = 100 * 2**20


def _check_safetensors(path: Path) -> None:
    """Refuse ``path`` unless it is laid out as a safetensors file (header length, JSON
    header, every tensor's byte range inside the file).  Nothing is unpickled or executed."""

    def refuse(why):
        return CheckpointError(f"{path}: not a safetensors weights file ({why}); refusing it")

    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(8)
            length = int.from_bytes(head, "little")
            text = handle.read(length) if len(head) == 8 and 2 <= length <= min(size - 8, _MAX_HEADER) else None
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err.strerror or err})") from None
    if text is None:
        raise refuse(f"its first 8 bytes give a header of {length} bytes in a file of {size}" if len(head) == 8
                     else f"{size} bytes")
    try:
        header = json.loads(text)
    except ValueError:  # not JSON, not UTF-8
        raise refuse("its header is not JSON") from None
    if not isinstance(header, dict):
        raise refuse("its header is not a JSON object")
    data = size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= data):
            raise refuse(f"tensor {name!r} does not lie inside the file")


def _build(config: dict):
    """The untrained integrator a card's ``config`` describes: a local periodic one for
    ``arch`` ``"local"``, else a molecular architecture (float64 for inference)."""
    import torch

    if config.get(schema.ARCH) == schema.LOCAL_ARCH:
        from .local import LocalIntegrator

        return LocalIntegrator(config).to(torch.float64)
    from .models import build_model

    return build_model(config)


def _load_verified(card_file: Path, expected_card_sha256, device, dtype="float64"):
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .. import __version__

    card = verify_checkpoint(card_file, expected_card_sha256=expected_card_sha256)
    weights = card_file.with_name(card[schema.WEIGHTS])
    if card.get(schema.CODE_VERSION) not in (None, __version__):
        warnings.warn(f"checkpoint {card[schema.ID]} was made by mdsr_plugin {card[schema.CODE_VERSION]}, "
                      f"this is {__version__}", stacklevel=2)
    try:
        model = _build(card[schema.CONFIG])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:  # a config this code cannot build
        raise CheckpointError(f"{card_file.name}: its 'config' does not build a model "
                              f"({type(err).__name__}: {' '.join(str(err).split())})") from None
    try:
        state = load_file(str(weights), device="cpu")  # onto the CPU first, then move
    except SafetensorError as err:
        raise CheckpointError(f"{weights}: not a readable safetensors weights file ({err}); refusing it") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # a tensor of another shape
        raise CheckpointError(f"{weights.name}: weights do not fit the architecture "
                              f"({' '.join(str(err).split())})") from None
    if missing or unexpected:
        raise CheckpointError(
            f"{weights.name}: weights do not fit the architecture (missing {missing}, unexpected {unexpected})"
        )
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.to(device=device, dtype=getattr(torch, dtype)), card
