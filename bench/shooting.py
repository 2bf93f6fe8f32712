"""Positions-only input: how the coarse velocities are fitted, measured.

The library fits them by Gauss–Newton (``mdsr_plugin.neural.shooting``).  This
compares it, on held-out GFN2-xTB data (400 K, seed 99) at factor 20, with the
L-BFGS fit of earlier versions — stopped at 40 iterations as they did, and run to
convergence (rounds of 10 iterations until a round gains less than 1e-4) — for the
same misfit, the same checkpoint and the same reconstruction afterwards.

    python bench/shooting.py                                  # ethanol and uracil
    python bench/shooting.py --molecules benzene --gaps 100

Writes bench/results/shooting.json and prints a Markdown table (position and
velocity MAE over the reconstructed frames, seconds and fine frames per second for
the whole positions-only reconstruction on one thread).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import mdsr_plugin.neural.upsampler as upsampler
from mdsr_plugin.io import read_trajectory
from mdsr_plugin.metrics import compare
from mdsr_plugin.neural.shooting import estimate_velocities as gauss_newton
from mdsr_plugin.pipeline import upsample

ROOT = Path(__file__).resolve().parents[1]


def lbfgs(max_iterations, rtol):
    """The earlier fit: L-BFGS on the same misfit, in rounds of 10 iterations."""

    def estimate(model, positions, coarse_dt, factor, device="cpu", **_):
        from scipy.interpolate import CubicSpline

        n = len(positions)
        spline = CubicSpline(np.arange(n), positions.reshape(n, -1), axis=0)
        initial = (spline(np.arange(n), 1) / coarse_dt).reshape(positions.shape)
        dtype = model.reference.dtype
        x = torch.as_tensor(positions - positions.mean(axis=(0, 1)), dtype=dtype)
        v = torch.as_tensor(initial, dtype=dtype).clone().requires_grad_(True)
        optimizer = torch.optim.LBFGS([v], lr=1.0, max_iter=10, line_search_fn="strong_wolfe")

        def shoot(x0, v0):
            xs, vs = model.rollout(x0, v0, factor, coarse_dt / factor)
            return xs[:, -1], vs[:, -1]

        def closure():
            optimizer.zero_grad()
            xf, vf = shoot(x[:-1], v[:-1])
            xb, vb = shoot(x[1:], -v[1:])
            loss = (((xf - x[1:]) ** 2).sum() + ((xb - x[:-1]) ** 2).sum()
                    + (((vf - v[1:]) * coarse_dt) ** 2).sum() + (((vb + v[:-1]) * coarse_dt) ** 2).sum())
            loss.backward()
            return loss

        model.train(False)
        previous = np.inf
        with torch.enable_grad():
            for _ in range(max_iterations // 10):
                misfit = float(optimizer.step(closure).detach())
                if previous - misfit <= rtol * misfit:
                    break
                previous = misfit
        return v.detach().double().numpy()

    return estimate


FITS = {"L-BFGS, 40 iterations (before)": lbfgs(40, 0.0),
        "L-BFGS to convergence": lbfgs(300, 1e-4),
        "Gauss–Newton (now)": gauss_newton}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", nargs="+", default=["ethanol", "uracil"])
    parser.add_argument("--data", nargs="+", default=["nose-hoover", "langevin-weak"])
    parser.add_argument("--gaps", type=int, default=100)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for molecule in args.molecules:
        for data in args.data:
            truth = read_trajectory(ROOT / f"bench/data/{molecule}_400K_{data}_s99.h5md")[::2][: args.gaps * 20 + 1]
            coarse = truth[::20].without("velocities", "forces")
            for name, fit in FITS.items():
                upsampler.estimate_velocities = fit
                started = time.perf_counter()
                fine = upsample(coarse, 20, upsampler.NeuralUpsampler(model=f"{molecule}-bilstm-f20-1fs"))
                seconds = time.perf_counter() - started
                metrics = compare(fine, truth, 20)
                rows.append({"molecule": molecule, "data": data, "fit": name, "gaps": args.gaps, "seconds": seconds,
                             "fine_frames_per_s": args.gaps * 20 / seconds, **metrics})
                print(f"{molecule} {data} {name}: {metrics['position_mae']:.2e} Å in {seconds:.0f} s", flush=True)
    upsampler.estimate_velocities = gauss_newton
    out = ROOT / "bench/results/shooting.json"
    out.write_text(json.dumps(rows, indent=1))
    print("\n| molecule | data | fit | position MAE (Å) | velocity MAE (Å/fs) | seconds | fine frames/s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['molecule']} | {r['data']} | {r['fit']} | {r['position_mae']:.2e} | {r['velocity_mae']:.2e} "
              f"| {r['seconds']:.0f} | {r['fine_frames_per_s']:.0f} |")


if __name__ == "__main__":
    main()
