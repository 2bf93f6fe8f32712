"""Positions-only input: how the coarse velocities are fitted, measured.

The library fits them by Gauss–Newton in float64 (``mdsr_plugin.neural.shooting``).
This compares it, on held-out GFN2-xTB data (400 K, seed 99) at factor 20, with the
fits of earlier versions, all in float32: L-BFGS stopped at 40 iterations, L-BFGS run
to convergence (rounds of 10 iterations until a round gains less than 1e-4), and
Gauss–Newton; and with three cheaper variants that were rejected: float32 Jacobians in
a float64 fit, a float32 fit finished by one float64 step, and Gauss–Newton reusing
each Jacobian for further (chord) steps while they pay — for the same misfit, the same
checkpoint and the same reconstruction afterwards.  For the Gauss–Newton fits the
input is also rotated and moved, and the largest change of the reconstruction (beyond
the same rotation and shift) is reported: a fit that stops where rounding decides
depends on the orientation.

    python bench/shooting.py                                  # ethanol and uracil
    python bench/shooting.py --molecules benzene --gaps 100

Writes bench/results/shooting.json and prints a Markdown table (position and
velocity MAE over the reconstructed frames, seconds and fine frames per second for
the whole positions-only reconstruction on one thread, the orientation change in Å).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

import mdsr_plugin.neural.shooting as shooting
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


def shooter_for(integrator, positions, coarse_dt, factor, device, centres, rotations, batch_rollouts):
    """The library's shooter for ``integrator`` (in evaluation mode), 1e-4 Å/fs kicks."""
    from mdsr_plugin.neural.shooting import _Shooter

    integrator.train(False)
    return _Shooter(integrator, positions, centres, rotations, factor, coarse_dt / factor, device,
                    batch_rollouts, 1e-4)


def gauss_newton_variant(min_chord_gain=None, float32_jacobians=False):
    """Gauss–Newton as the library's, with one of two cheaper twists (both rejected).

    ``min_chord_gain``: reuse a Jacobian for further (chord) steps while each lowers the
    misfit by this fraction or more.  ``float32_jacobians``: the misfit in float64 (the
    model handed over), the Jacobians from a float32 copy.  Converged when a step with a
    fresh Jacobian gains less than 0.1 %, as in the library.
    """
    from scipy.interpolate import CubicSpline

    from mdsr_plugin.neural.shooting import _gauss_newton_step, _misfit

    def estimate(model, positions, coarse_dt, factor, device="cpu", centres=None, rotations=None,
                 batch_rollouts=2048, max_iterations=20, rtol=1e-3, **_):
        n = len(positions)
        targets = positions.reshape(n, -1)
        v = CubicSpline(np.arange(n), targets, axis=0)(np.arange(n), 1) / coarse_dt
        frames = (positions, coarse_dt, factor, device, centres, rotations, batch_rollouts)
        shooter = shooter_for(model, *frames)
        jacobian_shooter = shooter_for(copy.deepcopy(model).float(), *frames) if float32_jacobians else shooter

        def evaluate(velocities):  # misfit and residuals from ``shooter``, Jacobians from the other
            misfit, residuals, _ = _misfit(shooter, velocities, targets, coarse_dt, with_jacobians=False)
            _, _, jacobians = _misfit(jacobian_shooter, velocities, targets, coarse_dt, with_jacobians=True)
            return misfit, residuals, jacobians

        misfit, residuals, jacobians = evaluate(v)
        fresh = True
        for _ in range(max_iterations):
            delta = _gauss_newton_step(residuals, jacobians, coarse_dt)
            for shrink in (1.0, 0.5, 0.25, 0.125):
                trial = v + shrink * delta
                trial_misfit, trial_residuals, _ = _misfit(shooter, trial, targets, coarse_dt, False)
                if trial_misfit < misfit:
                    break
            else:
                if fresh:
                    break
                misfit, residuals, jacobians = evaluate(v)
                fresh = True
                continue
            gain = (misfit - trial_misfit) / misfit
            v = trial
            if gain < rtol and fresh:
                break
            if min_chord_gain is not None and gain >= min_chord_gain:  # the Jacobian still pays
                misfit, residuals, fresh = trial_misfit, trial_residuals, False
            else:
                misfit, residuals, jacobians = evaluate(v)
                fresh = True
        return v.reshape(positions.shape)

    return estimate


