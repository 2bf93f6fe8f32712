#!/usr/bin/env bash
# Train the shipped checkpoints, resumably, then publish them to models/.
# Usage: bash bench/train_shipped.sh MOLECULE [ARCH] [MAX_HOURS]
#   e.g. bash bench/train_shipped.sh ethanol bilstm 1.5
# State and progress live in bench/training/ (committed, so that a later session resumes);
# the finished checkpoint is copied to models/ and models/manifest.json is rewritten.
# OUT=bench/training/architectures PUBLISH=0 keeps a checkpoint out of models/ (the
# architecture comparison, bench/train_architectures.sh).  TEMPERATURES="100" trains on
# other temperatures than 300 and 500 K, ID=... names the checkpoint and
# HELD_OUT_TEMPERATURE=100 records its held-out data (the temperature study,
# bench/train_temperature_study.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
molecule=$1; arch=${2:-bilstm}; hours=${3:-2}; factor=${FACTOR:-20}
id=${ID:-"${molecule}-${arch}-f${factor}-1fs"}
out=${OUT:-bench/training}
mkdir -p "$out"
read -r -a temperatures <<< "${TEMPERATURES:-300 500}"
files=()
for T in "${temperatures[@]}"; do files+=(bench/data/${molecule}_${T}K_*_s[12].h5md); done
provenance="bench/training/${molecule}.provenance.json"
if [ -n "${TEMPERATURES:-}" ]; then provenance="${out}/${id}.provenance.json"; fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
echo "$(date -Is) start $id on ${#files[@]} files (max ${hours} h)" >> bench/training/progress.log
cat > "$provenance" <<JSON
{"generator": "bash bench/generate_reference_data.sh ${molecule}", "potential": "GFN2-xTB (tblite)",
 "timestep_fs": 0.5, "temperatures_K": [$(IFS=,; echo "${temperatures[*]}")], "thermostats": ["nose-hoover", "langevin"],
 "seeds": [1, 2], "held_out": {"temperature_K": ${HELD_OUT_TEMPERATURE:-400}, "seed": 99}}
JSON
python -m mdsr_plugin.neural.cli_train "${files[@]}" -o "${out}/${id}" --factor "$factor" \
    --arch "$arch" --molecule "$molecule" --max-hours "$hours" ${TRAIN_ARGS:-} \
    --provenance "$provenance" -q
if [ "${PUBLISH:-1}" = 1 ] && [ -f "${out}/${id}.json" ]; then
  cp "${out}/${id}.json" "${out}/${id}.safetensors" models/
  python -c "from mdsr_plugin.neural.registry import write_manifest; write_manifest('models')"
  metrics=$(python -c "import json; v = json.load(open('models/${id}.json'))['validation']
print(f\"validation tails: neural {v['neural']['position_mae']:.2e} A, Hermite {v['hermite']['position_mae']:.2e} A, \"
      f\"positions-only {v['neural_positions_only']['position_mae']:.2e} A, spline {v['spline_positions_only']['position_mae']:.2e} A; \"
      f\"complete: {json.load(open('models/${id}.json'))['training']['complete']}\")")
  echo "$(date -Is) published $id to models/ ($metrics)" >> bench/training/progress.log
  echo "  held-out check: python bench/neural_accuracy.py --model $id --molecule $molecule --factors 5 10 20 --publish" >> bench/training/progress.log
elif [ -f "${out}/${id}.json" ]; then
  echo "$(date -Is) finished $id in $out (not published)" >> bench/training/progress.log
fi
