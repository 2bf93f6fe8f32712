"""Choosing a method by measuring it on the user's own coarse frames.

A card's held-out validation says how a checkpoint did on the data it was made
for; a user's trajectory may come from another Hamiltonian (DFT, not the GFN2-xTB
of the training data), where the learned advantage can vanish.  So ``auto``
measures instead: it holds back coarse frames, reconstructs them with every
method that suits the input, and takes the one with the lowest estimated error.

The measurement, for a coarse step h:

* **level 2**: every other coarse frame is held back; the rest (gap 2h) are
  upsampled and the held-back frames, at the middle of each gap, are compared.
* **level 4**: three of every four are held back (gap 4h); the errors at a quarter,
  half and three quarters of the gap give the error's profile along a gap.

The error at the user's own gap h is then extrapolated from these two levels,
by the rate r at which each method's error fell from 4h to 2h::

    r = midpoint(2h) / midpoint(4h)           clamped to [1/64, 1]
    estimate(h) = mean_profile(4h) * r * r ** STEEPENING

The first halving (4h → 2h) is observed; the second (2h → h) is taken to converge
:data:`STEEPENING` times as steeply, because at gaps near the period of the fastest
vibrations every method is far from its asymptotic order and its convergence
steepens as the gap shrinks.  The clamp: no method converges faster than sixth
order, none gets worse on a shorter gap.  The value 1.5 was measured on GFN1-xTB
ethanol and glycine (``bench/self_validation.py``): with 1 (a power law) the
estimates of the chosen methods were 0.8-3.6x the true error, with 1.5 they are
0.5-1.9x; the choice is the same.  A learned method fitting the velocities of
positions-only input extrapolates its velocity error by the plain power law
(:data:`STEEPENING_FITTED`): its error is the fit's.

A bi-directional learned method needs no extrapolation over the gap: it reports how
far its forward and backward paths disagree, and that disagreement can be read at the
input's own gap h on every gap of the sample, not only at held-back frames.  What the
held-back frames supply is how large the error is for a given disagreement::

    c = sum of errors / sum of disagreements, at the middle of the 2h gaps
    estimate(h) = c * mean disagreement at the middle of the h gaps
                    * 0.75 * mean_profile(4h) / midpoint(4h)

A held-back 2h gap whose paths ran away (its disagreement more than
:data:`DIVERGED_DISAGREEMENT` times the median) is left out of c.  The last factor
turns the error at the middle of a gap into its mean along the gap
(the trapezoid rule through the gap's exact ends and its quarter points).

With *fitted* velocities that factor is off: the coarse velocities are wrong, so the
error grows from a gap's ends at once and is nearly flat along it, where the 4h gaps'
profile is peaked in the middle.  Over eight models fitting velocities (molecules and a
24-atom water box, positions + forces and positions alone, 10 and 20 fs) the true mean
over middle at h was 0.70-1.04, the 4h profile's 0.60-0.74, and the disagreement's own
profile along the h gaps (mean over middle) 1.01-1.24: biased the other way.  Such a
method takes the geometric mean of the two, ``sqrt(0.75 mean_profile(4h) / midpoint(4h)
* mean disagreement(h) / middle disagreement(h))``.  The estimates went from
0.45-1.36x the true error to 0.58-1.77x (the box's four cases, which suggested it), and
on the four molecular ones, measured after it was chosen, from 0.63-1.02x to 0.82-1.35x
(``docs/benchmarks.md``, "auto's estimate with fitted velocities").  The ratio
c holds from gap to gap where the power law does not: on ethanol and glycine (GFN1-xTB
and PBE, a registry checkpoint on another Hamiltonian and models learned from the
input, factors 5, 10 and 20) c at h is 0.70-1.65x c at 2h over whole runs
(``bench/disagreement_ratio.py``), and in every self-validation table of
``docs/benchmarks.md`` the chosen methods' estimates are 0.65-1.76x the true error,
where the extrapolation gave 0.46-2.03x.  A method that fits the velocities of input
without them uses the disagreement too: with forces (VASP), on GFN1-xTB ethanol at
10 fs (60 held-out frames) the disagreement gave 0.70-0.74x the true error for the
adapted model and the registry's checkpoint, the extrapolation 0.06-0.18x (its 4h → 2h
ratio hit the clamp); positions alone, over whole GFN1-/GFN2-xTB ethanol runs at
factors 5-20 (the shipped checkpoint, and a model learned from positions), 0.64-1.17x,
where the extrapolation gave 0.42x for the learned model.

How far the estimate can be trusted depends on how many frames were held back: a
short input (a 1.25 ps DFT archive holds back 8 frames of its last 16 gaps when a
model is learned from it) gives a noisy mean.  So each estimate comes with its
*sampling range*: the held-back frames are resampled in blocks of four coarse gaps
(one level-4 gap with the two level-2 gaps and the four h gaps in it, so that a
block keeps its own ratios), the estimate is made from each resample, and the range is
the central :data:`RANGE_QUANTILES` of those estimates, centred on the estimate by
ratio (quantile / median).  It says how much the estimate would move
on other frames of the same kind; the estimator's own bias (the figures above) comes
on top.

The candidates are every learned method that suits the input and one classical
method: the one using the most of what the input stores (quintic Hermite with
forces, cubic Hermite with velocities, else the spline).  Classical methods are not
ranked against each other by this measurement: it is made at gaps of 2h and 4h,
which reach the period of X–H stretches, and there methods of higher order lose
their advantage first (on GFN1-xTB glycine at 10 fs the cubic Hermite measures 15 %
better than the quintic at 20 fs gaps, while at 10 fs the quintic is 3x better; on
the bundled 20 fs example the spline measures best at 40 and 80 fs, while at 20 fs
the quintic is twice as accurate).  The choice is the candidate of highest priority
whose estimate is within :data:`MARGIN` of the lowest.  ``docs/benchmarks.md`` ("Self-validated method choice") measures
how close the estimate is to the true error and how often the choice is the best.

**Frames far apart.**  Beyond :data:`~mdsr_plugin.methods.LONG_GAP_FS` (25 fs) between
frames, or when the best estimate so far is above :data:`FAR_APART_ERROR` (0.1 Å),
every classical method is measured, linear and spline included: there the higher
orders have lost their advantage (the bundled ethanol at 40-80 fs, GFN1-xTB glycine at
40 fs: linear or spline is the most accurate, quintic Hermite 1.6-4.3x worse).  A tie
among them goes to the lowest estimate, not to priority; one with a learned method still
goes to the learned one.  A best estimate above :data:`FAR_APART_ERROR` gives
:attr:`Selection.warning`, one line saying what is written instead.

**The envelope.**  A candidate is also run at the input's own gap on the sample, through
the driver, which refuses fine positions far outside the box of their gap's two coarse
positions (:func:`mdsr_plugin.checks.check_fine_envelope`): a method that does so is not
a candidate (cubic and quintic Hermite on 1 ps AMBER frames: 10 and 391 Å out).  At 2h
and 4h it is measured without that check: beyond the envelope there it only measures a
larger error, and it can still be the most accurate at h (quintic Hermite on glycine at
20 fs: 4.7 Å out at 80 fs gaps).  ``docs/benchmarks.md`` ("auto on frames far apart").
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .methods import LONG_GAP_FS, MethodError, build_method, method_plugins
from .methods.base import Method, Provenance
from .trajectory import Trajectory, TrajectoryError, concatenate

__all__ = ["CandidateScore", "Selection", "measure_method", "select_method", "MIN_FRAMES", "FAR_APART_ERROR"]

log = logging.getLogger(__name__)

#: Coarse frames needed to measure anything at level 4 (two gaps of 4h).
MIN_FRAMES = 9
#: The fastest convergence assumed when extrapolating (sixth order: quintic Hermite).
FASTEST_RATIO = 1 / 64
#: How much more steeply the last halving of the gap converges than the one observed.
STEEPENING = 1.5
#: The same for a learned method that fits the velocities of positions-only input by
#: shooting (its velocity estimate; the position estimate is from the disagreement): its
#: error is then set by the fit, which does not steepen as the gap shrinks (ethanol,
#: GFN2-/GFN1-xTB, factors 5/10/20: with 1.5 its position estimates were 0.21-0.91x the
#: true error, with 1, a plain power law, 0.49-1.46x; ``bench/results/self_validation_positions*.txt``).
STEEPENING_FITTED = 1.0
#: Estimates within this factor of the lowest count as a tie, won by priority.
MARGIN = 1.5
#: Å: a best estimate above this means the frames are too far apart to reconstruct
#: vibrations: a tenth of an X–H bond (~1 Å, the shortest bond), taken as a constant
#: since elements read from a topology can be wrong.
FAR_APART_ERROR = 0.1
#: A held-back 2h gap whose disagreement is more than this many times the median one is
#: left out of the calibration ``c`` (errors / disagreements): its paths ran away, and alone
#: it would set ``c``.  A box model learned from positions + forces, fitting the velocities
#: over 40 fs gaps of GFN1-xTB water: one gap 608 Å where the other 19 were 0.28-2.0 Å, so
#: ``c`` was 0.013 instead of 0.30 and the estimate 0.07x the true error (1.56x without it).
DIVERGED_DISAGREEMENT = 10.0
#: Resamples of the held-back blocks behind an estimate's sampling range.
RESAMPLES = 400
#: The sampling range: these quantiles of the resampled estimates.
RANGE_QUANTILES = (0.1, 0.9)


@dataclass(frozen=True)
class CandidateScore:
    """One method measured on held-back coarse frames.

    Attributes
    ----------
    method : str
    position_mae, velocity_mae : float
        At the held-back frames of level 2 (the middle of 2h gaps), Å and Å/fs.
    position_estimate, velocity_estimate : float
        Extrapolated mean error over the fine frames at the input's own gap, Å and Å/fs.
    ratio : float
        Observed midpoint error at 2h over that at 4h (positions), clamped.
    seconds : float
        Time the measurement took.
    position_range : tuple of float
        The position estimate's sampling range (low, high), Å (see the module
        docstring); NaN with fewer than two level-4 gaps to resample.
    estimator : {"extrapolation", "disagreement"}
        How the position estimate was made (see the module docstring).
    """

    method: str
    position_mae: float
    velocity_mae: float
    position_estimate: float
    velocity_estimate: float
    ratio: float
    seconds: float
    position_range: tuple = (np.nan, np.nan)
    estimator: str = "extrapolation"


@dataclass
class Selection:
    """The outcome of self-validation: the chosen method and what was measured.

    Attributes
    ----------
    chosen : str
    scores : list of CandidateScore
        The chosen first, then by estimate.
    held_back : int
        Coarse frames held back at level 2.
    gap_fs : float
        The level-2 gap, fs (twice the input's step).
    skipped : dict of str to str
        Methods that suited the input but failed to run, and why (e.g. they left the
        envelope of the coarse frames, :func:`mdsr_plugin.checks.check_fine_envelope`).
    warning : str or None
        One line when even the best estimate is above :data:`FAR_APART_ERROR`: the
        frames are too far apart to reconstruct vibrations, and what is written instead.
    provenance : Provenance
        What the chosen method's ``prepare`` returned: what the output records.
    """

    chosen: str
    scores: list
    held_back: int
    gap_fs: float
    skipped: dict = field(default_factory=dict)
    warning: str | None = None
    provenance: Provenance | None = None

    @property
    def best(self) -> CandidateScore:
        return self.scores[0]

    def describe(self) -> str:
        """One line for the user, e.g. ``estimated position error 2.1e-03 Å (...)``."""
        best = self.best
        low, high = best.position_range
        spread = f" (sampling range {low:.1e}-{high:.1e} Å)" if np.isfinite(low) else ""
        others = ", ".join(f"{s.method} {s.position_estimate:.1e}" for s in self.scores[1:])
        # no velocity error where the input stores none to hold back and compare with
        known = best.velocity_estimate is not None and np.isfinite(best.velocity_estimate)
        velocity = f", velocity error {best.velocity_estimate:.1e} Å/fs" if known else ""
        return (f"estimated position error {best.position_estimate:.1e} Å{spread}{velocity} (measured on "
                f"{self.held_back} held-back coarse frames at a {self.gap_fs:g} fs gap"
                f"{'; others: ' + others if others else ''})")

    def as_dict(self) -> dict:
        return {"chosen": self.chosen, "held_back": self.held_back, "gap_fs": self.gap_fs,
                "scores": [asdict(s) for s in self.scores], "skipped": dict(self.skipped), "warning": self.warning}


def _continuous(sample: Trajectory) -> Trajectory:
    """``sample`` with periodic jumps removed: errors are then plain differences.  The cell
    stays (a box's own integrator needs it); the fine output is unwrapped again before it
    is scored, since the driver re-wraps gaps whose ends lie inside the cell."""
    if not sample.is_periodic:
        return sample
    from .periodic import unwrapped_positions

    return replace(sample, positions=unwrapped_positions(sample))


@dataclass(frozen=True)
class _HeldBack:
    """One method's errors at the held-back frames of a sample, frame by frame.

    Level-4 gap b holds level-2 gaps 2b and 2b + 1 and the input's own gaps 4b … 4b + 3.

    Attributes
    ----------
    position2, velocity2 : ndarray, shape (1, G2)
        At the middle of the 2h gaps, Å and Å/fs (velocity NaN without stored velocities).
    disagreement2 : ndarray, shape (1, G2)
        The method's forward/backward disagreement at those frames, Å (NaN without one).
    position4, velocity4 : ndarray, shape (3, G4)
        At a quarter, half and three quarters of the 4h gaps.
    disagreement1 : ndarray, shape (G1,), or None
        The disagreement at the middle of the input's own gaps (h), Å; None for a
        method without one.
    along1 : ndarray, shape (G1,), or None
        The disagreement averaged along each of those gaps (its inner fine frames), Å:
        for a method fitting the velocities (see the module docstring); None otherwise.
    """

    position2: np.ndarray
    velocity2: np.ndarray
    disagreement2: np.ndarray
    position4: np.ndarray
    velocity4: np.ndarray
    disagreement1: np.ndarray | None
    along1: np.ndarray | None = None

    def blocks(self, picked) -> _HeldBack:
        """The same quantities for the level-4 gaps ``picked`` (int array, repeats allowed)."""
        two = (2 * picked[:, None] + np.arange(2)).ravel()
        one = (4 * picked[:, None] + np.arange(4)).ravel()
        return _HeldBack(self.position2[:, two], self.velocity2[:, two], self.disagreement2[:, two],
                         self.position4[:, picked], self.velocity4[:, picked],
                         None if self.disagreement1 is None else self.disagreement1[one],
                         None if self.along1 is None else self.along1[one])

    @property
    def has_disagreement(self) -> bool:
        return (self.disagreement1 is not None and bool(np.all(np.isfinite(self.disagreement2)))
                and self.disagreement2.sum() > 0 and self.position4[1].mean() > 0)


class _Unchecked(Method):
    """``method`` as the measurement runs it at gaps of 2h and 4h: the driver's envelope check
    (:func:`mdsr_plugin.checks.check_fine_envelope`) off.  Beyond the envelope at those gaps
    a method only measures a larger error; what must stay inside is what is written, at h
    (quintic Hermite on GFN1-xTB glycine at 20 fs: 4.7 Å out at 80 fs gaps, and the most
    accurate at 20 fs)."""

    envelope_margin = np.inf

    def __init__(self, method: Method):
        self._method = method
        self.name, self.requires = method.name, method.requires
        self.context, self.block_gaps = method.context, method.block_gaps

    def interpolate(self, coarse, factor):
        return self._method.interpolate(coarse, factor)


def _upsampled(method: Method, kept: Trajectory, factor: int) -> Trajectory:
    """``kept`` upsampled by ``factor``, unwrapped for a box (errors are plain differences)."""
    from .driver import stream_method

    fine = concatenate(list(stream_method([kept], factor, method)))
    if fine.is_periodic:
        from .periodic import unwrapped_positions

        fine = replace(fine, positions=unwrapped_positions(fine))
    return fine


def _held_back(method: Method, sample: Trajectory, factor: int, level: int):
    """Errors at the frames held back when only every ``level``-th coarse frame is kept.

    Returns
    -------
    position, velocity, disagreement : ndarray, shape (level - 1, G)
        Mean absolute error (Å, Å/fs) of each held-back frame, at position ``j / level``
        (row j - 1, j = 1 … level - 1) of each of the G gaps, and the method's
        disagreement there (Å); NaN where the sample has no velocities or the method no
        disagreement.
    """
    kept = sample[::level]
    n_gaps = kept.n_frames - 1
    fine = _upsampled(method, kept, level * factor)
    disagreement = fine.frame_data.get("disagreement")
    position, velocity, spread = (np.full((level - 1, n_gaps), np.nan) for _ in range(3))
    for j in range(1, level):
        truth = sample[j::level][:n_gaps]
        at = slice(j * factor, None, level * factor)
        position[j - 1] = _frame_mae(fine.positions[at][:n_gaps], truth.positions)
        if truth.velocities is not None:
            velocity[j - 1] = _frame_mae(fine.velocities[at][:n_gaps], truth.velocities)
        if disagreement is not None:
            spread[j - 1] = np.asarray(disagreement)[at][:n_gaps]
    return position, velocity, spread


def _own_gap_disagreement(method: Method, sample: Trajectory, factor: int):
    """The method's disagreement (Å) at the middle of each of the sample's own gaps, and
    averaged along each (its inner fine frames), each shape (n_frames - 1,); (None, None)
    for a method without one.  With an odd ``factor`` the two fine frames around the
    middle are averaged."""
    fine = _upsampled(method, sample, factor)
    disagreement = fine.frame_data.get("disagreement")
    if disagreement is None:
        return None, None
    disagreement = np.asarray(disagreement)
    gap_starts = np.arange(sample.n_frames - 1) * factor
    middle = disagreement[gap_starts + factor // 2]
    if factor % 2:
        middle = 0.5 * (middle + disagreement[gap_starts + factor // 2 + 1])
    along = disagreement[gap_starts[:, None] + np.arange(1, factor)].mean(axis=1)
    return middle, along


def _frame_mae(predicted, reference):
    """Mean absolute error per Cartesian component of each frame: (F, N, 3) -> (F,)."""
    return np.abs(np.asarray(predicted) - np.asarray(reference)).mean(axis=(1, 2))


def _extrapolate(mid2, mid4, profile4, steepening):
    """The error at gap h from the midpoint errors at 2h and 4h and the mean error along
    4h gaps (see the module docstring); arrays give one estimate per element.

    Returns
    -------
    estimate, ratio : ndarray
    """
    mid2, mid4, profile4 = np.asarray(mid2, float), np.asarray(mid4, float), np.asarray(profile4, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mid4 > 0, np.clip(mid2 / mid4, FASTEST_RATIO, 1.0), 1.0)
    return profile4 * ratio ** (1 + steepening), ratio


def _position_estimate(held: _HeldBack, steepening: float, from_disagreement: bool) -> float:
    """The position error at the input's own gap, Å (see the module docstring)."""
    if from_disagreement and held.has_disagreement:
        error_per_disagreement = _error_per_disagreement(held.position2, held.disagreement2)
        # trapezoid through the gap's ends (exact) and its quarter points, over the middle
        shape = 0.75 * held.position4.mean() / held.position4[1].mean()
        if held.along1 is not None:  # fitted velocities: with the disagreement's own profile
            shape = np.sqrt(shape * held.along1.mean() / held.disagreement1.mean())
        return float(error_per_disagreement * held.disagreement1.mean() * shape)
    estimate, _ = _extrapolate(held.position2.mean(), held.position4[1].mean(), held.position4.mean(), steepening)
    return float(estimate)


def _error_per_disagreement(position2, disagreement2) -> float:
    """``c``, the sum of the errors over the sum of the disagreements at the middle of the
    2h gaps, without the gaps whose paths ran away (:data:`DIVERGED_DISAGREEMENT`)."""
    median = np.median(disagreement2)
    kept = disagreement2 <= DIVERGED_DISAGREEMENT * median if median > 0 else np.ones(disagreement2.shape, bool)
    return float(position2[kept].sum() / disagreement2[kept].sum())


def _sampling_range(held: _HeldBack, steepening: float, from_disagreement: bool, seed: int = 0,
                    estimate: float | None = None):
    """The position estimate's sampling range (see the module docstring); ``estimate``, the
    estimate from all of ``held`` (Å), is computed when not given.

    Returns
    -------
    low, high : float
        Å; NaN when fewer than two level-4 gaps can be resampled.
    """
    n_blocks = held.position4.shape[1]
    if n_blocks < 2:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    estimates = [_position_estimate(held.blocks(rng.integers(0, n_blocks, n_blocks)), steepening,
                                    from_disagreement) for _ in range(RESAMPLES)]
    low, median, high = np.quantile(estimates, [RANGE_QUANTILES[0], 0.5, RANGE_QUANTILES[1]])
    # centred on the estimate, by ratio: with a few blocks the estimate (a product of
    # ratios of sums) and the resamples' median can differ, and the range must contain it
    if estimate is None:
        estimate = _position_estimate(held, steepening, from_disagreement)
    return float(estimate * low / median), float(estimate * high / median)


def measure_method(method: Method, sample: Trajectory, factor: int, steepening: float | None = None,
                   from_disagreement: bool = True, fitted_velocities: bool = False) -> CandidateScore:
    """Measure a prepared ``method`` on held-back frames of ``sample`` (see the module docstring).

    Parameters
    ----------
    method : Method
        Ready to run (prepared for ``factor``); it is run at ``2 * factor`` and ``4 * factor``
        so that its fine step is the one it will be used with, and, when it reports a
        forward/backward disagreement, at ``factor`` on the whole sample.
    sample : Trajectory
        At least :data:`MIN_FRAMES` consecutive coarse frames.
    factor : int
    steepening : float, optional
        Default :data:`STEEPENING`, or :data:`STEEPENING_FITTED` with ``fitted_velocities``.
    from_disagreement : bool
        Estimate a bi-directional method's position error from its disagreement at the
        input's own gap (False: extrapolate it over the gap, as a classical method's).  With it, the method is also run at the input's own gap on
        ``sample``, where the driver checks that no atom leaves the envelope of the
        coarse frames (:func:`mdsr_plugin.checks.check_fine_envelope`); at the 2h and 4h
        gaps the errors are measured without that check, since what is written is at h.
    fitted_velocities : bool
        The method fits the velocities of input without them: the error's profile along
        a gap is taken from its disagreement too (see the module docstring).

    Raises
    ------
    TrajectoryError
        The method leaves the envelope at the input's own gap (or the sample is unusable).
    """
    started = time.perf_counter()
    if steepening is None:
        steepening = STEEPENING_FITTED if fitted_velocities else STEEPENING
    sample = _continuous(sample)
    unchecked = _Unchecked(method)
    p2, v2, d2 = _held_back(unchecked, sample, factor, 2)
    p4, v4, _ = _held_back(unchecked, sample, factor, 4)
    d1 = along1 = None
    # at the input's own gap, as it would be written: refused if it leaves the envelope
    if from_disagreement and np.all(np.isfinite(d2)) and d2.sum() > 0:
        d1, along1 = _own_gap_disagreement(method, sample, factor)
    elif from_disagreement:
        _upsampled(method, sample, factor)
    held = _HeldBack(p2, v2, d2, p4, v4, d1, along1 if fitted_velocities else None)
    _, ratio = _extrapolate(p2.mean(), p4[1].mean(), p4.mean(), steepening)
    velocity_estimate, _ = _extrapolate(v2.mean(), v4[1].mean(), v4.mean(), steepening)
    position_estimate = _position_estimate(held, steepening, from_disagreement)
    return CandidateScore(method.name, float(p2.mean()), float(v2.mean()), position_estimate,
                          float(velocity_estimate), float(ratio), time.perf_counter() - started,
                          _sampling_range(held, steepening, from_disagreement, estimate=position_estimate),
                          "disagreement" if from_disagreement and held.has_disagreement else "extrapolation")


#: Atoms × coarse frames a periodic box is measured on at most: 81 frames (40 held back)
#: of a 96-atom box, ~1 min for its learned integrator at factor 20 on one core.
BOX_ATOM_FRAMES = 7680


def select_method(coarse: Trajectory, factor: int, settings, *, learned: bool = True, max_frames: int = 501,
                  max_frames_fitted: int = 41, sample: Trajectory | None = None) -> tuple[Method, Selection]:
    """Measure every method that suits ``coarse`` at ``factor`` and choose the best.

    Parameters
    ----------
    coarse : Trajectory
        The input's first chunk; its first ``max_frames`` frames are the sample.
    factor : int
    settings : UpsampleSettings
        What the candidates are built with.
    learned : bool
        Whether learned methods are candidates (``classical`` measures the others only).
    max_frames : int
        Coarse frames measured on (250 held back at level 2 by default).
    max_frames_fitted : int
        The smaller sample for a learned method that must fit the velocities of
        positions-only input (shooting costs ~100 fine frames per second).
    sample : Trajectory, optional
        The coarse frames to measure on, instead of the first ``max_frames`` of
        ``coarse``: with a model learned from the input, the frames its training held
        out, so that no candidate is scored on frames it was fitted to (the learning
        used them only to choose its learning-rate steps and the weights it kept).

    Returns
    -------
    method : Method
        The chosen method, prepared.
    selection : Selection

    Raises
    ------
    TrajectoryError
        Fewer than :data:`MIN_FRAMES` coarse frames.
    """
    measured_on = coarse if sample is None else sample
    if coarse.is_periodic:
        # a box's learned integrator costs per atom: hold back ~ BOX_ATOM_FRAMES atom-frames
        max_frames = min(max_frames, max(MIN_FRAMES, BOX_ATOM_FRAMES // coarse.n_atoms + 1))
    if measured_on.n_frames < MIN_FRAMES:
        raise TrajectoryError(f"self-validation needs at least {MIN_FRAMES} coarse frames, "
                              f"{'the input has' if sample is None else 'the held-out part has'} "
                              f"{measured_on.n_frames}")
    scores, skipped, prepared = [], {}, {}
    plugins = method_plugins()  # highest priority first

    def measure(name, plugin, suitability) -> bool:
        method = build_method(name, settings)
        provenance = method.prepare(coarse, factor, suitability.found)
        fitted = plugin.learned and not coarse.has_velocities
        n = max_frames_fitted if fitted else max_frames
        try:
            # fitted velocities too are estimated from the disagreement (see the module docstring)
            score = measure_method(method, measured_on[:n], factor, fitted_velocities=fitted)
        except (MethodError, TrajectoryError, FloatingPointError) as err:
            skipped[name] = str(err)
            log.info("self-validation: not %s: %s", name, err)
            return False
        prepared[name] = method, provenance
        scores.append(score)
        log.info("self-validation: %s %.2e Å (%.1f s)", name, score.position_estimate, score.seconds)
        return True

    classical = []
    for name, plugin in plugins.items():
        if plugin.learned and not learned:
            continue
        suitability = plugin.suits(coarse, factor, settings)
        if not suitability.usable:
            continue
        if plugin.learned:
            measure(name, plugin, suitability)
        else:
            classical.append((name, plugin, suitability))
    # the classical method using the most of the input (see the module docstring), or
    # the next when it cannot run (it left the envelope of the coarse frames)
    tried = 0
    for entry in classical:
        tried += 1
        if measure(*entry):
            break
    if coarse.dt > LONG_GAP_FS or not _within_reach(scores):
        # frames far apart: every classical method is measured, the simplest often best
        for entry in classical[tried:]:
            measure(*entry)
    if not scores:
        raise MethodError("no method could be measured on this input: " + "; ".join(
            f"{k}: {v}" for k, v in skipped.items()))
    scores.sort(key=lambda s: s.position_estimate if np.isfinite(s.position_estimate) else np.inf)
    lowest = scores[0].position_estimate
    ties = [s.method for s in scores if s.position_estimate <= MARGIN * lowest]  # by estimate
    # a tie goes to the learned method of highest priority; among classical methods (several
    # are measured only on frames far apart, where the higher order has lost its advantage)
    # to the lowest estimate
    chosen = next((name for name, plugin in plugins.items() if plugin.learned and name in ties), ties[0])
    scores.sort(key=lambda s: (s.method != chosen, s.position_estimate))
    warning = None if _within_reach(scores) else _far_apart_warning(coarse.dt, scores, skipped)
    n = min(measured_on.n_frames, max_frames)
    method, provenance = prepared[chosen]
    return method, Selection(chosen, scores, held_back=n // 2, gap_fs=2 * coarse.dt, skipped=skipped,
                             warning=warning, provenance=provenance)


def _within_reach(scores) -> bool:
    """Whether the best estimate so far is within :data:`FAR_APART_ERROR`."""
    best = min((s.position_estimate for s in scores), default=np.inf)
    return bool(np.isfinite(best) and best <= FAR_APART_ERROR)


def _far_apart_warning(dt: float, scores, skipped) -> str:
    """One line: the frames are too far apart, and what is written instead (``scores[0]``)."""
    chosen = scores[0]
    others = [f"{s.method} {s.position_estimate:.1e} Å" for s in scores[1:]]
    if skipped:
        envelope = all("outside the box spanned" in reason for reason in skipped.values())
        others.append(f"{', '.join(skipped)} {'put atoms far outside the coarse frames' if envelope else 'failed'}")
    return (f"frames {dt:g} fs apart: too far apart to reconstruct vibrations (no method estimated within "
            f"{FAR_APART_ERROR:g} Å); writing {chosen.method}, estimated error {chosen.position_estimate:.1e} Å"
            + (f" ({'; '.join(others)})" if others else ""))
