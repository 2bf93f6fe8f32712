"""Coarse velocities for input without them, by multiple shooting through a learned integrator.

XYZ and DCD archives usually store positions only, but the bi-directional
integrator starts from positions *and* velocities.  The velocities ``v_k`` of the
coarse frames are therefore fitted so that the integrator started at frame ``k``
lands on frame ``k + 1`` when run forward, on frame ``k - 1`` when run backward,
and arrives with the neighbour's velocity (velocities are continuous in time).
Per gap ``g`` (frames ``g`` and ``g + 1``, coarse step ``T``) the residuals are

    x_f(x_g, v_g) - x_{g+1},         (v_f(x_g, v_g) - v_{g+1}) T,
    x_b(x_{g+1}, -v_{g+1}) - x_g,    (v_b(x_{g+1}, -v_{g+1}) + v_g) T,

where ``(x_f, v_f)`` and ``(x_b, v_b)`` are the end states of the forward and the
backward (momenta reversed) rollouts (a box's velocity residuals are weighted by
:data:`BOX_VELOCITY_WEIGHT`).  Their sum of squares is minimised by
Gauss–Newton: each gap's end states depend only on the velocity it starts from,
so the normal equations are block-tridiagonal in the frames and are solved as one
banded system.

**A molecule's Jacobians** (3N × 3N blocks per gap and direction) come from forward
differences, all directions of all gaps batched through the network.

**A periodic box cannot afford those** (:func:`estimate_box_velocities`): a 96-atom
water box's rollout of 10 fine frames costs 0.16-0.2 s on one core, so ``2 (3N + 1)``
of them are 95 s per gap and iteration.  Its Jacobians are those of the dynamics
*linearised* along the path: over each sub-interval of at most ``interval`` fs the
motion is harmonic about the learned potential's Hessian there (mass-weighted ``K``:
``∂x/∂v₀ = sin(√K τ)/√K``, ``∂v/∂v₀ = cos(√K τ)``; free motion along negative
curvature), and the sub-intervals' transfer matrices are multiplied across the gap.
A Hessian costs ``3N + 1`` force evaluations, a rollout 40-80, so a gap's Jacobians
cost a few rollouts; on a larger box each Hessian column is formed from the energies of
the displaced atom's neighbours alone, which is the same Hessian at a fraction of the
cost (2.6× less at 96 water atoms, 4.5× at 192; ``bench/box_hessian_cost.py``).  They are approximate: after every step each gap's four
Jacobians are corrected by Broyden's secant update (per gap, since a gap's ends
depend on one start velocity), and linearised afresh about the current paths only
when no step along their direction lowers the misfit.  The residuals are always the
integrator's own, so
where the model moves exactly as the frames do the fit converges to the same
velocities as with exact Jacobians (a 24-atom water box moved by its learned
integrator, 20 fs gaps: 1e-9 Å/fs off); otherwise it stops where the approximate
normal equations vanish, which need not be the least-squares point.  That is why a
molecule keeps the exact Jacobians: through the shipped Bi-LSTM of malonaldehyde
(whose recurrent correction no Hessian sees), positions only at 20 fs, the linearised
fit stopped at a misfit of 0.133 Å² where the exact one reached 0.076, and its
velocities were 3× further from the truth; finishing with exact steps reached the same
point but saved only a quarter of the time (alanine dipeptide, ``bench/velocity_fit.py``).

Why Gauss–Newton rather than a first-order optimiser: the misfit has a few badly
conditioned directions that carry much of the position error.  L-BFGS stopped at
40 iterations left a quarter of the error; converging it took 100–150 iterations.
Gauss–Newton reaches a lower misfit in 4–7 iterations (stopping once an iteration
gains less than 0.1 %), 1.5–1.9× faster in float64 than converged L-BFGS in float32
(ethanol and uracil, 100 gaps of held-out GFN2-xTB data at factor 20;
``bench/shooting.py``).  The upsampler hands over a float64 integrator: in float32 the
last iterations gain less than rounding, and where the fit stopped (and the output,
by 1e-3 Å) depended on the input's orientation and the machine.

Each gap is shot in its canonical frame (the ``centres`` and ``rotations`` the
upsampler reconstructs it in): the node architecture and the recurrent corrections
are not rotation equivariant.  A periodic box (:func:`estimate_box_velocities`) is shot
in its cells, in overlapping segments of gaps that bound the Jacobians' memory.
"""

from __future__ import annotations

import logging

import numpy as np

from .. import units

__all__ = ["estimate_box_velocities", "estimate_velocities", "first_guess", "first_guesses"]

log = logging.getLogger(__name__)


def first_guess(positions, forces, masses, coarse_dt) -> np.ndarray:
    """Coarse velocities (n, N, 3), Å/fs, before any model: the C⁴ quintic spline's through
    positions and F/m where forces are stored (VASP, CP2K without a velocity file), else
    the cubic spline's derivative.

    Parameters
    ----------
    positions : ndarray, shape (n, N, 3), Å
        Unwrapped where periodic.
    forces : ndarray, shape (n, N, 3), eV/Å, or None
    masses : ndarray, shape (N,), u (used with forces only)
    coarse_dt : float
        fs.
    """
    from scipy.interpolate import CubicSpline

    from ..methods.classical import spline_velocities

    if forces is not None:
        return spline_velocities(positions, forces / masses[:, None] * units.ACCEL_PER_FORCE_OVER_MASS, coarse_dt)
    n = len(positions)
    return CubicSpline(np.arange(n), positions, axis=0)(np.arange(n), 1) / coarse_dt


