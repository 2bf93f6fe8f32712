"""Shared fixtures: real GFN2-xTB dynamics, an analytic periodic trajectory, small random data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mdsr_plugin.trajectory import Trajectory

# MDAnalysis warns about missing topology attributes and DCD time units; the tests
# check the values themselves.
warnings.filterwarnings("ignore", module="MDAnalysis")


@pytest.fixture(scope="session")
def xtb_fine(tmp_path_factory) -> Trajectory:
    """Ethanol, GFN2-xTB, Nosé–Hoover 400 K, 0.5 fs, 1201 frames with velocities and forces."""
    pytest.importorskip("tblite")
    from mdsr_plugin.io import read_trajectory
    from mdsr_plugin.reference import generate_reference

    path = tmp_path_factory.mktemp("xtb") / "ethanol.h5md"
    generate_reference("ethanol", path, temperature=400, thermostat="nose-hoover",
                       steps=1200, equilibration=200, seed=3)
    return read_trajectory(path)


@pytest.fixture(scope="session")
def gfn1_fine(tmp_path_factory) -> Trajectory:
    """Ethanol on GFN1-xTB (not the checkpoints' Hamiltonian), NVE at 400 K, 1 fs frames, 1.2 ps,
    with velocities and forces."""
    pytest.importorskip("tblite")
    from mdsr_plugin.io import read_trajectory
    from mdsr_plugin.reference import generate_reference

    path = tmp_path_factory.mktemp("gfn1") / "ethanol.h5md"
    generate_reference("ethanol", path, hamiltonian="gfn1-xtb", thermostat="nve", temperature=400,
                       steps=2400, equilibration=400, seed=5)
    return read_trajectory(path)[::2]


@pytest.fixture
def small_traj() -> Trajectory:
    """Six frames of four atoms in a triclinic cell with velocities and forces (seeded)."""
    rng = np.random.default_rng(42)
    cell = np.array([[10.0, 0.0, 0.0], [1.0, 11.0, 0.0], [0.5, 0.3, 12.0]])
    n_frames = 6
    velocities = rng.normal(0, 0.01, (n_frames, 4, 3))  # Å/fs
    # Positions that the velocities carry over each 2 fs step (the input checks compare
    # the two), plus a little noise: the frames need not be a solution of anything.
    steps = 0.5 * (velocities[1:] + velocities[:-1]) * 2.0 + rng.normal(0, 0.002, (n_frames - 1, 4, 3))
    positions = rng.uniform(0.5, 9.0, (1, 4, 3)) + np.concatenate([np.zeros((1, 4, 3)), np.cumsum(steps, axis=0)])
    return Trajectory(
        numbers=[8, 1, 1, 6],
        positions=positions,
        velocities=velocities,
        forces=rng.normal(0, 1.0, (n_frames, 4, 3)),
        times=10.0 + 2.0 * np.arange(n_frames),
        cell=cell,
        pbc=True,
        steps=5 + 4 * np.arange(n_frames),
    )


def drifting_atoms(times, cell, wrap=True):
    """Analytic periodic motion: 6 atoms drift across the cell faces while oscillating.

    Returns positions (F, 6, 3) Å (wrapped into ``cell`` if ``wrap``) and exact
    velocities (F, 6, 3) Å/fs.
    """
    rng = np.random.default_rng(7)
    start = rng.uniform(0.1, 0.9, (6, 3)) @ cell
    drift = rng.normal(0, 0.02, (6, 3))  # Å/fs: crosses a 10 Å cell within a few hundred fs
    amplitude = rng.uniform(0.05, 0.2, (6, 3))
    omega = 2 * np.pi / 60.0  # 60 fs period
    t = np.asarray(times)[:, None, None]
    positions = start + drift * t + amplitude * np.sin(omega * t)
    velocities = drift + amplitude * omega * np.cos(omega * t)
    if wrap:
        frac = positions @ np.linalg.inv(cell)
        positions = (frac % 1.0) @ cell
    return positions, velocities


@pytest.fixture
def triclinic_cell():
    return np.array([[10.0, 0.0, 0.0], [2.0, 9.0, 0.0], [1.0, 1.5, 11.0]])


#: The bundled coarse example: 201 frames of 9 atoms, 11 lines per frame.
EXAMPLE_XYZ = __import__("pathlib").Path(__file__).parents[1] / "mdsr_plugin" / "data" / "examples" / "ethanol_coarse.xyz"


def edited_example(path, frames, column: int, value: str):
    """The bundled example with the first atom's ``column`` (0 symbol, 1-3 position,
    4 mass...) replaced by ``value`` in ``frames`` (indices, or None for all), written to
    ``path``: a broken input as another program would have written it."""
    lines = EXAMPLE_XYZ.read_text().splitlines()
    n_frames = len(lines) // 11
    for frame in range(n_frames) if frames is None else frames:
        fields = lines[2 + 11 * frame].split()
        fields[column] = value
        lines[2 + 11 * frame] = "  ".join(fields)
    path.write_text("\n".join(lines) + "\n")
    return path
