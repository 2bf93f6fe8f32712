"""What one force call and one training step of the learned box integrator cost.

Every box path (upsampling, the velocity fit's rollouts and Hessians, ``--adapt`` on a box)
is force calls of :class:`mdsr_plugin.neural.local.LocalIntegrator`.  This times them on the
learned 32-water model (``bench/training/box/water32_gfn1_2800-f10``):

* force calls at a liquid configuration of 96 atoms (the last frame of ``--liquid``, an
  8-water GFN1-xTB run, repeated 2 × 2 × 1), 2 and 20 copies per call, float64 (the fit's
  precision) and float32 (the upsampler's default);
* float32 training steps (forces with their graph, then the gradient of a force loss with
  respect to the parameters, as ``--adapt`` on a box trains) on 32 frames of the 24-atom run.

Each figure is the best of ``--repeats`` runs of ten calls, one core.  Run it on two
checkouts (``git worktree add``; ``PYTHONPATH`` at each) to compare versions:

    OMP_NUM_THREADS=1 python bench/box_force_cost.py --liquid bench/data/water8_300K_nve_gfn1_s3.h5md \\
        --json bench/results/box_force_cost.json
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mdsr_plugin.io import read_trajectory
from mdsr_plugin.neural.checkpoint import load_checkpoint

CHECKPOINT = Path(__file__).parent / "training/box/water32_gfn1_2800-f10.json"


def best_of(repeats: int, call, per_repeat: int = 10) -> float:
    """The least mean time of one ``call()`` over ``repeats`` runs of ``per_repeat`` calls, s."""
    call()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(per_repeat):
            call()
        best = min(best, (time.perf_counter() - started) / per_repeat)
    return best


def main(argv=None) -> int:
    from ase import Atoms

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--liquid", default="bench/data/water8_300K_nve_gfn1_s3.h5md")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    run = read_trajectory(args.liquid)
    cells = np.reshape(run.cell, (-1, 3, 3))
    liquid = Atoms(numbers=run.numbers, positions=run.positions[-1], cell=cells[-1], pbc=True).repeat((2, 2, 1))
    rows = []
    for dtype in ("float64", "float32"):
        model, _ = load_checkpoint(CHECKPOINT, dtype=dtype)
        model.set_atoms(liquid.numbers, liquid.get_masses())
        model.train(False)
        for copies in (2, 20):
            x = torch.as_tensor(liquid.positions, dtype=getattr(torch, dtype)).expand(copies, -1, -1).contiguous()
            cell = torch.as_tensor(np.array(liquid.cell), dtype=x.dtype).expand(copies, 3, 3).contiguous()
            nl = model.neighbours(x, cell)
            seconds = best_of(args.repeats, lambda: model.forces(x, cell, nl))
            rows.append({"what": "force call", "dtype": dtype, "atoms": len(liquid), "copies": copies,
                         "ms": round(seconds * 1e3, 2), "us_per_atom": round(seconds / x.shape[0] / x.shape[1] * 1e6, 1)})
    model, _ = load_checkpoint(CHECKPOINT, dtype="float32")
    model.set_atoms(run.numbers, Atoms(numbers=run.numbers).get_masses())
    model.train(True)
    parameters = [p.requires_grad_(True) for p in model.parameters()]
    x = torch.as_tensor(run.positions[:640:20], dtype=torch.float32)
    cell = torch.as_tensor(cells[:640:20], dtype=torch.float32)

    def step():
        forces = model.forces(x, cell, create_graph=True)
        torch.autograd.grad((forces ** 2).mean(), parameters, allow_unused=True)

    seconds = best_of(args.repeats, step, per_repeat=5)
    rows.append({"what": "training step", "dtype": "float32", "atoms": x.shape[1], "copies": x.shape[0],
                 "ms": round(seconds * 1e3, 2), "us_per_atom": round(seconds / x.shape[0] / x.shape[1] * 1e6, 1)})
    import mdsr_plugin

    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                            cwd=Path(mdsr_plugin.__file__).parent).stdout.strip()  # the checkout measured
    for row in rows:
        row["commit"] = commit
        print(f"{row['what']:13s} {row['dtype']}  {row['copies']:2d} x {row['atoms']} atoms: {row['ms']:7.2f} ms "
              f"({row['us_per_atom']} µs per atom)  [{commit}]")
    if args.json:
        from results_file import append_rows

        append_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
