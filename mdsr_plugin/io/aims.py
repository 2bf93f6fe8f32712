"""FHI-aims molecular dynamics: the output log (``aims.out``, often any ``*.out``).

The log is recognised by its ``Invoking FHI-aims ...`` line, not its name.  It holds,
per MD step, in this order:

* ``Total atomic forces (unitary forces cleaned) [eV/Ang]:`` then ``|  i  fx fy fz``
  per atom (eV/Å), for the geometry just evaluated;
* ``Complete information for previous time-step:`` with ``| Time step number : N``
  and ``| Simulation time : T ps``;
* ``Atomic structure (and velocities) as used in the preceding time step:`` (the last
  one ``Final atomic structure ...``): ``lattice_vector`` lines when the output level
  prints them, then ``atom x y z Species`` (Å) and ``velocity vx vy vz`` (Å/ps) per atom.

So each step's positions and velocities follow the forces of the same geometry.  The
cell is the block's lattice vectors, else the ``| Unit cell:`` printed at the start
(output level ``MD_light`` prints none per step).  Elements and masses come from each
species' ``Found nuclear charge`` and ``Found atomic mass`` lines, so labels such as
``H_surf`` are understood.  The time step ``MD_time_step`` (ps) is noted; the times are
the ``Simulation time`` lines.

ASE 3.29's ``aims-output`` reader is not used: it stores the Å/ps numbers as ASE
velocities (Å per ASE time unit), so ``get_velocities()`` is 98.2× too large
(1000 × ``ase.units.fs``), and it returns the *starting* geometry, with zero
velocities, for the last step (it does not know the ``Final atomic structure`` line).
"""

from __future__ import annotations

import itertools
import re
from typing import Iterator

import numpy as np

from ..elements import numbers_from_symbols
from ..trajectory import Trajectory
from ..units import FS_PER_PS
from .base import FormatError, NotATrajectory, TrajectoryReader

__all__ = ["AimsMDReader", "is_aims_output"]

_SPECIES = re.compile(r"Reading configuration options for species\s+(\S+)")
_CHARGE = re.compile(r"\|\s*Found nuclear charge\s*:\s*([-+0-9.eEdD]+)")
_MASS = re.compile(r"\|\s*Found atomic mass\s*:\s*([-+0-9.eEdD]+)")
_TIME_STEP = re.compile(r"Molecular dynamics time step\s*=\s*([-+0-9.eEdD]+)\s*ps")
_STEP = re.compile(r"\|\s*Time step number\s*:\s*(-?\d+)")
_SIM_TIME = re.compile(r"\|\s*Simulation time\s*:\s*([-+0-9.eEdD]+)\s*ps")
_STRUCTURE = "atomic structure (and velocities) as used in the preceding time step"


def is_aims_output(name: str, head: bytes) -> bool:
    """Whether ``head`` is the start of an FHI-aims log (its ``Invoking FHI-aims`` banner)."""
    return b"Invoking FHI-aims" in head


def _float(text: str) -> float:
    return float(text.replace("d", "e").replace("D", "e"))


