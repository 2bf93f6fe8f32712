"""Periodic boundaries: unwrap coarse frames before interpolating, re-wrap the output.

An atom that crosses a cell face between two coarse frames appears on the other
side of the box in the file.  Interpolating those raw coordinates would fly it
across the box, so every coarse frame is first unwrapped: the displacement from
the previous frame is taken in fractional coordinates to its minimum image
along each periodic axis, and accumulated.  This assumes no atom moves more than
half a cell vector between coarse frames (true for any sensible MD output).

The output keeps the input's convention: a gap whose two coarse frames are both
wrapped (every atom inside the cell) has its fine frames wrapped too; otherwise
the continuous (unwrapped) coordinates are written, which equal the input's at
the coarse frames.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Unwrapper", "is_wrapped", "unwrapped_positions", "wrap_positions", "to_fractional", "to_cartesian"]

_WRAP_TOLERANCE = 1e-6  # fractional; files round coordinates


def to_fractional(positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Fractional coordinates, shape (F, N, 3), of ``positions`` (F, N, 3) Å in ``cell`` (F, 3, 3) Å."""
    return np.linalg.solve(np.swapaxes(cell, 1, 2), np.swapaxes(positions, 1, 2)).swapaxes(1, 2)


def to_cartesian(fractional: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Cartesian positions (F, N, 3) Å from fractional (F, N, 3) and ``cell`` (F, 3, 3) Å."""
    return np.einsum("fni,fij->fnj", fractional, cell)


def is_wrapped(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Whether every atom of each frame lies inside the cell along its periodic axes.

    Returns
    -------
    ndarray, shape (F,), bool
    """
    frac = to_fractional(positions, cell)[..., pbc]
    inside = (frac >= -_WRAP_TOLERANCE) & (frac < 1 + _WRAP_TOLERANCE)
    return inside.reshape(len(positions), -1).all(axis=1)


def wrap_positions(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Positions (F, N, 3) Å moved into the cell along the periodic axes."""
    frac = to_fractional(positions, cell)
    frac[..., pbc] %= 1.0
    return to_cartesian(frac, cell)


def unwrapped_positions(traj) -> np.ndarray:
    """Positions (F, N, 3), Å, of a whole periodic trajectory, each frame continuing the last."""
    return Unwrapper(traj.pbc)(traj.positions, traj.cell)


class Unwrapper:
    """Stateful unwrapping of consecutive chunks of one trajectory.

    Feeding a trajectory in any chunking gives bit-identical results, because each
    frame's unwrapped fractional position is the previous one's plus a minimum-image
    step, accumulated in the same order.
    """

    def __init__(self, pbc: np.ndarray):
        self.pbc = np.asarray(pbc, dtype=bool)
        self._last_frac = None  # (N, 3) raw fractional position of the previous frame
        self._last_unwrapped = None  # (N, 3) its unwrapped fractional position

    def __call__(self, positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
        """Unwrapped positions (F, N, 3) Å of the next ``positions`` (F, N, 3) Å in ``cell`` (F, 3, 3)."""
        frac = to_fractional(positions, cell)
        if self._last_frac is None:
            previous_raw, previous_unwrapped = frac[0], frac[0]
        else:
            previous_raw, previous_unwrapped = self._last_frac, self._last_unwrapped
        steps = np.diff(np.concatenate([previous_raw[None], frac]), axis=0)
        steps[..., self.pbc] -= np.round(steps[..., self.pbc])
        unwrapped = np.cumsum(np.concatenate([previous_unwrapped[None], steps]), axis=0)[1:]
        self._last_frac, self._last_unwrapped = frac[-1], unwrapped[-1]
        return to_cartesian(unwrapped, cell)