def first_guesses(positions, forces, masses, coarse_dt) -> list:
    """The candidate starts of a box's fit, each (n, N, 3) Å/fs: the quintic spline's
    velocities (where forces are stored) and the cubic spline's.

    Neither is always closer.  On a 24-atom GFN1-xTB water box the quintic spline through
    F/m is the better start at 10 fs, and the worse at 20 fs, where the O–H stretch is
    aliased and F/m at the frames pulls it the wrong way (misfits of the model's paths
    15.7 against 17.8 Å², and 457 against 180); :func:`estimate_box_velocities` starts from
    whichever lands closer.  Arguments as :func:`first_guess`.
    """
    cubic = first_guess(positions, None, masses, coarse_dt)
    return [cubic] if forces is None else [first_guess(positions, forces, masses, coarse_dt), cubic]


def estimate_velocities(model, positions, coarse_dt, factor, device="cpu", centres=None, rotations=None,
                        max_iterations=20, rtol=1e-3, batch_rollouts=2048, step=1e-4, initial=None):
    """Coarse velocities consistent with coarse positions under a learned integrator.

    Parameters
    ----------
    model : LearnedIntegrator
        In the checkpoint's atom order; its parameters' dtype is used throughout.
    positions : ndarray, shape (n, N, 3), Å
        Consecutive coarse frames, n ≥ 2.
    coarse_dt : float
        Coarse time step, fs.
    factor : int
        Fine steps per coarse step (the integrator runs ``factor`` steps of
        ``coarse_dt / factor`` fs across each gap).
    device : str
    centres : ndarray, shape (n - 1, 3), Å, optional
    rotations : ndarray, shape (n - 1, 3, 3), optional
        The canonical frame of each gap, ``(x - centre) @ rotation``, in which the
        model is run for that gap — the frame the upsampler will run it in.  The
        node architecture and the recurrent corrections are not rotation
        equivariant, so this matters.  Default: the frames' common centroid, no
        rotation (exact for the Hamiltonian network).
    max_iterations : int
        Gauss–Newton iterations at most.
    rtol : float
        Stop when an iteration lowers the misfit by less than this fraction.
    batch_rollouts : int
        Rollouts sent through the network at once (bounds memory).
    step : float
        Velocity step of the forward differences, Å/fs.
    initial : ndarray, shape (n, N, 3), Å/fs, optional
        Where the fit starts; default the cubic spline's derivative.  With stored forces
        the quintic spline's velocities (:func:`first_guess`) start closer.

    Returns
    -------
    ndarray, shape (n, N, 3), Å/fs
    """
    n, n_atoms = positions.shape[:2]
    m = 3 * n_atoms
    if centres is None:
        # small coordinates keep float32 exact enough; forces depend on distances only
        centres = np.broadcast_to(positions.mean(axis=(0, 1)), (n - 1, 3))
        rotations = np.broadcast_to(np.eye(3), (n - 1, 3, 3))
    targets = positions.reshape(n, m)
    if initial is None:
        initial = first_guess(positions, None, None, coarse_dt)
    v = np.asarray(initial, dtype=np.float64).reshape(n, m)
    shooter = _Shooter(model, positions, centres, rotations, factor, coarse_dt / factor, device,
                       batch_rollouts, step)
    was_training = model.training
    model.train(False)
    try:
        misfit, residuals, jacobians = _misfit(shooter, v, targets, coarse_dt, with_jacobians=True)
        for _ in range(max_iterations):
            delta = _gauss_newton_step(residuals, jacobians, coarse_dt)
            # Backtrack if the linearisation overshoots (far from the solution).
            for shrink in (1.0, 0.5, 0.25, 0.125):
                trial = v + shrink * delta
                trial_misfit, _, _ = _misfit(shooter, trial, targets, coarse_dt, with_jacobians=False)
                if trial_misfit < misfit:
                    break
            else:
                break
            improvement = (misfit - trial_misfit) / misfit
            v = trial
            if improvement < rtol:
                break
            misfit, residuals, jacobians = _misfit(shooter, v, targets, coarse_dt, with_jacobians=True)
    finally:
        model.train(was_training)
    log.debug("shooting: %d Jacobians, %d misfit evaluations", shooter.jacobians, shooter.evaluations)
    return v.reshape(n, n_atoms, 3)


