"""The held-out accuracy tables of docs/benchmarks.md, from the result files of
``bench/neural_accuracy.py`` (no recomputation).

    python bench/accuracy_tables.py factors ethanol benzene malonaldehyde uracil
    python bench/accuracy_tables.py architectures ethanol
    python bench/accuracy_tables.py ratios ethanol benzene

``factors``: molecule × data × input × factor, the shipped Bi-LSTM against the four
classical methods (position MAE, Å) and the floor's baseline over the Bi-LSTM.
``architectures``: every architecture measured for one molecule (checkpoints from
``bench/train_architectures.sh``, the Bi-LSTM among them, trained alike; results in
``bench/results/architectures/``), best in bold.  ``ratios``: the uni-/bi-directional
and architecture-over-Bi-LSTM error ratios quoted in the text.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mdsr_plugin.neural import card as schema

RESULTS = Path(__file__).resolve().parents[1] / "bench/results"
DATA = {"nose-hoover": "Nosé–Hoover", "langevin-weak": "Langevin 2 ps⁻¹", "langevin": "Langevin 10 ps⁻¹"}
MODES = (schema.MODE_VELOCITIES, schema.MODE_POSITIONS)
FACTORS = (5, 10, 20)
CLASSICAL = ("linear", "spline", "hermite", "quintic")
ARCHITECTURES = {"bilstm": "Bi-LSTM", "unilstm": "Uni-LSTM", "birnn": "Bi-RNN", "unirnn": "Uni-RNN",
                 "bihnn": "Bi-HNN", "unihnn": "Uni-HNN", "binode": "Bi-NODE", "uninode": "Uni-NODE"}


def load(molecule, arch="bilstm", folder=""):
    path = RESULTS / folder / f"neural_accuracy_{molecule}-{arch}-f20-1fs.json"
    return json.loads(path.read_text()) if path.exists() else None


def position_mae(rows, molecule, data, mode, factor):
    """Method → position MAE for one held-out reference, input mode and factor."""
    return {r[schema.ROW_METHOD]: r[schema.POSITION_MAE] for r in rows
            if r[schema.ROW_FILE] == f"{molecule}_400K_{data}_s99" and r[schema.ROW_MODE] == mode
            and r[schema.ROW_FACTOR] == factor}


def baseline(mae, mode):
    return mae[schema.baseline_method(mode)]


def factors_table(molecules):
    print("| molecule | data | input | factor | Bi-LSTM | linear | spline | cubic Hermite | quintic Hermite "
          "| baseline / Bi-LSTM |")
    print("|---" * 10 + "|")
    for molecule in molecules:
        rows = load(molecule)
        for data, label in DATA.items():
            for mode in MODES:
                for factor in FACTORS:
                    mae = position_mae(rows, molecule, data, mode, factor)
                    neural = mae[schema.NEURAL]
                    cells = [f"**{neural:.1e}**"] + [f"{mae[m]:.1e}" if m in mae else "–" for m in CLASSICAL]
                    ratio = baseline(mae, mode) / neural
                    mark = "**" if ratio >= 5 else ""
                    print(f"| {molecule} | {label} | {mode} | {factor} | " + " | ".join(cells)
                          + f" | {mark}{ratio:.1f}×{mark} |")


def architectures_table(molecule):
    results = {arch: rows for arch in ARCHITECTURES if (rows := load(molecule, arch, "architectures")) is not None}
    print("| data | input | factor | " + " | ".join(ARCHITECTURES[a] for a in results)
          + " | cubic Hermite / spline |")
    print("|---" * (4 + len(results)) + "|")
    for data, label in DATA.items():
        for mode in MODES:
            for factor in FACTORS:
                errors = [position_mae(rows, molecule, data, mode, factor)[schema.NEURAL] for rows in results.values()]
                cells = [f"**{e:.1e}**" if e == min(errors) else f"{e:.1e}" for e in errors]
                reference = baseline(position_mae(results["bilstm"], molecule, data, mode, factor), mode)
                print(f"| {label} | {mode} | {factor} | " + " | ".join(cells) + f" | {reference:.1e} |")


def architecture_ratios(molecule):
    """The ranges quoted in docs/benchmarks.md: uni- over bi-directional error per cell
    type, and each bi-directional model's error over the Bi-LSTM's, per input mode and
    data (min–max over the factors)."""
    results = {arch: rows for arch in ARCHITECTURES if (rows := load(molecule, arch, "architectures")) is not None}

    def error(arch, data, mode, factor):
        return position_mae(results[arch], molecule, data, mode, factor)[schema.NEURAL]

    print(f"{molecule}: ratio ranges over factors {FACTORS}")
    for mode in MODES:
        for data, label in DATA.items():
            cells = []
            for cell in ("lstm", "rnn", "hnn", "node"):
                if f"bi{cell}" in results and f"uni{cell}" in results:
                    r = [error(f"uni{cell}", data, mode, f) / error(f"bi{cell}", data, mode, f) for f in FACTORS]
                    cells.append(f"uni/bi {cell.upper()} {min(r):.2f}–{max(r):.2f}")
            for arch in ("birnn", "bihnn", "binode"):
                if arch in results:
                    r = [error(arch, data, mode, f) / error("bilstm", data, mode, f) for f in FACTORS]
                    cells.append(f"{ARCHITECTURES[arch]}/Bi-LSTM {min(r):.2f}–{max(r):.2f}")
            print(f"  {mode:10s} {label:16s} " + "; ".join(cells))


if __name__ == "__main__":
    kind, *names = sys.argv[1:]
    if kind == "factors":
        factors_table(names)
    elif kind == "ratios":
        for name in names:
            architecture_ratios(name)
    else:
        architectures_table(names[0])
