"""Upsampling methods: one registry of named interpolators.

A method turns a short run of consecutive coarse frames into the fine frames
between them.  It is an object with

``name`` : str
``requires`` : tuple of str
    Coarse quantities it needs besides positions (``"velocities"``, ``"forces"``).
``context`` : int
    Coarse frames it reads on each side of a gap beyond the gap's two ends
    (0 for Hermite interpolation, more for splines and recurrent models).
``block_gaps`` : int
    How many gaps the streaming driver hands it at once (its batch size).
``interpolate(coarse, factor)`` : returns :class:`FineFrames`
    Positions and velocities of shape ``((n_coarse - 1) * factor + 1, n_atoms, 3)``
    in Å and Å/fs on the fine time grid of the (unwrapped) ``coarse`` trajectory,
    plus optional per-fine-frame values (e.g. an uncertainty).

:func:`mdsr_plugin.pipeline.upsample_stream` does everything else: streaming,
periodic unwrapping, exact coarse frames, times and output assembly.  To add a
method (the neural upsampler plugs in here), implement the four members above
and call :func:`register_method` with a factory ``(**options) -> method``.
"""

from __future__ import annotations

import logging
from typing import Callable, NamedTuple

import numpy as np

from ..trajectory import Trajectory

__all__ = ["FineFrames", "register_method", "get_method", "available_methods", "choose_auto", "MethodError"]

log = logging.getLogger(__name__)


class FineFrames(NamedTuple):
    """What a method returns for a run of coarse frames.

    Attributes
    ----------
    positions : ndarray, shape (n_fine, n_atoms, 3), Å
    velocities : ndarray, shape (n_fine, n_atoms, 3), Å/fs
    frame_data : dict of str to ndarray, shape (n_fine, ...)
        Extra per-frame values written alongside (e.g. ``"disagreement"``).
    """

    positions: np.ndarray
    velocities: np.ndarray
    frame_data: dict = {}


class MethodError(ValueError):
    """A method that does not exist or cannot run on the given input."""


_METHODS: dict[str, Callable] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_method(name: str, factory: Callable, description: str = "") -> None:
    """Register ``factory(**options) -> method`` under ``name``; duplicates are refused."""
    if name in _METHODS or name == "auto":
        raise ValueError(f"method {name!r} is already registered")
    _METHODS[name] = factory
    _DESCRIPTIONS[name] = description


def available_methods() -> dict[str, str]:
    """Registered method names and one-line descriptions."""
    return dict(_DESCRIPTIONS)


def choose_auto(coarse: Trajectory, factor: int | None = None) -> str:
    """The best method the input supports.

    The neural method when a registered checkpoint fits the molecule, the time step
    and ``factor`` — unless the checkpoint's own held-out validation at this factor
    and input shows the best classical method more accurate on average (quintic
    Hermite from frames with forces can be, at short gaps); otherwise the best
    classical one: quintic Hermite with velocities and forces, cubic Hermite with
    velocities, the cubic spline otherwise.
    """
    classical = _best_classical(coarse)
    if factor is not None and coarse.n_frames > 1 and coarse.n_atoms > 1:
        from ..neural.registry import classical_is_better, find_matching

        matches, _ = find_matching(coarse.numbers, coarse.positions[0], coarse.dt / factor, factor,
                                   coarse.has_velocities)
        if matches:
            card = matches[0][0].card
            if not classical_is_better(card, factor, coarse.has_velocities, classical):
                return "neural"
            log.info("auto: %s, more accurate than checkpoint %s at factor %d on its held-out data",
                     classical, card["id"], factor)
    return classical


def _best_classical(coarse: Trajectory) -> str:
    """Quintic Hermite with velocities and forces, cubic Hermite with velocities, else the spline."""
    if coarse.has_velocities and coarse.has_forces:
        return "quintic"
    if coarse.has_velocities:
        return "hermite"
    return "spline"


def get_method(name: str, **options):
    """Instantiate the method called ``name``."""
    try:
        factory = _METHODS[name]
    except KeyError:
        raise MethodError(
            f"unknown method {name!r}; available: auto, {', '.join(sorted(_METHODS))}"
        ) from None
    return factory(**options)


def _neural(**options):
    from ..neural.upsampler import NeuralUpsampler  # imports torch only when used

    return NeuralUpsampler(**options)


def _register_builtins():
    from . import classical

    for cls in classical.CLASSICAL_METHODS:
        register_method(cls.name, cls, cls.description)
    register_method("neural", _neural, "bi-directional learned integrator from a pretrained checkpoint")


_register_builtins()
