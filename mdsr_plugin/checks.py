"""Physical checks on coarse input that a file's syntax cannot catch.

A trajectory can be well-formed and still wrong: a time step off by a factor of a
thousand (``--dt`` in ps, velocities read in the wrong units), or frames so far apart
that an atom crosses more than half the box between them, which the minimum-image
unwrapping (:mod:`mdsr_plugin.periodic`) then runs backwards across the box.  Stored
velocities tell both: over one coarse step ``dt`` an atom moves about
``(v0 + v1) / 2 · dt`` while the gap is short compared with its vibrations.
"""

from __future__ import annotations

import warnings

import numpy as np

from .periodic import to_fractional
from .trajectory import Trajectory, TrajectoryError

__all__ = ["step_velocity_ratio", "check_step_against_velocities", "BoxJumpCheck",
           "RATIO_TOO_SMALL", "RATIO_TOO_LARGE"]

#: Median |Δx| / |v̄·dt| beyond these bounds is no MD step: on real runs it is ≈ 1 at short
#: gaps and falls towards ~0.02 at picosecond gaps of a solid or liquid (atoms oscillate);
#: ≥ 5 would mean atoms moving five times faster than their velocities say.
RATIO_TOO_SMALL = 3e-3
RATIO_TOO_LARGE = 5.0

#: Below this median relative misprediction the gap is short enough for the velocities
#: to predict each atom's displacement (the ballistic regime), so a disagreement with
#: the minimum image is trusted.
_BALLISTIC = 0.5


def _mean_velocity_step(frames: Trajectory, dt: float) -> np.ndarray:
    """(F-1, N, 3) Å: what the stored velocities predict each atom moves over each gap."""
    v = frames.velocities
    return 0.5 * (v[1:] + v[:-1]) * dt


def step_velocity_ratio(frames: Trajectory, dt: float | None = None) -> float | None:
    """Median over atoms and gaps of |Δx| / |v̄·dt| (Δx the minimum-image displacement, Å).

    Parameters
    ----------
    frames : Trajectory
        At least two frames, with velocities (Å/fs).
    dt : float, optional
        The step to test, fs (default: the frames' own).

    Returns
    -------
    float or None
        ≈ 1 for a short, consistent step; None without velocities, or when the atoms are still.
    """
    if frames.velocities is None or frames.n_frames < 2:
        return None
    dt = frames.dt if dt is None else dt
    moved = np.linalg.norm(_displacements(frames), axis=-1)
    predicted = np.linalg.norm(_mean_velocity_step(frames, dt), axis=-1)
    usable = predicted > 1e-12
    if not usable.any():
        return None
    return float(np.median(moved[usable] / predicted[usable]))


def check_step_against_velocities(frames: Trajectory, dt: float | None = None, what: str = "the time step") -> None:
    """Raise :class:`TrajectoryError` if ``dt`` (fs) and the stored velocities contradict each other."""
    ratio = step_velocity_ratio(frames, dt)
    if ratio is None:
        return
    dt = frames.dt if dt is None else dt
    if ratio > RATIO_TOO_LARGE:
        raise TrajectoryError(
            f"{what} ({dt:g} fs) and the stored velocities disagree: atoms move {ratio:.3g}× farther between "
            "frames than their velocities carry them in that time; the step is too short or the velocities "
            "are in the wrong units (give --dt in fs)")
    if ratio < RATIO_TOO_SMALL:
        raise TrajectoryError(
            f"{what} ({dt:g} fs) and the stored velocities disagree: the velocities would carry the atoms "
            f"{1 / ratio:.3g}× farther than they move between frames; the step is too long or the velocities "
            "are in the wrong units (give --dt in fs)")


def _displacements(frames: Trajectory) -> np.ndarray:
    """(F-1, N, 3) Å, the minimum image along periodic axes."""
    step = np.diff(frames.positions, axis=0)
    if not frames.is_periodic:
        return step
    frac = to_fractional(step, frames.cell[1:])
    frac[..., frames.pbc] -= np.round(frac[..., frames.pbc])
    return np.einsum("fni,fij->fnj", frac, frames.cell[1:])


