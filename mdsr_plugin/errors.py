"""The errors every layer may raise, at the bottom of the package so that any layer can.

A :class:`MethodError` is a method that does not exist or cannot run on the input; a
:class:`SettingsError` is options that contradict each other (a usage error, so
command lines exit 2 on it).  Both are one line that says what to do instead.
Format and trajectory errors live with their layers (:class:`mdsr_plugin.io.FormatError`,
:class:`mdsr_plugin.trajectory.TrajectoryError`), which import nothing above them.
"""

from __future__ import annotations

__all__ = ["MethodError", "SettingsError"]


class MethodError(ValueError):
    """A method that does not exist or cannot run on the given input."""


class SettingsError(MethodError):
    """Options that contradict each other or name nothing that exists (a usage error)."""
