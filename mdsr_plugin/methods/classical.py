"""Classical interpolators: the fallback, and the baselines every learned model must beat.

==========  ============================  ====================================
name        uses                          fine positions between frames
==========  ============================  ====================================
linear      positions                     straight line; velocity constant
spline      positions                     C² cubic spline (not-a-knot)
hermite     positions, velocities         C¹ cubic Hermite
quintic     positions, velocities,        C² quintic Hermite (accelerations
            forces                        a = F/m at both ends)
==========  ============================  ====================================

All are vectorised over gaps, atoms and fine frames; each returns velocities as
the time derivative of its position curve, and reproduces the coarse frames.

The cubic spline is global in principle, but the influence of a knot decays by
2 − √3 ≈ 0.27 per frame, so it is evaluated on windows with ``context = 24``
frames on each side: the result equals the global spline to ~1e-14 relative, and
a streamed trajectory gives the same numbers whatever its chunking.
"""

from __future__ import annotations

import numpy as np

from .. import units
from ..trajectory import Trajectory
from .base import FineFrames, Method, MethodPlugin, Suitability

__all__ = ["Linear", "CubicSpline", "CubicHermite", "QuinticHermite", "CLASSICAL_METHODS",
           "LINEAR", "SPLINE", "HERMITE", "QUINTIC"]


def _fine_grid(factor: int) -> np.ndarray:
    """Fractions of the gap, shape (factor,), at which fine frames lie (0 included, 1 excluded)."""
    return np.arange(factor) / factor


class _Classical(Method):
    """What every classical method shares: no options."""

    name: str
    requires: tuple[str, ...] = ()

    def __init__(self, settings=None):
        # Classical methods run in NumPy and take no options; ``settings`` is accepted
        # so that every method is built the same way.
        self.settings = settings


class _PolynomialInterpolator(_Classical):
    """Interpolation by a fixed polynomial basis on each gap.

    ``basis`` has shape (n_terms, degree + 1): row j holds the power-series
    coefficients of basis function j on s ∈ [0, 1].  Subclasses define
    ``_terms(coarse, h)``: the coarse quantities, each shape (n_gaps, n_atoms, 3),
    that multiply the basis functions, a derivative of order k scaled by h**k
    (h = coarse step).
    """

    context = 0
    block_gaps = 4096
    basis: np.ndarray

    def interpolate(self, coarse: Trajectory, factor: int):
        """Fine positions and velocities, shape ((n_coarse - 1) * factor + 1, n_atoms, 3), Å and Å/fs."""
        h = coarse.dt
        terms = np.stack(self._terms(coarse, h), axis=1)  # (G, J, N, 3)
        n_gaps, n_terms, n_atoms, _ = terms.shape
        terms = terms.reshape(n_gaps, n_terms, n_atoms * 3)
        s = np.append(_fine_grid(factor), 1.0)
        powers = np.vander(s, self.basis.shape[1], increasing=True)  # (S+1, degree+1)
        derivative = np.polynomial.polynomial.polyder(self.basis.T, axis=0).T
        value_weights = powers @ self.basis.T  # (S+1, J)
        slope_weights = powers[:, :-1] @ derivative.T / h
        positions = np.matmul(value_weights[:-1], terms)  # (G, S, 3N)
        velocities = np.matmul(slope_weights[:-1], terms)
        last_position = value_weights[-1] @ terms[-1]
        last_velocity = slope_weights[-1] @ terms[-1]
        shape = (n_gaps * factor, n_atoms, 3)
        positions = np.concatenate([positions.reshape(shape), last_position.reshape(1, n_atoms, 3)])
        velocities = np.concatenate([velocities.reshape(shape), last_velocity.reshape(1, n_atoms, 3)])
        return FineFrames(positions, velocities)


class Linear(_PolynomialInterpolator):
    name = "linear"
    description = "straight lines between coarse positions (velocity constant per gap)"
    basis = np.array([[1.0, -1.0], [0.0, 1.0]])

    def _terms(self, coarse, h):
        return [coarse.positions[:-1], coarse.positions[1:]]


