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

One broken folder does not break the others: a manifest that cannot be read, an
entry without ``id``, ``card`` or ``sha256``, a ``card`` that is not a file name in
the manifest's folder, or a card that fails the schema is reported once per process
(a ``logging`` warning naming the manifest and the entry) and skipped by
:func:`list_models` and :func:`find_matching`; :func:`get_model_entry` of such an
entry's id refuses it (:class:`CheckpointError`) with the same line.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import card as schema
from .card import UnknownCheckpoint
from .card import baseline_method, classical_is_better, held_out_position_mae  # noqa: F401  (re-exported)
from ..methods.base import MethodError
from .checkpoint import CheckpointError, card_path, read_card, readable_sha256, sha256_of, verify_checkpoint

__all__ = ["ModelEntry", "registry_dirs", "list_models", "get_model_entry", "find_matching", "serves",
           "CheckpointMatch", "match_checkpoint", "write_manifest", "classical_is_better", "held_out_position_mae", "baseline_method"]

MANIFEST = "manifest.json"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelEntry:
    """A registered checkpoint: its card (read, not yet verified against the weights)."""

    id: str
    card_path: Path
    card_sha256: str
    card: dict


def registry_dirs() -> list[Path]:
    """Directories searched for checkpoints: shipped first, then those named by
    ``MDSR_MODELS_PATH`` (``os.pathsep``-separated)."""
    from importlib import resources

    shipped = Path(str(resources.files("mdsr_plugin._models")))
    return [shipped, *(Path(p) for p in os.environ.get("MDSR_MODELS_PATH", "").split(os.pathsep) if p)]


def _read_manifest(directory: Path) -> tuple[list[ModelEntry], list[tuple[str | None, str]]]:
    """The usable entries of ``directory``'s manifest, and ``(id or None, one line)`` for
    each problem: the whole manifest (id None) or one entry."""
    manifest = directory / MANIFEST
    try:
        if not directory.exists():
            return [], [(None, f"{directory}: no such models folder")]
        if not directory.is_dir():
            return [], [(None, f"{directory}: a file, not a models folder")]
        if not manifest.exists():
            return [], []  # a folder with no registered checkpoints (yet)
        records = json.loads(manifest.read_text(encoding="utf-8"))["models"]
    except OSError as err:
        return [], [(None, f"{manifest}: cannot be read ({err.strerror or err})")]
    except (ValueError, KeyError, TypeError) as err:  # not JSON, not UTF-8, no "models"
        return [], [(None, f"{manifest}: not a valid manifest ({type(err).__name__}: {err})")]
    if not isinstance(records, list):
        return [], [(None, f"{manifest}: not a valid manifest ('models' is not a list)")]
    found = [_entry_of(directory, manifest, k, record) for k, record in enumerate(records)]
    return [e for e in found if isinstance(e, ModelEntry)], [e for e in found if not isinstance(e, ModelEntry)]


def _entry_of(directory: Path, manifest: Path, k: int, record) -> ModelEntry | tuple[str | None, str]:
    """Entry ``k`` of a manifest as a :class:`ModelEntry`, or ``(id or None, why not)``."""
    if not isinstance(record, dict):
        return None, f"{manifest}: entry {k} is not an object"
    model_id = record.get("id")
    if not isinstance(model_id, str) or not model_id:
        return None, f"{manifest}: entry {k} has no 'id'"
    where = f"{manifest}: entry {model_id!r}"
    for key in ("card", "sha256"):
        if not isinstance(record.get(key), str):
            return model_id, f"{where} has no {key!r}" if key not in record else f"{where}: {key!r} is not a string"
    name = record["card"]
    if not name.endswith(".json") or any(c in name for c in ("/", "\\", "\0")) or name == MANIFEST:
        return model_id, f"{where}: card {name!r} is not the name of a model card in this folder"
    try:
        card = read_card(directory / name)
    except CheckpointError as err:
        return model_id, f"{where}: {err}"
    missing = [key for key in (schema.NUMBERS, schema.BONDS) if key not in card]
    if missing:
        return model_id, f"{where}: its model card lacks {missing[0]!r}, which matching atoms needs"
    return ModelEntry(model_id, directory / name, record["sha256"], card)


