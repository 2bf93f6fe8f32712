"""What fitting a periodic box's coarse velocities by shooting would cost (issue #29).

The molecular fit (:mod:`mdsr_plugin.neural.shooting`) forms, per gap and Gauss–Newton
iteration, the Jacobian of the end states by ``3N + 1`` rollouts in each direction.
This times rollouts of a learned box integrator (``bench/training/box/water32_gfn1_2800-f10``:
32 waters, 96 atoms, factor 10) on a freshly built 32-water box, batched as the fit would
batch them, and prints what one Jacobian per gap would take.

    OMP_NUM_THREADS=1 python bench/box_shooting_cost.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from mdsr_plugin.neural.checkpoint import load_checkpoint
from mdsr_plugin.reference import water_box

CHECKPOINT = Path(__file__).parent / "training/box/water32_gfn1_2800-f10.json"


def main() -> int:
    torch.set_num_threads(1)
    atoms = water_box(32, seed=1)
    model, _ = load_checkpoint(CHECKPOINT, dtype="float32")
    model.set_atoms(atoms.numbers, atoms.get_masses())
    x = torch.as_tensor(atoms.positions, dtype=torch.float32)
    cell = torch.as_tensor(np.array(atoms.cell), dtype=torch.float32)
    per_rollout = None
    for batch in (1, 16, 64):
        xb = x.expand(batch, -1, -1).contiguous()
        started = time.perf_counter()
        with torch.no_grad():
            model.rollout(xb, torch.full_like(xb, 1e-3), cell.expand(batch, -1, -1).contiguous(), 10, 1.0,
                          (True, True, True))
        per_rollout = (time.perf_counter() - started) / batch
        print(f"{batch:3d} rollouts at once: {per_rollout * 1e3:.0f} ms per rollout of 10 fine frames")
    rollouts = 2 * (3 * len(atoms) + 1)
    print(f"one Jacobian per gap: {rollouts} rollouts, {rollouts * per_rollout:.0f} s in float32 on one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
