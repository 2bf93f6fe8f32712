"""Self-validated method choice: is the estimate close to the true error, and is the choice the best?

For each fine reference trajectory (0.5 fs steps, taken at 1 fs) and factor, the
coarse input is every ``factor``-th frame.  Every method that suits it is run
(a) on the whole coarse input, scored against the reference (the true error), and
(b) by :func:`mdsr_plugin.selection.select_method` on the coarse frames alone.
The table gives both, the choice, and how much worse than the best it is.

With ``--adapt MINUTES`` a model is first learned from the coarse input itself
(:func:`mdsr_plugin.pipeline.learn_from_input`, as ``mdsr-upsample --adapt`` does;
checkpoints in ``--adapt-dir``), it becomes the ``adapted`` candidate, and every
candidate is measured on the coarse frames its training held out.  The classical
methods that ``auto`` does not measure are scored too, so that "the best of the
methods it could have run" includes all of them.

``--input`` chooses what the coarse frames carry: ``velocities+forces`` (default),
``velocities``, ``forces`` (positions and forces, as VASP stores them) or
``positions`` (``--positions-only``).

    python bench/self_validation.py bench/data/ethanol_400K_nve_gfn1_s99.h5md ... \
        [--factors 5 10 20] [--input forces] [--adapt MINUTES [--adapt-prior gfn1-xtb]] [--json bench/results/self_validation.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from mdsr_plugin.io import read_trajectory
from results_file import append_rows
from mdsr_plugin.metrics import position_mae, reconstructed_mask
from mdsr_plugin.pipeline import learn_from_input, upsample
from mdsr_plugin.selection import select_method
from mdsr_plugin.settings import UpsampleSettings


CLASSICAL = ("quintic", "hermite", "quintic-spline", "spline", "linear")
#: what the coarse frames keep for each ``--input``
DROPPED = {"velocities+forces": (), "velocities": ("forces",), "forces": ("velocities",),
           "positions": ("velocities", "forces")}


def rows_for(path: Path, factors, stored: str, frames: int, adapt_minutes=None, adapt_dir=None,
             step: int = 2, coarse_frames=None, adapt_prior=None):
    fine = read_trajectory(path)[::step][:frames]  # 1 fs
    fine_input = fine.without(*DROPPED[stored]) if DROPPED[stored] else fine
    for factor in factors:
        coarse = fine_input[::factor][:coarse_frames]
        n_fine = (coarse.n_frames - 1) * factor + 1
        truth = fine[:n_fine]
        settings = UpsampleSettings(factor=factor)
        sample, adapted = None, None
        if adapt_minutes is not None:
            stem = Path(adapt_dir) / (f"{path.stem}-f{factor}{'-' + adapt_prior if adapt_prior else ''}"
                                      f"{'' if stored == 'velocities+forces' else '-' + stored}")
            settings = UpsampleSettings(factor=factor, adapt=str(stem), adapt_minutes=adapt_minutes,
                                        adapt_prior=adapt_prior)
            adapted, sample = learn_from_input(coarse, coarse.dt, settings)
        _, selection = select_method(coarse, factor, settings, sample=sample)
        chosen = selection.chosen
        mask = reconstructed_mask(n_fine, factor)
        measured = {score.method: score for score in selection.scores}
        for method in [*measured, *(m for m in CLASSICAL if m not in measured)]:
            # the adapted checkpoint as measured (through upsample(adapt=...) an unfinished one would go on learning)
            run_as, options = ("neural", {"model": adapted["checkpoint"]}) if method == "adapted" else (method, {})
            try:
                result = upsample(coarse, factor, run_as, self_validate=False, **options)
            except ValueError:  # a classical method the input cannot feed (no velocities, forces)
                continue
            score = measured.get(method)
            true_p = position_mae(result.positions, truth.positions, mask)
            true_v = position_mae(result.velocities, truth.velocities, mask)
            yield dict(file=path.name, factor=factor, mode="velocities" if stored == "velocities+forces" else stored,
                       coarse_frames=coarse.n_frames, method=method, chosen=method == chosen,
                       measured=score is not None, true_position_mae=true_p, true_velocity_mae=true_v,
                       estimate=score.position_estimate if score else None,
                       velocity_estimate=score.velocity_estimate if score else None,
                       estimator=score.estimator if score else None,
                       estimate_range=list(score.position_range) if score else None,
                       midpoint_2h=score.position_mae if score else None, ratio=score.ratio if score else None,
                       seconds=score.seconds if score else None, held_back=selection.held_back,
                       adapt_minutes=adapted["minutes"] if adapted and method == "adapted" else None,
                       adapt_complete=adapted["complete"] if adapted and method == "adapted" else None,
                       adapt_prior=adapted["prior"] if adapted and method == "adapted" else None,
                       warm_start=adapted["warm_start"] if adapted and method == "adapted" else None)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("references", nargs="+", type=Path)
    parser.add_argument("--factors", nargs="+", type=int, default=[5, 10, 20])
    parser.add_argument("--input", choices=tuple(DROPPED), default="velocities+forces",
                        help="what the coarse frames carry besides positions")
    parser.add_argument("--positions-only", action="store_const", dest="input", const="positions")
    parser.add_argument("--frames", type=int, default=10001, help="fine 1 fs frames used (default 10001)")
    parser.add_argument("--step", type=int, default=2, help="reference frames per 1 fs (default 2: 0.5 fs steps)")
    parser.add_argument("--coarse-frames", type=int, help="coarse frames used at most")
    parser.add_argument("--adapt", type=float, metavar="MINUTES", help="learn from the coarse input first")
    parser.add_argument("--adapt-dir", type=Path, default=Path("bench/training/adapted"))
    parser.add_argument("--adapt-prior", choices=("gfn1-xtb", "gfn2-xtb", "none"),
                        help="with --adapt: learn a starting model on this Hamiltonian first (default as "
                        "mdsr-upsample --adapt: gfn2-xtb for input without forces and no checkpoint)")
    parser.add_argument("--json", type=Path, help="append rows to this JSON list")
    args = parser.parse_args(argv)
    rows = []
    print(f"{'file':<36} {'f':>3} {'method':<14} {'true Å':>9} {'estimate':>9} {'est/true':>8} {'chosen':>6}")
    for path in args.references:
        for row in rows_for(path, args.factors, args.input, args.frames, args.adapt, args.adapt_dir,
                            args.step, args.coarse_frames, args.adapt_prior):
            rows.append(row)
            estimate = row["estimate"]
            print(f"{row['file']:<36} {row['factor']:>3} {row['method']:<14} {row['true_position_mae']:9.2e} "
                  f"{estimate if estimate is not None else float('nan'):9.2e} "
                  f"{(estimate or float('nan')) / row['true_position_mae']:8.2f} "
                  f"{'*' if row['chosen'] else '':>6}", flush=True)
    groups = {}
    for row in rows:
        groups.setdefault((row["file"], row["factor"]), []).append(row)
    print("\nchoice vs best (true error of the chosen method / the best one's):")
    for (file, factor), group in groups.items():
        best = min(r["true_position_mae"] for r in group)
        chosen = next(r for r in group if r["chosen"])
        print(f"  {file} factor {factor}: {chosen['method']} {chosen['true_position_mae'] / best:.3f}")
    if args.json:
        append_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
