"""VASP's MD output: ``vasprun.xml``, ``OUTCAR`` (positions, forces, cell of every ionic
step) and ``XDATCAR`` (fractional positions every NBLOCK steps).

VASP stores no velocities anywhere.  Units: Å, eV/Å, and the time step ``POTIM`` in fs.

* ``vasprun.xml`` and ``OUTCAR`` hold every ionic step; ASE reads both, with forces.
  ``POTIM`` is read from the file itself (the ``<incar>`` block, the OUTCAR header).
* ``XDATCAR``: VASP 5 writes one header, VASP 6 (and VASP 5 with a changing cell)
  repeats it before every frame; some writers separate frames by blank lines.  Each
  frame is headed ``Direct configuration= N``, N the ionic step, so the time between
  frames is ``POTIM × ΔN`` (NBLOCK read off the file).  ``POTIM`` comes from an
  OUTCAR, INCAR or vasprun.xml beside the XDATCAR, else ``--dt``.  ASE's reader
  assumes one header and reads only the first frame of the other layouts.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Iterator

import numpy as np

from ..elements import numbers_from_symbols
from ..trajectory import Trajectory
from .base import FormatError, TrajectoryReader

__all__ = ["VaspRunReader", "XdatcarReader", "potim_of", "potim_beside"]

_POTIM_OUTCAR = re.compile(r"^\s*POTIM\s*=\s*([-+0-9.eE]+)", re.M)
_POTIM_XML = re.compile(r'<i\s+name="POTIM">\s*([-+0-9.eE]+)\s*</i>')
_POTIM_INCAR = re.compile(r"^\s*POTIM\s*=\s*([-+0-9.eE]+)", re.M | re.I)


def potim_of(path) -> float | None:
    """``POTIM`` (fs) from a vasprun.xml, OUTCAR or INCAR, or None if it names none."""
    path = Path(path)
    # The header (INCAR echo, parameters) is near the top: read a bounded prefix, not a GB file.
    with open(path, "r", errors="replace") as handle:
        head = handle.read(2_000_000)
    name = path.name.lower()
    pattern = _POTIM_XML if name.endswith(".xml") else _POTIM_INCAR if name.startswith("incar") else _POTIM_OUTCAR
    match = pattern.search(head)
    return None if match is None else float(match[1])


def potim_beside(path) -> tuple[float, Path] | None:
    """``POTIM`` and the file it came from, from an OUTCAR, INCAR or vasprun.xml in ``path``'s folder."""
    folder = Path(path).parent
    for pattern in ("OUTCAR*", "INCAR*", "vasprun*.xml"):
        for candidate in sorted(folder.glob(pattern)):
            if candidate.is_file() and (potim := potim_of(candidate)) is not None:
                return potim, candidate
    return None


class VaspRunReader(TrajectoryReader):
    """``vasprun.xml`` or ``OUTCAR`` through ASE: positions (Å), forces (eV/Å), cell, and times
    from POTIM (one frame per ionic step)."""

    def __init__(self, path, *, ase_format: str, dt=None, topology=None):
        super().__init__(path, dt=dt)
        self.ase_format = ase_format
        self.potim = potim_of(self.path)
        kind = "vasprun.xml" if ase_format == "vasp-xml" else "OUTCAR"
        self.notes = [f"positions, forces and cell from {self.path.name} (VASP {kind}, Å, eV/Å; no velocities)"]
        if self.potim is not None:
            self.notes.append(f"time step POTIM {self.potim:g} fs from {self.path.name}")

    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        from ase.io import iread

        from .ase_backend import atoms_to_trajectory

        try:
            frames = iread(self.path, index=":", format=self.ase_format)
            start, reference = 0, None
            while batch := list(itertools.islice(frames, chunk_size)):
                reference = batch[0] if reference is None else reference
                traj = atoms_to_trajectory(batch, reference, start, dt=self.dt_override or self._potim(),
                                           source=self.path.name)
                yield traj
                start += len(batch)
        except (FormatError, ValueError) as err:
            if isinstance(err, FormatError) or "time step" in str(err):
                raise
            raise FormatError(f"{self.path.name}: cannot be read as VASP {self.ase_format} ({err})") from None
        if reference is None:
            raise FormatError(f"{self.path.name}: no ionic steps")

    def _potim(self) -> float:
        if self.potim is None:
            raise FormatError(f"{self.path.name}: no POTIM found; pass --dt (the ionic time step in fs)")
        return self.potim


