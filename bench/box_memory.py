"""Peak memory and throughput of ``mdsr-upsample`` on a periodic box against the input's length.

A learned box checkpoint (from ``bench/box_accuracy.py``) upsamples coarse box
trajectories of growing length, each in a fresh process (``mdsr-upsample``, wrapped
H5MD in, wrapped H5MD out; peak resident memory read by the process itself).  The
long inputs are made from a real reference run without inventing dynamics: its
coarse frames, then the same frames backwards in time with the velocities reversed
(an NVE trajectory played backwards is one too), and so on, so that every gap is a
true stretch of dynamics and consecutive frames always continue each other.

    python bench/box_memory.py bench/data/water32_gfn1_2800.h5md \\
        --model bench/training/box/water32_gfn1_2800-f10.json --factor 10 \\
        --frames 33 129 513 1025 2049 4097 --json bench/results/box_memory.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from mdsr_plugin.io import open_writer, read_trajectory
from performance import peak_rss_mb
from results_file import append_rows


def palindrome(coarse, n_frames: int):
    """``n_frames`` coarse frames: ``coarse`` forward, backward (velocities reversed), forward, …

    Parameters
    ----------
    coarse : Trajectory
        Wrapped coarse frames of a periodic box, with velocities.
    n_frames : int

    Returns
    -------
    Trajectory
        Frames ``(n_frames, N, 3)``, times spaced like ``coarse``'s.
    """
    forward = np.arange(coarse.n_frames)
    cycle = np.concatenate([forward, forward[-2:0:-1]])  # 0 … K … 1, then 0 again
    sign = np.concatenate([np.ones(coarse.n_frames), -np.ones(coarse.n_frames - 2)])
    pick = np.resize(cycle, n_frames)
    flip = np.resize(sign, n_frames)
    return replace(coarse[pick], velocities=coarse.velocities[pick] * flip[:, None, None],
                   times=np.arange(n_frames) * coarse.dt)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="fine reference run (0.5 fs steps)")
    parser.add_argument("--model", help="a box checkpoint's card (with --method neural)")
    parser.add_argument("--method", default="neural", help="neural (default) or a classical method")
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--step", type=int, default=2, help="reference frames per fine frame (0.5 fs -> 1 fs)")
    parser.add_argument("--frames", type=int, nargs="+", default=[33, 129, 513, 1025, 2049, 4097])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    coarse = read_trajectory(args.reference)[::args.step][::args.factor]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for n in args.frames:
            source, target = Path(folder) / f"box{n}.h5md", Path(folder) / f"box{n}_fine.h5md"
            with open_writer(source) as writer:
                writer.write(palindrome(coarse, n))
            model = ["--model", args.model] if args.method == "neural" else []
            seconds, rss = peak_rss_mb([str(source), "--factor", str(args.factor), "--method", args.method, *model,
                                        "-o", str(target), "-q"], folder)
            fine_frames = (n - 1) * args.factor + 1
            row = {"file": args.reference.name, "method": args.method, "atoms": coarse.n_atoms, "factor": args.factor,
                   "coarse_frames": n,
                   "fine_frames": fine_frames, "seconds": seconds, "fine_fps": fine_frames / seconds,
                   "peak_rss_mb": rss, "output_mb": target.stat().st_size / 2**20,
                   "threads": os.environ.get("OMP_NUM_THREADS")}
            rows.append(row)
            print(row, flush=True)
            target.unlink()
    if args.json:
        append_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
