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

Choosing among them (``auto``) is :mod:`mdsr_plugin.resolve`'s job, a layer above
this registry and the measuring code of :mod:`mdsr_plugin.selection`.
"""

from __future__ import annotations

import logging
import warnings
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from .base import FineFrames, Method, MethodError, MethodPlugin, Provenance, Suitability

if TYPE_CHECKING:
    from ..settings import UpsampleSettings

__all__ = [
    "FineFrames", "Method", "MethodError", "MethodPlugin", "Provenance", "Suitability",
    "register_method", "unregister_method", "method_plugins", "available_methods", "get_method",
    "build_method", "checked_settings", "ENTRY_POINT_GROUP", "SELECTORS", "LONG_GAP_FS",
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

    if settings is None:
        settings = UpsampleSettings.from_options(options.pop("factor", 2), name, **options)
    return build_method(name, settings)


def build_method(name: str, settings: "UpsampleSettings") -> Method:
    """The plugin ``name``'s method for ``settings``; a factory that returns anything but a
    :class:`~mdsr_plugin.methods.base.Method` is refused in one line."""
    method = _plugin(name).factory(settings.with_method(name))
    if not isinstance(method, Method):
        raise MethodError(f"method plugin {name!r} built a {type(method).__name__}, not a subclass of "
                          "mdsr_plugin.methods.Method")
    return method


def checked_settings(settings: "UpsampleSettings") -> "UpsampleSettings":
    """``settings.checked()`` with its method one of the registry's (or ``auto``/``classical``).

    Raises
    ------
    SettingsError
        One line naming the offending option.
    """
    return settings.checked(sorted(method_plugins()))
