"""How long the velocity fit of input without stored velocities takes, and how close it gets.

Fits the coarse velocities of ``--frames`` coarse frames of a fine reference through a
checkpoint (:func:`mdsr_plugin.neural.shooting.estimate_velocities`, each gap in its
canonical frame, as the upsampler and ``--adapt`` run it) and compares them with the
reference's own velocities; with ``--positions-only`` the fit starts from the cubic
spline, else from the quintic spline through positions and stored forces.

    OMP_NUM_THREADS=1 python bench/velocity_fit.py bench/data/ethanol_400K_nve_gfn1_s99.h5md \
        bench/training/adapted/no_velocities/ethanol_400K_nve_gfn1_s99-f10-forces.json --factor 10
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import numpy as np

from mdsr_plugin import units
from mdsr_plugin.io import read_trajectory
from mdsr_plugin.methods.classical import spline_velocities
from mdsr_plugin.molecule import canonical_frames
from mdsr_plugin.neural.checkpoint import load_checkpoint
from mdsr_plugin.neural.shooting import estimate_velocities


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", help="fine reference (0.5 fs steps)")
    parser.add_argument("checkpoint", help="card of the model the velocities are fitted through")
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--frames", type=int, default=101, help="coarse frames fitted")
    parser.add_argument("--positions-only", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG, format="%(message)s")
    for noisy in ("h5py", "matplotlib", "MDAnalysis"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    coarse = read_trajectory(args.reference)[::2][:: args.factor][: args.frames]
    model, _ = load_checkpoint(args.checkpoint, dtype="float64")
    centres, rotations = canonical_frames(coarse.positions[:-1], model.reference.numpy(), coarse.masses)
    start = None
    if not args.positions_only:
        accelerations = coarse.forces / coarse.masses[:, None] * units.ACCEL_PER_FORCE_OVER_MASS
        start = spline_velocities(coarse.positions, accelerations, coarse.dt)
    started = time.perf_counter()
    fitted = estimate_velocities(model, coarse.positions, coarse.dt, args.factor, centres=centres,
                                 rotations=rotations, initial=start)
    seconds = time.perf_counter() - started
    print(f"{coarse.n_frames} frames fitted in {seconds:.1f} s; velocity MAE {np.abs(fitted - coarse.velocities).mean():.3e} "
          f"Å/fs (first guess {np.abs((start if start is not None else 0) - coarse.velocities).mean():.3e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