class CubicHermite(_PolynomialInterpolator):
    name = "hermite"
    description = "cubic Hermite through coarse positions and velocities"
    requires = ("velocities",)
    basis = np.array(
        [
            [1.0, 0.0, -3.0, 2.0],  # p0
            [0.0, 1.0, -2.0, 1.0],  # h v0
            [0.0, 0.0, 3.0, -2.0],  # p1
            [0.0, 0.0, -1.0, 1.0],  # h v1
        ]
    )

    def _terms(self, coarse, h):
        x, v = coarse.positions, coarse.velocities
        return [x[:-1], h * v[:-1], x[1:], h * v[1:]]


class QuinticHermite(_PolynomialInterpolator):
    name = "quintic"
    description = "quintic Hermite through positions, velocities and accelerations (forces/masses)"
    requires = ("velocities", "forces")
    basis = np.array(
        [
            [1.0, 0.0, 0.0, -10.0, 15.0, -6.0],  # p0
            [0.0, 1.0, 0.0, -6.0, 8.0, -3.0],  # h v0
            [0.0, 0.0, 0.5, -1.5, 1.5, -0.5],  # h² a0
            [0.0, 0.0, 0.0, 10.0, -15.0, 6.0],  # p1
            [0.0, 0.0, 0.0, -4.0, 7.0, -3.0],  # h v1
            [0.0, 0.0, 0.0, 0.5, -1.0, 0.5],  # h² a1
        ]
    )

    def _terms(self, coarse, h):
        x, v = coarse.positions, coarse.velocities
        a = coarse.forces / coarse.masses[:, None] * units.ACCEL_PER_FORCE_OVER_MASS
        return [x[:-1], h * v[:-1], h * h * a[:-1], x[1:], h * v[1:], h * h * a[1:]]


class CubicSpline(_Classical):
    """C² cubic spline through coarse positions (not-a-knot ends), via SciPy."""

    name = "spline"
    description = "C2 cubic spline through coarse positions only"
    context = 24
    block_gaps = 1024

    def interpolate(self, coarse: Trajectory, factor: int):
        from scipy.interpolate import CubicSpline as SciPySpline

        n = coarse.n_frames
        # Knots at integer frame indices keep the arithmetic independent of absolute time.
        spline = SciPySpline(np.arange(n), coarse.positions.reshape(n, -1), axis=0, bc_type="not-a-knot")
        fine = np.arange((n - 1) * factor + 1) / factor
        shape = (len(fine), coarse.n_atoms, 3)
        return FineFrames(spline(fine).reshape(shape), (spline(fine, 1) / coarse.dt).reshape(shape))


