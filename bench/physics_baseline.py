"""The physical limit: re-integrate each coarse gap with the true potential, from both ends.

From coarse frame g the equations of motion are integrated forward with velocity
Verlet and GFN2-xTB forces; from frame g + 1 they are integrated backward (velocities
reversed); the two paths are blended linearly across the gap, exactly as the
bi-directional neural upsampler does with its learned integrator.  On deterministic
(Nosé–Hoover, nearly NVE over a gap) data this reaches the integrator's accuracy; on
Langevin data the thermostat's random kicks inside the gap are unknowable, which sets
a floor no reconstruction can pass.

Used by ``bench/classical_accuracy.py``; needs tblite.
"""

from __future__ import annotations

import numpy as np

from mdsr_plugin import units


def _verlet(atoms, positions, velocities, n_steps, dt):
    """Velocity-Verlet positions and velocities, shape (n_steps + 1, N, 3), Å and Å/fs."""
    masses = atoms.get_masses()[:, None]
    x, v = positions.copy(), velocities.copy()
    atoms.positions = x
    a = atoms.get_forces() / masses * units.ACCEL_PER_FORCE_OVER_MASS
    xs, vs = [x.copy()], [v.copy()]
    for _ in range(n_steps):
        v_half = v + 0.5 * dt * a
        x = x + dt * v_half
        atoms.positions = x
        a = atoms.get_forces() / masses * units.ACCEL_PER_FORCE_OVER_MASS
        v = v_half + 0.5 * dt * a
        xs.append(x.copy())
        vs.append(v.copy())
    return np.array(xs), np.array(vs)


def reintegrate_gaps(coarse, factor, n_gaps=None, substeps=2):
    """Bi-directional re-integration of the first ``n_gaps`` gaps with GFN2-xTB.

    Parameters
    ----------
    coarse : mdsr_plugin.Trajectory
        Coarse frames with velocities.
    factor : int
        Fine frames per gap.
    substeps : int
        Integration steps per fine frame (0.5 fs steps for a 1 fs fine grid).

    Returns
    -------
    positions, velocities : ndarray, shape (n_gaps * factor + 1, N, 3), Å and Å/fs
    """
    from ase import Atoms
    from tblite.ase import TBLite

    n_gaps = coarse.n_frames - 1 if n_gaps is None else min(n_gaps, coarse.n_frames - 1)
    atoms = Atoms(numbers=coarse.numbers, masses=coarse.masses)
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    h = coarse.dt / factor / substeps
    n_steps = factor * substeps
    lam = (np.arange(factor + 1) / factor)[:, None, None]
    positions, velocities = [], []
    for g in range(n_gaps):
        xf, vf = _verlet(atoms, coarse.positions[g], coarse.velocities[g], n_steps, h)
        xb, vb = _verlet(atoms, coarse.positions[g + 1], -coarse.velocities[g + 1], n_steps, h)
        xf, vf = xf[::substeps], vf[::substeps]
        xb, vb = xb[::substeps][::-1], -vb[::substeps][::-1]
        positions.append(((1 - lam) * xf + lam * xb)[:-1])
        velocities.append(((1 - lam) * vf + lam * vb)[:-1])
    positions.append(coarse.positions[n_gaps][None])
    velocities.append(coarse.velocities[n_gaps][None])
    return np.concatenate(positions), np.concatenate(velocities)
