"""Learning from the user's own coarse frames: the adapted model against the classical methods,
the shipped checkpoint and re-running the true potential, on trajectories of another Hamiltonian.

For each fine reference (0.5 fs steps) and factor, the coarse input is every
``factor``-th 1 fs frame with positions, velocities and forces.  A model is adapted
on that coarse input alone (``mdsr_plugin.neural.adapt``), then every method
reconstructs the same coarse input and is scored against the fine frames it never saw.

    python bench/own_data.py bench/data/ethanol_400K_nve_gfn1_s99.h5md --factors 20 \
        --coarse-frames 501 --out bench/training/adapted [--max-minutes 8] [--scratch]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from mdsr_plugin.io import read_trajectory, write_trajectory
from mdsr_plugin.metrics import position_mae, reconstructed_mask
from mdsr_plugin.neural.adapt import AdaptSettings, adapt
from mdsr_plugin.pipeline import upsample
from results_file import append_rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("references", nargs="+", type=Path)
    parser.add_argument("--factors", nargs="+", type=int, default=[20])
    parser.add_argument("--coarse-frames", type=int, default=501, help="coarse frames (501 at 20 fs: 10 ps)")
    parser.add_argument("--out", type=Path, default=Path("bench/training/adapted"))
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--scratch", action="store_true", help="no warm start from the registry")
    parser.add_argument("--json", type=Path, default=Path("bench/results/own_data.json"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in args.references:
        fine_all = read_trajectory(path)[::2]
        for factor in args.factors:
            coarse = fine_all[::factor][: args.coarse_frames]
            n = (coarse.n_frames - 1) * factor + 1
            truth, mask = fine_all[:n], reconstructed_mask(n, factor)
            source = path.parent / f"{path.stem}_f{factor}.h5md"  # bulk data stays beside its reference
            write_trajectory(source, coarse)
            stem = args.out / f"{path.stem.split('_')[0]}-adapted{'-scratch' if args.scratch else ''}-f{factor}"
            started = time.perf_counter()
            card = adapt([source], stem, AdaptSettings(warm_start=None if args.scratch else "auto",
                                                       max_minutes=args.max_minutes), progress=False)
            minutes = (time.perf_counter() - started) / 60
            errors = {}
            for method, options in (("hermite", {}), ("quintic", {}), ("spline", {}),
                                    ("neural", {"model": str(card)})):
                fine = upsample(coarse, factor, method, self_validate=False, **options)
                errors["adapted" if options else method] = position_mae(fine.positions, truth.positions, mask)
            try:
                shipped = upsample(coarse, factor, "neural", self_validate=False)
                errors["shipped"] = position_mae(shipped.positions, truth.positions, mask)
            except ValueError:
                errors["shipped"] = None  # no checkpoint for this molecule
            row = dict(file=path.name, factor=factor, coarse_frames=coarse.n_frames, minutes=minutes,
                       warm_start=json.loads(card.read_text())["training"]["warm_start"], **errors)
            rows.append(row)
            print(json.dumps(row), flush=True)
    append_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
