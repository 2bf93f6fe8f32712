"""Accuracy of the classical interpolators, and of re-running the true potential, on GFN2-xTB data.

For every held-out reference trajectory (0.5 fs GFN2-xTB dynamics from
``bench/generate_reference_data.sh``), the 1 fs trajectory (every 2nd step) is the
truth; every N-th frame of it (N = 5, 10, 20: 5, 10, 20 fs gaps) is the coarse
input, upsampled by a factor N back to 1 fs.  Errors are mean absolute errors per
Cartesian component over the reconstructed frames only (coarse frames excluded).

    python bench/classical_accuracy.py                # all methods + physics on 100 gaps
    python bench/classical_accuracy.py --physics-gaps 0   # skip the xTB re-integration

Writes bench/results/classical_accuracy.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from mdsr_plugin.io import read_trajectory  # noqa: E402
from mdsr_plugin.pipeline import upsample  # noqa: E402

METHODS = ("linear", "spline", "quintic-spline", "hermite", "quintic")
FACTORS = (5, 10, 20)


def errors(fine_positions, fine_velocities, truth, factor):
    inside = np.arange(len(fine_positions)) % factor != 0
    return {
        "position_mae": float(np.abs(fine_positions - truth.positions[: len(fine_positions)])[inside].mean()),
        "velocity_mae": float(np.abs(fine_velocities - truth.velocities[: len(fine_velocities)])[inside].mean()),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="reference H5MD files (default: bench/data/*_400K_*_s99.h5md)")
    parser.add_argument("--physics-gaps", type=int, default=100, help="gaps re-integrated with xTB (0: skip)")
    parser.add_argument("-o", "--output", default=str(ROOT / "bench/results/classical_accuracy.json"))
    args = parser.parse_args(argv)
    files = [Path(f) for f in args.files] or sorted((ROOT / "bench/data").glob("*_400K_*_s99.h5md"))
    if not files:
        sys.exit("no reference data: run bash bench/generate_reference_data.sh first")
    results = []
    for path in files:
        truth = read_trajectory(path)[::2]  # 1 fs
        for factor in FACTORS:
            n = (truth.n_frames - 1) // factor * factor + 1
            ref = truth[:n]
            coarse = ref[::factor]
            for method in METHODS:
                started = time.perf_counter()
                fine = upsample(coarse, factor, method)
                row = dict(file=path.name, factor=factor, method=method, frames=n,
                           seconds=time.perf_counter() - started,
                           **errors(fine.positions, fine.velocities, ref, factor))
                results.append(row)
            if args.physics_gaps:
                from physics_baseline import reintegrate_gaps

                started = time.perf_counter()
                x, v = reintegrate_gaps(coarse, factor, n_gaps=args.physics_gaps)
                row = dict(file=path.name, factor=factor, method="xtb-reintegration", frames=len(x),
                           seconds=time.perf_counter() - started, **errors(x, v, ref, factor))
                # the classical methods on the same gaps, for a like-for-like ratio
                hermite = upsample(coarse[: args.physics_gaps + 1], factor, "hermite")
                row["hermite_same_gaps"] = errors(hermite.positions, hermite.velocities, ref, factor)
                results.append(row)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=1))

    print("| trajectory | gap (fs) | method | position MAE (Å) | velocity MAE (Å/fs) |")
    print("|---|---|---|---|---|")
    for r in results:
        note = ""
        if "hermite_same_gaps" in r:
            note = f" (first {r['frames'] // r['factor']} gaps; Hermite there {r['hermite_same_gaps']['position_mae']:.2e})"
        print(f"| {r['file'].removesuffix('.h5md')} | {r['factor']} | {r['method']}{note} | "
              f"{r['position_mae']:.2e} | {r['velocity_mae']:.2e} |")


if __name__ == "__main__":
    main()
