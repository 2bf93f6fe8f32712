"""Formats read and written through ASE: extended/plain XYZ (CP2K's too), ASE ``.traj``, VASP XDATCAR.

Units at this boundary: ASE velocities are Å per ASE time unit (≈10.18 fs), so
``v[Å/fs] = v_ase * ASE_TIME_PER_FS``; ASE stores momenta (u·Å/ASE time) in
extended XYZ and ``.traj``.  Frame times are read from ``info["time"]`` in fs
(the key CP2K writes in its XYZ comment lines, and the one our writer writes).
Per-atom ``velocities``/``vel`` columns written by other codes are taken as Å/fs.
"""

from __future__ import annotations

import contextlib
import itertools
import json
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
        masses = atoms.get_masses()
        if not (masses > 0).all():  # momenta / mass: name the mass, not a velocity overflow
            i = int(np.argmax(~(masses > 0)))
            raise TrajectoryError(f"atom {i}: mass {masses[i]:g} u; every atom needs a finite mass > 0")
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
        self._first_atoms = None

    @property
    def notes(self) -> list[str]:
        """What the first frame gave, in which units (the summary's "read" line)."""
        atoms = self._first_atoms
        if atoms is None:
            return []
        read = ["positions (Å)"]
        column = next((key for key in _VELOCITY_COLUMNS if key in atoms.arrays), None)
        if "momenta" in atoms.arrays:
            read.append("velocities (ASE momenta ÷ masses, Å per ASE time unit → Å/fs)")
        elif column is not None:
            read.append(f"velocities (per-atom {column!r} column, taken as Å/fs)")
        if _atoms_forces(atoms) is not None:
            read.append("forces (eV/Å)")
        if atoms.pbc.any() and atoms.cell.rank > 0:
            read.append("cell (Å)")
        return [f"{', '.join(read)} from {self.path.name} ({self.ase_format} through ASE)"]

    def _frames(self):
        from ase.io import iread

        frame = 0
        try:
            with contextlib.ExitStack() as stack:
                source = self.path
                if self.ase_format == "extxyz":  # text: UTF-8 ("Å" in our headers) whatever the locale
                    source = stack.enter_context(open(self.path, encoding="utf-8", errors="replace"))
                for atoms in iread(source, index=":", format=self.ase_format):
                    yield atoms
                    frame += 1
        except TrajectoryError:
            raise
        except KeyError as err:
            key = err.args[0] if err.args else ""
            if isinstance(key, str) and key.isalpha() and len(key) <= 3:  # ASE's symbol table
                raise FormatError(f"{self.path.name}: unknown element symbol {key!r} "
                                  "(not in the periodic table)") from None
            raise FormatError(f"{self.path.name}: cannot be read as {self.ase_format} (missing {key!r})") from None
        except Exception as err:  # ASE raises many types for malformed files
            message = " ".join(str(err).split())
            hint = "; the file is cut short, or the frame's atom count is wrong" if "atoms, expected" in message else ""
            raise FormatError(f"{self.path.name}: frame {frame} cannot be read as {self.ase_format} "
                              f"({message}{hint})") from None

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
                first_atoms = self._first_atoms = batch[0]
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


def _frame_info(traj: Trajectory, i: int) -> dict:
    """``info`` of frame ``i``: its time (fs), MD step and per-frame data, as plain Python values."""
    info = {"time": float(traj.times[i])}
    if traj.steps is not None:
        info["step"] = int(traj.steps[i])
    for key, values in traj.frame_data.items():
        info[key] = values[i].tolist() if np.ndim(values[i]) else float(values[i])
    return info


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
        atoms.info.update(_frame_info(traj, i))
        if traj.forces is not None:
            atoms.calc = SinglePointCalculator(atoms, forces=traj.forces[i])
        images.append(atoms)
    return images


class ExtXYZWriter(TrajectoryWriter):
    """Extended XYZ with momenta (ASE's convention, so ``ase.io.read`` returns the velocities),
    ``time`` (fs) in the comment line, forces when present.

    ``parameters`` (provenance: method, model, the measured error estimate) go into
    the first frame's comment line as ``mdsr_<key>=<JSON>``, which ``ase.io.read``
    returns in ``atoms.info``.

    The text is the same, byte for byte, as ``ase.io.write(..., format="extxyz")``
    writes for :func:`trajectory_to_atoms` (``tests/test_io_roundtrip.py``), but a
    frame's atom lines are formatted in one operation instead of ASE's one per atom
    and one ``Atoms`` object per frame: ASE's writer was the slowest part of
    upsampling to XYZ.  The comment line is still made by ASE's own function.
    """

    def __init__(self, path, *, parameters=None):
        super().__init__(path)
        self._parameters = {f"mdsr_{k}": v if isinstance(v, (int, float, str)) else json.dumps(v, sort_keys=True)
                            for k, v in (parameters or {}).items()}

    def _open(self, first):
        from ..elements import symbols_of

        self._handle = open(self.temporary_paths[0], "w", encoding="utf-8")  # "Å" in the header, whatever the locale
        self._quantities = ["velocities"] * first.has_velocities + ["forces"] * first.has_forces
        names = ["species:S:1:pos:R:3:masses:R:1", *(
            {"velocities": "momenta:R:3", "forces": "forces:R:3"}[q] for q in self._quantities)]
        self._properties = "Properties=" + ":".join(names)
        n_columns = 4 + 3 * len(self._quantities)
        number = " ".join(["%16.8f"] * n_columns)
        # ASE's per-atom format, "%-2s" for the symbol, with each atom's symbol filled in
        self._frame_format = "".join(f"{symbol:<2} {number}\n" for symbol in symbols_of(first.numbers))

    def _write(self, traj):
        from ase.io.extxyz import key_val_dict_to_str

        masses = traj.masses[:, None]
        columns = [traj.positions, np.broadcast_to(masses, (traj.n_frames, traj.n_atoms, 1))]
        for quantity in self._quantities:
            if getattr(traj, quantity) is None:
                raise FormatError(f"{self.path.name}: a later chunk lacks {quantity} that the first had")
            # ASE's momenta: masses × velocities in Å per ASE time unit, in ASE's order of operations
            columns.append(masses * (traj.velocities / units.ASE_TIME_PER_FS) if quantity == "velocities"
                           else traj.forces)
        rows = np.concatenate(columns, axis=2).reshape(traj.n_frames, -1).tolist()
        for i, values in enumerate(rows):
            info = {**_frame_info(traj, i), "pbc": np.asarray(traj.pbc, dtype=bool)}
            if self.frames_written == 0 and i == 0:
                info.update(self._parameters)
            comment = self._properties + " " + key_val_dict_to_str(info)
            if traj.cell is not None and traj.cell[i].any():
                comment = 'Lattice="' + " ".join(str(x) for x in traj.cell[i].reshape(9)) + '" ' + comment
            self._handle.write(f"{traj.n_atoms}\n{comment}\n")
            self._handle.write(self._frame_format % tuple(values))

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
