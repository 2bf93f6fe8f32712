"""Write ``tests/data/golden_outputs.npz``: what the shipped package produces on the bundled example.

``tests/test_golden_outputs.py`` compares every run against it, so that a refactoring
that changes any method's output by more than rounding is caught.  Regenerate only
when an output is meant to change, and say why in the commit:

    python tests/make_golden_outputs.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).parents[1] / "mdsr_plugin" / "data" / "examples" / "ethanol_coarse.xyz"
GOLDEN = Path(__file__).parent / "data" / "golden_outputs.npz"
FACTOR = 20
#: (label, method, drop velocities, coarse frames): every method the example supports
CASES = [
    ("linear", "linear", False, 11),
    ("spline", "spline", False, 11),
    ("hermite", "hermite", False, 11),
    ("quintic", "quintic", False, 11),
    ("auto", "auto", False, 11),
    ("neural", "neural", False, 11),
    ("neural_positions_only", "neural", True, 6),
]


def golden_runs():
    """Yield ``(label, fine Trajectory)`` for every case, computed by the installed package."""
    from mdsr_plugin import read_trajectory, upsample

    coarse = read_trajectory(EXAMPLE)
    for label, method, positions_only, n in CASES:
        part = coarse[:n].without("velocities", "forces") if positions_only else coarse[:n]
        yield label, upsample(part, FACTOR, method)


def main():
    arrays = {}
    for label, fine in golden_runs():
        arrays[f"{label}/positions"] = fine.positions
        arrays[f"{label}/velocities"] = fine.velocities
        for key, values in fine.frame_data.items():
            arrays[f"{label}/{key}"] = values
    GOLDEN.parent.mkdir(exist_ok=True)
    np.savez_compressed(GOLDEN, **arrays)
    print(f"{GOLDEN}: {len(arrays)} arrays")


if __name__ == "__main__":
    main()
