"""Self-validated method choice: is the estimate close to the true error, and is the choice the best?

For each fine reference trajectory (0.5 fs steps, taken at 1 fs) and factor, the
coarse input is every ``factor``-th frame.  Every method that suits it is run
(a) on the whole coarse input, scored against the reference (the true error), and
(b) by :func:`mdsr_plugin.selection.select_method` on the coarse frames alone.
The table gives both, the choice, and how much worse than the best it is.

    python bench/self_validation.py bench/data/ethanol_400K_nve_gfn1_s99.h5md ... \
        [--factors 5 10 20] [--positions-only] [--json bench/results/self_validation.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from mdsr_plugin.io import read_trajectory
from mdsr_plugin.metrics import position_mae, reconstructed_mask
from mdsr_plugin.methods import resolve_method
from mdsr_plugin.pipeline import upsample
from mdsr_plugin.selection import select_method
from mdsr_plugin.settings import UpsampleSettings


def rows_for(path: Path, factors, positions_only: bool, frames: int):
    fine = read_trajectory(path)[::2][:frames]  # 1 fs
    if positions_only:
        fine_input = fine.without("velocities", "forces")
    else:
        fine_input = fine
    for factor in factors:
        coarse = fine_input[::factor]
        n_fine = (coarse.n_frames - 1) * factor + 1
        truth = fine[:n_fine]
        settings = UpsampleSettings(factor=factor)
        _, selection = select_method(coarse, factor, settings)
        chosen = selection.chosen
        mask = reconstructed_mask(n_fine, factor)
        for score in selection.scores:
            result = upsample(coarse, factor, score.method)
            true_p = position_mae(result.positions, truth.positions, mask)
            true_v = position_mae(result.velocities, truth.velocities, mask)
            yield dict(file=path.name, factor=factor, mode="positions" if positions_only else "velocities",
                       method=score.method, chosen=score.method == chosen, true_position_mae=true_p,
                       true_velocity_mae=true_v, estimate=score.position_estimate,
                       velocity_estimate=score.velocity_estimate, midpoint_2h=score.position_mae,
                       ratio=score.ratio, seconds=score.seconds)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("references", nargs="+", type=Path)
    parser.add_argument("--factors", nargs="+", type=int, default=[5, 10, 20])
    parser.add_argument("--positions-only", action="store_true")
    parser.add_argument("--frames", type=int, default=10001, help="fine 1 fs frames used (default 10001)")
    parser.add_argument("--json", type=Path, help="append rows to this JSON list")
    args = parser.parse_args(argv)
    rows = []
    print(f"{'file':<36} {'f':>3} {'method':<8} {'true Å':>9} {'estimate':>9} {'est/true':>8} {'chosen':>6}")
    for path in args.references:
        for row in rows_for(path, args.factors, args.positions_only, args.frames):
            rows.append(row)
            print(f"{row['file']:<36} {row['factor']:>3} {row['method']:<8} {row['true_position_mae']:9.2e} "
                  f"{row['estimate']:9.2e} {row['estimate'] / row['true_position_mae']:8.2f} "
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
        existing = json.loads(args.json.read_text()) if args.json.exists() else []
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(existing + rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
