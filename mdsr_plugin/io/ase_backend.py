"""Formats read and written through ASE: extended/plain XYZ (CP2K's too), ASE ``.traj``, VASP XDATCAR.

Units at this boundary: ASE velocities are Å per ASE time unit (≈10.18 fs), so
``v[Å/fs] = v_ase * ASE_TIME_PER_FS``; ASE stores momenta (u·Å/ASE time) in
extended XYZ and ``.traj``.  Frame times are read from ``info["time"]`` in fs
(the key CP2K writes in its XYZ comment lines, and the one our writer writes).
Per-atom ``velocities``/``vel`` columns written by other codes are taken as Å/fs.
"""

from __future__ import annotations

import itertools
from typing import Iterator

import numpy as np

from .. import units
from ..trajectory import Trajectory, TrajectoryError
from .base import FormatError, TrajectoryReader, TrajectoryWriter, frame_times

__all__ = ["AseReader", "ExtXYZWriter", "AseTrajWriter", "trajectory_to_atoms", "atoms_to_trajectory"]

_VELOCITY_COLUMNS = ("velocities", "vel", "velo")


def _atoms_velocities(atoms) -> np.ndarray | None:
    """Velocities in Å/fs, or None when the frame stores none."""
    if "momenta" in atoms.arrays:
        return atoms.get_velocities() * units.ASE_TIME_PER_FS
    for key in _VELOCITY_COLUMNS:
        if key in atoms.arrays:
            return np.asarray(atoms.arrays[key], dtype=np.float64)
    return None


def _atoms_forces(atoms) -> np.ndarray | None:
    if "forces" in atoms.arrays:
        return np.asarray(atoms.arrays["forces"], dtype=np.float64)
    calc = atoms.calc
    if calc is not None and "forces" in getattr(calc, "results", {}):
        return np.asarray(calc.results["forces"], dtype=np.float64)
    return None


class AseReader(TrajectoryReader):
    """Stream any trajectory ASE reads (``ase.io.iread``), in chunks of frames.

    Parameters
    ----------
    path : path-like
    ase_format : str
        ASE format name (``"extxyz"``, ``"traj"``, ``"vasp-xdatcar"``).
    dt : float, optional
        Coarse step in fs; required when the frames carry no ``time``.
    """

    def __init__(self, path, *, ase_format: str, dt=None, topology=None):
        super().__init__(path, dt=dt)
        self.ase_format = ase_format

    def _frames(self):
        from ase.io import iread

        try:
            yield from iread(self.path, index=":", format=self.ase_format)
        except TrajectoryError:
            raise
        except Exception as err:  # ASE raises many types for malformed files
            raise FormatError(f"{self.path.name}: cannot be read as {self.ase_format} ({err})") from None

    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        frames = self._frames()
        first_atoms = None
        start = 0
        while True:
            batch = list(itertools.islice(frames, chunk_size))
            if not batch:
                if first_atoms is None:
                    raise FormatError(f"{self.path.name}: no frames")
                return
            if first_atoms is None:
                first_atoms = batch[0]
            yield self._to_trajectory(batch, first_atoms, start)
            start += len(batch)

    def _to_trajectory(self, batch, reference, start) -> Trajectory:
        return atoms_to_trajectory(batch, reference, start, dt=self.dt_override, source=self.path.name)


def atoms_to_trajectory(batch, reference, start: int, *, dt: float | None = None, source: str = "") -> Trajectory:
    """Frames ``batch`` (list of Atoms) as a Trajectory in internal units.

    Parameters
    ----------
    reference : ase.Atoms
        Frame 0 of the whole trajectory; every frame must have its atoms.
    start : int
        Index of ``batch[0]`` in the trajectory (for times from ``dt`` and for messages).
    dt : float, optional
        Time step in fs; overrides ``info["time"]``.
    """
    n_atoms = len(reference)
    for i, atoms in enumerate(batch):
        if len(atoms) != n_atoms:
            raise TrajectoryError(
                f"frame {start + i}: {len(atoms)} atoms where frame 0 has {n_atoms}; "
                "the atom count must not change"
            )
        if not np.array_equal(atoms.numbers, reference.numbers):
            raise TrajectoryError(f"frame {start + i}: elements differ from frame 0")
    velocities = [_atoms_velocities(a) for a in batch]
    forces = [_atoms_forces(a) for a in batch]
    file_times = [a.info.get("time") for a in batch]
    times = frame_times(start, len(batch), None if None in file_times else file_times, dt, source)
    cells = np.array([a.cell.array for a in batch])
    has_cell = bool(np.any(cells)) and bool(reference.pbc.any())
    steps = [a.info.get("step", a.info.get("i")) for a in batch]
    return Trajectory(
        numbers=reference.numbers,
        masses=reference.get_masses(),
        positions=np.array([a.positions for a in batch]),
        times=times,
        velocities=None if any(v is None for v in velocities) else np.array(velocities),
        forces=None if any(f is None for f in forces) else np.array(forces),
        cell=cells if has_cell else None,
        pbc=reference.pbc if has_cell else np.zeros(3, dtype=bool),
        steps=None if any(s is None for s in steps) else np.asarray(steps, dtype=np.int64),
    )


def trajectory_to_atoms(traj: Trajectory) -> list:
    """One :class:`ase.Atoms` per frame: positions, momenta (ASE units), cell, pbc, masses,
    ``info["time"]`` in fs, forces as a single-point calculator, and ``frame_data`` in ``info``."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    images = []
    for i in range(traj.n_frames):
        atoms = Atoms(
            numbers=traj.numbers,
            positions=traj.positions[i],
            cell=None if traj.cell is None else traj.cell[i],
            pbc=traj.pbc,
            masses=traj.masses,
        )
        if traj.velocities is not None:
            atoms.set_velocities(traj.velocities[i] / units.ASE_TIME_PER_FS)
        atoms.info["time"] = float(traj.times[i])
        if traj.steps is not None:
            atoms.info["step"] = int(traj.steps[i])
        for key, values in traj.frame_data.items():
            atoms.info[key] = values[i].tolist() if np.ndim(values[i]) else float(values[i])
        if traj.forces is not None:
            atoms.calc = SinglePointCalculator(atoms, forces=traj.forces[i])
        images.append(atoms)
    return images


class ExtXYZWriter(TrajectoryWriter):
    """Extended XYZ with momenta (ASE's convention, so ``ase.io.read`` returns the velocities),
    ``time`` (fs) in the comment line, forces when present."""

    def _open(self, first):
        self._handle = open(self.temporary_paths[0], "w")

    def _write(self, traj):
        from ase.io import write

        write(self._handle, trajectory_to_atoms(traj), format="extxyz")

    def _close(self):
        self._handle.close()


class AseTrajWriter(TrajectoryWriter):
    """ASE's binary ``.traj``: positions, momenta, masses, cell, forces and ``info``."""

    def _open(self, first):
        from ase.io.trajectory import Trajectory as AseTrajectory

        self._handle = AseTrajectory(str(self.temporary_paths[0]), "w")

    def _write(self, traj):
        for atoms in trajectory_to_atoms(traj):
            self._handle.write(atoms)

    def _close(self):
        self._handle.close()
