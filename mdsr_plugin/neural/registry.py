"""The registry of pretrained checkpoints: where they are, and which one fits a trajectory.

Checkpoints live in directories that each hold a ``manifest.json``::

    {"models": [{"id": "ethanol-bilstm-1fs", "card": "ethanol-bilstm-1fs.json",
                 "sha256": "<sha256 of the card>"}]}

The directories searched, in order:

1. the checkpoints shipped with the package (the repository's top-level ``models/``,
   installed as the package ``mdsr_plugin._models`` so that a wheel finds them);
2. every directory in the environment variable ``MDSR_MODELS_PATH``
   (``os.pathsep``-separated), e.g. where ``mdsr-train`` wrote your own.

A card whose hash differs from its manifest's, or weights whose hash differ from
their card's, are refused.  :func:`write_manifest` (called by ``mdsr-train``)
records the hashes of a directory's cards.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import card as schema
from .card import baseline_method, classical_is_better, held_out_position_mae  # noqa: F401  (re-exported)
from .checkpoint import CheckpointError, default_user_dirs, read_card, sha256_of

__all__ = ["ModelEntry", "registry_dirs", "list_models", "get_model_entry", "find_matching", "serves",
           "write_manifest", "classical_is_better", "held_out_position_mae", "baseline_method"]

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ModelEntry:
    """A registered checkpoint: its card (read, not yet verified against the weights)."""

    id: str
    card_path: Path
    card_sha256: str
    card: dict

    @property
    def directory(self) -> Path:
        return self.card_path.parent


def registry_dirs() -> list[Path]:
    """Directories searched for checkpoints, shipped first."""
    from importlib import resources

    shipped = Path(str(resources.files("mdsr_plugin._models")))
    return [shipped, *default_user_dirs()]


def _read_manifest(directory: Path) -> list[ModelEntry]:
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return []
    try:
        records = json.loads(manifest.read_text())["models"]
    except (json.JSONDecodeError, KeyError) as err:
        raise CheckpointError(f"{manifest}: not a valid manifest ({err})") from None
    entries = []
    for record in records:
        card_file = directory / record["card"]
        entries.append(ModelEntry(record["id"], card_file, record["sha256"], read_card(card_file)))
    return entries


def list_models() -> list[ModelEntry]:
    """Every registered checkpoint; an id found twice is taken from the first directory."""
    seen, entries = set(), []
    for directory in registry_dirs():
        for entry in _read_manifest(directory):
            if entry.id not in seen:
                seen.add(entry.id)
                entries.append(entry)
    return entries


def get_model_entry(id_or_path) -> ModelEntry:
    """A registered checkpoint by id, or a checkpoint file given by path (card or weights)."""
    for entry in list_models():
        if entry.id == str(id_or_path):
            return entry
    path = Path(id_or_path)
    from .checkpoint import card_path

    card_file = card_path(path)
    if card_file.is_file():
        card = read_card(card_file)
        return ModelEntry(card[schema.ID], card_file, sha256_of(card_file), card)
    known = ", ".join(e.id for e in list_models()) or "none"
    raise CheckpointError(f"no checkpoint {id_or_path!r}; registered: {known}")


def serves(card: dict, fine_dt: float, factor: int, has_velocities: bool) -> str | None:
    """Why ``card`` cannot upsample this input (None when it can)."""
    served_dt = card[schema.FINE_DT_FS]
    if abs(fine_dt - served_dt) > 1e-3 * served_dt:
        return f"output step {fine_dt:g} fs (it serves {served_dt:g} fs)"
    if factor not in card[schema.FACTORS]:
        return f"factor {factor} (it serves {card[schema.FACTORS]})"
    mode = schema.input_mode(has_velocities)
    if mode not in card.get(schema.INPUT_MODES, schema.DEFAULT_INPUT_MODES):
        return f"input with {mode} only (it takes {card.get(schema.INPUT_MODES)})"
    return None


def find_matching(numbers, positions, fine_dt: float, factor: int, has_velocities: bool):
    """Checkpoints that fit a trajectory, best first, and the reasons others do not.

    Returns
    -------
    matches : list of (ModelEntry, ndarray order)
        ``order`` permutes the input's atoms into the checkpoint's order.
    reasons : list of str
        One line per registered checkpoint that does not fit.
    """
    from ..molecule import GraphMismatch, match_atoms

    matches, reasons = [], []
    for entry in list_models():
        card = entry.card
        if card[schema.CONFIG][schema.ARCH] == schema.LOCAL_ARCH:
            reasons.append(f"{entry.id}: a periodic box's integrator (name it with --model)")
            continue
        if sorted(card[schema.CONFIG][schema.NUMBERS]) != sorted(int(z) for z in numbers):
            reasons.append(f"{entry.id}: another molecule ({card.get(schema.MOLECULE, '?')})")
            continue
        try:
            order = match_atoms(numbers, positions, card[schema.CONFIG][schema.NUMBERS], card[schema.BONDS])
        except GraphMismatch:
            reasons.append(f"{entry.id}: same formula, different bonds")
            continue
        why_not = serves(card, fine_dt, factor, has_velocities)
        if why_not:
            reasons.append(f"{entry.id}: not for {why_not}")
            continue
        matches.append((entry, order))
    # Prefer the default architecture, then the best validation error.
    def rank(item):
        card = item[0].card
        metric = card.get(schema.VALIDATION, {}).get(schema.POSITION_MAE, np.inf)
        config = card[schema.CONFIG]
        return (config[schema.ARCH] != "lstm" or not config[schema.BIDIRECTIONAL], metric)

    matches.sort(key=rank)
    return matches, reasons


def write_manifest(directory) -> Path:
    """(Re)write ``directory/manifest.json`` listing every model card there (a ``.json``
    next to a ``.safetensors``) with its sha256."""
    directory = Path(directory)
    records = []
    for card_file in sorted(directory.glob("*.json")):
        if card_file.name == MANIFEST or not card_file.with_suffix(".safetensors").is_file():
            continue  # only cards that sit next to their weights
        card = read_card(card_file)
        records.append({"id": card[schema.ID], "card": card_file.name, "sha256": sha256_of(card_file)})
    path = directory / MANIFEST
    temporary = path.with_name(f".{MANIFEST}.partial")
    temporary.write_text(json.dumps({"models": records}, indent=1) + "\n")
    temporary.replace(path)
    return path
