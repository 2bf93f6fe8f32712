"""Held-out accuracy of the neural upsampler against the classical methods.

For each checkpoint and each held-out reference (400 K, seed 99: a temperature and a
seed not used in training), the 1 fs truth is subsampled every ``factor`` frames and
reconstructed, with velocities and with positions only, by the neural checkpoint and
by linear, cubic spline, cubic Hermite and quintic Hermite interpolation.

    python bench/neural_accuracy.py --model ethanol-bilstm-f20-1fs --molecule ethanol
    python bench/neural_accuracy.py --model PATH.json --molecule benzene --gaps 400

Writes bench/results/neural_accuracy_<model>.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mdsr_plugin.io import read_trajectory
from mdsr_plugin.metrics import compare
from mdsr_plugin.pipeline import upsample

ROOT = Path(__file__).resolve().parents[1]
CLASSICAL = ("linear", "spline", "hermite", "quintic")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--molecule", required=True)
    parser.add_argument("--factor", type=int, default=20)
    parser.add_argument("--gaps", type=int, default=999, help="coarse gaps evaluated per file (999 = 20 ps)")
    parser.add_argument("--positions-gaps", type=int, default=200, help="gaps for the slower positions-only mode")
    args = parser.parse_args(argv)
    files = sorted((ROOT / "bench/data").glob(f"{args.molecule}_400K_*_s99.h5md"))
    rows = []
    for path in files:
        truth_all = read_trajectory(path)[::2]  # 1 fs
        for mode, n_gaps in (("velocities", args.gaps), ("positions", args.positions_gaps)):
            n = min(n_gaps * args.factor + 1, (truth_all.n_frames - 1) // args.factor * args.factor + 1)
            truth = truth_all[:n]
            coarse = truth[:: args.factor]
            if mode == "positions":
                coarse = coarse.without("velocities", "forces")
            for method in ("neural", *CLASSICAL):
                if mode == "positions" and method in ("hermite", "quintic"):
                    continue
                options = {"model": args.model} if method == "neural" else {}
                started = time.perf_counter()
                fine = upsample(coarse, args.factor, method, **options)
                seconds = time.perf_counter() - started
                row = {"file": path.name, "mode": mode, "method": method, "factor": args.factor,
                       "gaps": coarse.n_frames - 1, "seconds": seconds,
                       "fine_frames_per_s": fine.n_frames / seconds, **compare(fine, truth, args.factor)}
                if method == "neural":
                    row["mean_disagreement"] = float(fine.frame_data["disagreement"].mean())
                rows.append(row)
                print(json.dumps(row), flush=True)
    out = ROOT / f"bench/results/neural_accuracy_{Path(args.model).stem}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    print("\n| file | input | method | position MAE (Å) | velocity MAE (Å/fs) | distance MAE (Å) | VDOS overlap |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['file'].removesuffix('.h5md')} | {r['mode']} | {r['method']} | {r['position_mae']:.2e} | "
              f"{r['velocity_mae']:.2e} | {r['distance_mae']:.2e} | {r['spectral_overlap']:.3f} |")


if __name__ == "__main__":
    main()
