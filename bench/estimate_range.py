"""How far does a self-validation estimate from a short stretch of frames stray from the truth?

``auto`` estimates a method's error from coarse frames it holds back.  A short input
(or the held-out end of a short input a model was learned from) holds back few, and
the estimate then depends on which frames they were.  This benchmark cuts a long
reference run into consecutive windows of ``--window`` coarse frames, measures a
method on each window exactly as ``auto`` does
(:func:`mdsr_plugin.selection.measure_method`), and compares the estimate and its
sampling range with the method's true error over the whole run:

* how often the estimate is within 2x of the truth,
* how often the sampling range contains the truth,
* how wide the range is (high / low),

and, per window, the estimate over the window's own true error (a long run is not
stationary: a stretch where the method errs more is not the estimator's fault).

    python bench/estimate_range.py bench/data/glycine_400K_nve_gfn1_s99.h5md --method quintic hermite \\
        --factors 5 10 20 --window 17 33 65 --json bench/results/estimate_range.json
    python bench/estimate_range.py bench/data/ethanol_400K_nve_gfn1_s99.h5md --method neural \\
        --factors 10 20 --window 17 33 65 --json bench/results/estimate_range.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mdsr_plugin.io import read_trajectory
from mdsr_plugin.methods import method_plugins
from mdsr_plugin.metrics import position_mae, reconstructed_mask
from mdsr_plugin.pipeline import upsample
from mdsr_plugin.selection import STEEPENING, measure_method
from mdsr_plugin.settings import UpsampleSettings
from results_file import append_rows


def prepared(name: str, coarse, factor: int, model=None):
    """A method as ``auto`` builds it (``neural`` resolves the registry checkpoint of the molecule)."""
    settings = UpsampleSettings(factor=factor, method=name, model=model)
    plugin = method_plugins()[name]
    suitability = plugin.suits(coarse, factor, settings)
    if not suitability.usable:
        raise SystemExit(f"{name} does not suit this input: {suitability}")
    method = plugin.factory(settings)
    if hasattr(method, "prepare"):
        method.prepare(coarse, factor, suitability.found)
    return method


def rows_for(path: Path, method_name: str, factor: int, windows, step: int, model=None):
    fine = read_trajectory(path)[::step]  # 1 fs
    coarse = fine[::factor]
    n_fine = (coarse.n_frames - 1) * factor + 1
    options = {"model": model} if model else {}
    result = upsample(coarse, factor, method_name, self_validate=False, **options)
    frame_error = np.abs(result.positions - fine[:n_fine].positions).mean(axis=(1, 2))  # (n_fine,) Å
    inner = reconstructed_mask(n_fine, factor)
    truth = float(frame_error[inner].mean())
    method = prepared(method_name, coarse, factor, model)
    for window in windows:
        estimates, lows, highs, estimators, local = [], [], [], set(), []
        for start in range(0, coarse.n_frames - window + 1, window - 1):
            score = measure_method(method, coarse[start:start + window], factor, STEEPENING)
            span = slice(start * factor, (start + window - 1) * factor + 1)
            local.append(frame_error[span][inner[span]].mean())  # the window's own true error
            estimators.add(score.estimator)
            estimates.append(score.position_estimate)
            lows.append(score.position_range[0])
            highs.append(score.position_range[1])
        ratio = np.array(estimates) / truth
        lows, highs = np.array(lows), np.array(highs)
        yield dict(file=path.name, method=method_name, model=model, factor=factor, window=window,
                   held_back=window // 2, windows=len(estimates), true_position_mae=truth,
                   estimator="/".join(sorted(estimators)),
                   estimate_over_true=[float(r) for r in ratio],
                   estimate_over_window_true=[float(e / t) for e, t in zip(estimates, local)],
                   within_2x=float(np.mean((ratio >= 0.5) & (ratio <= 2))),
                   within_2x_of_window=float(np.mean([0.5 <= e / t <= 2 for e, t in zip(estimates, local)])),
                   range_contains_truth=float(np.mean((lows <= truth) & (truth <= highs))),
                   median_range_width=float(np.median(highs / lows)),
                   ratio_quantiles_10_50_90=[float(q) for q in np.quantile(ratio, [0.1, 0.5, 0.9])])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="a long fine reference run (0.5 fs steps)")
    parser.add_argument("--method", nargs="+", default=["quintic"])
    parser.add_argument("--model", help="checkpoint for --method neural (default: the registry's)")
    parser.add_argument("--factors", nargs="+", type=int, default=[10, 20])
    parser.add_argument("--window", nargs="+", type=int, default=[17, 33, 65],
                        help="coarse frames per window (17: the held-out part of a 1.25 ps input)")
    parser.add_argument("--step", type=int, default=2, help="reference frames per 1 fs")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = []
    print(f"{'method':<8} {'f':>3} {'window':>6} {'n':>4} {'true Å':>9} {'est/true 10-50-90 %':>22} "
          f"{'in 2x':>6} {'range has truth':>15} {'range width':>11} {'in 2x of own':>12}")
    for name in args.method:
        for factor in args.factors:
            for row in rows_for(args.reference, name, factor, args.window, args.step, args.model):
                rows.append(row)
                q = row["ratio_quantiles_10_50_90"]
                print(f"{name:<8} {factor:>3} {row['window']:>6} {row['windows']:>4} {row['true_position_mae']:9.2e} "
                      f"{q[0]:7.2f}{q[1]:7.2f}{q[2]:7.2f}  {row['within_2x']:6.2f} {row['range_contains_truth']:15.2f} "
                      f"{row['median_range_width']:11.2f} {row['within_2x_of_window']:12.2f}", flush=True)
    if args.json:
        append_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
