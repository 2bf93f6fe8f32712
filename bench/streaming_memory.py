"""Peak memory of file-to-file upsampling does not grow with trajectory length.

Synthesises coarse H5MD trajectories of a 21-atom system (positions + velocities,
a seeded random walk) of increasing length, upsamples each with ``mdsr-upsample``
(cubic Hermite, factor 10) in a fresh process, and records the child's peak RSS.

    python bench/streaming_memory.py                 # 10^4 and 10^5 coarse frames
    python bench/streaming_memory.py 1000 1000000

Writes bench/results/streaming_memory.json.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mdsr_plugin.io import open_writer
from mdsr_plugin.trajectory import Trajectory

ROOT = Path(__file__).resolve().parents[1]


def synthesise(path, n_frames, n_atoms=21, chunk=50_000):
    rng = np.random.default_rng(0)
    position = rng.uniform(0, 5, (n_atoms, 3))
    with open_writer(path, dtype=np.float32, compression=None) as writer:
        for start in range(0, n_frames, chunk):
            n = min(chunk, n_frames - start)
            velocities = rng.normal(0, 0.01, (n, n_atoms, 3))
            positions = position + np.cumsum(velocities * 20.0, axis=0)
            position = positions[-1]
            writer.write(Trajectory(numbers=[6] * n_atoms, positions=positions, velocities=velocities,
                                    times=(start + np.arange(n)) * 20.0))


def peak_rss_mb(args):
    """Run ``args`` in a child process; return its wall time and peak RSS in MB."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(args, check=True)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        raise RuntimeError("peak RSS not above an earlier child's; run sizes in increasing order")
    return seconds, peak / 1024


def main(sizes):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            source, target = Path(tmp) / f"coarse{n}.h5md", Path(tmp) / f"fine{n}.dcd"
            synthesise(source, n)
            seconds, rss = peak_rss_mb([sys.executable, "-m", "mdsr_plugin.cli", str(source),
                                        "--factor", "10", "--method", "hermite", "-o", str(target), "-q"])
            rows.append({"coarse_frames": n, "fine_frames": (n - 1) * 10 + 1, "seconds": seconds,
                         "peak_rss_mb": rss, "output_mb": target.stat().st_size / 2**20})
            print(rows[-1], flush=True)
            for f in Path(tmp).iterdir():
                f.unlink()
    out = ROOT / "bench/results/streaming_memory.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10_000, 100_000])
