#!/usr/bin/env bash
# Learning from archives without stored velocities (issue #29): positions + forces (VASP),
# positions alone, against the same runs with velocities and the classical methods, on
# held-out GFN1-xTB data no model saw (ethanol NVE 400 K seed 99; alanine dipeptide,
# Nosé–Hoover 350 K, seed 41: no registry checkpoint).  Two runs at a time, one thread
# each; rows appended to bench/results/no_velocities.json, logs in bench/results/logs/.
#   bash bench/no_velocities.sh
set -u
cd "$(dirname "$0")"
mkdir -p results/logs training/adapted/no_velocities
export OMP_NUM_THREADS=1
ETH=data/ethanol_400K_nve_gfn1_s99.h5md
ALA=data/alanine-dipeptide_350K_nh_gfn1_s41.h5md
# the data (an interrupted run resumes).  A regenerated run need not be bit-identical to an
# earlier one (the one of 2026-12-06 was not: other package builds); it is another
# realisation of the same protocol, and the checkpoints were learned on the earlier one
[ -f $ETH ] || mdsr-generate ethanol --hamiltonian gfn1-xtb --thermostat nve --temperature 400 --seed 99 \
    --steps 12000 -o $ETH
[ -f $ALA ] || mdsr-generate "CC(=O)NC(C)C(=O)NC" --hamiltonian gfn1-xtb --thermostat nose-hoover \
    --temperature 350 --seed 41 --steps 20000 -o $ALA
run() {  # name, then self_validation.py arguments; a finished run (its log has the summary) is skipped
    local name=$1; shift
    grep -q "choice vs best" "results/logs/no_velocities_$name.log" 2>/dev/null && return 0
    python self_validation.py "$@" --adapt-dir training/adapted/no_velocities --json results/no_velocities.json \
        > "results/logs/no_velocities_$name.log" 2>&1
}
run eth_f10_forces $ETH --factors 10 --input forces --adapt 3 &
run ala_f20_forces $ALA --factors 20 --input forces --coarse-frames 501 --adapt 6 &
wait
run eth_f10_all $ETH --factors 10 --input velocities+forces --adapt 3 &
run ala_f20_all $ALA --factors 20 --input velocities+forces --coarse-frames 501 --adapt 6 &
wait
run eth_f10_positions $ETH --factors 10 --input positions --adapt 3 &
run ala_f20_velocities $ALA --factors 20 --input velocities --coarse-frames 501 --adapt 6 &
wait
run eth_f20_forces $ETH --factors 20 --input forces --adapt 3 &
run eth_f20_all $ETH --factors 20 --input velocities+forces --adapt 3 &
wait
