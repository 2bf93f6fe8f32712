"""How fast a periodic box's coarse velocities are fitted, and how good the result is (issue #29).

Upsamples held-out coarse frames of a box run *without their velocities* through a
checkpoint learned from positions + forces (the upsampler fits the velocities:
:func:`mdsr_plugin.neural.shooting.estimate_box_velocities`, started from the quintic
spline through positions and stored forces) and prints the wall time per coarse frame,
the fine frames per second, and the position and velocity errors against the reference.
Run it on two checkouts (``git worktree add``) to compare versions of the fit on the same
machine:

    OMP_NUM_THREADS=1 python bench/box_fit_speed.py bench/data/water8_300K_nve_gfn1_s5.h5md \\
        bench/training/box/water8_300K_nve_gfn1_s5-f20-forces.json --factor 20 --coarse-frames 41 \\
        --json bench/results/box_fit_speed.json

With ``--input positions`` the coarse frames lose their forces too (XDATCAR's case; for the
checkpoints learned on a prior's forces, ``bench/training/box/prior/``).

The coarse frames start at ``--start`` of the 1 fs reference (``--step 2`` of its 0.5 fs
frames), by default 60 % into the run: past the first 60 %, which is all the
``bench/box_accuracy.py`` checkpoints learned from.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mdsr_plugin.io import read_trajectory
from mdsr_plugin.metrics import position_mae, reconstructed_mask
from mdsr_plugin.periodic import unwrapped_positions
from mdsr_plugin.pipeline import upsample


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="fine box run with velocities and forces (0.5 fs steps)")
    parser.add_argument("checkpoint", type=Path, help="card of a box model learned from positions + forces")
    parser.add_argument("--factor", type=int, default=20)
    parser.add_argument("--coarse-frames", type=int, default=41)
    parser.add_argument("--start", type=int, help="first fine frame (1 fs) of the input; default 60 %% of the run")
    parser.add_argument("--step", type=int, default=2, help="reference frames per fine frame (0.5 fs -> 1 fs)")
    parser.add_argument("--input", choices=("forces", "positions"), default="forces",
                        help="what the coarse frames carry besides positions: forces, or nothing")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    fine = read_trajectory(args.reference)[::args.step]
    start = int(0.6 * fine.n_frames) // args.factor * args.factor if args.start is None else args.start
    held = fine[start:start + (args.coarse_frames - 1) * args.factor + 1]
    coarse = held[::args.factor].without("velocities")
    if args.input == "positions":
        coarse = coarse.without("forces")
    started = time.perf_counter()
    result = upsample(coarse, args.factor, "neural", self_validate=False, model=str(args.checkpoint),
                      precision="float64")
    seconds = time.perf_counter() - started
    mask = reconstructed_mask(held.n_frames, args.factor)
    import mdsr_plugin  # the version timed: the checkout it is imported from

    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                            cwd=Path(mdsr_plugin.__file__).parent).stdout.strip()
    row = dict(reference=args.reference.name, checkpoint=args.checkpoint.name, factor=args.factor, input=args.input,
               n_atoms=fine.n_atoms, coarse_frames=coarse.n_frames, first_fine_frame=start, commit=commit,
               threads=torch.get_num_threads(), seconds=seconds, seconds_per_coarse_frame=seconds / coarse.n_frames,
               fine_frames_per_second=result.n_frames / seconds,
               position_mae=position_mae(unwrapped_positions(result), unwrapped_positions(held), mask),
               coarse_velocity_mae=float(np.abs(result.velocities[::args.factor] - held.velocities[::args.factor])
                                         .mean()))
    print(f"{row['checkpoint']} f{args.factor} at {commit}: {seconds:.1f} s for {coarse.n_frames} coarse frames "
          f"({row['seconds_per_coarse_frame']:.2f} s each, {row['fine_frames_per_second']:.1f} fine frames/s); "
          f"position MAE {row['position_mae']:.3e} Å, coarse velocity MAE {row['coarse_velocity_mae']:.3e} Å/fs")
    if args.json:
        from results_file import append_rows

        append_rows(args.json, [row])
    return 0


if __name__ == "__main__":
    sys.exit(main())