#: A gap across which the atoms (their median) move this many times farther than their
#: stored velocities carry them, and more than :data:`JUMP_DISTANCE`, joins two runs: a
#: restart appended with another origin, a molecule re-centred.  Whole runs sit near 1 (the
#: median bound of :func:`check_step_against_velocities` is 5).
JUMP_RATIO = 20.0
JUMP_DISTANCE = 1.0  # Å


class BoxJumpCheck:
    """Refuse input whose stored velocities contradict a gap, checked over consecutive chunks:
    a gap across which the atoms jump (:data:`JUMP_RATIO`: the whole trajectory's median
    misses one such gap), and, for a periodic box, an atom whose velocity carries it across a
    different periodic image than the minimum image (more than half a box between frames).
    """

    def __init__(self):
        self._last: Trajectory | None = None
        self._frame = 0

    def __call__(self, chunk: Trajectory) -> None:
        """Check the gaps inside ``chunk`` and the one joining it to the previous chunk."""
        if chunk.velocities is None:
            return
        frames = chunk if self._last is None else _joined(self._last, chunk)
        first = self._frame - (self._last is not None)
        self._last, self._frame = chunk[-1], self._frame + chunk.n_frames
        if frames.n_frames < 2:
            return
        dt = float(frames.times[1] - frames.times[0])
        predicted = _mean_velocity_step(frames, dt)
        moved = _displacements(frames)
        _refuse_jumps(np.linalg.norm(moved, axis=-1), np.linalg.norm(predicted, axis=-1), first)
        if not chunk.is_periodic:
            return
        length = np.linalg.norm(predicted, axis=-1)
        moving = length > 1e-12
        miss = np.linalg.norm(moved - predicted, axis=-1)[moving] / length[moving]
        if not moving.any() or np.median(miss) > _BALLISTIC:  # velocities do not predict these gaps
            return
        # The image the velocity points to, against the minimum image, in cell units.
        shift = np.round(to_fractional(predicted - moved, frames.cell[1:]))[..., frames.pbc]
        jumped = np.abs(shift).reshape(len(shift), -1).max(axis=1) > 0
        if jumped.any():
            gap = int(np.argmax(jumped))
            atom = int(np.argmax(np.abs(shift[gap]).max(axis=-1)))
            distance = float(np.linalg.norm(predicted[gap, atom]))
            raise TrajectoryError(
                f"frame {first + gap + 1}: atom {atom} moves {distance:.3g} Å by its stored velocity, more than "
                "half the box in one coarse step, so its periodic image is ambiguous; store frames more often")


def _refuse_jumps(moved: np.ndarray, predicted: np.ndarray, first: int) -> None:
    """Refuse the first gap (rows of ``moved`` and ``predicted``, (G, N) Å) across which the
    atoms' median displacement is over :data:`JUMP_DISTANCE` and :data:`JUMP_RATIO` times
    what their velocities predict; gap ``g`` ends at frame ``first + g + 1``."""
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a gap whose atoms all stand still: no ratio
        ratio = np.nanmedian(np.where(predicted > 1e-12, moved / predicted, np.nan), axis=1)
    distance = np.median(moved, axis=1)
    jumped = (np.nan_to_num(ratio) > JUMP_RATIO) & (distance > JUMP_DISTANCE)
    if jumped.any():
        gap = int(np.argmax(jumped))
        raise TrajectoryError(
            f"frame {first + gap + 1}: the atoms move {distance[gap]:.3g} Å from the frame before, {ratio[gap]:.3g}× "
            "farther than their stored velocities carry them: two runs joined here (a restart, a re-centred "
            "molecule)? upsample the parts separately")


def _joined(last: Trajectory, chunk: Trajectory) -> Trajectory:
    from .trajectory import concatenate

    return concatenate([last.without("forces"), chunk.without("forces")])


# --- Fine output: the envelope of the coarse frames --------------------------------------
#
# Over a gap longer than its vibrations' period an interpolant that extrapolates the
# stored velocities and forces across the whole gap (cubic and quintic Hermite) puts
# atoms hundreds of Å away (quintic Hermite on 1 ps AMBER frames: 391 Å in a 28 Å box;
# on 50 ps GROMACS frames: 1.2e6 Å).  Checked on every block the driver emits
# (``pipeline.emit_block``), this refuses such output before a writer sees it; ``auto``
# runs each candidate at the input's own gap on the frames it measures on, through the
# same driver, and passes over one that leaves the envelope there.