_REPORTED: set[str] = set()


def _report(message: str) -> None:
    """A skipped folder, entry or card, as a warning once per process (every run lists the
    registry several times)."""
    if message not in _REPORTED:
        _REPORTED.add(message)
        log.warning("%s", message)


def _scan(requested: str | None = None) -> tuple[list[ModelEntry], dict[str, str]]:
    """Usable entries (an id found twice is taken from the first directory) and, by id,
    why each unusable entry was skipped.  Every problem is reported (:func:`_report`)
    except that of an unusable entry of the ``requested`` id, which its caller refuses."""
    first, broken, problems = {}, {}, []  # first: the entry taken for each id
    for directory in registry_dirs():
        found, found_problems = _read_manifest(directory)
        problems += found_problems
        for model_id, problem in found_problems:
            if model_id is not None:
                broken.setdefault(model_id, problem)
        for entry in found:
            taken = first.setdefault(entry.id, entry)
            if taken is not entry and taken.card_path.resolve() != entry.card_path.resolve():
                # the first directory wins (shipped before MDSR_MODELS_PATH): say so, not silently
                _report(f"{entry.card_path}: its id {entry.id!r} is also {taken.card_path}'s, which is used; give "
                        f"this one by its path (--model {entry.card_path}) or give it another id")
    broken = {k: v for k, v in broken.items() if k not in first}
    for model_id, problem in problems:
        if model_id is None or model_id != requested or broken.get(model_id) != problem:
            _report(f"{problem}; skipping it")
    return list(first.values()), broken


def list_models() -> list[ModelEntry]:
    """Every usable registered checkpoint; an id found twice is taken from the first directory.

    A manifest or entry that cannot be used is reported as a warning (once) and skipped.
    """
    return _scan()[0]


def get_model_entry(id_or_path) -> ModelEntry:
    """A registered checkpoint by id, or a checkpoint file given by path (card or weights).

    Raises
    ------
    CheckpointError
        No such checkpoint, a registered entry of that id that cannot be used (the
        manifest and entry named), or a card file that fails the schema.
    """
    entries, broken = _scan(requested=str(id_or_path))
    for entry in entries:
        if entry.id == str(id_or_path):
            return entry
    if str(id_or_path) in broken:
        raise CheckpointError(broken[str(id_or_path)])
    card_file = card_path(id_or_path)
    if card_file.is_file():
        card = read_card(card_file)
        return ModelEntry(card[schema.ID], card_file, readable_sha256(card_file), card)
    known = ", ".join(e.id for e in entries) or "none"
    raise UnknownCheckpoint(f"no checkpoint {str(id_or_path)!r}; registered: {known}")


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

    A checkpoint that fits but that loading would refuse (:func:`verify_checkpoint`:
    a card or weights altered after their hashes were recorded, weights that are not
    safetensors) is reported as a warning and left out.

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
        try:  # a checkpoint that loading would refuse is not offered (hashes, weights format)
            verify_checkpoint(entry.card_path, expected_card_sha256=entry.card_sha256)
        except CheckpointError as err:
            why = str(err).removesuffix("; refusing it")
            _report(f"checkpoint {entry.id}: {why}; skipping it")
            reasons.append(f"{entry.id}: refused ({why})")
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


def check_manifest_is_ours(directory) -> None:
    """Raise :class:`CheckpointError` where ``directory/manifest.json`` exists and is not a
    registry manifest (a dataset's, a project's): :func:`write_manifest` would replace it."""
    path = Path(directory) / MANIFEST
    if not path.exists():
        return
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        content = None
    if not (isinstance(content, dict) and isinstance(content.get("models"), list)):
        raise CheckpointError(f"{path}: a {MANIFEST} that is not a checkpoint registry's is in the output folder, "
                              "and writing the checkpoint would replace it; give another folder")


