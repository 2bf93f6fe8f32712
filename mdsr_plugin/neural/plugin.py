"""The learned methods' registry records: which checkpoint fits an input, without torch.

:data:`NEURAL` is the entry point ``neural`` of the group ``mdsr_plugin.methods``: a
registered checkpoint.  :data:`ADAPTED` is ``adapted``: the checkpoint learned from
the input's own coarse frames (``UpsampleSettings.adapt``), a separate candidate so
that ``auto`` measures it against the registry's.
Answering whether the method suits an input reads only the registry's cards
(JSON) and matches the molecular graph; the network is built and its weights
loaded once chosen, from the match found here, by
:class:`~mdsr_plugin.neural.upsampler.NeuralUpsampler` or, for a periodic box's
checkpoint, :class:`~mdsr_plugin.neural.box_upsampler.BoxUpsampler` (one protocol,
:class:`~mdsr_plugin.neural.upsampler.CheckpointMethod`, for both).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..methods.base import MethodError, MethodPlugin, Suitability
from . import card as schema


__all__ = ["NEURAL", "ADAPTED", "CheckpointMatch", "match_checkpoint", "held_out_evidence", "adapted_card"]


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
    from .geometry import GraphMismatch, match_atoms
    from .registry import find_matching, get_model_entry, list_models, serves

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


def held_out_evidence(card: dict, factor: int, has_velocities: bool) -> dict:
    """Mean held-out position MAE (Å) of every method in the card's validation rows at
    ``factor`` for this input mode (``validation.held_out.rows``); empty without rows."""
    rows = card.get("validation", {}).get("held_out", {}).get("rows", [])
    mode = "velocities" if has_velocities else "positions"
    errors = {}
    for row in rows:
        if row["factor"] == factor and row["mode"] == mode:
            errors.setdefault(row["method"], []).append(row["position_mae"])
    return {method: sum(values) / len(values) for method, values in errors.items()}


def _suits(coarse, factor, settings) -> Suitability:
    if factor is None:
        return Suitability(False, "the neural method needs the factor")
    if coarse.n_atoms < 2:
        return Suitability(False, "the neural method needs a molecule (two atoms or more)")
    try:
        match = match_checkpoint(coarse, factor, settings.model)
    except MethodError as err:
        return Suitability(False, str(err))
    return Suitability(True, match.entry.id, held_out_evidence(match.entry.card, factor, coarse.has_velocities),
                       found=match)


def _upsampler(model, settings, name: str):
    """The method running checkpoint ``model`` (id or path; None: the registry's best fit),
    recorded as ``name``: a periodic box's integrator or a molecule's."""
    from .box_upsampler import BoxUpsampler, is_box_card
    from .upsampler import NeuralUpsampler  # torch is imported only when the method runs

    kind = BoxUpsampler if is_box_card(model) else NeuralUpsampler
    return kind(model=model, device=settings.device, batch_gaps=settings.batch_gaps,
                precision=settings.precision, name=name)


def _build(settings):
    return _upsampler(settings.model, settings, "neural")


def adapted_card(settings):
    """The card path of the checkpoint learned from the input (``settings.adapt``), or None."""
    from .checkpoint import card_path

    return None if settings.adapt is None else card_path(settings.adapt)


def _suits_adapted(coarse, factor, settings) -> Suitability:
    card = adapted_card(settings)
    if card is None:
        return Suitability(False, "no checkpoint learned from the input (mdsr-upsample --adapt)")
    if not card.exists():
        return Suitability(False, f"{card.name} has not been learned yet")
    if factor is None:
        return Suitability(False, "the adapted method needs the factor")
    try:
        match = match_checkpoint(coarse, factor, str(card))
    except MethodError as err:
        return Suitability(False, str(err))
    return Suitability(True, match.entry.id, found=match)


def _build_adapted(settings):
    return _upsampler(str(adapted_card(settings)), settings, "adapted")


NEURAL = MethodPlugin(
    name="neural",
    description="bi-directional learned integrator from a pretrained checkpoint",
    factory=_build,
    suits=_suits,
    priority=100,
    learned=True,
)


ADAPTED = MethodPlugin(
    name="adapted",
    description="bi-directional learned integrator learned from the input's own coarse frames (--adapt)",
    factory=_build_adapted,
    suits=_suits_adapted,
    # Above the registry's: learned on the user's own Hamiltonian, it wins a tie.
    priority=110,
    learned=True,
)