class _Shooter:
    """End states of the integrator started at either end of every gap, in the gap's
    canonical frame, returned in the input frame; and their Jacobians."""

    def __init__(self, model, positions, centres, rotations, factor, dt, device, batch_rollouts, step):
        import torch

        self.model, self.positions, self.factor, self.dt = model, positions, factor, dt
        self.centres, self.rotations = np.asarray(centres), np.asarray(rotations)
        self.device, self.dtype = torch.device(device), model.reference.dtype
        self.batch, self.step = batch_rollouts, step
        self.jacobians = self.evaluations = 0  # counted for the log

    def _tensor(self, array):
        import torch

        return torch.as_tensor(np.ascontiguousarray(array), device=self.device, dtype=self.dtype)

    def end_states(self, x0, v0):
        """Rollouts from canonical (x0, v0), (B, N, 3) arrays, Å and Å/fs → end (x, v), same shapes."""
        import torch

        ends_x, ends_v = [], []
        with torch.no_grad():
            for lo in range(0, len(x0), self.batch):
                xs, vs = self.model.rollout(self._tensor(x0[lo : lo + self.batch]),
                                            self._tensor(v0[lo : lo + self.batch]), self.factor, self.dt)
                ends_x.append(xs[:, -1].double().cpu().numpy())
                ends_v.append(vs[:, -1].double().cpu().numpy())
        return np.concatenate(ends_x), np.concatenate(ends_v)

    def shoot(self, starts, velocities, with_jacobians):
        """End states from frames ``starts`` (G,) with ``velocities`` (G, m) Å/fs, row g
        run in gap g's frame (``starts`` is gap g's first or last frame).

        Returns end positions and velocities, each (G, m) float64 in the input frame,
        and with ``with_jacobians`` their derivatives with respect to the start
        velocity, each (G, m, m) (row: end coordinate, column: start velocity component).
        """
        g = len(starts)  # row i belongs to gap i, whichever end it starts from
        n_atoms = self.positions.shape[1]
        m = 3 * n_atoms
        centres, rotations = self.centres, self.rotations
        x0 = np.einsum("gni,gij->gnj", self.positions[starts] - centres[:, None], rotations)
        v0 = np.einsum("gni,gij->gnj", velocities.reshape(g, n_atoms, 3), rotations)

        def to_input(ends, part):  # canonical (k, ..., N, 3) → input frame (k, ..., m)
            back = np.einsum("k...nj,kij->k...ni", ends, rotations[part])
            return back.reshape(*back.shape[:-2], m)

        if not with_jacobians:
            xe, ve = self.end_states(x0, v0)
            return to_input(xe, slice(None)) + np.tile(centres, n_atoms), to_input(ve, slice(None)), None, None
        # every gap's start plus its m perturbed copies, gaps sliced to bound memory.  The kicks
        # run along the gap's canonical axes and the derivatives are rotated back exactly: the
        # fit then does not depend on the input's orientation even through the differences'
        # truncation error.
        kicks = np.eye(m).reshape(m, n_atoms, 3) * self.step
        per_slice = max(1, self.batch // (m + 1))
        jx, jv, ends_x, ends_v = [], [], [], []

        def derivative(ends, part):  # (k, m + 1, m) input-frame ends → (k, m, m) d end / d input velocity
            canonical = ((ends[:, 1:] - ends[:, :1]) / self.step).reshape(len(ends), n_atoms, 3, m)
            return np.einsum("knco,kic->koni", canonical, rotations[part]).reshape(len(ends), m, m)

        for lo in range(0, g, per_slice):
            part = slice(lo, min(lo + per_slice, g))
            k = part.stop - part.start
            start_x = np.broadcast_to(x0[part, None], (k, m + 1, n_atoms, 3)).reshape(-1, n_atoms, 3)
            start_v = np.concatenate([v0[part, None], v0[part, None] + kicks], 1).reshape(-1, n_atoms, 3)
            xe, ve = self.end_states(start_x, start_v)
            xe = to_input(xe.reshape(k, m + 1, n_atoms, 3), part)
            ve = to_input(ve.reshape(k, m + 1, n_atoms, 3), part)
            jx.append(derivative(xe, part))
            jv.append(derivative(ve, part))
            ends_x.append(xe[:, 0])
            ends_v.append(ve[:, 0])
        return (np.concatenate(ends_x) + np.tile(centres, n_atoms), np.concatenate(ends_v),
                np.concatenate(jx), np.concatenate(jv))


def _misfit(shooter, v, targets, coarse_dt, with_jacobians):
    """Sum of squared residuals (Å²), the residuals (four (G, m) arrays, Å) and Jacobians."""
    gaps = np.arange(len(v) - 1)
    shooter.jacobians += with_jacobians
    shooter.evaluations += not with_jacobians
    xf, vf, jfx, jfv = shooter.shoot(gaps, v[:-1], with_jacobians)
    xb, vb, jbx, jbv = shooter.shoot(gaps + 1, -v[1:], with_jacobians)
    misfit, residuals = _residuals((xf, vf, xb, vb), v, targets, coarse_dt)
    return misfit, residuals, (jfx, jfv, jbx, jbv)


def _residuals(ends, v, targets, coarse_dt):
    """The misfit (Å²) and the four residual arrays (G, m) of the module docstring, from the
    end states ``ends`` = (x_f, v_f, x_b, v_b), each (G, m), of velocities ``v`` (n, m) Å/fs
    through frames ``targets`` (n, m) Å."""
    xf, vf, xb, vb = ends
    residuals = (xf - targets[1:], (vf - v[1:]) * coarse_dt, xb - targets[:-1], (vb + v[:-1]) * coarse_dt)
    return float(sum((r**2).sum() for r in residuals)), residuals


def _gauss_newton_step(residuals, jacobians, coarse_dt):
    """Solve the block-tridiagonal normal equations for the velocity update (n, m), Å/fs.

    Per gap ``g`` the residual derivatives are, with respect to ``v_g`` (A) and
    ``v_{g+1}`` (B), stacked in the order of :func:`_misfit`'s residuals:
    ``A = [Jfx; Jfv T; 0; I T]`` and ``B = [0; -I T; -Jbx; -Jbv T]`` (the backward
    rollout starts from ``-v_{g+1}``).  The products are formed block by block.
    """
    import scipy.linalg

    r1, r2, r3, r4 = residuals
    jfx, jfv, jbx, jbv = jacobians
    t = coarse_dt
    g, m = r1.shape
    n = g + 1
    eye = np.eye(m)
    a_a = jfx.transpose(0, 2, 1) @ jfx + t**2 * jfv.transpose(0, 2, 1) @ jfv + t**2 * eye
    b_b = jbx.transpose(0, 2, 1) @ jbx + t**2 * jbv.transpose(0, 2, 1) @ jbv + t**2 * eye
    a_b = -(t**2) * (jfv.transpose(0, 2, 1) + jbv)
    a_r = np.einsum("gij,gi->gj", jfx, r1) + t * np.einsum("gij,gi->gj", jfv, r2) + t * r4
    b_r = -t * r2 - np.einsum("gij,gi->gj", jbx, r3) - t * np.einsum("gij,gi->gj", jbv, r4)
    diagonal = np.zeros((n, m, m))
    diagonal[:-1] += a_a
    diagonal[1:] += b_b
    gradient = np.zeros((n, m))
    gradient[:-1] += a_r
    gradient[1:] += b_r
    # Symmetric positive definite with bandwidth 2m - 1: banded Cholesky, O(n m³) time and
    # O(n m²) memory.  A whisper of Levenberg damping keeps it definite should a direction
    # be unconstrained.
    damping = 1e-9 * np.trace(diagonal, axis1=1, axis2=2).mean() / m
    upper = 2 * m - 1
    bands = np.zeros((upper + 1, n * m))
    i, j = np.nonzero(np.triu(np.ones((m, m), dtype=bool)))  # block entries on and above the diagonal
    frames = np.arange(n)[:, None] * m
    bands[upper + i - j, frames + j] = diagonal[:, i, j]
    i, j = np.indices((m, m)).reshape(2, -1)  # the whole block right of the diagonal block
    bands[upper - m + i - j, frames[1:] + j] = a_b[:, i, j]
    for attempt in range(3):
        bands[upper] += damping * 1000**attempt
        try:
            return scipy.linalg.solveh_banded(bands, -gradient.ravel()).reshape(n, m)
        except np.linalg.LinAlgError:  # not definite within round-off: damp harder
            continue
    raise np.linalg.LinAlgError("shooting: the normal equations are singular")


def estimate_box_velocities(model, positions, cells, masses, coarse_dt, factor, *, pbc=(True, True, True),
                            device="cpu", initial=None, max_iterations=30, rtol=1e-2, position_tolerance=1e-5,
                            batch_gaps=16, segment_gaps=None, interval=5.0, step=1e-4):
    """Coarse velocities of a periodic box consistent with its positions under a learned
    local integrator (see the module docstring: harmonic Jacobians along the path and
    Broyden's update).

    Parameters
    ----------
    model : LocalIntegrator
        With :meth:`set_atoms` called for these atoms; its parameters' dtype is used
        throughout (the upsampler hands over a float64 copy).
    positions : ndarray, shape (n, N, 3), Å
        Consecutive coarse frames, unwrapped (a gap's end continues its start), n ≥ 2.
    cells : ndarray, shape (n, 3, 3), Å
    masses : ndarray, shape (N,), u
    coarse_dt : float
        Coarse time step, fs.
    factor : int
        Fine steps per coarse step.
    pbc : tuple of bool
    device : str
    initial : ndarray, shape (n, N, 3), Å/fs, or a list of them, optional
        Where the fit starts; of several (:func:`first_guesses`), each segment starts from
        the one whose paths land closest to the frames.  Default the cubic spline's derivative.
    max_iterations : int
        Steps at most per segment.
    rtol : float
        Stop when a step lowers the misfit by less than this fraction (1 %: on a 24-atom
        water box the further steps of 0.1 % moved the output by under 0.5 % at 1.5 times
        the cost; ``docs/benchmarks.md``)...
    position_tolerance : float
        ...or moves no velocity by more than this over a coarse step, Å.
    batch_gaps : int
        Gaps rolled out at once.
    segment_gaps : int, optional
        Gaps fitted together (the Jacobians are ``4 (3N)²`` numbers per gap); consecutive
        segments overlap by :data:`SEGMENT_OVERLAP` frames on each side, whose velocities
        are taken from the segment they are inside of.  Default: about 256 MB of Jacobians;
        at least ``2 * SEGMENT_OVERLAP + 2``.
    interval : float
        Longest sub-interval of the harmonic transfer, fs.
    step : float
        Displacement of the Hessians' forward differences, Å.

    Returns
    -------
    ndarray, shape (n, N, 3), Å/fs
    """
    import torch

    n, n_atoms = positions.shape[:2]
    m = 3 * n_atoms
    if initial is None:
        initial = first_guess(positions, None, masses, coarse_dt)
    starts = [np.asarray(start, dtype=np.float64) for start in (initial if isinstance(initial, list) else [initial])]
    v = starts[0].copy()
    if segment_gaps is None:
        segment_gaps = int(256e6 / (4 * 8 * m * m))
    dtype = next(model.parameters()).dtype
    shooter = _BoxShooter(model, positions, np.asarray(cells, dtype=np.float64), masses, pbc, factor,
                          coarse_dt, torch.device(device), dtype, batch_gaps, step, interval)
    was_training = model.training
    model.train(False)
    try:
        for lo, hi, keep_lo, keep_hi in _segments(n, segment_gaps):
            # the frames an earlier segment kept start from its fit, the others from each start
            segment_starts = [np.concatenate([v[lo:keep_lo], start[keep_lo:hi]]) for start in starts]
            fitted = _fit_box_segment(shooter, slice(lo, hi), segment_starts, max_iterations, rtol,
                                      position_tolerance)
            v[keep_lo:keep_hi] = fitted[keep_lo - lo:keep_hi - lo]
    finally:
        model.train(was_training)
    log.debug("box shooting: %d Hessians, %d rollouts", shooter.hessians, shooter.rollouts)
    return v


BOX_VELOCITY_WEIGHT = 0.3
"""Weight of a box fit's velocity residuals against its position residuals.  Chosen on the
coarse frames a water box's models learned from (24-atom GFN1-xTB, 41 frames each): the
upsampled positions' error fell from 1.25e-3 to 1.13e-3 Å at 10 fs and from 3.47e-3 to
3.26e-3 Å at 20 fs (0.5 gave 1.15e-3 and 3.27e-3); ``docs/benchmarks.md``."""

HESSIAN_ATOMS_PER_CALL = {False: 4096, True: 1024}
"""Atoms per force call of a Hessian's displaced copies, on an accelerator (False) and on the CPU
(True).  On one CPU core a call of about a thousand atoms costs 10-20 % less per atom than one of
4096 (the learned water-box model, 24, 96 and 192 atoms: 40-42 against 44-57 µs per atom; larger
calls leave the cache), and bounds the pairs' memory alike; ``docs/benchmarks.md``."""

LOCAL_HESSIAN_SAVING = 1.25
"""How much cheaper (in atoms whose energy is evaluated) a box's Hessian from each displaced
atom's neighbourhood (:meth:`_BoxShooter.local_hessian`) must be than the whole box's
displaced forces for it to be used: it makes more, smaller configurations."""

SEGMENT_OVERLAP = 3
"""Frames on each side of a segment of a long box fit that the next segment fits again
(a velocity's influence on the others decays from gap to gap)."""


def _segments(n, segment_gaps):
    """(lo, hi, keep_lo, keep_hi) frame ranges: fit frames lo:hi, keep keep_lo:keep_hi."""
    segment_gaps = max(int(segment_gaps), 2 * SEGMENT_OVERLAP + 2)  # each segment keeps at least 2 new frames
    if n - 1 <= segment_gaps:
        return [(0, n, 0, n)]
    out, keep_lo = [], 0
    while keep_lo < n:
        lo = max(keep_lo - SEGMENT_OVERLAP, 0)
        hi = min(lo + segment_gaps + 1, n)
        keep_hi = n if hi == n else hi - SEGMENT_OVERLAP
        out.append((lo, hi, keep_lo, keep_hi))
        keep_lo = keep_hi
    return out


def _fit_box_segment(shooter, frames, starts, max_iterations, rtol, position_tolerance):
    """Velocities (k, N, 3) of frames ``frames`` (a slice) fitted from the one of ``starts``
    (a list of (k, N, 3) arrays) whose paths land closest to the frames."""
    x = shooter.positions[frames]
    k, n_atoms = x.shape[:2]
    m, t = 3 * n_atoms, shooter.coarse_dt * BOX_VELOCITY_WEIGHT  # the velocity residuals' scale
    targets = x.reshape(k, m)

    def evaluate(v):
        ends = shooter.ends(frames, v)
        return (*_residuals(ends, v, targets, t), ends)

    starts = [start.reshape(k, m) for start in starts]
    # each start's paths once; the fit goes on from the chosen one's without running them again
    v, evaluated = (starts[0], None) if len(starts) == 1 else \
        min(((start, evaluate(start)) for start in starts), key=lambda pair: pair[1][0])
    at_frames = shooter.frame_hessians(frames)
    fitted = _quasi_newton(v.copy(), evaluate, lambda w: shooter.harmonic_jacobians(frames, w, at_frames),
                           shooter.coarse_dt, max_iterations, rtol, position_tolerance, velocity_scale=t,
                           evaluated=evaluated)
    return fitted.reshape(k, n_atoms, 3)


def _quasi_newton(v, evaluate, linearised_jacobians, coarse_dt, max_iterations, rtol, position_tolerance,
                  velocity_scale=None, evaluated=None):
    """Gauss–Newton steps with approximate Jacobians, corrected by Broyden's update after
    every accepted step; returns the velocities (n, m), Å/fs.

    ``evaluate(v)`` gives the misfit (Å²), the four residual arrays of :func:`_misfit` and
    the four end states (x_f, v_f, x_b, v_b), each (G, m);
    ``linearised_jacobians(v)`` the four (G, m, m) Jacobians along the paths from ``v``.
    The fit stops when a step gains less than ``rtol``.  Where no step along the current
    Jacobians' direction lowers the misfit they are linearised afresh about the current
    paths (far from the solution the first paths are far from the final ones), and the
    fit stops if that does not help either.  Linearising afresh also where a step merely
    gained little, as this did before, lowered the misfit by another 1 % at 1.5-1.75 times
    the Hessians, but left the upsampled positions no better: 0.6-7 % worse in five of six
    water-box fits, 0.07 % better in one (``docs/benchmarks.md``).
    ``velocity_scale`` (default ``coarse_dt``, fs) is what ``evaluate`` multiplied the velocity
    residuals by; ``evaluated``, ``evaluate(v)`` where the caller has it already.
    """
    velocity_scale = coarse_dt if velocity_scale is None else velocity_scale
    misfit, residuals, ends = evaluate(v) if evaluated is None else evaluated
    jacobians, fresh = linearised_jacobians(v), True
    for _ in range(max_iterations):
        delta = _gauss_newton_step(residuals, jacobians, velocity_scale)
        for shrink in (1.0, 0.5, 0.25, 0.125):  # backtrack where the linearisation overshoots
            trial = v + shrink * delta
            trial_misfit, trial_residuals, trial_ends = evaluate(trial)
            if trial_misfit < misfit:
                break
        else:
            if fresh:
                break
            jacobians, fresh = linearised_jacobians(v), True
            continue
        moved = trial - v
        _broyden(jacobians, ends, trial_ends, moved)
        improvement = (misfit - trial_misfit) / misfit
        v, misfit, residuals, ends = trial, trial_misfit, trial_residuals, trial_ends
        if np.abs(moved).max() * coarse_dt < position_tolerance or improvement < rtol:
            break
        fresh = False
    return v


def _broyden(jacobians, ends, new_ends, moved):
    """Broyden's secant update, in place, of each gap's four end-state Jacobians (G, m, m)
    from the step ``moved`` (n, m) Å/fs and the end states before and after it."""
    starts = (moved[:-1], moved[:-1], -moved[1:], -moved[1:])  # the backward run starts from -v_{g+1}
    for jacobian, before, after, dv in zip(jacobians, ends, new_ends, starts):
        norm = (dv * dv).sum(1)
        moving = norm > 0
        change = after - before - np.einsum("gij,gj->gi", jacobian, dv)
        jacobian[moving] += np.einsum("gi,gj->gij", change[moving], dv[moving]) / norm[moving, None, None]


class _BoxShooter:
    """Rollouts of a local integrator from either end of a box's gaps, and the harmonic
    Jacobians of the gaps along a path."""

    def __init__(self, model, positions, cells, masses, pbc, factor, coarse_dt, device, dtype, batch_gaps, step,
                 interval):
        self.model, self.positions, self.cells, self.pbc = model, positions, cells, tuple(bool(p) for p in pbc)
        self.factor, self.coarse_dt, self.dt = factor, coarse_dt, coarse_dt / factor
        self.device, self.dtype, self.batch, self.step = device, dtype, batch_gaps, step
        self.sqrt_accel = np.sqrt(units.ACCEL_PER_FORCE_OVER_MASS / np.repeat(np.asarray(masses, np.float64), 3))
        self.bounds = _sub_intervals(coarse_dt, factor, interval)
        self.durations = np.diff(self.bounds) * self.dt
        self.hessians = self.rollouts = 0  # counted for the log

    def _tensor(self, array):
        import torch

        # one frame of broadcast cells is contiguous but read-only, which torch warns about: copy it
        return torch.as_tensor(np.require(array, requirements="CW"), device=self.device, dtype=self.dtype)

    def _rollouts(self, starts, velocities, cells, frames, batch=None):
        """Positions and velocities (G, len(frames), N, 3) at fine frames ``frames``, run
        ``batch`` (default ``batch_gaps``) at once."""
        import torch

        g, n_atoms = starts.shape[:2]
        batch = batch or self.batch
        v = velocities.reshape(g, n_atoms, 3)
        out_x, out_v = [], []
        with torch.no_grad():
            for lo in range(0, g, batch):
                part = slice(lo, lo + batch)
                xs, vs = self.model.rollout(self._tensor(starts[part]), self._tensor(v[part]),
                                            self._tensor(cells[part]), self.factor, self.dt, self.pbc)
                out_x.append(xs[:, list(frames)].double().cpu().numpy())
                out_v.append(vs[:, list(frames)].double().cpu().numpy())
        self.rollouts += g
        return np.concatenate(out_x), np.concatenate(out_v)

    def ends(self, frames, v):
        """End states (x_f, v_f, x_b, v_b), each (G, m), of the gaps of ``frames`` (a slice):
        run forward from each first frame with velocities ``v[:-1]`` and backward from each
        last frame with ``-v[1:]`` (``v`` (k, m) Å/fs); both directions in one batch (the
        force calls cost less per configuration in larger batches)."""
        x, cells = self.positions[frames], self.cells[frames]
        g = len(x) - 1
        xs, vs = self._rollouts(np.concatenate([x[:-1], x[1:]]), np.concatenate([v[:-1], -v[1:]]),
                                np.concatenate([cells[:-1], cells[1:]]), [-1], batch=2 * self.batch)
        xs, vs = xs[:, 0].reshape(2, g, -1), vs[:, 0].reshape(2, g, -1)
        return xs[0], vs[0], xs[1], vs[1]

    def displaced_forces(self, x, cell, base=None):
        """The model's forces (B, m), eV/Å, at positions ``x`` (B, N, 3) in ``cell`` (3, 3):
        small displacements of ``x[0]`` (within half the Verlet skin, as a Hessian's), which
        share its neighbour list (``base``, built here if not given);
        :data:`HESSIAN_ATOMS_PER_CALL` atoms per call."""
        import torch

        from .local import repeated_neighbour_list

        if np.linalg.norm(x - x[:1], axis=-1).max() > 0.5 * self.model.skin:
            raise ValueError("displaced_forces: the displacements exceed half the Verlet skin")
        chunk = max(1, HESSIAN_ATOMS_PER_CALL[self.device.type == "cpu"] // x.shape[1])
        forces = []
        with torch.no_grad():
            if base is None:
                base = self.model.neighbours(self._tensor(x[:1]), self._tensor(cell[None]), self.pbc)
            for lo in range(0, len(x), chunk):
                part = self._tensor(x[lo:lo + chunk])
                cells = self._tensor(np.broadcast_to(cell, (len(part), 3, 3)))
                nl = repeated_neighbour_list(base, len(part), part)
                forces.append(self.model.forces(part, cells, nl).double().cpu().numpy().reshape(len(part), -1))
        return np.concatenate(forces)

    def hessian(self, x, cell):
        """The model's Hessian (m, m), eV/Å², at positions ``x`` (N, 3) Å in ``cell`` (3, 3) Å, by
        forward differences: column by column from the energies of the atoms within the cutoff
        of the displaced atom only (:meth:`local_hessian`) where that costs less than the
        whole box's forces at each of the ``3N + 1`` displacements (:func:`_hessian`)."""
        n = len(x)
        base, moves = self.neighbourhoods(x, cell)
        if LOCAL_HESSIAN_SAVING * 4 * int(moves.sum()) < (3 * n + 1) * n:
            return self.local_hessian(x, cell, base, moves)
        return _hessian(lambda y: self.displaced_forces(y, cell, base), x, self.step)

    def neighbourhoods(self, x, cell):
        """The Verlet list at positions ``x`` (N, 3) Å in ``cell`` (3, 3) Å, and whose energy a
        displacement of each atom changes: ``moves[j]`` (N, N bool) is ``j`` and its neighbours
        within the cutoff."""
        import torch

        with torch.no_grad():
            base = self.model.neighbours(self._tensor(x[None]), self._tensor(cell[None]), self.pbc)
            flat = self._tensor(x)
            close = self.model.within_cutoff(flat, self.model.image_shifts(self._tensor(cell[None]), base), base)
        moves = torch.eye(len(x), dtype=torch.bool, device=flat.device)
        moves[base.first[close], base.second[close]] = True
        return base, moves

    def local_hessian(self, x, cell, base, moves):
        """:meth:`hessian` from the energies of the atoms ``moves[j]`` (N, N bool) at the atom
        ``j`` displaced and not: ``4`` configurations per atom, each as costly as its ``moves[j]``
        atoms, instead of ``3`` of the whole box.  ``base`` is the Verlet list at ``x``."""
        import torch

        from .local import NeighbourList

        n, m = len(x), 3 * len(x)
        hessian = np.empty((m, m))
        per_atom = 4 * float(moves.sum()) / n  # centres per atom's four configurations
        group = max(1, int(HESSIAN_ATOMS_PER_CALL[self.device.type == "cpu"] // per_atom))
        x0, cell_t = self._tensor(x), self._tensor(cell)
        with torch.no_grad():
            for lo in range(0, n, group):
                atoms = torch.arange(lo, min(lo + group, n), device=x0.device)
                k = len(atoms)
                xb = x0.expand(4 * k, n, 3).clone()
                for d in range(3):  # configuration 4 a + 1 + d: atom `atoms[a]` moved along axis d
                    xb[4 * torch.arange(k, device=x0.device) + 1 + d, atoms, d] += self.step
                # each configuration gets the base list's pairs of its centres only
                owner, pair = moves[atoms][:, base.first].nonzero(as_tuple=True)
                frame = (4 * owner[:, None] + torch.arange(4, device=x0.device)).reshape(-1)
                pair = pair.repeat_interleave(4)
                nl = NeighbourList(frame * n + base.first[pair], frame * n + base.second[pair], base.images[pair],
                                   frame, xb)
                centre_owner, centre = moves[atoms].nonzero(as_tuple=True)
                centres = ((4 * centre_owner[:, None] + torch.arange(4, device=x0.device)) * n
                           + centre[:, None]).reshape(-1)
                forces = self.model.forces(xb, cell_t.expand(4 * k, 3, 3), nl, centres=centres.sort().values)
                forces = forces.double().cpu().numpy().reshape(k, 4, m)
                columns = -(forces[:, 1:] - forces[:, :1]) / self.step  # (k, 3, m): d F / d x_{a, d}
                hessian[3 * lo:3 * (lo + k)] = columns.reshape(3 * k, m)
        return 0.5 * (hessian + hessian.T)

    def frame_hessians(self, frames):
        """The Hessians (k, m, m), eV/Å², at the coarse frames ``frames`` (a slice): they do
        not depend on the velocities, so a fit forms them once."""
        x, cells = self.positions[frames], self.cells[frames]
        self.hessians += len(x)
        return np.stack([self.hessian(p, c) for p, c in zip(x, cells)])

    def harmonic_jacobians(self, frames, v, at_frames):
        """Each gap's four (G, m, m) Jacobians (:func:`_gap_jacobians`) along the forward
        paths from velocities ``v`` (k, m) of frames ``frames`` (a slice), given the
        Hessians ``at_frames`` (k, m, m) of :meth:`frame_hessians`."""
        x, cells = self.positions[frames], self.cells[frames]
        g = len(x) - 1
        m = self.sqrt_accel.size
        interior = self.bounds[1:-1]
        path = self._rollouts(x[:-1], v[:-1], cells[:-1], interior)[0] if len(interior) else None
        out = [np.empty((g, m, m)) for _ in range(4)]
        for gap in range(g):
            inner = [] if path is None else [self.hessian(p, cells[gap]) for p in path[gap]]
            self.hessians += len(inner)
            nodes = [at_frames[gap], *inner, at_frames[gap + 1]]
            for array, jacobian in zip(out, _gap_jacobians(nodes, self.durations, self.sqrt_accel)):
                array[gap] = jacobian
        return tuple(out)


def _sub_intervals(coarse_dt, factor, interval):
    """Fine-frame indices (0 … factor) bounding the sub-intervals of at most ``interval`` fs."""
    n_intervals = max(1, int(np.ceil(coarse_dt / interval - 1e-9)))
    return np.unique(np.round(np.linspace(0, factor, n_intervals + 1)).astype(int))


def _hessian(forces, x, step):
    """The Hessian (m, m), eV/Å², at positions ``x`` (N, 3), Å, by forward differences of
    ``forces`` ((B, N, 3) positions → (B, m) forces), symmetrised."""
    m = x.size
    displaced = np.repeat(x.reshape(1, m), m + 1, axis=0)
    displaced[1:] += np.eye(m) * step
    f = forces(displaced.reshape(m + 1, *x.shape))
    hessian = -(f[1:] - f[:1]) / step  # row: displaced coordinate
    return 0.5 * (hessian + hessian.T)


def _gap_jacobians(hessians, durations, sqrt_accel):
    """A gap's (∂x_f/∂v_g, ∂v_f/∂v_g, ∂x_b/∂u, ∂v_b/∂u), each (m, m), of the dynamics
    linearised along its path: harmonic on each sub-interval about the mean of the Hessians
    (m, m, eV/Å²) at its ends, ``len(durations) + 1`` of them from the gap's first frame to
    its last; the backward run (from ``u = -v_{g+1}``) crosses them in reverse.
    ``sqrt_accel`` (m,) is √(ACCEL_PER_FORCE_OVER_MASS / mass) of each coordinate."""
    m = len(sqrt_accel)
    mass_weighting = np.outer(sqrt_accel, sqrt_accel)  # K = M^-1/2 H M^-1/2, fs⁻²
    scale = sqrt_accel[:, None] / sqrt_accel[None, :]  # mass-weighted → Cartesian
    transfers = [_harmonic_transfer(0.5 * (a + b) * mass_weighting, tau)
                 for a, b, tau in zip(hessians[:-1], hessians[1:], durations)]
    out = []
    for order in (transfers, transfers[::-1]):
        product = np.eye(2 * m)
        for transfer in order:
            product = transfer @ product
        out += [product[:m, m:] * scale, product[m:, m:] * scale]
    return out


def _harmonic_transfer(k_matrix, tau):
    """The (2m, 2m) map of mass-weighted (q, q̇) over ``tau`` fs under q̈ = −K q, K (m, m) in fs⁻².

    Directions of negative curvature move freely (sin(wτ)/w → τ, cos → 1) rather than
    growing as sinh/cosh: a learned potential far from its data (the 2h and 4h gaps that
    ``auto`` holds frames back over) can have strongly negative curvatures, whose
    exponentials would overflow; the Jacobian is only a model, corrected by Broyden.
    """
    eigenvalues, vectors = np.linalg.eigh(k_matrix)
    stiff = eigenvalues > 1e-12
    w = np.sqrt(np.where(stiff, eigenvalues, 1.0))
    wt = w * tau
    sine = np.where(stiff, np.sin(wt) / w, tau)
    cosine = np.where(stiff, np.cos(wt), 1.0)
    minus_k_sine = np.where(stiff, -w * np.sin(wt), 0.0)  # d q̇ / d q

    def matrix(diagonal):
        return (vectors * diagonal) @ vectors.T

    c = matrix(cosine)
    return np.block([[c, matrix(sine)], [matrix(minus_k_sine), c]])
