"""Where ``auto``'s disagreement estimate goes wrong for a learned method fitting velocities.

The estimate is ``c * middle disagreement(h) * shape`` (``mdsr_plugin.selection``): c, the
error per disagreement at the middle of held-back 2h gaps, and shape, the mean error along a
gap over its middle, from the 4h gaps' profile.  This script computes both from
``selection``'s own functions on held-out coarse frames, and what they truly are at the
input's gap h (against the fine reference), and the estimate with the 4h profile alone
and with the geometric mean of it and the disagreement's own profile at h (what a method
fitting velocities now uses).

    OMP_NUM_THREADS=1 python bench/estimate_shape.py bench/data/water8_300K_nve_gfn1_s5.h5md \\
        bench/training/box/prior/water8_300K_nve_gfn1_s5-f10-positions.json --factor 10 --input positions
    OMP_NUM_THREADS=1 python bench/estimate_shape.py bench/data/ethanol_400K_nve_gfn1_s99.h5md \\
        bench/training/adapted/no_velocities/ethanol_400K_nve_gfn1_s99-f10-forces.json --factor 10 \\
        --input forces --frames card

``--frames box`` scores the last 40 % of the run (as ``bench/box_accuracy.py`` splits it);
``--frames card`` the coarse frames the checkpoint's card holds out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mdsr_plugin import selection
from mdsr_plugin.io import read_trajectory
from mdsr_plugin.methods import build_method
from mdsr_plugin.metrics import reconstructed_mask
from mdsr_plugin.periodic import unwrapped_positions
from mdsr_plugin.settings import UpsampleSettings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="fine reference (0.5 fs steps)")
    parser.add_argument("card", type=Path)
    parser.add_argument("--factor", type=int, required=True)
    parser.add_argument("--input", choices=["forces", "positions", "velocities+forces"], default="forces")
    parser.add_argument("--frames", choices=["box", "card"], default="box")
    parser.add_argument("--step", type=int, default=2, help="reference frames per fine frame (0.5 fs -> 1 fs)")
    args = parser.parse_args(argv)
    factor = args.factor
    fine = read_trajectory(args.reference)[::args.step]
    if args.frames == "card":
        held = json.loads(args.card.read_text())["training"]["held_out_frames"]
        fine = fine[held["start"] * factor:(held["stop"] - 1) * factor + 1]
    else:
        fine = fine[int(fine.n_frames * 0.6) // factor * factor:]
        fine = fine[:(fine.n_frames - 1) // factor * factor + 1]
    coarse = fine[::factor]
    if args.input != "velocities+forces":
        coarse = coarse.without("velocities")
    if args.input == "positions":
        coarse = coarse.without("forces")
    method = build_method("neural", UpsampleSettings(factor=factor, model=str(args.card)))
    method.prepare(coarse, factor)
    sample = selection._continuous(coarse)
    unchecked = selection._Unchecked(method)
    p2, _, d2 = selection._held_back(unchecked, sample, factor, 2)
    p4, _, _ = selection._held_back(unchecked, sample, factor, 4)
    out = selection._upsampled(method, sample, factor)
    disagreement = np.asarray(out.frame_data["disagreement"])
    truth = unwrapped_positions(fine) if fine.is_periodic else fine.positions
    error = np.abs(out.positions - truth).mean(axis=(1, 2))  # per fine frame, Å
    middle = np.arange(coarse.n_frames - 1) * factor + factor // 2
    inner = reconstructed_mask(len(error), factor)
    c2 = selection._error_per_disagreement(p2, d2)
    c1 = error[middle].sum() / disagreement[middle].sum()
    shape4 = 0.75 * p4.mean() / p4[1].mean()
    shape_true = error[inner].mean() / error[middle].mean()
    shape_disagreement = disagreement[inner].mean() / disagreement[middle].mean()
    true = error[inner].mean()
    before = c2 * disagreement[middle].mean() * shape4
    after = c2 * disagreement[middle].mean() * np.sqrt(shape4 * shape_disagreement)
    print(json.dumps(dict(card=args.card.name, factor=factor, input=args.input, c_2h=c2, c_h=c1, shape_4h=shape4,
                          shape_true=shape_true, shape_disagreement=shape_disagreement, true_position_mae=true,
                          estimate_before=before / true, estimate_geometric=after / true)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
