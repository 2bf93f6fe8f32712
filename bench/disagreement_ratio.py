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

``--input`` drops what the coarse frames would not carry (``velocities`` keeps
positions and velocities; ``forces``, positions and forces; ``positions``, positions
alone), so that a model whose velocities are fitted is measured as ``auto`` runs it.

It also measures the alternative calibration by the *end misfit*: where each path
lands against the frame at its far end (the disagreement at the gap's ends), which
contains the part of the error that the forward and backward paths share (a wrong
potential, a thermostat) and that their disagreement at the middle does not show::

    c_end = sum of errors / sum of end misfits, at the middle of the 2h gaps
    estimate_end(h) = c_end * mean end misfit of the h gaps * 0.75 * mean_profile(4h) / midpoint(4h)
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
    # at a gap's first frame the disagreement is where the backward path landed; at the
    # last coarse frame, where the forward path of the last gap landed
    ends = phase == 0
    return dict(true=error[phase != 0].mean(), middle_error=error[middle].mean(),
                middle_disagreement=disagreement[middle].mean(), quarter_error=error[quarters].mean(),
                end_misfit=disagreement[ends].mean())


#: what the coarse frames lose for each ``--input``
DROPPED = {"velocities+forces": (), "velocities": ("forces",), "forces": ("velocities",),
           "positions": ("velocities", "forces")}


def row_for(path: Path, factor: int, model, frames, step: int, stored: str = "velocities+forces",
            method_name: str = "neural") -> dict:
    fine = read_trajectory(path)[::step][:frames]
    coarse = fine[::factor]
    if DROPPED[stored]:
        coarse = coarse.without(*DROPPED[stored])
    method = prepared(method_name, coarse, factor, model)
    one, two, four = (at_level(method, fine, coarse, factor, level) for level in (1, 2, 4))
    c = {level: m["middle_error"] / m["middle_disagreement"] for level, m in ((1, one), (2, two), (4, four))}
    c_end = {level: m["middle_error"] / m["end_misfit"] for level, m in ((1, one), (2, two), (4, four))}
    shape = 0.75 * four["quarter_error"] / four["middle_error"]
    estimate = c[2] * one["middle_disagreement"] * shape
    estimate_end = c_end[2] * one["end_misfit"] * shape
    return dict(file=path.name, model=model, input=stored, factor=factor, coarse_frames=coarse.n_frames,
                true=float(one["true"]), c_h=float(c[1]), c_2h=float(c[2]), c_4h=float(c[4]),
                c_h_over_c_2h=float(c[1] / c[2]), estimate=float(estimate),
                estimate_over_true=float(estimate / one["true"]), c_end_h=float(c_end[1]), c_end_2h=float(c_end[2]),
                c_end_h_over_c_end_2h=float(c_end[1] / c_end[2]), estimate_end=float(estimate_end),
                estimate_end_over_true=float(estimate_end / one["true"]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="fine reference run (0.5 fs steps)")
    parser.add_argument("--model", help="checkpoint card; '{factor}' is replaced (default: the registry's)")
    parser.add_argument("--factors", nargs="+", type=int, default=[20, 10, 5])
    parser.add_argument("--frames", type=int, help="fine 1 fs frames used")
    parser.add_argument("--step", type=int, default=2, help="reference frames per 1 fs")
    parser.add_argument("--input", choices=tuple(DROPPED), default="velocities+forces",
                        help="what the coarse frames carry besides positions")
    parser.add_argument("--method", default="neural", help="a learned method: neural (a checkpoint) or adapted")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = []
    print(f"{'file':<32} {'f':>3} {'true Å':>9} {'c(h)':>6} {'c(2h)':>6} {'c(4h)':>6} {'c(h)/c(2h)':>10} {'est/true':>8}"
          f" {'end c(h)/c(2h)':>14} {'end est/true':>12}")
    for factor in args.factors:
        model = args.model.format(factor=factor) if args.model else None
        row = row_for(args.reference, factor, model, args.frames, args.step, args.input, args.method)
        rows.append(row)
        print(f"{row['file']:<32} {factor:>3} {row['true']:9.2e} {row['c_h']:6.3f} {row['c_2h']:6.3f} "
              f"{row['c_4h']:6.3f} {row['c_h_over_c_2h']:10.2f} {row['estimate_over_true']:8.2f} "
              f"{row['c_end_h_over_c_end_2h']:14.2f} {row['estimate_end_over_true']:12.2f}", flush=True)
    if args.json:
        append_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
