"""What bounds learning from positions + forces: the model, or the velocities fitted through it?

Each checkpoint upsamples the same coarse frames twice: once given the reference's own
coarse velocities, once with them removed, so that it fits them (the upsampler's shooting
fit, started from the quintic spline through positions and forces, as ``--adapt`` runs
it).  Comparing the rows separates the two causes: a model learned from positions +
forces that is nearly as good as the one learned with velocities *when both are given the
true velocities* is bounded by the fit, not by its potential.

    OMP_NUM_THREADS=2 python bench/fitted_velocity_bound.py bench/data/alanine-dipeptide_350K_nh_gfn1_s41.h5md \\
        bench/training/adapted/no_velocities_regenerated/alanine-dipeptide_350K_nh_gfn1_s41-f20.json \\
        bench/training/adapted/no_velocities_regenerated/alanine-dipeptide_350K_nh_gfn1_s41-f20-forces.json \\
        --factor 20 --frames 451 501

A periodic box is scored on unwrapped positions (``--frames 120 161`` at 20 fs is the
stretch of the seed-5 water box that ``bench/box_fit_speed.py`` times).

The reference is taken at 1 fs (``--step 2`` of its 0.5 fs frames); coarse frames
``--frames start stop`` (default: the first checkpoint's held-out frames) are scored
against it over the reconstructed frames (position MAE, Å) and at the coarse frames
(velocity MAE, Å/fs).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from mdsr_plugin.io import read_trajectory
from mdsr_plugin.metrics import reconstructed_mask
from mdsr_plugin.neural.upsampler import LearnedUpsampler
from mdsr_plugin.periodic import unwrapped_positions


def rows_for(reference: Path, cards, factor: int, frames, step: int):
    fine = read_trajectory(reference)[::step]
    coarse_all = fine[::factor]
    if frames is None:
        held = json.loads(Path(cards[0]).read_text())["training"]["held_out_frames"]
        frames = (held["start"], held["stop"])
    start, stop = frames
    coarse = coarse_all[start:stop]
    truth = fine[start * factor:(stop - 1) * factor + 1]
    mask = reconstructed_mask(truth.n_frames, factor)
    truth_x = truth.positions
    if truth.is_periodic:  # a box: unwrapped (the upsampler is handed them so by the pipeline), no face crossings
        coarse, truth_x = replace(coarse, positions=unwrapped_positions(coarse)), unwrapped_positions(truth)
    for card in cards:
        training = json.loads(Path(card).read_text())["training"]
        for given in ("true", "fitted"):
            method = LearnedUpsampler(model=str(card), precision="float64")
            source = coarse if given == "true" else replace(coarse, velocities=None)
            method.prepare(source, factor)
            fine_frames = method.interpolate(source, factor)
            yield dict(reference=reference.name, model=Path(card).name, model_velocities_fitted=bool(
                training.get("velocities_fitted")), velocities=given, factor=factor, frames=[start, stop],
                position_mae=float(np.abs(fine_frames.positions - truth_x)[mask].mean()),
                coarse_velocity_mae=float(np.abs(fine_frames.velocities[::factor] - coarse.velocities).mean()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="fine reference with velocities (0.5 fs steps)")
    parser.add_argument("cards", nargs="+", type=Path, help="model cards of the molecule")
    parser.add_argument("--factor", type=int, default=20)
    parser.add_argument("--frames", type=int, nargs=2, help="coarse frames [start, stop) scored")
    parser.add_argument("--step", type=int, default=2, help="reference frames per fine frame (0.5 fs -> 1 fs)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = []
    print(f"{'model':<62} {'velocities':<10} {'position Å':>11} {'velocity Å/fs':>14}")
    for row in rows_for(args.reference, args.cards, args.factor, args.frames, args.step):
        rows.append(row)
        print(f"{row['model']:<62} {row['velocities']:<10} {row['position_mae']:11.3e} "
              f"{row['coarse_velocity_mae']:14.3e}", flush=True)
    if args.json:
        from results_file import append_rows

        append_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
