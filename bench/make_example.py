"""Regenerate the bundled example mdsr_plugin/data/examples/ethanol_coarse.xyz.

GFN2-xTB ethanol, Langevin 300 K, seed 7, 0.5 fs integration, every 40th step kept
(a 20 fs coarse trajectory with velocities and forces, 4 ps).

    python bench/make_example.py
"""

from pathlib import Path
import tempfile

from mdsr_plugin.io import read_trajectory, write_trajectory
from mdsr_plugin.reference import generate_reference

OUT = Path(__file__).resolve().parents[1] / "mdsr_plugin/data/examples/ethanol_coarse.xyz"

with tempfile.TemporaryDirectory() as tmp:
    fine = generate_reference("ethanol", Path(tmp) / "fine.h5md", temperature=300,
                              thermostat="langevin", steps=8000, seed=7)
    coarse = read_trajectory(fine)[::40]
    write_trajectory(OUT, coarse)
print(f"wrote {OUT} ({coarse.n_frames} frames, dt {coarse.dt} fs)")
