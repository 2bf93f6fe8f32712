"""A periodic box learned from its own coarse frames, scored on a later part it never saw.

The reference run (0.5 fs steps, taken at 1 fs with ``--step 2``) is split in time:
the first ``--learn-fraction`` is the archive a model is learned from (its coarse
frames only: positions, velocities, forces every ``factor`` fs), the rest is a
held-out trajectory.  Its coarse frames are upsampled by the learned box integrator
(``--model``, no further learning), by every classical method, and by ``auto``
(self-validated on those coarse frames); all are scored against the held-out fine
frames, unwrapped (wrapped coordinates would count a face crossing as a box length).
Throughput (fine frames per second, one core) is timed on the same run, in float32 and
float64.

    python bench/box_accuracy.py bench/data/water32_300K_nve_gfn1_s7.h5md --factors 10 20 \\
        --minutes 10 --json bench/results/box_accuracy.json

With ``--reuse`` the checkpoints already in ``--model-dir`` are measured as they are;
with ``--learn-fraction 0 --model-stem`` those learned from another run (another seed
of the same box) are scored on the whole of this one:

    python bench/box_accuracy.py bench/data/water32_gfn1_s8_snapshot.h5md --reuse --learn-fraction 0 \\
        --model-stem water32_gfn1_2800 --factors 10 20

With ``--input forces`` the coarse frames (learned from and upsampled) carry positions
and forces only, as VASP writes them: the learned integrator fits their velocities
(``velocities_fitted`` in the rows), and the Hermite methods, which need velocities, are
not run.  With ``--input positions`` the coarse frames carry positions alone (as XDATCAR
does): the box is learned on ``--prior``'s forces at its coarse frames (single points; never
the reference's Hamiltonian), and upsampled by fitting the velocities; with ``--reuse`` a
checkpoint learned before (from frames with velocities and forces) upsamples them instead.

    OMP_NUM_THREADS=1 python bench/box_accuracy.py bench/data/water8_300K_nve_gfn1_s5.h5md --factors 10 \
        --minutes 15 --input positions --prior gfn2-xtb --json bench/results/box_accuracy_s5.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from mdsr_plugin.io import read_trajectory
from mdsr_plugin.metrics import position_mae, reconstructed_mask
from mdsr_plugin.neural.adapt import adapt
from mdsr_plugin.neural.adapt_box import BoxAdaptSettings
from mdsr_plugin.periodic import Unwrapper
from mdsr_plugin.pipeline import upsample
from mdsr_plugin.selection import select_method
from mdsr_plugin.settings import UpsampleSettings
from results_file import append_rows

CLASSICAL = ("quintic", "hermite", "spline", "linear")


def unwrapped(traj) -> np.ndarray:
    return Unwrapper(traj.pbc)(traj.positions, traj.cell)


def rows_for(path: Path, factors, minutes: float, learn_fraction: float, step: int, model_dir: Path, seed: int,
             reuse: bool = False, model_stem: str | None = None, carried: str = "velocities+forces",
             prior: str = "none"):
    fine = read_trajectory(path)[::step]
    without_velocities = carried in ("forces", "positions")
    suffix = {"forces": "-forces", "positions": "-positions"}.get(carried, "") if not reuse or carried != "positions" \
        else ""  # --reuse with positions: the model learned from velocities and forces
    for factor in factors:
        split = int(fine.n_frames * learn_fraction) // factor * factor
        learn, held = fine[:split + 1], fine[split:]
        n_coarse = (held.n_frames - 1) // factor + 1
        held = held[:(n_coarse - 1) * factor + 1]
        coarse_learn, coarse = learn[::factor], held[::factor]
        if without_velocities:
            coarse_learn, coarse = coarse_learn.without("velocities"), coarse.without("velocities")
        if carried == "positions":
            coarse_learn, coarse = coarse_learn.without("forces"), coarse.without("forces")
        started = time.perf_counter()
        if reuse:  # the checkpoint learned before, as it is (its card says what it learned from)
            card, learn_minutes = model_dir / f"{model_stem or path.stem}-f{factor}{suffix}.json", None
            if not card.exists():
                raise SystemExit(f"--reuse: no checkpoint {card}")
        else:
            card = adapt([coarse_learn], model_dir / f"{path.stem}-f{factor}{suffix}",
                         BoxAdaptSettings(fine_dt=fine.dt, max_minutes=minutes, seed=seed, prior=prior), progress=False,
                         manifest=False)
            learn_minutes = (time.perf_counter() - started) / 60
        truth_x = unwrapped(held)
        mask = reconstructed_mask(held.n_frames, factor)
        settings = UpsampleSettings(factor=factor, model=str(card))
        _, selection = select_method(coarse, factor, settings)
        measured = {s.method: s for s in selection.scores}
        for method in ("neural", *(m for m in CLASSICAL if not (without_velocities and m == "hermite"))):
            if without_velocities and method == "quintic":
                if carried == "positions":
                    continue
                method = "quintic-spline"  # positions and forces, no velocities
            for precision in (("float32", "float64") if method == "neural" else (None,)):
                options = {"model": str(card), "precision": precision} if method == "neural" else {}
                started = time.perf_counter()
                result = upsample(coarse, factor, method, self_validate=False, **options)
                seconds = time.perf_counter() - started
                score = measured.get(method)
                yield dict(
                    file=path.name, factor=factor, method=method, precision=precision, n_atoms=fine.n_atoms,
                    input=carried, velocities_fitted=without_velocities and method == "neural",
                    prior_forces=prior if carried == "positions" and not reuse and method == "neural" else None,
                    learn_coarse_frames=None if reuse else coarse_learn.n_frames,
                    held_out_coarse_frames=coarse.n_frames, model=str(card),
                    learn_minutes=learn_minutes if method == "neural" else None,
                    true_position_mae=position_mae(unwrapped(result), truth_x, mask),
                    true_velocity_mae=position_mae(result.velocities, held.velocities, mask),
                    fine_frames_per_second=result.n_frames / seconds,
                    chosen=(method == selection.chosen and precision in (None, "float32")),
                    estimate=score.position_estimate if score else None, held_back=selection.held_back,
                    estimator=score.estimator if score else None,
                    estimate_range=list(score.position_range) if score else None)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("--factors", nargs="+", type=int, default=[10, 20])
    parser.add_argument("--minutes", type=float, default=10.0, help="learning budget per factor")
    parser.add_argument("--learn-fraction", type=float, default=0.6)
    parser.add_argument("--step", type=int, default=2, help="reference frames per fine frame (0.5 fs -> 1 fs)")
    parser.add_argument("--model-dir", type=Path, default=Path("bench/training/box"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true",
                        help="measure the checkpoints in --model-dir as they are, without learning")
    parser.add_argument("--model-stem", help="with --reuse: the checkpoints' stem (default: the reference's), "
                        "e.g. a model learned from another run of the same box")
    parser.add_argument("--input", choices=["velocities+forces", "forces", "positions"], default="velocities+forces",
                        help="what the coarse frames carry besides positions (forces: as VASP writes them; "
                        "positions: nothing, as XDATCAR)")
    parser.add_argument("--prior", choices=["gfn1-xtb", "gfn2-xtb", "none"], default="none",
                        help="with --input positions: the Hamiltonian whose forces at the coarse frames the box "
                        "is learned on (not the reference's)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.input == "positions" and not args.reuse and args.prior == "none":
        parser.error("--input positions needs --prior (or --reuse): a box is not learned from positions alone")
    rows = []
    print(f"{'file':<34} {'f':>3} {'method':<8} {'prec':<8} {'true Å':>9} {'est Å':>9} {'frames/s':>9} chosen")
    for row in rows_for(args.reference, args.factors, args.minutes, args.learn_fraction, args.step,
                        args.model_dir, args.seed, args.reuse, args.model_stem, args.input, args.prior):
        rows.append(row)
        print(f"{row['file']:<34} {row['factor']:>3} {row['method']:<8} {row['precision'] or '':<8} "
              f"{row['true_position_mae']:9.2e} {row['estimate'] or float('nan'):9.2e} "
              f"{row['fine_frames_per_second']:9.1f} {'*' if row['chosen'] else ''}", flush=True)
    for factor in args.factors:
        group = {r["method"]: r for r in rows if r["factor"] == factor and r["precision"] in (None, "float32")}
        for baseline in ("hermite", "spline"):
            if baseline in group:
                print(f"factor {factor}: learned / {baseline} = "
                      f"{group['neural']['true_position_mae'] / group[baseline]['true_position_mae']:.3f}")
    if args.json:
        append_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
