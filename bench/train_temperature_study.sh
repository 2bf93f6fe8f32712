#!/usr/bin/env bash
# The paper's temperature study (its table 1) on keto-malondialdehyde: one Bi-LSTM per
# temperature, trained only on that temperature's runs (Nosé–Hoover and Langevin, seeds 1
# and 2) and tested on the held-out seed 99 at every temperature (bench/temperature_study.py).
# Usage: bash bench/train_temperature_study.sh [MAX_HOURS_EACH]
# Needs: bash bench/generate_reference_data.sh keto-mda (makes the 100 K runs too).
# Checkpoints and state: bench/training/temperature/; a finished one is skipped on a rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
hours=${1:-1}
for T in 100 300 500; do
  id="keto-mda-${T}K-bilstm-f20-1fs"
  card="bench/training/temperature/${id}.json"
  if [ -f "$card" ] && python -c "import json, sys; sys.exit(0 if json.load(open('$card'))['training']['complete'] else 1)"; then
    continue
  fi
  OUT=bench/training/temperature PUBLISH=0 TEMPERATURES="$T" HELD_OUT_TEMPERATURE="$T" ID="$id" \
      TRAIN_ARGS="--force-epochs 16" bash bench/train_shipped.sh keto-mda bilstm "$hours"
done
