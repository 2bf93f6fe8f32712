"""The paper's temperature study (its table 1) on keto-malondialdehyde, rerun here.

One Bi-LSTM per temperature (100, 300, 500 K), trained only on that temperature's runs
by ``bench/train_temperature_study.sh``, and the shipped keto-MDA checkpoint (trained on
300 and 500 K) are tested on the held-out Nosé–Hoover run (seed 99) at every temperature,
at factors 5, 10 and 20, with and without input velocities, next to the classical methods.
The paper reports interatomic-distance and velocity MAE; so does this.

    bash bench/generate_reference_data.sh keto-mda     # 100/300/500 K data and held-out runs
    bash bench/train_temperature_study.sh              # three checkpoints, resumable
    python bench/temperature_study.py                  # evaluates what is missing, prints tables
    python bench/temperature_study.py --tables         # only print the tables from the results

Results accumulate in bench/results/temperature_study.json (a rerun skips what is there).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from mdsr_plugin.io.atomic import write_text_atomically
from mdsr_plugin.neural import card as schema

sys.path.insert(0, str(Path(__file__).resolve().parent))
from neural_accuracy import card_serving, evaluate  # noqa: E402  (bench/ is not a package)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench/results/temperature_study.json"
TEMPERATURES = (100, 300, 500)
FACTORS = (5, 10, 20)


def models():
    """Training set label → card path, for the checkpoints that exist."""
    found = {f"{T} K": ROOT / f"bench/training/temperature/keto-mda-{T}K-bilstm-f20-1fs.json" for T in TEMPERATURES}
    found["300 + 500 K (shipped)"] = ROOT / "models/keto-mda-bilstm-f20-1fs.json"
    return {label: card for label, card in found.items() if card.exists() and complete(card)}


def complete(card):
    return json.loads(card.read_text())[schema.TRAINING][schema.COMPLETE]


def run(gaps, positions_gaps):
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    done = {(r["train"], r["test_temperature"]) for r in rows}
    for label, card in models().items():
        for T in TEMPERATURES:
            if (label, T) in done:
                continue
            print(f"trained on {label}, tested at {T} K", flush=True)
            with tempfile.TemporaryDirectory() as folder:
                scored = evaluate(card_serving(card, FACTORS, folder), "keto-mda", FACTORS, gaps,
                                  positions_gaps, temperature=T)
            rows += [{"train": label, "test_temperature": T, **r} for r in scored]
            write_text_atomically(RESULTS, json.dumps(rows, indent=1))  # after every pair: resumable
    return rows


def metric(rows, train, T, mode, factor, method, key):
    for r in rows:
        if (r["train"], r["test_temperature"], r[schema.ROW_MODE], r[schema.ROW_FACTOR],
                r[schema.ROW_METHOD]) == (train, T, mode, factor, method):
            return r[key]
    return None


def fmt(value):
    return "–" if value is None else f"{value:.1e}"


def tables(rows):
    print("Trained and tested at the same temperature (held-out seed 99, Nosé–Hoover): interatomic-distance "
          "MAE (Å) and velocity MAE (Å/fs)\n")
    print("| T | factor | distance: Bi-LSTM | Hermite | velocity: Bi-LSTM | Hermite "
          "| positions only, distance: Bi-LSTM | spline |")
    print("|---" * 8 + "|")
    for T in TEMPERATURES:
        for factor in FACTORS:
            train = f"{T} K"
            cells = [metric(rows, train, T, "velocities", factor, m, "distance_mae") for m in ("neural", "hermite")]
            cells += [metric(rows, train, T, "velocities", factor, m, "velocity_mae") for m in ("neural", "hermite")]
            cells += [metric(rows, train, T, "positions", factor, m, "distance_mae") for m in ("neural", "spline")]
            print(f"| {T} K | {factor} | " + " | ".join(fmt(c) for c in cells) + " |")
    trains = sorted({r["train"] for r in rows}, key=lambda t: (len(t), t))
    print("\nAcross temperatures, factor 20 with velocities: interatomic-distance MAE (Å), rows trained on, "
          "columns tested at\n")
    print("| trained on | " + " | ".join(f"{T} K" for T in TEMPERATURES) + " |")
    print("|---" * (1 + len(TEMPERATURES)) + "|")
    for train in trains:
        cells = [metric(rows, train, T, "velocities", 20, "neural", "distance_mae") for T in TEMPERATURES]
        print(f"| {train} | " + " | ".join(fmt(c) for c in cells) + " |")
    cells = [metric(rows, trains[0], T, "velocities", 20, "hermite", "distance_mae") if trains else None
             for T in TEMPERATURES]
    print("| cubic Hermite | " + " | ".join(fmt(c) for c in cells) + " |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaps", type=int, default=999, help="coarse gaps per file with velocities")
    parser.add_argument("--positions-gaps", type=int, default=200, help="gaps for the slower positions-only mode")
    parser.add_argument("--tables", action="store_true", help="print the tables from the results file only")
    args = parser.parse_args(argv)
    rows = json.loads(RESULTS.read_text()) if args.tables else run(args.gaps, args.positions_gaps)
    tables(rows)


if __name__ == "__main__":
    main()
