"""Why salicylic acid is the hardest molecule: reconstruction error per hydroxyl rotamer.

The phenolic O–H of salicylic acid is either hydrogen-bonded to the carbonyl O or
turned away from it, where its torsion is soft.  This splits the gaps of the held-out
Nosé–Hoover run (400 K, seed 99) by rotamer and compares the shipped Bi-LSTM with
cubic Hermite at factor 20, with velocities.

    python bench/salicylic_rotamers.py          # ~1 min on one core

Writes bench/results/salicylic_rotamers.json and prints a Markdown table.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mdsr_plugin.io import read_trajectory
from mdsr_plugin.neural.upsampler import LearnedUpsampler
from mdsr_plugin.pipeline import upsample

ROOT = Path(__file__).resolve().parents[1]
FACTOR = 20
HYDROXYL_H, CARBONYL_O = 15, 2  # atom indices in bench/data (mdsr_plugin.reference order)
BONDED_BELOW = 2.3  # Å: H···O distance of the hydrogen-bonded rotamer (≈1.7 Å) vs turned away (3.4–5.1 Å)


def per_gap_error(reconstruction, truth, n_gaps):
    """Mean distance from the truth, per gap and atom: shape (n_gaps, n_atoms), Å."""
    distance = np.linalg.norm(reconstruction.positions - truth.positions, axis=-1)
    return distance[: n_gaps * FACTOR].reshape(n_gaps, FACTOR, -1).mean(axis=1)


def main():
    truth = read_trajectory(ROOT / "bench/data/salicylic-acid_400K_nose-hoover_s99.h5md")[::2]  # 1 fs grid
    n_gaps = (truth.n_frames - 1) // FACTOR
    truth = truth[: n_gaps * FACTOR + 1]
    coarse = truth[::FACTOR]
    errors = {"Bi-LSTM": per_gap_error(upsample(coarse, FACTOR, LearnedUpsampler(model="salicylic-acid-bilstm-f20-1fs")),
                                       truth, n_gaps),
              "cubic Hermite": per_gap_error(upsample(coarse, FACTOR, "hermite"), truth, n_gaps)}
    h_o = np.linalg.norm(truth.positions[:, HYDROXYL_H] - truth.positions[:, CARBONYL_O], axis=-1)
    bonded = (h_o[: n_gaps * FACTOR] < BONDED_BELOW).reshape(n_gaps, FACTOR)
    rotamers = {"hydrogen-bonded": bonded.all(axis=1), "turned away": ~bonded.any(axis=1),
                "changing within the gap": bonded.any(axis=1) & ~bonded.all(axis=1)}
    results = {"reference": "salicylic-acid_400K_nose-hoover_s99", "factor": FACTOR, "rows": []}
    print("| rotamer | gaps | Bi-LSTM, all atoms (Å) | Bi-LSTM, hydroxyl H (Å) | Hermite, all atoms (Å) "
          "| Hermite / Bi-LSTM |")
    print("|---|---|---|---|---|---|")
    for name, gaps in rotamers.items():
        if not gaps.any():
            continue
        row = {"rotamer": name, "gaps": int(gaps.sum()),
               **{f"{method} all atoms": float(e[gaps].mean()) for method, e in errors.items()},
               **{f"{method} hydroxyl H": float(e[gaps, HYDROXYL_H].mean()) for method, e in errors.items()}}
        results["rows"].append(row)
        print(f"| {name} | {row['gaps']} | {row['Bi-LSTM all atoms']:.1e} | {row['Bi-LSTM hydroxyl H']:.1e} | "
              f"{row['cubic Hermite all atoms']:.1e} | {row['cubic Hermite all atoms'] / row['Bi-LSTM all atoms']:.1f}× |")
    out = ROOT / "bench/results/salicylic_rotamers.json"
    out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
