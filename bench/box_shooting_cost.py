"""What fitting a periodic box's coarse velocities by shooting would cost (issue #29).

The molecular fit (:mod:`mdsr_plugin.neural.shooting`) forms, per gap and Gauss–Newton
iteration, the Jacobian of the end states by ``3N + 1`` rollouts in each direction.
This times rollouts of a learned box integrator (``bench/training/box/water32_gfn1_2800-f10``:
32 waters, 96 atoms, factor 10) on a freshly built 32-water box, batched as the fit would
batch them, and prints what one Jacobian per gap would take.  Then it times the fit the box
gets instead (:func:`mdsr_plugin.neural.shooting.estimate_box_velocities`, linearised
Jacobians) on ``--frames`` coarse frames of a 96-atom box moved by the model itself, from
the quintic spline through positions and the model's forces, and how close it gets to the
velocities of that motion.  That box is a liquid: the last frame of ``--liquid`` (the
8-water GFN1-xTB run of ``docs/benchmarks.md``) repeated 2 × 2 × 1, with its velocities
(the freshly built box above is not relaxed, and the model's motion from it blows up).

    OMP_NUM_THREADS=1 python bench/box_shooting_cost.py --frames 11 \
        --liquid bench/data/water8_300K_nve_gfn1_s3.h5md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mdsr_plugin.neural.checkpoint import load_checkpoint
from mdsr_plugin.neural.shooting import estimate_box_velocities, first_guess
from mdsr_plugin.reference import water_box

CHECKPOINT = Path(__file__).parent / "training/box/water32_gfn1_2800-f10.json"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=11, help="coarse frames of the fit timed")
    parser.add_argument("--liquid", default="bench/data/water8_300K_nve_gfn1_s3.h5md",
                        help="a water-box run whose last frame, repeated 2 x 2 x 1, starts the timed fit's motion")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    atoms = water_box(32, seed=1)
    model, _ = load_checkpoint(CHECKPOINT, dtype="float32")
    model.set_atoms(atoms.numbers, atoms.get_masses())
    x = torch.as_tensor(atoms.positions, dtype=torch.float32)
    cell = torch.as_tensor(np.array(atoms.cell), dtype=torch.float32)
    per_rollout = None
    for batch in (1, 16, 64):
        xb = x.expand(batch, -1, -1).contiguous()
        started = time.perf_counter()
        with torch.no_grad():
            model.rollout(xb, torch.full_like(xb, 1e-3), cell.expand(batch, -1, -1).contiguous(), 10, 1.0,
                          (True, True, True))
        per_rollout = (time.perf_counter() - started) / batch
        print(f"{batch:3d} rollouts at once: {per_rollout * 1e3:.0f} ms per rollout of 10 fine frames")
    rollouts = 2 * (3 * len(atoms) + 1)
    print(f"one Jacobian per gap: {rollouts} rollouts, {rollouts * per_rollout:.0f} s in float32 on one core")

    # the fit a box gets, on the model's own motion from a liquid configuration, in float64
    from ase import Atoms

    from mdsr_plugin.io import read_trajectory

    last = read_trajectory(args.liquid)[-1]
    liquid = Atoms(numbers=last.numbers, positions=last.positions[0], cell=np.reshape(last.cell, (-1, 3, 3))[0],
                   pbc=True).repeat((2, 2, 1))
    model, _ = load_checkpoint(CHECKPOINT, dtype="float64")
    masses = liquid.get_masses()
    model.set_atoms(liquid.numbers, masses)
    cell64 = torch.as_tensor(np.array(liquid.cell))[None]
    with torch.no_grad():  # repeat() lists the images one after the other: the velocities tile alike
        xs, vs = model.rollout(torch.as_tensor(liquid.positions)[None],
                               torch.as_tensor(np.tile(last.velocities[0], (4, 1)))[None], cell64, 100, 1.0)
        xs, vs = model.rollout(xs[:, -1], vs[:, -1], cell64, (args.frames - 1) * 10, 1.0)
        coarse_x, coarse_v = xs[0, ::10].numpy(), vs[0, ::10].numpy()
        forces = model.forces(torch.as_tensor(coarse_x), cell64.expand(args.frames, 3, 3).contiguous()).numpy()
    atoms = liquid
    cells = np.broadcast_to(np.array(atoms.cell), (args.frames, 3, 3))
    start = first_guess(coarse_x, forces, masses, 10.0)
    started = time.perf_counter()
    fitted = estimate_box_velocities(model, coarse_x, cells, masses, 10.0, 10, initial=start)
    seconds = time.perf_counter() - started
    print(f"the linearised fit: {args.frames} coarse frames in {seconds:.0f} s ({seconds / args.frames:.1f} s per "
          f"frame, float64, one core); velocity MAE {np.abs(fitted - coarse_v).mean():.1e} Å/fs (first guess "
          f"{np.abs(start - coarse_v).mean():.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