class AimsMDReader(TrajectoryReader):
    """FHI-aims MD log: positions (Å), velocities (Å/ps → Å/fs), forces (eV/Å), cell,
    masses and elements of every MD step; times from the ``Simulation time`` lines (ps)."""

    def __init__(self, path, *, dt=None, topology=None):
        super().__init__(path, dt=dt)
        with open(self.path, "rb") as handle:
            if not is_aims_output(self.path.name.lower(), handle.read(8192)):
                raise FormatError(f"{self.path.name}: not an FHI-aims output (no 'Invoking FHI-aims' banner)")
        self.time_step_ps = None
        self.notes = [f"positions, velocities, forces and cell from {self.path.name} (FHI-aims MD log, Å, Å/ps, "
                      "eV/Å); times from its 'Simulation time' lines (ps); masses from its species"]

    def _frames(self):
        """Per MD step: (step, time ps, labels, positions, velocities or None, forces or None, cell or None)."""
        self.species: dict[str, list] = {}
        source = self.path.name
        forces, unit_cell, label, n_atoms = None, None, None, None
        step = time = None
        with open(self.path, "r", errors="replace") as handle:
            lines = iter(handle)
            for line in lines:
                if (match := _SPECIES.search(line)) is not None:
                    label = match[1]
                    self.species.setdefault(label, [0, None])
                elif label is not None and (match := _CHARGE.search(line)) is not None:
                    self.species[label][0] = int(round(_float(match[1])))
                elif label is not None and (match := _MASS.search(line)) is not None:
                    self.species[label][1] = _float(match[1])
                elif self.time_step_ps is None and (match := _TIME_STEP.search(line)) is not None:
                    self.time_step_ps = _float(match[1])
                    self.notes.append(f"MD time step {self.time_step_ps * FS_PER_PS:g} fs (MD_time_step) "
                                      f"from {source}")
                elif "| Number of atoms" in line and n_atoms is None:
                    n_atoms = int(line.split(":")[1])
                elif line.strip() == "| Unit cell:" and unit_cell is None:
                    unit_cell = self._rows(lines, 3, "the unit cell", lambda s: s[1:4])
                elif "Total atomic forces" in line:
                    if n_atoms is None:
                        raise FormatError(f"{source}: forces before the '| Number of atoms' line")
                    forces = self._rows(lines, n_atoms, "the forces", lambda s: s[-3:])
                elif (match := _STEP.search(line)) is not None:
                    step = int(match[1])
                elif (match := _SIM_TIME.search(line)) is not None:
                    time = _float(match[1])
                elif _STRUCTURE in line.lower():
                    if step is None or time is None:
                        raise FormatError(f"{source}: an MD structure without its 'Time step number' and "
                                          "'Simulation time' lines")
                    cell, labels, positions, velocities = self._structure(lines, step)
                    yield step, time, labels, positions, velocities, forces, cell if cell is not None else unit_cell
                    forces = step = time = None

    def _rows(self, lines, n, what, columns) -> np.ndarray:
        rows = [next(lines, "") for _ in range(n)]
        try:
            return np.array([[_float(v) for v in columns(row.split())] for row in rows]).reshape(n, 3)
        except ValueError:
            raise FormatError(f"{self.path.name}: cannot read {what} from {[r.strip()[:50] for r in rows]!r}") from None

    def _structure(self, lines, step):
        cell, labels, positions, velocities = [], [], [], []
        for line in lines:
            fields = line.split()
            if not fields or fields[0].startswith("---"):
                break
            try:
                if fields[0] == "lattice_vector":
                    cell.append([_float(v) for v in fields[1:4]])
                elif fields[0] == "atom":
                    positions.append([_float(v) for v in fields[1:4]])
                    labels.append(fields[4])
                elif fields[0] == "velocity":
                    velocities.append([_float(v) for v in fields[1:4]])
            except (ValueError, IndexError):
                raise FormatError(f"{self.path.name}: MD step {step}: cannot read {line.strip()!r}") from None
        else:  # the log ended inside the block
            raise FormatError(f"{self.path.name}: MD step {step}: the log ends inside its structure block (cut "
                              f"short: a run still writing?); remove that step")
        if not positions or len(cell) not in (0, 3) or len(velocities) not in (0, len(positions)):
            raise FormatError(f"{self.path.name}: MD step {step}: the structure block is incomplete "
                              f"({len(positions)} atoms, {len(velocities)} velocities, {len(cell)} lattice vectors)")
        return (np.array(cell) if cell else None), labels, np.array(positions), (
            np.array(velocities) if velocities else None)

    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        frames = self._frames()
        start, first = 0, None
        while batch := list(itertools.islice(frames, chunk_size)):
            if first is None:
                first = batch[0]
                numbers, masses = self._elements(first[2])
            for j, frame in enumerate(batch):
                if frame[2] != first[2]:
                    raise FormatError(f"{self.path.name}: MD step {frame[0]}: the atoms differ from the first step")
                for what, k in (("velocities", 4), ("forces", 5), ("a cell", 6)):
                    if (frame[k] is None) != (first[k] is None):
                        raise FormatError(f"{self.path.name}: MD step {frame[0]} has {'no ' * (frame[k] is None)}"
                                          f"{what} where the first step has {'none' if first[k] is None else 'them'}")
            yield Trajectory(
                numbers=numbers, masses=masses,
                positions=np.array([f[3] for f in batch]),
                velocities=None if first[4] is None else np.array([f[4] for f in batch]) / FS_PER_PS,
                forces=None if first[5] is None else np.array([f[5] for f in batch]),
                cell=None if first[6] is None else np.array([f[6] for f in batch]),
                pbc=np.full(3, first[6] is not None),
                steps=np.array([f[0] for f in batch], dtype=np.int64),
                times=self._times(start, len(batch), np.array([f[1] for f in batch]) * FS_PER_PS))
            start += len(batch)
        if start == 0:
            raise NotATrajectory(f"{self.path.name}: no MD steps ('Complete information for previous time-step'): "
                              "not an FHI-aims molecular dynamics run")

    def _elements(self, labels):
        numbers = np.array([self.species.get(s, [0])[0] for s in labels], dtype=np.int64)
        guessed = numbers_from_symbols(labels)
        numbers = np.where(numbers > 0, numbers, guessed)
        if not numbers.all():
            i = int(np.argmin(numbers))
            raise FormatError(f"{self.path.name}: unknown element of species {labels[i]!r} (atom {i})")
        masses = [self.species.get(s, [0, None])[1] for s in labels]
        return numbers, None if None in masses else np.array(masses)


def _open_aims(path, **options):
    return AimsMDReader(path, **options)


def _register() -> None:
    from . import Format, register_format

    register_format(Format("aims-md", (), "FHI-aims MD output log (recognised by its content): positions, "
                           "velocities, forces, cell", _open_aims, None, "velocity lines (Å/ps)",
                           sniff=is_aims_output))


_register()
