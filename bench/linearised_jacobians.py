"""The velocity fit with linearised (harmonic, Broyden-corrected) Jacobians against the
exact ones, by forward differences of the rollouts (issue #29).

A box's fit (:func:`mdsr_plugin.neural.shooting.estimate_box_velocities`) uses the
linearised Jacobians because the exact ones cost ``2 (3N + 1)`` rollouts per gap and
iteration; a molecule's (:func:`~mdsr_plugin.neural.shooting.estimate_velocities`)
keeps the exact ones.  This measures both kinds both ways on the coarse frames of a
reference run (0.5 fs steps), from the first guess the pipeline uses (the quintic
spline with stored forces, else the cubic spline): seconds, the final misfit (Å², the
sum of the squared residuals of the module docstring), and the fitted velocities'
MAE against the reference's.

    OMP_NUM_THREADS=1 python bench/linearised_jacobians.py box bench/data/water8_300K_nve_gfn1_s3.h5md \\
        bench/training/box/water8_300K_nve_gfn1_s3-f10-forces.json --factor 10 --start 900 --frames 31
    OMP_NUM_THREADS=1 python bench/linearised_jacobians.py molecule REFERENCE.h5md \\
        models/malonaldehyde-bilstm-f20-1fs.json --factor 20 --positions-only
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from mdsr_plugin.io import read_trajectory
from mdsr_plugin.neural import shooting
from mdsr_plugin.neural.checkpoint import load_checkpoint
from mdsr_plugin.periodic import Unwrapper


def exact_box_jacobians(shooter, frames, v):
    """The four (G, m, m) Jacobians of a box's gaps by forward differences of rollouts."""
    x, cells = shooter.positions[frames], shooter.cells[frames]
    g, m = len(x) - 1, v.shape[1]
    kicks = np.eye(m) * 1e-4
    out = []
    for starts, start_cells, velocities in ((x[:-1], cells[:-1], v[:-1]), (x[1:], cells[1:], -v[1:])):
        jx, jv = np.empty((g, m, m)), np.empty((g, m, m))
        for gap in range(g):
            kicked = np.concatenate([velocities[gap][None], velocities[gap] + kicks])
            xs, vs = shooter._rollouts(np.repeat(starts[gap][None], m + 1, 0), kicked,
                                       np.repeat(start_cells[gap][None], m + 1, 0), [-1])
            xs, vs = xs[:, 0].reshape(m + 1, m), vs[:, 0].reshape(m + 1, m)
            jx[gap], jv[gap] = ((xs[1:] - xs[:1]) / 1e-4).T, ((vs[1:] - vs[:1]) / 1e-4).T
        out += [jx, jv]
    return tuple(out)


def box(coarse, model, factor):
    x = Unwrapper(coarse.pbc)(coarse.positions, coarse.cell)
    n, m = len(x), x[0].size
    cells = np.broadcast_to(coarse.cell, (n, 3, 3)).copy()
    model.set_atoms(coarse.numbers, coarse.masses)
    start = shooting.first_guess(x, coarse.forces, coarse.masses, coarse.dt)
    shooter = shooting._BoxShooter(model, x, cells, coarse.masses, coarse.pbc, factor, coarse.dt, torch.device("cpu"),
                                   torch.float64, 16, 1e-4, 5.0)
    frames = slice(0, n)
    targets, t = x.reshape(n, m), coarse.dt

    def evaluate(v):
        ends = shooter.ends(frames, v)
        return (*shooting._residuals(ends, v, targets, t), ends)

    at_frames = shooter.frame_hessians(frames)
    for name, jacobians in (("linearised", lambda v: shooter.harmonic_jacobians(frames, v, at_frames)),
                            ("exact", lambda v: exact_box_jacobians(shooter, frames, v))):
        started = time.perf_counter()
        v = shooting._quasi_newton(start.reshape(n, m).copy(), evaluate, jacobians, t, 30, 1e-3, 1e-5)
        yield name, time.perf_counter() - started, evaluate(v)[0], v.reshape(n, -1, 3), start


