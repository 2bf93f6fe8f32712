"""The checkpoint's force check: its force error on an input's stored forces, by Hamiltonian.

For each reference trajectory (0.5 fs steps) the coarse input is every ``--stride``-th
frame; the registry's checkpoint for the molecule is prepared on it and
:meth:`mdsr_plugin.neural.upsampler.LearnedUpsampler.check_forces` compares its forces with
the stored ones on up to 64 frames.  On the checkpoint's own Hamiltonian (GFN2-xTB) the
relative error is its fitting error; on another one it is larger, and above
``FORCE_MISMATCH`` the user is warned.

    python bench/force_check.py bench/data/ethanol_400K_nve_gfn2_s99.h5md ... [--json bench/results/force_check.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mdsr_plugin.io import read_trajectory
from mdsr_plugin.neural.upsampler import FORCE_MISMATCH, LearnedUpsampler


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("references", nargs="+", type=Path)
    parser.add_argument("--stride", type=int, default=40, help="reference steps per coarse frame (40: 20 fs)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = []
    print(f"{'file':<40} {'checkpoint':<28} {'MAE eV/Å':>9} {'mean |F|':>9} {'relative':>8} warned")
    for path in args.references:
        fine = read_trajectory(path)
        coarse = fine[::args.stride]
        method = LearnedUpsampler()
        method.prepare(coarse, 20)
        check = method.force_check
        mean_force = check["force_mae"] / check["relative"]
        rows.append({"file": path.name, "checkpoint": method.card["id"], **{k: v for k, v in check.items()
                                                                          if k != "warning"},
                     "mean_abs_force": mean_force, "threshold": FORCE_MISMATCH})
        print(f"{path.name:<40} {method.card['id']:<28} {check['force_mae']:9.3f} {mean_force:9.3f} "
              f"{check['relative']:8.1%} {'yes' if check['mismatch'] else 'no'}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