#: How far (Å) a fine position may lie outside the box spanned by its gap's two coarse
#: positions.  Thermal vibrations take an atom a few tenths of an Å off the straight
#: line: quintic Hermite goes 0.4 Å outside at 20 fs gaps (ethanol and glycine at 400 K),
#: 1.4 Å at 40 fs and 4.7 Å at 80 fs, where it is already less accurate than linear
#: interpolation; the cubic spline 2.7 Å on 50 ps protein frames.  Not the distance the
#: stored velocities carry an atom over the gap: at 100 ps gaps that is ~1000 Å, which
#: would pass anything.
ENVELOPE_MARGIN = 5.0


def check_fine_envelope(fine_positions, coarse_positions, factor: int, *, method="the method",
                        first_gap: int = 0) -> None:
    """Raise :class:`TrajectoryError` if a fine position leaves its gap's envelope.

    The envelope of a gap is the axis-aligned box spanned by the atom's two coarse
    positions at its ends (unwrapped), widened by :data:`ENVELOPE_MARGIN` on every side.
    Only the frames strictly inside a gap are checked (those at coarse times are the
    coarse frames themselves in the output); non-finite values are left to
    :meth:`Trajectory.validate`.

    Parameters
    ----------
    fine_positions : ndarray, shape (n_gaps * factor, n_atoms, 3) or one frame more, Å
        A method's fine frames of ``n_gaps`` consecutive gaps, unwrapped; frame
        ``g * factor`` lies at coarse frame ``g``.
    coarse_positions : ndarray, shape (n_gaps + 1, n_atoms, 3), Å
        The coarse frames at the ends of those gaps, unwrapped.
    factor : int
    method : Method or str
        Named in the error; a method's optional ``envelope_margin`` (Å) replaces
        :data:`ENVELOPE_MARGIN` (``auto`` measures errors at gaps of 2h and 4h with an
        infinite one: what must stay in the envelope is what is written, at h).
    first_gap : int
        Global index of the first gap (numbers the frames in the error).

    Raises
    ------
    TrajectoryError
        In one line: the method, the fine and coarse frames, the atom and how far out.
    """
    name = method if isinstance(method, str) else method.name
    margin = ENVELOPE_MARGIN if isinstance(method, str) else float(method.envelope_margin)
    coarse = np.asarray(coarse_positions, dtype=float)
    n_gaps = len(coarse) - 1
    if n_gaps < 1 or factor < 2 or margin == np.inf:
        return
    fine = np.asarray(fine_positions)[: n_gaps * factor].reshape(n_gaps, factor, *coarse.shape[1:])[:, 1:]
    low = np.minimum(coarse[:-1], coarse[1:])[:, None] - margin
    high = np.maximum(coarse[:-1], coarse[1:])[:, None] + margin
    with np.errstate(invalid="ignore"):
        out = (fine < low) | (fine > high)
    if not out.any():
        return
    with np.errstate(invalid="ignore"):
        beyond = np.linalg.norm(np.maximum(low - fine, 0) + np.maximum(fine - high, 0), axis=-1)
    beyond = np.where(np.isfinite(beyond), beyond, 0.0)
    if not (beyond > 0).any():
        return
    gap, step, atom = np.unravel_index(int(np.argmax(beyond)), beyond.shape)
    x, ends = fine[gap, step, atom], coarse[gap : gap + 2, atom]
    distance = float(np.linalg.norm(np.maximum(ends.min(axis=0) - x, 0) + np.maximum(x - ends.max(axis=0), 0)))
    g = first_gap + int(gap)
    instead = "--method linear" if name == "spline" else "--method spline or --method linear"
    raise TrajectoryError(
        f"method {name!r} put atom {int(atom)} {distance:.3g} Å outside the box spanned by its positions at "
        f"coarse frames {g} and {g + 1} (fine frame {g * factor + int(step) + 1}; {margin:g} Å "
        f"allowed): the frames are too far apart for it; use {instead}")


__all__ += ["check_fine_envelope", "ENVELOPE_MARGIN"]
