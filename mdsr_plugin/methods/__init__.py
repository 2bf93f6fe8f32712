"""Upsampling methods: one registry of plugins, filled from entry points.

A method is a :class:`~mdsr_plugin.methods.base.MethodPlugin` (see
:mod:`mdsr_plugin.methods.base` for the protocol and a worked example).  The
registry imports no method: the built-in ones (``linear``, ``spline``,
``hermite``, ``quintic`` in :mod:`.classical`, ``neural`` in
:mod:`mdsr_plugin.neural.plugin`) are entry points of the group
``mdsr_plugin.methods`` declared in ``pyproject.toml``, exactly as a third-party
package would declare its own, and are loaded the first time the registry is
asked.  :func:`register_method` adds one at run time (duplicates are refused;
:func:`unregister_method` undoes it).

``auto`` (:func:`resolve_method`) measures every plugin that suits the input on
the input's own coarse frames (:mod:`mdsr_plugin.selection`) and takes the best.
With too few frames to measure on (or ``self_validate=False``) the usable plugin
of highest priority is taken, unless what it knows (``Suitability.evidence``,
e.g. a checkpoint's held-out validation) shows the next usable one more accurate;
a classical choice becomes ``linear``, with a warning, when the frames are more than
:data:`LONG_GAP_FS` apart.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import replace
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from .base import FineFrames, Method, MethodError, MethodPlugin, Provenance, Suitability

if TYPE_CHECKING:
    from ..settings import UpsampleSettings
    from ..trajectory import Trajectory

__all__ = [
    "FineFrames", "Method", "MethodError", "MethodPlugin", "Provenance", "Suitability",
    "register_method", "unregister_method", "method_plugins", "available_methods", "get_method",
    "resolve_method", "choose_auto", "ENTRY_POINT_GROUP", "SELECTORS", "LONG_GAP_FS",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "mdsr_plugin.methods"
SELECTORS = ("auto", "classical")  # names that choose a method rather than name one
#: fs: beyond this coarse step, without measuring on the input (too few frames, or
#: ``self_validate=False``), ``auto`` writes ``linear`` instead of a classical method of
#: higher order: the fastest vibrations (X–H stretches, ~10 fs; heavy-atom bonds 20-35 fs)
#: are then unresolved, and an interpolant through stored velocities and forces
#: extrapolates them across the whole gap (quintic Hermite put atoms 1.2e6 Å away on
#: 50 ps frames).  Elements are not consulted: a topology can give them wrong.
LONG_GAP_FS = 25.0

_PLUGINS: dict[str, MethodPlugin] = {}
_entry_points_loaded = False


def register_method(plugin: MethodPlugin) -> None:
    """Add ``plugin`` to the registry; a name already taken (or ``auto``/``classical``) is refused."""
    _load_entry_points()
    _add(plugin)


def _add(plugin: MethodPlugin) -> None:
    if not isinstance(plugin, MethodPlugin):
        raise TypeError(f"register_method takes a MethodPlugin, got {type(plugin).__name__}")
    if plugin.name in _PLUGINS or plugin.name in SELECTORS:
        raise ValueError(f"method {plugin.name!r} is already registered")
    _PLUGINS[plugin.name] = plugin


def unregister_method(name: str) -> None:
    """Remove a method added by :func:`register_method`."""
    _PLUGINS.pop(name, None)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            plugin = point.load()
            if not isinstance(plugin, MethodPlugin) or plugin.name != point.name:
                raise TypeError(f"{point.value} is not a MethodPlugin named {point.name!r}")
            _add(plugin)
        except Exception as err:  # noqa: BLE001  one broken third-party plugin must not disable the rest
            warnings.warn(f"mdsr_plugin: method plugin {point.name!r} ({point.value}) not loaded: {err}",
                          stacklevel=3)
    if not _PLUGINS:
        raise MethodError("no upsampling method is registered: is mdsr_plugin installed (pip install -e .)?")


def method_plugins() -> dict[str, MethodPlugin]:
    """Every registered plugin by name, highest priority first."""
    _load_entry_points()
    return dict(sorted(_PLUGINS.items(), key=lambda item: -item[1].priority))


def available_methods() -> dict[str, str]:
    """Registered method names and one-line descriptions."""
    return {name: plugin.description for name, plugin in method_plugins().items()}


def _plugin(name: str) -> MethodPlugin:
    try:
        return method_plugins()[name]
    except KeyError:
        raise MethodError(
            f"unknown method {name!r}; available: auto, classical, {', '.join(sorted(_PLUGINS))}"
        ) from None


def get_method(name: str, settings: "UpsampleSettings | None" = None, **options) -> Method:
    """Build the method called ``name`` from ``settings`` (or from keyword options)."""
    from ..settings import UpsampleSettings

    plugin = _plugin(name)
    if settings is None:
        settings = UpsampleSettings.from_options(options.pop("factor", 2), name, **options)
    return plugin.factory(settings.with_method(name))


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
        from ..selection import MIN_FRAMES, select_method

        if (first if sample is None else sample).n_frames >= MIN_FRAMES:
            chosen, selection = select_method(first, factor, settings, learned=method == "auto", sample=sample)
            if selection.warning:
                log.warning(selection.warning)
            provenance = _provenance_of(chosen, first, factor, None, prepared=True)
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
        method = _plugin(name).factory(settings.with_method(name))
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


def _provenance_of(method, first, factor, found, prepared=False) -> Provenance:
    """Prepare ``method`` for the input when it needs to; its provenance."""
    if not hasattr(method, "prepare") or factor is None:
        return Provenance(method=method.name)
    if prepared:
        return method.provenance(fitted_velocities=not first.has_velocities)
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
        unmeasured = (f"{coarse.n_frames} frames are too few to measure methods on ({_min_frames()} needed)"
                      if settings.self_validate else "self-validation is off")
        return (*linear, f"frames {gap:g} fs apart: too far apart to reconstruct vibrations, and {unmeasured}; "
                f"writing linear interpolation, which cannot overshoot, instead of {best}")
    return best, answer, None


def _min_frames() -> int:
    from ..selection import MIN_FRAMES

    return MIN_FRAMES


def choose_auto(coarse: "Trajectory", factor: int | None = None) -> str:
    """The name of the method ``auto`` takes for ``coarse`` (learned ones only when ``factor`` is given)."""
    from ..settings import UpsampleSettings

    return _choose(coarse, factor, UpsampleSettings(factor=factor or 2), learned=factor is not None)[0]
