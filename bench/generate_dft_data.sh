#!/usr/bin/env bash
# DFT (PBE/6-31G, PySCF) and GFN1-xTB reference trajectories for measuring methods on a
# Hamiltonian the shipped checkpoints were not trained on (issue: learn from the user's
# own coarse frames).  NVE after a short Langevin equilibration at 400 K, 0.5 fs steps.
# PBE/6-31G costs ~2.5-3 s per step on one core (6 h for 4 ps, more than a session): the
# DFT runs live in bench/dft/, which git tracks (the only reference data it does: hours of
# DFT are not regenerated in minutes like the xTB runs in bench/data/).  Each saves its
# state every 50 steps to bench/dft/<name>.h5md.resume.h5 and continues from there when
# this script runs again; commit that file at the end of a session.  The frames saved so
# far, to measure on meanwhile:
#   mdsr-generate ethanol --hamiltonian pyscf:pbe/6-31g --thermostat nve --temperature 400 --seed 99 \
#       --steps 8000 --equilibration 200 --checkpoint-every 50 --timestep 0.5 \
#       -o bench/dft/ethanol_400K_nve_pbe_s99.h5md --snapshot bench/data/ethanol_pbe_so_far.h5md
# Usage: bash bench/generate_dft_data.sh [MOLECULE...]   (default: ethanol glycine)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/data bench/dft
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
if [ $# -gt 0 ]; then molecules=("$@"); else molecules=(ethanol glycine); fi
smiles() { case $1 in glycine) echo "NCC(=O)O" ;; *) echo "$1" ;; esac; }
run() {  # molecule hamiltonian tag steps equilibration every folder
  local out="$7/$1_400K_nve_$3_s99.h5md"
  if [ -f "$out" ]; then return; fi
  local t0=$SECONDS
  python -m mdsr_plugin.reference "$(smiles "$1")" --hamiltonian "$2" --thermostat nve --temperature 400 \
      --seed 99 --steps "$4" --equilibration "$5" --checkpoint-every "$6" --timestep 0.5 -o "$out" \
      >>"$7/$1_$3.progress" 2>&1
  echo "$(date -Is) done $out ($4 steps, $((SECONDS - t0)) s this call)" | tee -a bench/data.log
}
for m in "${molecules[@]}"; do
  run "$m" gfn1-xtb gfn1 20000 2000 1000 bench/data  # 10 ps, minutes
done
for m in "${molecules[@]}"; do
  run "$m" pyscf:pbe/6-31g pbe 8000 200 50 bench/dft  # 4 ps, ~6 h per molecule on one core
done
