"""Choosing the method for an input: the layer above the registry and the measurements.

:func:`resolve_method` turns a method name (or object) into a ready method and its
provenance.  ``auto`` measures every plugin that suits the input on the input's own
coarse frames (:mod:`mdsr_plugin.selection`) and takes the best.  With too few
frames to measure on (or ``self_validate=False``) the usable plugin of highest
priority is taken, unless what it knows (``Suitability.evidence``, e.g. a
checkpoint's held-out validation) shows the next usable one more accurate; a
classical choice becomes ``linear``, with a warning, when the frames are more than
:data:`~mdsr_plugin.methods.LONG_GAP_FS` apart.

Whatever is chosen, its provenance is what its ``prepare`` returned (a method is
prepared once, with the first chunk), and that is what the output records.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from .methods import LONG_GAP_FS, SELECTORS, MethodError, Provenance, Suitability, _plugin, build_method, method_plugins
from .methods.base import Method
from .selection import MIN_FRAMES, select_method

if TYPE_CHECKING:
    from .settings import UpsampleSettings
    from .trajectory import Trajectory

__all__ = ["resolve_method", "choose_auto"]

log = logging.getLogger(__name__)


def resolve_method(method, first: "Trajectory", factor: int | None,
                   settings: "UpsampleSettings", sample: "Trajectory | None" = None) -> tuple[Method, Provenance]:
    """A ready method for an input, and its provenance.

    Parameters
    ----------
    method : str or Method
        A registered name, ``"auto"`` (the best method for ``first``, learned ones
        included), ``"classical"`` (the best classical one), or a method object.
    first : Trajectory
        The input's first chunk.
    factor : int or None
    settings : UpsampleSettings
        What the method is built with.
    sample : Trajectory, optional
        Coarse frames for ``auto`` to measure the candidates on, instead of ``first``
        (the frames a model learned from the input held out).

    Raises
    ------
    MethodError
        A method that cannot run on this input, with the plugin's reason.
    """
    found = None
    if isinstance(method, str) and method in SELECTORS and settings.self_validate and factor is not None:
        if (first if sample is None else sample).n_frames >= MIN_FRAMES:
            chosen, selection = select_method(first, factor, settings, learned=method == "auto", sample=sample)
            if selection.warning:
                log.warning(selection.warning)
            provenance = selection.provenance
            _warn_of_mismatch(provenance)
            return chosen, replace(provenance, self_validation=selection.as_dict(), estimate=selection.describe())
        too_few = (first if sample is None else sample).n_frames
        (log.info if sample is None else log.warning)(
            "auto: %d coarse frames%s are too few to measure methods on (%d needed); choosing by what the "
            "input carries", too_few, "" if sample is None else " held out from the learning", MIN_FRAMES)
    if isinstance(method, str):
        if method in SELECTORS:
            name, suitability, warning = _choose(first, factor, settings, learned=method == "auto")
            if warning:
                log.warning(warning)
        else:
            name, suitability = method, _plugin(method).suits(first, factor, settings)
            if not suitability.usable:
                raise MethodError(suitability.reason)
        found = suitability.found
        method = build_method(name, settings)
    provenance = _provenance_of(method, first, factor, found)
    _warn_of_mismatch(provenance)
    missing = [q for q in method.requires if getattr(first, q) is None]
    if missing:
        raise MethodError(f"method {method.name!r} needs {' and '.join(missing)}, which the input does not have")
    return method, provenance


def _warn_of_mismatch(provenance: Provenance) -> None:
    """Warn when the method used is a checkpoint whose forces do not fit the input's."""
    check = provenance.force_check
    if check is not None and check.get("mismatch"):
        log.warning(check["warning"])


def _provenance_of(method: Method, first, factor, found) -> Provenance:
    """``method`` prepared for the input (once); the provenance its ``prepare`` returned."""
    if not isinstance(method, Method):
        raise TypeError(f"a method is a subclass of mdsr_plugin.methods.Method, not {type(method).__name__}")
    if factor is None:
        return Provenance(method=method.name)
    return method.prepare(first, factor, found)


def _choose(coarse, factor, settings, learned: bool) -> tuple[str, Suitability, str | None]:
    """Without measuring: the usable plugin of highest priority (see the module docstring),
    and a one-line warning when a classical choice is replaced by ``linear`` because the
    frames are more than :data:`LONG_GAP_FS` apart."""
    usable = []
    for name, plugin in method_plugins().items():
        if plugin.learned and not learned:
            continue
        suitability = plugin.suits(coarse, factor, settings)
        if suitability.usable:
            usable.append((name, suitability))
        else:
            log.debug("auto: not %s: %s", name, suitability.reason)
    if not usable:
        raise MethodError("no method can upsample this input")
    (best, answer), rest = usable[0], usable[1:]
    if rest:
        runner_up = rest[0][0]
        known = answer.evidence
        if best in known and runner_up in known and known[runner_up] < known[best]:
            log.info("auto: %s, more accurate than %s (%s) on its held-out data", runner_up, best, answer.reason)
            best, answer = rest[0]
    gap = coarse.dt if coarse.n_frames > 1 else 0.0
    linear = next((entry for entry in usable if entry[0] == "linear"), None)
    if gap > LONG_GAP_FS and not method_plugins()[best].learned and linear is not None:
        unmeasured = (f"{coarse.n_frames} frames are too few to measure methods on ({MIN_FRAMES} needed)"
                      if settings.self_validate else "self-validation is off")
        return (*linear, f"frames {gap:g} fs apart: too far apart to reconstruct vibrations, and {unmeasured}; "
                f"writing linear interpolation, which cannot overshoot, instead of {best}")
    return best, answer, None


def choose_auto(coarse: "Trajectory", factor: int | None = None) -> str:
    """The name of the method ``auto`` takes for ``coarse`` (learned ones only when ``factor`` is given)."""
    from .settings import UpsampleSettings

    return _choose(coarse, factor, UpsampleSettings(factor=factor or 2), learned=factor is not None)[0]
