#!/usr/bin/env bash
# The paper's architecture comparison: train every architecture, bi- and uni-directional,
# on the same data as the shipped checkpoints, resumably, outside models/.
# Usage: bash bench/train_architectures.sh MAX_HOURS_EACH MOLECULE...
#   e.g. bash bench/train_architectures.sh 1 ethanol benzene aspirin
# Checkpoints and state: bench/training/architectures/; a finished one is skipped on a rerun.
# Held-out comparison: python bench/neural_accuracy.py --model bench/training/architectures/ID.json ...
set -euo pipefail
cd "$(dirname "$0")/.."
hours=$1; shift
for molecule in "$@"; do
  for arch in unilstm birnn unirnn bihnn unihnn binode uninode bilstm; do
    card="bench/training/architectures/${molecule}-${arch}-f${FACTOR:-20}-1fs.json"
    if [ -f "$card" ] && python -c "import json, sys; sys.exit(0 if json.load(open('$card'))['training']['complete'] else 1)"; then
      continue
    fi
    OUT=bench/training/architectures PUBLISH=0 TRAIN_ARGS="--force-epochs 16" bash bench/train_shipped.sh "$molecule" "$arch" "$hours"
  done
done