def write_manifest(directory) -> Path:
    """(Re)write ``directory/manifest.json`` listing every model card there (a ``.json``
    next to a ``.safetensors``) with its sha256; a ``manifest.json`` of something else is
    refused (:func:`check_manifest_is_ours`), not replaced."""
    from ..io.atomic import write_text_atomically

    directory = Path(directory)
    check_manifest_is_ours(directory)
    records = []
    for card_file in sorted(directory.glob("*.json")):
        if card_file.name == MANIFEST or not card_file.with_suffix(".safetensors").is_file():
            continue  # only cards that sit next to their weights
        try:
            card = read_card(card_file)
        except CheckpointError as err:  # someone else's broken card does not stop this folder's manifest
            _report(f"{err}; not registering it")
            continue
        records.append({"id": card[schema.ID], "card": card_file.name, "sha256": sha256_of(card_file)})
    return write_text_atomically(directory / MANIFEST, json.dumps({"models": records}, indent=1) + "\n")


# ---------------------------------------------------------------- matching an input
@dataclass(frozen=True)
class CheckpointMatch:
    """A registered checkpoint that serves an input, and how the input's atoms map onto it.

    Attributes
    ----------
    entry : ModelEntry
    order : ndarray, shape (n_atoms,), int
        ``input_positions[:, order]`` lists the atoms in the checkpoint's order.
    """

    entry: object
    order: np.ndarray


def _formula(numbers) -> str:
    from collections import Counter

    from ..elements import symbols_of

    counts = Counter(symbols_of(numbers))
    return "".join(f"{el}{counts[el] if counts[el] > 1 else ''}" for el in sorted(counts))


def match_checkpoint(coarse, factor: int, model: str | None = None) -> CheckpointMatch:
    """The checkpoint for ``coarse`` at ``factor``: ``model`` if given, else the registry's best.

    Raises
    ------
    MethodError
        No checkpoint fits (one line: why, and what to do instead).
    CheckpointError
        ``model`` names no checkpoint.
    """
    from ..molecule import GraphMismatch, match_atoms

    if coarse.n_frames < 2:
        raise MethodError("the neural method needs two frames to know the time step")
    fine_dt = coarse.dt / factor
    has_velocities = coarse.has_velocities
    if model is not None:
        entry = get_model_entry(model)
        why_not = serves(entry.card, fine_dt, factor, has_velocities)
        if why_not:
            raise MethodError(f"checkpoint {entry.id} is not for {why_not}")
        if entry.card[schema.CONFIG][schema.ARCH] == schema.LOCAL_ARCH:
            return _match_box(entry, coarse)
        try:
            order = match_atoms(coarse.numbers, coarse.positions[0], entry.card["config"]["numbers"],
                                entry.card["bonds"])
        except GraphMismatch as err:
            raise MethodError(f"checkpoint {entry.id}: {err}") from None
        return CheckpointMatch(entry, order)
    matches, _ = find_matching(coarse.numbers, coarse.positions[0], fine_dt, factor, has_velocities)
    if not matches:
        available = ", ".join(e.id for e in list_models()) or "none"
        raise MethodError(
            f"no checkpoint fits {_formula(coarse.numbers)} at factor {factor} "
            f"({coarse.dt:g} fs -> {fine_dt:g} fs, {'with' if has_velocities else 'without'} velocities); "
            f"available: {available}; use --method hermite or spline, or train one with mdsr-train"
        )
    return CheckpointMatch(*matches[0])


def _match_box(entry, coarse) -> CheckpointMatch:
    """A periodic box's integrator serves any box of its elements, atoms in any order."""
    if not coarse.is_periodic:
        raise MethodError(f"checkpoint {entry.id} is a periodic box's integrator; this input has no cell")
    known = set(entry.card[schema.CONFIG][schema.ELEMENTS])
    unknown = sorted({int(z) for z in coarse.numbers} - known)
    if unknown:
        raise MethodError(f"checkpoint {entry.id} knows elements {sorted(known)}, not {unknown}")
    return CheckpointMatch(entry, np.arange(coarse.n_atoms))