def spline_velocities(positions: np.ndarray, accelerations: np.ndarray, h: float) -> np.ndarray:
    """Velocities at the knots of the C⁴ quintic spline through positions and accelerations.

    On each gap the curve is the quintic Hermite polynomial of its ends' positions,
    velocities and accelerations; the velocities are the unknowns, fixed by asking the
    fourth derivative to be continuous at every inner knot,

        7 v_{k-1} + 16 v_k + 7 v_{k+1} = 15 (x_{k+1} - x_{k-1}) / h + h (a_{k+1} - a_{k-1}),

    and, at the ends, the fifth derivative to be continuous at the second and the
    second-last knot ("not-a-knot", so that a quintic path is reproduced exactly):

        v_{k+1} - v_{k-1} = 2 (x_{k-1} - 2 x_k + x_{k+1}) / h + h (a_{k-1} - 2 a_k + a_{k+1}) / 6.

    With fewer than four knots the fourth derivative vanishes at the ends instead.  A
    knot's influence on the others decays by 0.59 per knot.

    Parameters
    ----------
    positions : ndarray, shape (n, ...), Å
    accelerations : ndarray, shape (n, ...), Å/fs²
    h : float
        Knot spacing, fs.

    Returns
    -------
    ndarray, shape (n, ...), Å/fs
    """
    from scipy.linalg import solve_banded

    n = len(positions)
    x = positions.reshape(n, -1)
    a = accelerations.reshape(n, -1)
    rhs = np.empty_like(x)
    rhs[1:-1] = 15 * (x[2:] - x[:-2]) / h + h * (a[2:] - a[:-2])
    bands = np.zeros((3, n))  # (super, main, sub) diagonals, as solve_banded takes them
    bands[0, 1:], bands[1], bands[2, :-1] = 7.0, 16.0, 7.0
    if n >= 4:
        def jump(k):  # the right side of the fifth derivative's continuity at knot k
            return 2 * (x[k - 1] - 2 * x[k] + x[k + 1]) / h + h * (a[k - 1] - 2 * a[k] + a[k + 1]) / 6

        # each end's condition with the neighbouring inner row subtracted: tridiagonal again
        bands[1, 0], bands[0, 1], rhs[0] = 14.0, 16.0, rhs[1] - 7 * jump(1)
        bands[2, -2], bands[1, -1], rhs[-1] = 16.0, 14.0, rhs[-2] + 7 * jump(n - 2)
    else:
        bands[1, 0], bands[0, 1] = 192.0, 168.0
        bands[2, -2], bands[1, -1] = 168.0, 192.0
        rhs[0] = 360 * (x[1] - x[0]) / h - 36 * h * a[0] + 24 * h * a[1]
        rhs[-1] = 360 * (x[-1] - x[-2]) / h - 24 * h * a[-2] + 36 * h * a[-1]
    return solve_banded((1, 1), bands, rhs).reshape(positions.shape)


class QuinticSpline(QuinticHermite):
    """C⁴ quintic spline through coarse positions and accelerations (forces / masses): for
    archives that store forces but no velocities (VASP, CP2K without a velocity file).

    The velocities are solved for (:func:`spline_velocities`) over the window the driver
    hands over; ``context`` frames on each side make a block's velocities those of the
    whole trajectory to rounding (0.59⁶⁴ ≈ 2e-15).  Exact on quintic paths.
    """

    name = "quintic-spline"
    description = "C4 quintic spline through positions and accelerations (forces/masses); velocities solved for"
    requires = ("forces",)
    context = 64
    block_gaps = 1024

    def _terms(self, coarse, h):
        x = coarse.positions
        a = coarse.forces / coarse.masses[:, None] * units.ACCEL_PER_FORCE_OVER_MASS
        v = spline_velocities(x, a, h)
        return [x[:-1], h * v[:-1], h * h * a[:-1], x[1:], h * v[1:], h * h * a[1:]]


CLASSICAL_METHODS = (Linear, CubicSpline, CubicHermite, QuinticHermite, QuinticSpline)


def _plugin(cls, priority: int) -> MethodPlugin:
    """The registry record of a classical method: usable whenever the input has what it requires."""

    def suits(coarse: Trajectory, factor, settings) -> Suitability:
        missing = [q for q in cls.requires if getattr(coarse, q) is None]
        if missing:
            # Name the method that needs only what the input has.
            instead = "hermite (positions + velocities)" if coarse.velocities is not None else "spline (positions only)"
            return Suitability(False, f"method {cls.name!r} needs {' and '.join(missing)}, which the input "
                               f"does not have; use --method {instead} or auto")
        return Suitability(True)

    return MethodPlugin(name=cls.name, description=cls.description, factory=cls, suits=suits,
                        priority=priority)


# The entry points of group "mdsr_plugin.methods" (pyproject.toml) name these.
LINEAR = _plugin(Linear, 0)
SPLINE = _plugin(CubicSpline, 10)
HERMITE = _plugin(CubicHermite, 20)
QUINTIC = _plugin(QuinticHermite, 30)
QUINTIC_SPLINE = _plugin(QuinticSpline, 15)
