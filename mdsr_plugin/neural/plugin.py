"""The learned methods' registry records: which checkpoint fits an input, without torch.

:data:`NEURAL` is the entry point ``neural`` of the group ``mdsr_plugin.methods``: a
registered checkpoint.  :data:`ADAPTED` is ``adapted``: the checkpoint learned from
the input's own coarse frames (``UpsampleSettings.adapt``), a separate candidate so
that ``auto`` measures it against the registry's.
Answering whether the method suits an input reads only the registry's cards
(JSON) and matches the molecular graph; the network is built and its weights
loaded once chosen, from the match found here, by
:class:`~mdsr_plugin.neural.upsampler.LearnedUpsampler` (molecule or periodic box alike).
"""

from __future__ import annotations

from ..methods.base import MethodError, MethodPlugin, Suitability
from .card import held_out_means
from .registry import match_checkpoint

__all__ = ["NEURAL", "ADAPTED", "adapted_card"]


def _suits(coarse, factor, settings) -> Suitability:
    if factor is None:
        return Suitability(False, "the neural method needs the factor")
    if coarse.n_atoms < 2:
        return Suitability(False, "the neural method needs a molecule (two atoms or more)")
    try:
        match = match_checkpoint(coarse, factor, settings.model)
    except MethodError as err:
        return Suitability(False, str(err))
    return Suitability(True, match.entry.id, held_out_means(match.entry.card, factor, coarse.has_velocities),
                       found=match)


def _upsampler(model, settings, name: str):
    """The method running checkpoint ``model`` (id or path; None: the registry's best fit),
    recorded as ``name``; whether it is a molecule's or a periodic box's is the checkpoint's."""
    from .upsampler import LearnedUpsampler  # torch is imported only when the method runs

    return LearnedUpsampler(model=model, device=settings.device, batch_gaps=settings.batch_gaps,
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