def molecule(coarse, model, factor):
    from mdsr_plugin.molecule import canonical_frames

    x, t = coarse.positions, coarse.dt
    n, n_atoms = x.shape[:2]
    m = 3 * n_atoms
    centres, rotations = canonical_frames(x[:-1], model.reference.numpy(), coarse.masses)
    start = shooting.first_guess(x, coarse.forces, coarse.masses, t)
    shooter = shooting._Shooter(model, x, centres, rotations, factor, t / factor, "cpu", 2048, 1e-4)
    targets = x.reshape(n, m)
    bounds = shooting._sub_intervals(t, factor, 5.0)
    durations = np.diff(bounds) * t / factor
    sqrt_accel = np.sqrt(np.repeat(model.accel_per_force.double().numpy().ravel(), 3))

    def evaluate(v):
        gaps = np.arange(n - 1)
        ends = (*shooter.shoot(gaps, v[:-1], False)[:2], *shooter.shoot(gaps + 1, -v[1:], False)[:2])
        return (*shooting._residuals(ends, v, targets, t), ends)

    def hessian(position, gap):  # in the gap's canonical frame, rotated back
        canonical = (position - centres[gap]) @ rotations[gap]

        def forces(displaced):
            with torch.no_grad():
                return model.forces(torch.as_tensor(displaced)).double().numpy().reshape(len(displaced), -1)

        h = shooting._hessian(forces, canonical, 1e-4).reshape(n_atoms, 3, n_atoms, 3)
        r = rotations[gap]
        return np.einsum("ac,icjd,bd->iajb", r, h, r).reshape(m, m)

    def linearised(v):
        v0 = np.einsum("gni,gij->gnj", v[:-1].reshape(n - 1, n_atoms, 3), rotations)
        x0 = np.einsum("gni,gij->gnj", x[:-1] - centres[:, None], rotations)
        with torch.no_grad():
            path, _ = model.rollout(torch.as_tensor(x0), torch.as_tensor(v0), factor, t / factor)
        path = np.einsum("gbnj,gij->gbni", path.numpy()[:, bounds[1:-1]], rotations) + centres[:, None, None]
        out = [np.empty((n - 1, m, m)) for _ in range(4)]
        for gap in range(n - 1):
            nodes = [x[gap], *path[gap], x[gap + 1]]
            for array, jacobian in zip(out, shooting._gap_jacobians([hessian(p, gap) for p in nodes], durations,
                                                                    sqrt_accel)):
                array[gap] = jacobian
        return tuple(out)

    started = time.perf_counter()
    v = shooting._quasi_newton(start.reshape(n, m).copy(), evaluate, linearised, t, 30, 1e-3, 1e-5)
    yield "linearised", time.perf_counter() - started, evaluate(v)[0], v.reshape(n, n_atoms, 3), start
    started = time.perf_counter()
    v = shooting.estimate_velocities(model, x, t, factor, centres=centres, rotations=rotations, initial=start)
    yield "exact", time.perf_counter() - started, evaluate(v.reshape(n, m))[0], v, start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["box", "molecule"])
    parser.add_argument("reference", help="fine reference (0.5 fs steps)")
    parser.add_argument("checkpoint")
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--start", type=int, default=0, help="first 1 fs frame")
    parser.add_argument("--frames", type=int, default=21, help="coarse frames fitted")
    parser.add_argument("--positions-only", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    fine = read_trajectory(args.reference)[::2][args.start:]
    coarse = fine[:: args.factor][: args.frames]
    if args.positions_only:
        coarse = coarse.without("forces")
    model, _ = load_checkpoint(args.checkpoint, dtype="float64")
    model.train(False)
    for name, seconds, misfit, v, start in (box if args.kind == "box" else molecule)(coarse, model, args.factor):
        print(f"{name:<11} {coarse.n_frames} frames in {seconds:6.1f} s; misfit {misfit:.4e} Å²; velocity MAE "
              f"{np.abs(v - coarse.velocities).mean():.3e} Å/fs (first guess "
              f"{np.abs(start - coarse.velocities).mean():.3e})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
