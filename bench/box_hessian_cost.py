"""One Hessian of a learned box integrator: the whole box's ``3N + 1`` displaced force
evaluations against each column from the displaced atom's neighbourhood (issue #29).

The box fit without velocities (:func:`mdsr_plugin.neural.shooting.estimate_box_velocities`)
forms a Hessian per coarse frame and per 5 fs of path; on a VASP-sized box they were most
of its time.  This times both ways on the learned 32-water model
(``bench/training/box/water32_gfn1_2800-f10``) at liquid configurations: the last frame of
``--liquid`` (an 8-water GFN1-xTB run) repeated 1 × 1 × 1, 2 × 2 × 1 and 2 × 2 × 2, float64,
one core, and prints their largest difference.

    OMP_NUM_THREADS=1 python bench/box_hessian_cost.py --liquid bench/data/water8_300K_nve_gfn1_s3.h5md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mdsr_plugin.io import read_trajectory
from mdsr_plugin.neural.checkpoint import load_checkpoint
from mdsr_plugin.neural.shooting import LOCAL_HESSIAN_SAVING, _BoxShooter, _hessian

CHECKPOINT = Path(__file__).parent / "training/box/water32_gfn1_2800-f10.json"


def main(argv=None) -> int:
    from ase import Atoms

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--liquid", default="bench/data/water8_300K_nve_gfn1_s3.h5md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    last = read_trajectory(args.liquid)[-1]
    cell0 = np.reshape(last.cell, (-1, 3, 3))[0]
    print("atoms  neighbours  whole box  neighbourhoods  used  largest difference (eV/Å², of the largest entry)")
    for repeat in ((1, 1, 1), (2, 2, 1), (2, 2, 2)):
        liquid = Atoms(numbers=last.numbers, positions=last.positions[0], cell=cell0, pbc=True).repeat(repeat)
        model, _ = load_checkpoint(CHECKPOINT, dtype="float64")
        model.set_atoms(liquid.numbers, liquid.get_masses())
        model.train(False)
        x, cell, n = liquid.positions.copy(), np.array(liquid.cell), len(liquid)
        shooter = _BoxShooter(model, x[None], cell[None], liquid.get_masses(), (True,) * 3, 10, 10.0,
                              torch.device("cpu"), torch.float64, 16, 1e-4, 5.0)
        started = time.perf_counter()
        whole = _hessian(lambda y: shooter.displaced_forces(y, cell), x, 1e-4)
        whole_s = time.perf_counter() - started
        base, moves = shooter.neighbourhoods(x, cell)
        started = time.perf_counter()
        local = shooter.local_hessian(x, cell, base, moves)
        local_s = time.perf_counter() - started
        used = LOCAL_HESSIAN_SAVING * 4 * int(moves.sum()) < (3 * n + 1) * n
        print(f"{n:5d}  {float(moves.sum()) / n:10.1f}  {whole_s:8.2f} s  {local_s:12.2f} s  {'yes' if used else 'no':>4}  "
              f"{np.abs(whole - local).max():.1e} (of {np.abs(whole).max():.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
