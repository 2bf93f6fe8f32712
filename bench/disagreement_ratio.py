"""Does a bi-directional model's error per unit of disagreement hold from gap to gap?

``auto`` estimates a learned model's error at the input's gap h from its
forward/backward disagreement there, times c, the error per unit of disagreement
measured at the middle of 2h gaps (``mdsr_plugin/selection.py``).  That needs c at h
to be close to c at 2h.  Over a whole reference run this script measures c at the
middle of h, 2h and 4h gaps (every coarse frame, against the 1 fs reference), and the
estimate built as ``auto`` builds it, but from the whole run, against the true error:

    python bench/disagreement_ratio.py bench/data/ethanol_400K_nve_gfn1_s99.h5md --factors 20 10 5
    python bench/disagreement_ratio.py bench/data/ethanol_pbe_3350.h5md --frames 1276 \\
        --model bench/training/adapted/ethanol_pbe_3350-f{factor}.json --factors 20 10 5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from estimate_range import prepared
from mdsr_plugin.io import read_trajectory
from results_file import append_rows


def at_level(method, fine, coarse, factor: int, level: int) -> dict:
    """Mean error and disagreement (Å) over the inner fine frames, at the gaps' middles
    and (with a gap of 4 or more fine frames divisible by 4) at their quarter points."""
    kept = coarse[::level]
    step = factor * level
    out = method.interpolate(kept, step)
    n = (kept.n_frames - 1) * step + 1
    error = np.abs(out.positions[:n] - fine[:n].positions).mean(axis=(1, 2))
    disagreement = np.asarray(out.frame_data["disagreement"])[:n]
    phase = np.arange(n) % step
    middle = phase == step // 2
    quarters = np.isin(phase, [step // 4, step // 2, 3 * step // 4]) if step % 4 == 0 else middle
    return dict(true=error[phase != 0].mean(), middle_error=error[middle].mean(),
                middle_disagreement=disagreement[middle].mean(), quarter_error=error[quarters].mean())


def row_for(path: Path, factor: int, model, frames, step: int) -> dict:
    fine = read_trajectory(path)[::step][:frames]
    coarse = fine[::factor]
    method = prepared("neural", coarse, factor, model)
    one, two, four = (at_level(method, fine, coarse, factor, level) for level in (1, 2, 4))
    c = {level: m["middle_error"] / m["middle_disagreement"] for level, m in ((1, one), (2, two), (4, four))}
    estimate = c[2] * one["middle_disagreement"] * 0.75 * four["quarter_error"] / four["middle_error"]
    return dict(file=path.name, model=model, factor=factor, coarse_frames=coarse.n_frames, true=float(one["true"]),
                c_h=float(c[1]), c_2h=float(c[2]), c_4h=float(c[4]), c_h_over_c_2h=float(c[1] / c[2]),
                estimate=float(estimate), estimate_over_true=float(estimate / one["true"]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="fine reference run (0.5 fs steps)")
    parser.add_argument("--model", help="checkpoint card; '{factor}' is replaced (default: the registry's)")
    parser.add_argument("--factors", nargs="+", type=int, default=[20, 10, 5])
    parser.add_argument("--frames", type=int, help="fine 1 fs frames used")
    parser.add_argument("--step", type=int, default=2, help="reference frames per 1 fs")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = []
    print(f"{'file':<32} {'f':>3} {'true Å':>9} {'c(h)':>6} {'c(2h)':>6} {'c(4h)':>6} {'c(h)/c(2h)':>10} {'est/true':>8}")
    for factor in args.factors:
        model = args.model.format(factor=factor) if args.model else None
        row = row_for(args.reference, factor, model, args.frames, args.step)
        rows.append(row)
        print(f"{row['file']:<32} {factor:>3} {row['true']:9.2e} {row['c_h']:6.3f} {row['c_2h']:6.3f} "
              f"{row['c_4h']:6.3f} {row['c_h_over_c_2h']:10.2f} {row['estimate_over_true']:8.2f}", flush=True)
    if args.json:
        append_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
