"""The physical limit: re-integrate each coarse gap with the true potential, from both ends.

From coarse frame g the equations of motion are integrated forward with velocity
Verlet and GFN2-xTB forces; from frame g + 1 they are integrated backward (velocities
reversed); the two paths are blended linearly across the gap, exactly as the
bi-directional neural upsampler does with its learned integrator.  On deterministic
(Nosé–Hoover, nearly NVE over a gap) data this reaches the integrator's accuracy; on
Langevin data the thermostat's random kicks inside the gap are unknowable, which sets
a floor no reconstruction can pass.

Used by ``bench/classical_accuracy.py``; needs tblite (or PySCF for a DFT Hamiltonian).
On its own it scores the re-integration on the first gaps of reference trajectories::

    python bench/physics_baseline.py bench/data/ethanol_400K_nve_gfn1_s99.h5md --hamiltonian gfn1-xtb \
        --factors 5 10 20 --gaps 50 [--json bench/results/physics_baseline.json]
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


def reintegrate_gaps(coarse, factor, n_gaps=None, substeps=2, hamiltonian="gfn2-xtb"):
    """Bi-directional re-integration of the first ``n_gaps`` gaps with the true potential.

    Parameters
    ----------
    coarse : mdsr_plugin.Trajectory
        Coarse frames with velocities.
    factor : int
        Fine frames per gap.
    substeps : int
        Integration steps per fine frame (0.5 fs steps for a 1 fs fine grid).
    hamiltonian : str
        As ``mdsr-generate --hamiltonian`` (the one the reference was made with).

    Returns
    -------
    positions, velocities : ndarray, shape (n_gaps * factor + 1, N, 3), Å and Å/fs
    """
    from ase import Atoms

    from mdsr_plugin.hamiltonians import make_calculator

    n_gaps = coarse.n_frames - 1 if n_gaps is None else min(n_gaps, coarse.n_frames - 1)
    atoms = Atoms(numbers=coarse.numbers, masses=coarse.masses)
    atoms.calc = make_calculator(hamiltonian)
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


def main(argv=None) -> int:
    import argparse
    import json
    from pathlib import Path

    from mdsr_plugin.io import read_trajectory
    from mdsr_plugin.metrics import position_mae, reconstructed_mask
    from mdsr_plugin.pipeline import upsample
    from results_file import append_rows

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("references", nargs="+", type=Path)
    parser.add_argument("--hamiltonian", default="gfn2-xtb")
    parser.add_argument("--factors", nargs="+", type=int, default=[5, 10, 20])
    parser.add_argument("--gaps", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = []
    for path in args.references:
        fine = read_trajectory(path)[::2]  # 1 fs
        for factor in args.factors:
            coarse = fine[::factor][: args.gaps + 1]
            n = (coarse.n_frames - 1) * factor + 1
            truth, mask = fine[:n], reconstructed_mask(n, factor)
            x, v = reintegrate_gaps(coarse, factor, hamiltonian=args.hamiltonian)
            hermite = upsample(coarse, factor, "hermite")
            row = {"file": path.name, "factor": factor, "gaps": coarse.n_frames - 1,
                   "reintegration_position_mae": position_mae(x, truth.positions, mask),
                   "reintegration_velocity_mae": position_mae(v, truth.velocities, mask),
                   "hermite_position_mae": position_mae(hermite.positions, truth.positions, mask)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        append_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
