"""Held-out accuracy of a checkpoint against the classical methods, per factor.

For each held-out reference of the molecule (400 K and seed 99, a temperature and a
seed not used in training; Nosé–Hoover, Langevin 10 ps⁻¹ and Langevin 2 ps⁻¹), the
1 fs truth is subsampled every ``factor`` frames and reconstructed, with velocities
and with positions only, by the checkpoint and by linear, cubic spline, cubic
Hermite and quintic Hermite interpolation.  Factors the card does not list yet are
evaluated through a temporary copy of the card that lists them (one learned
integrator at a 1 fs step serves any number of steps per gap).

    python bench/neural_accuracy.py --model ethanol-bilstm-f20-1fs --molecule ethanol
    python bench/neural_accuracy.py --model ethanol-bilstm-f20-1fs --molecule ethanol \\
        --factors 5 10 20 --publish      # record the results and factors in the model card

``--publish`` rewrites the card in ``models/`` (``validation.held_out``, ``factors``)
and the registry manifest; the weights are untouched.  Writes
bench/results/neural_accuracy_<model>.json (bench/results/<folder>/... for a checkpoint
outside models/, e.g. bench/results/architectures/) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from mdsr_plugin.evaluation.scoring import score_methods
from mdsr_plugin.io import read_trajectory
from mdsr_plugin.io.atomic import write_text_atomically
from mdsr_plugin.neural import card as schema
from mdsr_plugin.neural.checkpoint import read_card, write_card
from mdsr_plugin.neural.registry import get_model_entry, write_manifest

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("neural", "linear", "spline", "hermite", "quintic")
HELD_OUT_NOTE = ("400 K, seed 99 (neither used in training); position/velocity/distance MAE over the "
                 "reconstructed frames, spectral overlap of the velocity autocorrelation spectra")


def card_serving(card_file: Path, factors, folder) -> Path:
    """A copy of the checkpoint whose card also lists ``factors``."""
    card = read_card(card_file)
    card[schema.FACTORS] = sorted(set(card[schema.FACTORS]) | set(factors))
    copy = Path(folder) / card_file.name
    copy.write_text(json.dumps(card))
    shutil.copy(card_file.with_name(card[schema.WEIGHTS]), Path(folder) / card[schema.WEIGHTS])
    return copy


def evaluate(card_file, molecule, factors, gaps, positions_gaps, temperature=400):
    """Score the checkpoint and the classical methods on every held-out file (seed 99) at ``temperature`` K."""
    rows = []
    paths = sorted((ROOT / "bench/data").glob(f"{molecule}_{temperature}K_*_s99.h5md"))
    if not paths:
        raise SystemExit(f"no held-out reference bench/data/{molecule}_{temperature}K_*_s99.h5md: "
                         f"run bash bench/generate_reference_data.sh {molecule}")
    for path in paths:
        truth_all = read_trajectory(path)[::2]  # 0.5 fs steps → the 1 fs grid
        for factor in factors:
            for positions_only, n_gaps in ((False, gaps), (True, positions_gaps)):
                n = min(n_gaps * factor + 1, (truth_all.n_frames - 1) // factor * factor + 1)
                started = time.perf_counter()
                scores = score_methods(truth_all[:n], factor, card_file, positions_only=positions_only)
                mode = schema.input_mode(not positions_only)
                rows += [schema.held_out_row(path.stem, mode, factor, method, (n - 1) // factor, metrics)
                         for method, metrics in scores.items()]
                print(f"{path.stem} factor {factor} {mode}: neural {scores[schema.NEURAL][schema.POSITION_MAE]:.2e} Å "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
    return rows


def publish(card_file: Path, rows, factors):
    """Record the held-out rows and the validated factors in the card; rewrite the manifest."""
    card = read_card(card_file)
    card[schema.FACTORS] = sorted(set(card[schema.FACTORS]) | set(factors))
    schema.record_held_out(card, rows, HELD_OUT_NOTE)
    write_card(card, card_file)
    write_manifest(card_file.parent)


def table(rows):
    print("\n| reference | input | factor | neural | linear | spline | Hermite | quintic | baseline / neural |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (file, mode, factor), mae in schema.held_out_position_mae(rows).items():
        baseline = mae[schema.baseline_method(mode)]
        cells = [f"{mae[m]:.2e}" if m in mae else "–" for m in METHODS]
        print(f"| {file.split('_', 1)[1].removesuffix('_s99')} | {mode} | {factor} | " + " | ".join(cells)
              + f" | {baseline / mae[schema.NEURAL]:.1f}× |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="registered id or card path")
    parser.add_argument("--molecule", required=True)
    parser.add_argument("--factors", type=int, nargs="+", default=[20])
    parser.add_argument("--gaps", type=int, default=999, help="coarse gaps per file with velocities (≤ 20 ps)")
    parser.add_argument("--positions-gaps", type=int, default=200, help="gaps for the slower positions-only mode")
    parser.add_argument("--publish", action="store_true", help="write the results into the model card")
    args = parser.parse_args(argv)
    card_file = get_model_entry(args.model).card_path
    with tempfile.TemporaryDirectory() as folder:
        rows = evaluate(card_serving(card_file, args.factors, folder), args.molecule, args.factors,
                        args.gaps, args.positions_gaps)
    # checkpoints outside models/ (bench/training/architectures, ...) get their own folder
    folder = ROOT / "bench/results" / ("" if card_file.parent.name == "models" else card_file.parent.name)
    out = folder / f"neural_accuracy_{card_file.stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out, json.dumps(rows, indent=1))
    if args.publish:
        publish(card_file, rows, args.factors)
    table(rows)


if __name__ == "__main__":
    main()
