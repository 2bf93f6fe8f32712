"""What one held-back gap whose paths ran away does to ``auto``'s estimate (issue #29).

``auto`` estimates a bi-directional learned method's error as c × its forward/backward
disagreement at the input's own gaps, with c = errors / disagreements at the middle of
held-back 2h gaps (:mod:`mdsr_plugin.selection`).  A box model fitting the velocities
of 40 fs gaps can run away on one of them (paths hundreds of Å apart), and that gap then
sets c alone.  This runs ``auto``'s measurement on the held-out part of a box run, as
``bench/box_accuracy.py`` splits it, and prints c and the estimate with and without such
gaps (:data:`mdsr_plugin.selection.DIVERGED_DISAGREEMENT`), and each candidate's estimate.

    OMP_NUM_THREADS=1 python bench/runaway_calibration.py bench/data/water8_300K_nve_gfn1_s5.h5md \\
        bench/training/box/fastfit/water8_300K_nve_gfn1_s5-f20-forces.json --factor 20 --input forces \\
        --json bench/results/runaway_calibration.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import mdsr_plugin.selection as selection
from mdsr_plugin.io import read_trajectory
from mdsr_plugin.settings import UpsampleSettings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="fine box run (0.5 fs steps)")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--factor", type=int, default=20)
    parser.add_argument("--input", choices=["velocities+forces", "forces"], default="forces")
    parser.add_argument("--learn-fraction", type=float, default=0.6, help="as bench/box_accuracy.py")
    parser.add_argument("--step", type=int, default=2, help="reference frames per fine frame (0.5 fs -> 1 fs)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    fine = read_trajectory(args.reference)[::args.step]
    split = int(fine.n_frames * args.learn_fraction) // args.factor * args.factor
    held = fine[split:]
    held = held[:((held.n_frames - 1) // args.factor) * args.factor + 1]
    coarse = held[::args.factor]
    if args.input == "forces":
        coarse = coarse.without("velocities")

    measured = {}
    plain_estimate = selection._position_estimate

    def recording_estimate(held_back, steepening, from_disagreement):
        estimate = plain_estimate(held_back, steepening, from_disagreement)
        if "c_without_runaways" not in measured and from_disagreement and held_back.has_disagreement:
            # the first call is on all held-back frames; later ones are the sampling range's resamples
            d2, p2 = held_back.disagreement2.ravel(), held_back.position2.ravel()
            with_all = float(p2.sum() / d2.sum())
            without = selection._error_per_disagreement(held_back.position2, held_back.disagreement2)
            measured.update(median_disagreement_2h=float(np.median(d2)), max_disagreement_2h=float(d2.max()),
                            runaway_gaps=int((d2 > selection.DIVERGED_DISAGREEMENT * np.median(d2)).sum()),
                            gaps_2h=int(d2.size), c_with_all=with_all, c_without_runaways=without,
                            estimate_with_all=estimate * with_all / without, estimate=estimate)
        return estimate

    selection._position_estimate = recording_estimate
    _, chosen = selection.select_method(coarse, args.factor, UpsampleSettings(factor=args.factor,
                                                                              model=str(args.checkpoint)))
    row = dict(reference=args.reference.name, checkpoint=str(args.checkpoint), factor=args.factor, input=args.input,
               held_back=chosen.held_back, chosen=chosen.chosen, **measured,
               candidates={s.method: [s.position_estimate, *s.position_range] for s in chosen.scores})
    print(f"{args.checkpoint.name} ({args.input}, f{args.factor}): 2h disagreements median "
          f"{row.get('median_disagreement_2h', np.nan):.3g} Å, max {row.get('max_disagreement_2h', np.nan):.3g} Å; "
          f"c {row.get('c_with_all', np.nan):.3g} with every gap, {row.get('c_without_runaways', np.nan):.3g} without "
          f"runaways; estimate {row.get('estimate_with_all', np.nan):.3g} -> {row.get('estimate', np.nan):.3g} Å; "
          f"chosen {chosen.chosen}")
    for method, (estimate, low, high) in row["candidates"].items():
        print(f"    {method:<16} {estimate:.3g} Å (range {low:.3g}-{high:.3g})")
    if args.json:
        from results_file import append_rows

        append_rows(args.json, [row])
    return 0


if __name__ == "__main__":
    sys.exit(main())
