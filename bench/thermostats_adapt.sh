#!/usr/bin/env bash
# `--adapt` on thermostatted runs of a 22-atom molecule with no registry checkpoint (issue #29):
# alanine dipeptide at 350 K on GFN1-xTB under Langevin (2 ps^-1, seed 43) and CSVR / Bussi
# (tau 100 fs, seed 45); the Nosé–Hoover run (seed 41) is bench/no_velocities.sh's.  Factor 20,
# the first 501 coarse frames (10 ps), the default 10-minute budget, with positions + velocities +
# forces, positions + velocities (the default GFN2-xTB prior) and positions + forces.  Two runs at a
# time, one thread each; rows appended to bench/results/thermostats_adapt.json, logs in
# bench/results/logs/thermostats_adapt_*.log, checkpoints in bench/training/adapted/thermostats/.
#   bash bench/thermostats_adapt.sh
set -u
cd "$(dirname "$0")"
mkdir -p results/logs training/adapted/thermostats
export OMP_NUM_THREADS=1
SMILES="CC(=O)NC(C)C(=O)NC"
LANGEVIN=data/alanine-dipeptide_350K_langevin2_gfn1_s43.h5md
CSVR=data/alanine-dipeptide_350K_csvr_gfn1_s45.h5md
# the data, about 4 minutes each on one core (an interrupted run resumes)
[ -f $LANGEVIN ] || mdsr-generate "$SMILES" --hamiltonian gfn1-xtb --thermostat langevin --friction 0.002 \
    --temperature 350 --seed 43 --steps 20000 -o $LANGEVIN &
[ -f $CSVR ] || mdsr-generate "$SMILES" --hamiltonian gfn1-xtb --thermostat csvr --tdamp 100 \
    --temperature 350 --seed 45 --steps 20000 -o $CSVR &
wait
run() {  # name, then self_validation.py arguments; a finished run (its log has the summary) is skipped
    local name=$1; shift
    grep -q "choice vs best" "results/logs/thermostats_adapt_$name.log" 2>/dev/null && return 0
    python self_validation.py "$@" --factors 20 --coarse-frames 501 --adapt 10 \
        --adapt-dir training/adapted/thermostats --json results/thermostats_adapt.json \
        > "results/logs/thermostats_adapt_$name.log" 2>&1
}
run langevin_all $LANGEVIN --input velocities+forces &
run csvr_all $CSVR --input velocities+forces &
wait
run langevin_velocities $LANGEVIN --input velocities &
run csvr_velocities $CSVR --input velocities &
wait
run langevin_forces $LANGEVIN --input forces &
run csvr_forces $CSVR --input forces &
wait
# and with stored forces and the GFN2-xTB prior as well (not the default: input with forces gets none)
run langevin_all_prior $LANGEVIN --input velocities+forces --adapt-prior gfn2-xtb &
run csvr_all_prior $CSVR --input velocities+forces --adapt-prior gfn2-xtb &
wait
