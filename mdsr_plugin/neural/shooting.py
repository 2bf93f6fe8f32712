"""Coarse velocities for positions-only input, by multiple shooting through a learned integrator.

XYZ and DCD archives usually store positions only, but the bi-directional
integrator starts from positions *and* velocities.  The velocities ``v_k`` of the
coarse frames are therefore fitted so that the integrator started at frame ``k``
lands on frame ``k + 1`` when run forward, on frame ``k - 1`` when run backward,
and arrives with the neighbour's velocity (velocities are continuous in time).
Per gap ``g`` (frames ``g`` and ``g + 1``, coarse step ``T``) the residuals are

    x_f(x_g, v_g) - x_{g+1},         (v_f(x_g, v_g) - v_{g+1}) T,
    x_b(x_{g+1}, -v_{g+1}) - x_g,    (v_b(x_{g+1}, -v_{g+1}) + v_g) T,

where ``(x_f, v_f)`` and ``(x_b, v_b)`` are the end states of the forward and the
backward (momenta reversed) rollouts.  Their sum of squares is minimised by
Gauss–Newton: each gap's end states depend only on the velocity it starts from,
so the normal equations are block-tridiagonal in the frames and are solved as one
banded system.  The per-gap Jacobians (3N × 3N blocks) come from forward
differences, all directions of all gaps batched through the network.

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
are not rotation equivariant.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["estimate_box_velocities", "estimate_velocities", "first_guess"]

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
    masses : ndarray, shape (N,), u
    coarse_dt : float
        fs.
    """
    from scipy.interpolate import CubicSpline

    from .. import units
    from ..methods.classical import spline_velocities

    if forces is not None:
        return spline_velocities(positions, forces / masses[:, None] * units.ACCEL_PER_FORCE_OVER_MASS, coarse_dt)
    n = len(positions)
    return CubicSpline(np.arange(n), positions, axis=0)(np.arange(n), 1) / coarse_dt


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
        the quintic spline's velocities
        (:func:`mdsr_plugin.methods.classical.spline_velocities`) start closer.

    Returns
    -------
    ndarray, shape (n, N, 3), Å/fs
    """
    from scipy.interpolate import CubicSpline

    n, n_atoms = positions.shape[:2]
    m = 3 * n_atoms
    if centres is None:
        # small coordinates keep float32 exact enough; forces depend on distances only
        centres = np.broadcast_to(positions.mean(axis=(0, 1)), (n - 1, 3))
        rotations = np.broadcast_to(np.eye(3), (n - 1, 3, 3))
    targets = positions.reshape(n, m)
    if initial is None:
        v = CubicSpline(np.arange(n), targets, axis=0)(np.arange(n), 1) / coarse_dt  # (n, m) Å/fs
    else:
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
    residuals = (xf - targets[1:], (vf - v[1:]) * coarse_dt, xb - targets[:-1], (vb + v[:-1]) * coarse_dt)
    misfit = float(sum((r**2).sum() for r in residuals))
    return misfit, residuals, (jfx, jfv, jbx, jbv)


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
                            device="cpu", initial=None, max_iterations=30, rtol=1e-3, position_tolerance=1e-5,
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
    initial : ndarray, shape (n, N, 3), Å/fs, optional
        Where the fit starts; default the cubic spline's derivative (with stored forces the
        quintic spline's velocities start much closer).
    max_iterations : int
        Steps at most per segment.
    rtol : float
        Stop when a step lowers the misfit by less than this fraction...
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
        from scipy.interpolate import CubicSpline

        initial = CubicSpline(np.arange(n), positions, axis=0)(np.arange(n), 1) / coarse_dt
    v = np.array(initial, dtype=np.float64)
    if segment_gaps is None:
        segment_gaps = int(256e6 / (4 * 8 * m * m))
    dtype = next(model.parameters()).dtype
    shooter = _BoxShooter(model, positions, np.asarray(cells, dtype=np.float64), masses, pbc, factor,
                          coarse_dt, torch.device(device), dtype, batch_gaps, step, interval)
    was_training = model.training
    model.train(False)
    try:
        for lo, hi, keep_lo, keep_hi in _segments(n, segment_gaps):
            fitted = _fit_box_segment(shooter, slice(lo, hi), v[lo:hi], max_iterations, rtol, position_tolerance)
            v[keep_lo:keep_hi] = fitted[keep_lo - lo:keep_hi - lo]
    finally:
        model.train(was_training)
    log.debug("box shooting: %d Hessians, %d rollouts", shooter.hessians, shooter.rollouts)
    return v


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


def _fit_box_segment(shooter, frames, v, max_iterations, rtol, position_tolerance):
    """Velocities (k, N, 3) of frames ``frames`` (a slice) fitted from ``v``."""
    x = shooter.positions[frames]
    k, n_atoms = x.shape[:2]
    m, t = 3 * n_atoms, shooter.coarse_dt
    targets = x.reshape(k, m)
    v = v.reshape(k, m).copy()

    def evaluate(v, keep_path=False):
        (xf, vf), path = shooter.ends(frames, v[:-1], forward=True, keep_path=keep_path)
        (xb, vb), _ = shooter.ends(frames, -v[1:], forward=False)
        residuals = (xf - targets[1:], (vf - v[1:]) * t, xb - targets[:-1], (vb + v[:-1]) * t)
        return float(sum((r**2).sum() for r in residuals)), residuals, (xf, vf, xb, vb), path

    misfit, residuals, ends, path = evaluate(v, keep_path=True)
    jacobians = shooter.harmonic_jacobians(frames, path)
    for _ in range(max_iterations):
        delta = _gauss_newton_step(residuals, jacobians, t)
        for shrink in (1.0, 0.5, 0.25, 0.125):
            trial = v + shrink * delta
            trial_misfit, trial_residuals, trial_ends, _ = evaluate(trial)
            if trial_misfit < misfit:
                break
        else:
            break
        moved = trial - v
        _broyden(jacobians, ends, trial_ends, moved)
        improvement = (misfit - trial_misfit) / misfit
        v, misfit, residuals, ends = trial, trial_misfit, trial_residuals, trial_ends
        if improvement < rtol or np.abs(moved).max() * t < position_tolerance:
            break
    return v.reshape(k, n_atoms, 3)


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
        self.sqrt_mass = np.sqrt(np.repeat(np.asarray(masses, dtype=np.float64), 3))  # (m,)
        n_intervals = max(1, int(np.ceil(coarse_dt / interval - 1e-9)))
        # sub-interval boundaries as fine-frame indices (0 and factor: the coarse frames)
        self.bounds = np.unique(np.round(np.linspace(0, factor, n_intervals + 1)).astype(int))
        self.hessians = self.rollouts = 0  # counted for the log

    def _tensor(self, array):
        import torch

        return torch.as_tensor(np.ascontiguousarray(array), device=self.device, dtype=self.dtype)

    def ends(self, frames, velocities, forward, keep_path=False):
        """End states (G, m) of the gaps of ``frames``, run forward from each first frame
        with ``velocities`` (G, m), or backward from each last frame; with ``keep_path``
        also the positions (G, len(bounds), N, 3) at the sub-interval boundaries."""
        import torch

        x = self.positions[frames]
        cells = self.cells[frames]
        starts, start_cells = (x[:-1], cells[:-1]) if forward else (x[1:], cells[1:])
        g, n_atoms = starts.shape[:2]
        v = velocities.reshape(g, n_atoms, 3)
        end_x, end_v, paths = [], [], []
        with torch.no_grad():
            for lo in range(0, g, self.batch):
                part = slice(lo, lo + self.batch)
                xs, vs = self.model.rollout(self._tensor(starts[part]), self._tensor(v[part]),
                                            self._tensor(start_cells[part]), self.factor, self.dt, self.pbc)
                end_x.append(xs[:, -1].double().cpu().numpy().reshape(-1, 3 * n_atoms))
                end_v.append(vs[:, -1].double().cpu().numpy().reshape(-1, 3 * n_atoms))
                if keep_path:
                    paths.append(xs[:, self.bounds].double().cpu().numpy())
        self.rollouts += g
        return (np.concatenate(end_x), np.concatenate(end_v)), (np.concatenate(paths) if keep_path else None)

    def hessian(self, x, cell):
        """The learned potential's Hessian (m, m), eV/Å², at positions ``x`` (N, 3) Å, by
        forward differences of its forces, symmetrised."""
        import torch

        n_atoms = len(x)
        m = 3 * n_atoms
        displaced = np.repeat(x.reshape(1, m), m + 1, axis=0)
        displaced[1:] += np.eye(m) * self.step
        displaced = displaced.reshape(m + 1, n_atoms, 3)
        chunk = max(1, 4096 // n_atoms)  # boxes per force call: bounds the neighbour lists' memory
        forces = []
        with torch.no_grad():
            for lo in range(0, m + 1, chunk):
                part = displaced[lo:lo + chunk]
                cells = np.broadcast_to(cell, (len(part), 3, 3))
                forces.append(self.model.forces(self._tensor(part), self._tensor(cells), pbc=self.pbc)
                              .double().cpu().numpy().reshape(len(part), m))
        forces = np.concatenate(forces)
        self.hessians += 1
        hessian = -(forces[1:] - forces[:1]) / self.step  # row: displaced coordinate
        return 0.5 * (hessian + hessian.T)

    def harmonic_jacobians(self, frames, path):
        """Each gap's (∂x_f/∂v_g, ∂v_f/∂v_g, ∂x_b/∂u, ∂v_b/∂u), four (G, m, m) arrays, of
        the dynamics linearised along ``path`` (G, len(bounds), N, 3): harmonic about the
        mean of the Hessians at the ends of each sub-interval; the backward run (from
        ``u = -v_{g+1}``) crosses the same sub-intervals in reverse."""
        from .. import units

        x, cells = self.positions[frames], self.cells[frames]
        g = len(x) - 1
        m = self.sqrt_mass.size
        inverse_mass = units.ACCEL_PER_FORCE_OVER_MASS / np.outer(self.sqrt_mass, self.sqrt_mass)
        at_frames = [self.hessian(x[k], cells[k]) for k in range(g + 1)]
        durations = np.diff(self.bounds) * self.dt
        scale = self.sqrt_mass[None, :] / self.sqrt_mass[:, None]  # mass-weighted → Cartesian
        out = [np.empty((g, m, m)) for _ in range(4)]
        for gap in range(g):
            nodes = [at_frames[gap]] + [self.hessian(path[gap, b], cells[gap]) for b in range(1, len(self.bounds) - 1)] \
                + [at_frames[gap + 1]]
            transfers = [_harmonic_transfer(0.5 * (a + b) * inverse_mass, tau)
                         for a, b, tau in zip(nodes[:-1], nodes[1:], durations)]
            for first, order in ((0, transfers), (2, transfers[::-1])):
                product = np.eye(2 * m)
                for transfer in order:
                    product = transfer @ product
                out[first][gap] = product[:m, m:] * scale
                out[first + 1][gap] = product[m:, m:] * scale
        return tuple(out)


def _harmonic_transfer(k_matrix, tau):
    """The (2m, 2m) map of mass-weighted (q, q̇) over ``tau`` fs under q̈ = −K q, K (m, m) in fs⁻²."""
    eigenvalues, vectors = np.linalg.eigh(k_matrix)
    w = np.sqrt(np.abs(eigenvalues))
    wt = w * tau
    stiff, soft = eigenvalues > 1e-12, eigenvalues < -1e-12
    safe_w = np.where(stiff | soft, w, 1.0)
    sine = np.where(stiff, np.sin(wt) / safe_w, np.where(soft, np.sinh(wt) / safe_w, tau))
    cosine = np.where(soft, np.cosh(wt), np.cos(wt))
    # d q̇ / d q = −K sin(√K τ)/√K  (+ w sinh for negative curvature)
    minus_k_sine = np.where(stiff, -w * np.sin(wt), np.where(soft, w * np.sinh(wt), 0.0))

    def matrix(diagonal):
        return (vectors * diagonal) @ vectors.T

    c = matrix(cosine)
    return np.block([[c, matrix(sine)], [matrix(minus_k_sine), c]])
