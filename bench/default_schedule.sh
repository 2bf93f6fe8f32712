#!/usr/bin/env bash
# The molecular rows of issue #29 measured again with the default learning schedule of
# 2026-12-07 (gap stage 250 epochs, patience 8; was 100 and 4): positions + forces against
# positions + velocities + forces, at factors 10 and 20, on the held-out GFN1-xTB runs of
# bench/no_velocities.sh (alanine dipeptide, Nosé–Hoover 350 K, seed 41, no registry
# checkpoint; ethanol NVE 400 K, seed 99), the default 10-minute budget.  Two runs at a time,
# one thread each; rows appended to bench/results/default_schedule.json, logs in
# bench/results/logs/default_schedule_*.log, checkpoints in bench/training/adapted/default_schedule/.
# Then the 8 ps water box (GFN1-xTB, seed 11) with and without stored velocities at 10 fs
# (checkpoints in bench/training/box/default_schedule/; boxes: 80 gap epochs of 16 gaps), and
# both from positions alone on the default GFN2-xTB prior (the box with a 15-minute budget).
#   bash bench/default_schedule.sh      (the data: bench/no_velocities.sh makes it)
set -u
cd "$(dirname "$0")"
mkdir -p results/logs training/adapted/default_schedule
export OMP_NUM_THREADS=1
ETH=data/ethanol_400K_nve_gfn1_s99.h5md
ALA=data/alanine-dipeptide_350K_nh_gfn1_s41.h5md
run() {  # name, then self_validation.py arguments; a finished run (its log has the summary) is skipped
    local name=$1; shift
    grep -q "choice vs best" "results/logs/default_schedule_$name.log" 2>/dev/null && return 0
    python self_validation.py "$@" --adapt 10 --adapt-dir training/adapted/default_schedule \
        --json results/default_schedule.json > "results/logs/default_schedule_$name.log" 2>&1
}
run ala_f20_forces $ALA --factors 20 --input forces --coarse-frames 501 &
run ala_f10_forces $ALA --factors 10 --input forces --coarse-frames 1001 &
wait
run ala_f20_all $ALA --factors 20 --input velocities+forces --coarse-frames 501 &
run ala_f10_all $ALA --factors 10 --input velocities+forces --coarse-frames 1001 &
wait
run eth_f10_forces $ETH --factors 10 --input forces &
run eth_f10_all $ETH --factors 10 --input velocities+forces &
wait
run eth_f20_forces $ETH --factors 20 --input forces &
run eth_f20_all $ETH --factors 20 --input velocities+forces &
wait
BOX=data/water8_300K_nve_gfn1_s11_8ps.h5md  # its command is in docs/benchmarks.md
box() {  # name, then box_accuracy.py arguments
    local name=$1; shift
    grep -q "learned / spline" "results/logs/default_schedule_box_$name.log" 2>/dev/null && return 0
    python box_accuracy.py $BOX --factors 10 --model-dir training/box/default_schedule \
        --json results/default_schedule.json "$@" > "results/logs/default_schedule_box_$name.log" 2>&1
}
box s11_all_f10 --input velocities+forces &
box s11_forces_f10 --input forces &
wait
# positions alone (the default GFN2-xTB prior: the molecule's run, the box's forces at its frames)
run ala_f10_positions $ALA --factors 10 --input positions --coarse-frames 501 &
mkdir -p training/box/default_schedule_prior
grep -q "learned / spline" results/logs/default_schedule_box_s11_positions_f10.log 2>/dev/null || \
    python box_accuracy.py $BOX --factors 10 --minutes 15 --input positions --prior gfn2-xtb \
        --model-dir training/box/default_schedule_prior --json results/default_schedule.json \
        > results/logs/default_schedule_box_s11_positions_f10.log 2>&1 &
wait