def finished_in_float64(fit):
    """``fit`` in float32, then one float64 Gauss–Newton step, always taken."""
    from mdsr_plugin.neural.shooting import _gauss_newton_step, _misfit

    def estimate(model, positions, coarse_dt, factor, device="cpu", centres=None, rotations=None,
                 batch_rollouts=2048, **kwargs):
        v = in_float32(fit)(model, positions, coarse_dt, factor, device=device, centres=centres,
                            rotations=rotations, batch_rollouts=batch_rollouts, **kwargs)
        n = len(positions)
        shooter = shooter_for(model, positions, coarse_dt, factor, device, centres, rotations, batch_rollouts)
        v = v.reshape(n, -1)
        _, residuals, jacobians = _misfit(shooter, v, positions.reshape(n, -1), coarse_dt, with_jacobians=True)
        return (v + _gauss_newton_step(residuals, jacobians, coarse_dt)).reshape(positions.shape)

    return estimate


def in_float32(fit):
    """``fit`` with the integrator in float32 (the upsampler hands over a float64 copy)."""

    def estimate(model, *args, **kwargs):
        return fit(copy.deepcopy(model).float(), *args, **kwargs)

    return estimate


FITS = {"L-BFGS, 40 iterations, float32 (first)": in_float32(lbfgs(40, 0.0)),
        "L-BFGS to convergence, float32": in_float32(lbfgs(300, 1e-4)),
        "Gauss–Newton, float32 (before)": in_float32(gauss_newton),
        "Gauss–Newton, float64 (now)": gauss_newton,
        "Gauss–Newton in float64, Jacobians in float32 (rejected)": gauss_newton_variant(float32_jacobians=True),
        "Gauss–Newton in float32, one last step in float64 (rejected)": finished_in_float64(gauss_newton),
        "Gauss–Newton with chord steps, float64 (rejected)": gauss_newton_variant(min_chord_gain=0.3)}


def orientation_change(coarse, fine, model_id):
    """Largest change (Å) of the reconstruction when the input is rotated and moved."""
    from scipy.spatial.transform import Rotation

    rotation, shift = Rotation.random(random_state=1).as_matrix(), np.array([12.0, -3.0, 40.0])
    moved = replace(coarse, positions=coarse.positions @ rotation.T + shift)
    fine_moved = upsample(moved, 20, upsampler.LearnedUpsampler(model=model_id))
    return float(np.abs(fine_moved.positions - (fine.positions @ rotation.T + shift)).max())


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
                shooting.estimate_velocities = fit  # the upsampler imports it when it fits
                model_id = f"{molecule}-bilstm-f20-1fs"
                started = time.perf_counter()
                fine = upsample(coarse, 20, upsampler.LearnedUpsampler(model=model_id))
                seconds = time.perf_counter() - started
                metrics = compare(fine, truth, 20)
                turned = orientation_change(coarse, fine, model_id) if "Gauss" in name else None
                rows.append({"molecule": molecule, "data": data, "fit": name, "gaps": args.gaps, "seconds": seconds,
                             "fine_frames_per_s": args.gaps * 20 / seconds, "orientation_change": turned, **metrics})
                print(f"{molecule} {data} {name}: {metrics['position_mae']:.2e} Å in {seconds:.0f} s", flush=True)
    shooting.estimate_velocities = gauss_newton
    out = ROOT / "bench/results/shooting.json"
    out.write_text(json.dumps(rows, indent=1))
    print("\n| molecule | data | fit | position MAE (Å) | velocity MAE (Å/fs) | seconds | fine frames/s "
          "| orientation change (Å) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        turned = "–" if r["orientation_change"] is None else f"{r['orientation_change']:.0e}"
        print(f"| {r['molecule']} | {r['data']} | {r['fit']} | {r['position_mae']:.2e} | {r['velocity_mae']:.2e} "
              f"| {r['seconds']:.0f} | {r['fine_frames_per_s']:.0f} | {turned} |")


if __name__ == "__main__":
    main()