class XdatcarReader(TrajectoryReader):
    """``XDATCAR`` of VASP 5 or 6, fixed or changing cell: wrapped positions (Å) and the cell;
    times from ``POTIM × configuration number`` (POTIM from a file beside it, or ``--dt``
    per frame)."""

    def __init__(self, path, *, dt=None, topology=None):
        super().__init__(path, dt=dt)
        found = potim_beside(self.path) if dt is None else None
        self.potim = None if found is None else found[0]
        self.notes = [f"positions and cell from {self.path.name} (VASP XDATCAR, fractional → Å; no velocities "
                      "or forces: vasprun.xml or OUTCAR hold the forces)"]
        if found is not None:
            self.notes.append(f"POTIM {found[0]:g} fs from {found[1].name}, × the configuration numbers' stride")

    def _frames(self):
        """(cell (3, 3) Å, symbols, fractional (N, 3), configuration number) per frame."""
        with open(self.path, "r") as handle:
            lines = (line for line in handle if line.strip())  # blank lines between frames
            header = None
            for line in lines:
                if line.lstrip().lower().startswith("direct configuration") or line.lstrip().lower().startswith(
                        "cartesian configuration"):
                    if header is None:
                        raise FormatError(f"{self.path.name}: a configuration before any header")
                    number = _configuration_number(line, self.path.name)
                    cell, symbols = header
                    rows = list(itertools.islice(lines, len(symbols)))
                    if len(rows) != len(symbols):
                        raise FormatError(f"{self.path.name}: configuration {number} is cut short")
                    try:
                        values = np.array([row.split()[:3] for row in rows], dtype=float)
                    except ValueError as err:
                        raise FormatError(f"{self.path.name}: configuration {number}: {err}") from None
                    if line.lstrip().lower().startswith("cartesian"):
                        values = np.linalg.solve(cell.T, values.T).T
                    yield cell, symbols, values, number
                else:
                    header = _header(line, lines, self.path.name)

    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        frames = self._frames()
        start, first_symbols = 0, None
        while batch := list(itertools.islice(frames, chunk_size)):
            symbols = batch[0][1]
            first_symbols = symbols if first_symbols is None else first_symbols
            if any(b[1] != first_symbols for b in batch):
                raise FormatError(f"{self.path.name}: the atoms change between configurations")
            cells = np.array([b[0] for b in batch])
            positions = np.einsum("fni,fij->fnj", np.array([b[2] for b in batch]), cells)
            numbers = np.array([b[3] for b in batch], dtype=np.int64)
            file_times = None if self.potim is None else numbers * self.potim
            yield Trajectory(numbers=numbers_from_symbols(first_symbols), positions=positions, cell=cells, pbc=True,
                             times=self._times(start, len(batch), file_times), steps=numbers)
            start += len(batch)
        if start == 0:
            raise FormatError(f"{self.path.name}: no configurations")


def _configuration_number(line: str, source: str) -> int:
    match = re.search(r"=\s*(\d+)", line)
    if match is None:
        raise FormatError(f"{source}: no number in {line.strip()!r}")
    return int(match[1])


def _header(first_line, lines, source: str):
    """(cell (3, 3) Å, symbols) from a header starting at the system-name line ``first_line``."""
    try:
        scale = float(next(lines).split()[0])
        cell = np.array([next(lines).split()[:3] for _ in range(3)], dtype=float)
        species = next(lines).split()
        counts_line = next(lines).split()
    except (StopIteration, ValueError, IndexError):
        raise FormatError(f"{source}: not a VASP XDATCAR header after {first_line.strip()!r}") from None
    if all(s.isdigit() for s in species):  # VASP 4: no element line
        raise FormatError(f"{source}: a VASP 4 XDATCAR names no elements; convert it with VASP 5+ or pass a "
                          "vasprun.xml/OUTCAR instead")
    counts = [int(c) for c in counts_line]
    if scale < 0:  # a negative scale is the cell volume
        scale = (-scale / abs(np.linalg.det(cell))) ** (1 / 3)
    return cell * scale, [s for s, n in zip(species, counts) for _ in range(n)]
