"""Fitting coarse velocities so that the paths from both ends meet in the middle of each gap.

The upsampler fits a molecule's coarse velocities so that the path run forward from each
frame *lands* on the next frame, and the one run backward lands on the previous one
(:mod:`mdsr_plugin.neural.shooting`).  Through a model whose accelerations are off by a
bias that is smooth over a gap, the landing condition shifts the fitted velocities by
about half the bias times the gap; the condition that the forward path from frame ``g``
and the backward path from frame ``g + 1`` *meet* at the middle of the gap (positions, and
velocities weighted by ``--weight``) does not, to first order: both half-paths are off by
the same amount.  This runs both fits, and the reference's own velocities, through one
checkpoint on its held-out coarse frames and prints the position error of the output
(issue #29, "What bounds positions + forces on a molecule" in docs/benchmarks.md):

    OMP_NUM_THREADS=1 python bench/meet_in_the_middle.py bench/data/ethanol_400K_nve_gfn1_s99.h5md \\
        bench/training/adapted/default_schedule/ethanol_400K_nve_gfn1_s99-f10.json --factor 10 --weight 0.3
"""
import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import mdsr_plugin.neural.shooting as sh
from mdsr_plugin.io import read_trajectory
from mdsr_plugin.metrics import reconstructed_mask
from mdsr_plugin.neural.upsampler import LearnedUpsampler

LANDING = sh.estimate_velocities
W = 0.3  # the velocity residuals' weight against the positions' (set by --weight)


def estimate_meeting(model, positions, coarse_dt, factor, device="cpu", centres=None, rotations=None,
                     max_iterations=20, rtol=1e-3, batch_rollouts=2048, step=1e-4, initial=None):
    """:func:`mdsr_plugin.neural.shooting.estimate_velocities` with the meeting residuals
    x_f(h) - x_b(h) and W T (v_f(h) + v_b(h)) at the gap's fine frame h = factor // 2,
    by Gauss-Newton on the dense normal equations (small molecules only)."""
    n, n_atoms = positions.shape[:2]
    m = 3 * n_atoms
    if centres is None:
        centres = np.broadcast_to(positions.mean(axis=(0, 1)), (n - 1, 3))
        rotations = np.broadcast_to(np.eye(3), (n - 1, 3, 3))
    if initial is None:
        initial = sh.first_guess(positions, None, None, coarse_dt)
    v = np.asarray(initial, dtype=np.float64).reshape(n, m)
    h = factor // 2
    dt = coarse_dt / factor
    fwd = sh._Shooter(model, positions, centres, rotations, h, dt, device, batch_rollouts, step)
    bwd = sh._Shooter(model, positions, centres, rotations, factor - h, dt, device, batch_rollouts, step)
    gaps = np.arange(n - 1)
    s = coarse_dt * W
    model.train(False)

    def evaluate(v, jac):
        xf, vf, jfx, jfv = fwd.shoot(gaps, v[:-1], jac)
        xb, vb, jbx, jbv = bwd.shoot(gaps + 1, -v[1:], jac)
        rx, rv = xf - xb, (vf + vb) * s
        return float((rx ** 2).sum() + (rv ** 2).sum()), (rx, rv), (jfx, jfv, jbx, jbv)

    misfit, (rx, rv), (jfx, jfv, jbx, jbv) = evaluate(v, True)
    for _ in range(max_iterations):
        g = n - 1
        # dense normal equations
        J = np.zeros((2 * g * m, n * m))
        r = np.concatenate([rx.ravel(), rv.ravel()])
        for k in range(g):
            J[k * m:(k + 1) * m, k * m:(k + 1) * m] = jfx[k]
            J[k * m:(k + 1) * m, (k + 1) * m:(k + 2) * m] = jbx[k]
            o = g * m
            J[o + k * m:o + (k + 1) * m, k * m:(k + 1) * m] = jfv[k] * s
            J[o + k * m:o + (k + 1) * m, (k + 1) * m:(k + 2) * m] = -jbv[k] * s
        A = J.T @ J
        A[np.diag_indices_from(A)] += 1e-9 * np.trace(A) / len(A)
        delta = np.linalg.solve(A, -J.T @ r).reshape(n, m)
        for shrink in (1.0, 0.5, 0.25, 0.125):
            trial = v + shrink * delta
            tm, _, _ = evaluate(trial, False)
            if tm < misfit:
                break
        else:
            break
        imp = (misfit - tm) / misfit
        v = trial
        if imp < rtol:
            break
        misfit, (rx, rv), (jfx, jfv, jbx, jbv) = evaluate(v, True)
    return v.reshape(n, n_atoms, 3)


def run(reference, card, factor, frames=None, step=2):
    """Rows (dicts) of the three velocity sources through ``card`` on its held-out frames."""
    rows = []
    fine = read_trajectory(reference)[::step]
    coarse_all = fine[::factor]
    if frames is None:
        held = json.loads(Path(card).read_text())["training"]["held_out_frames"]
        frames = (held["start"], held["stop"])
    start, stop = frames
    coarse = coarse_all[start:stop]
    truth = fine[start * factor:(stop - 1) * factor + 1]
    mask = reconstructed_mask(truth.n_frames, factor)
    for label, fitter in (("true", LANDING), ("landing", LANDING), ("middle", estimate_meeting)):
        sh.estimate_velocities = fitter
        method = LearnedUpsampler(model=str(card), precision="float64")
        source = coarse if label == "true" else replace(coarse, velocities=None)
        t = time.perf_counter()
        method.prepare(source, factor)
        out = method.interpolate(source, factor)
        row = dict(model=Path(card).name, factor=factor, frames=[start, stop], velocities=label,
                   weight=W if label == "middle" else None, seconds=round(time.perf_counter() - t, 1),
                   position_mae=float(np.abs(out.positions - truth.positions)[mask].mean()),
                   coarse_velocity_mae=float(np.abs(out.velocities[::factor] - coarse.velocities).mean()))
        print(f"{row['model']} f{factor} frames {start}-{stop} {label:8s} weight {row['weight']}: position MAE "
              f"{row['position_mae']:.3e} Å, coarse velocity MAE {row['coarse_velocity_mae']:.2e} Å/fs "
              f"({row['seconds']:.0f} s)", flush=True)
        rows.append(row)
    sh.estimate_velocities = LANDING
    return rows


def main(argv=None) -> int:
    global W
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="fine reference with velocities (0.5 fs steps)")
    parser.add_argument("card", type=Path, help="a checkpoint's card")
    parser.add_argument("--factor", type=int, required=True)
    parser.add_argument("--weight", type=float, default=0.3, help="velocity residuals' weight")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    W = args.weight
    rows = run(args.reference, args.card, args.factor)
    if args.json:
        from results_file import append_rows

        append_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
