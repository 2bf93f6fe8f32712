"""Does float32 inference (the default) keep the neural upsampler's held-out accuracy?

Upsamples the first 400 gaps of the held-out references (400 K, seed 99; Nosé–Hoover
and Langevin) of each shipped checkpoint in float32 and in float64, and reports the
errors of both against the 1 fs truth and their largest difference.

    python bench/float32_accuracy.py

Needs the reference data (bash bench/generate_reference_data.sh).  Writes
bench/results/float32_accuracy.json.
"""

import json
import time
from pathlib import Path

import numpy as np

from mdsr_plugin.io import read_trajectory
from mdsr_plugin.metrics import compare
from mdsr_plugin.pipeline import upsample

ROOT = Path(__file__).resolve().parents[1]


def main():
    rows = []
    for molecule in ("ethanol", "benzene"):
        for thermostat in ("nose-hoover", "langevin"):
            truth = read_trajectory(ROOT / f"bench/data/{molecule}_400K_{thermostat}_s99.h5md")[::2][: 400 * 20 + 1]
            coarse = truth[::20]
            fine = {}
            for precision in ("float64", "float32"):
                started = time.perf_counter()
                fine[precision] = upsample(coarse, 20, "neural", model=f"{molecule}-bilstm-f20-1fs",
                                           precision=precision)
                seconds = time.perf_counter() - started
                errors = compare(fine[precision], truth, 20)
                rows.append({"molecule": molecule, "thermostat": thermostat, "precision": precision,
                             "seconds": seconds, **{k: errors[k] for k in
                                                    ("position_mae", "velocity_mae", "spectral_overlap")}})
            rows[-1]["max_position_difference"] = float(np.abs(fine["float32"].positions
                                                               - fine["float64"].positions).max())
            rows[-1]["max_velocity_difference"] = float(np.abs(fine["float32"].velocities
                                                               - fine["float64"].velocities).max())
            print(json.dumps(rows[-2]), json.dumps(rows[-1]), sep="\n", flush=True)
    (ROOT / "bench/results/float32_accuracy.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
