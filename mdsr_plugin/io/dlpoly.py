"""DL_POLY's trajectory file ``HISTORY`` (DL_POLY 4 and DL_POLY Classic).

Layout (formatted text; the name is fixed, so the file is recognised by its content)::

    TITLE
    keytrj imcon natms [nframes nrecords]           (DL_POLY 4 adds the last two)
    timestep nstep natms keytrj imcon tstep [time]  (per frame; DL_POLY 4 adds time)
    ax ay az                                        (three cell rows, when imcon > 0)
    bx by bz
    cx cy cz
    NAME index mass charge [rsd]                    (per atom, then 1 + keytrj lines:)
    x y z                                           positions, Å
    vx vy vz                                        velocities, Å/ps      (keytrj ≥ 1)
    fx fy fz                                        forces, 10 J/mol/Å   (keytrj = 2)

DL_POLY's internal units are Å, ps and dalton, so a force is in dalton Å ps⁻²
(= 10 J mol⁻¹ Å⁻¹); the masses come from the file.  Times are DL_POLY 4's ``time``
(ps), else ``nstep × tstep``.  Atoms written out of order (parallel runs) are put
back in the order of their index.

Elements are guessed from the names (``K+`` → K, ``OW`` → O, ``Cl-`` → Cl), and a
guess whose standard mass disagrees with the file's mass (a united atom ``CH3``, a
name ``A`` or ``B`` of a model atom) is dropped: the atom is then of unknown element
(number 0) and keeps its mass from the file.

``CONFIG``/``REVCON`` hold a single configuration, nothing to upsample, and are not read.
"""

from __future__ import annotations

import itertools
import re
from typing import Iterator

import numpy as np
from ase import units as _ase

from ..elements import numbers_from_symbols, standard_masses
from ..trajectory import Trajectory
from ..units import FS_PER_PS
from .base import FormatError, TrajectoryReader

__all__ = ["DLPolyHistoryReader", "is_dlpoly_history", "DLPOLY_FORCE_TO_EV_PER_A"]

#: DL_POLY's force unit, 10 J mol⁻¹ Å⁻¹ (= dalton Å ps⁻²), in eV/Å (≈ 1.0364e-4).
DLPOLY_FORCE_TO_EV_PER_A = 10.0 * _ase.J / _ase.mol

#: A name's element is kept when its standard mass is this close to the file's (u):
#: wide enough for rounded masses (O 16.0, H 1.0) and deuterium named H, narrow
#: enough to drop a united-atom CH3 (15.035 vs C 12.011) or a model atom ``B`` of mass 39.
_MASS_TOLERANCE = 1.1

_INTS = re.compile(rb"^\s*-?\d+(\s+-?\d+){2,4}\s*$")


def is_dlpoly_history(name: str, head: bytes) -> bool:
    """Whether ``head`` starts like a HISTORY: a title, 3 or 5 integers, a ``timestep`` line."""
    lines = head.split(b"\n", 3)
    return len(lines) > 3 and _INTS.match(lines[1]) is not None and lines[2].lstrip().startswith(b"timestep")


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


class DLPolyHistoryReader(TrajectoryReader):
    """``HISTORY``: positions (Å), velocities (Å/ps → Å/fs), forces (10 J/mol/Å → eV/Å),
    cell, masses and names, per frame; times from the ``timestep`` lines."""

    def __init__(self, path, *, dt=None, topology=None):
        super().__init__(path, dt=dt)
        with open(self.path, "r", errors="replace") as handle:
            self.title = handle.readline().strip()
            header = handle.readline().split()
        try:
            self.keytrj, self.imcon, self.n_atoms = (int(v) for v in header[:3])
        except ValueError:
            header = None
        if header is None or len(header) < 3:
            raise FormatError(f"{self.path.name}: not a DL_POLY HISTORY (line 2 is not 'keytrj imcon natms')")
        if self.keytrj not in (0, 1, 2):
            raise FormatError(f"{self.path.name}: keytrj {self.keytrj} in the header; DL_POLY writes 0, 1 or 2")
        if self.n_atoms < 1:
            raise FormatError(f"{self.path.name}: {self.n_atoms} atoms in the header")
        stored = ["positions (Å)", "velocities (Å/ps)", "forces (10 J/mol/Å)"][: self.keytrj + 1]
        self.notes = [f"{', '.join(stored)}, masses and names from {self.path.name} (DL_POLY HISTORY, "
                      f"keytrj {self.keytrj}, imcon {self.imcon}); times from its timestep lines (ps)"]

    # ------------------------------------------------------------------ parsing
    def _frames(self):
        """Per frame: (names, masses (N,), values (N, 1 + keytrj, 3), cell or None, imcon, step, time ps)."""
        n, per_atom = self.n_atoms, 1 + self.keytrj
        source = self.path.name
        with open(self.path, "r", errors="replace") as handle:
            handle.readline()
            handle.readline()
            line = handle.readline()
            k = 0
            while line.strip():
                fields = line.split()
                if fields[0] != "timestep" or len(fields) < 6:
                    raise FormatError(f"{source}: frame {k}: expected a 'timestep nstep natms keytrj imcon tstep' "
                                      f"line, found {line.strip()[:60]!r}")
                try:
                    step, natms, imcon = int(fields[1]), int(fields[2]), int(fields[4])
                    tstep = float(fields[5])
                    time = float(fields[6]) if len(fields) > 6 else step * tstep
                except ValueError:
                    raise FormatError(f"{source}: frame {k}: cannot read {line.strip()!r}") from None
                if natms != n:
                    raise FormatError(f"{source}: frame {k} has {natms} atoms where the header has {n}")
                line = handle.readline()
                cell = None
                if line.split() and _is_number(line.split()[0]):  # the cell rows (imcon > 0)
                    rows = [line, handle.readline(), handle.readline()]
                    cell = self._numbers(rows, 3, f"frame {k}: cell")
                    line = handle.readline()
                names, masses, index = [], np.empty(n), np.empty(n, dtype=np.int64)
                values = np.empty((n, per_atom, 3))
                for i in range(n):
                    atom = line.split()
                    if len(atom) < 4 or _is_number(atom[0]):
                        raise FormatError(
                            f"{source}: frame {k}, atom {i}: expected 'name index mass charge', found "
                            f"{line.strip()[:60]!r} (keytrj {self.keytrj} in the header means {per_atom} "
                            f"line(s) of numbers per atom)" if line else f"{source}: frame {k} is cut short at atom {i}")
                    names.append(atom[0])
                    try:
                        index[i], masses[i] = int(atom[1]), float(atom[2])
                    except ValueError:
                        raise FormatError(f"{source}: frame {k}, atom {i}: cannot read {line.strip()!r}") from None
                    rows = [handle.readline() for _ in range(per_atom)]
                    values[i] = self._numbers(rows, per_atom, f"frame {k}, atom {i} ({atom[0]})")
                    line = handle.readline()
                order = np.argsort(index, kind="stable")
                if np.array_equal(index[order], np.arange(1, n + 1)) and not np.array_equal(order, np.arange(n)):
                    names = [names[j] for j in order]
                    masses, values = masses[order], values[order]
                yield names, masses, values, cell, imcon, step, time
                k += 1

    def _numbers(self, rows, count, where) -> np.ndarray:
        if any(not row for row in rows):
            raise FormatError(f"{self.path.name}: {where}: the file is cut short")
        try:
            table = np.array([row.split()[:3] for row in rows], dtype=float)
        except ValueError:
            table = None
        if table is None or table.shape != (count, 3):
            raise FormatError(f"{self.path.name}: {where}: expected {count} line(s) of 3 numbers, found "
                              f"{[r.strip()[:40] for r in rows]!r}")
        return table

    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        frames = self._frames()
        start, first = 0, None
        while batch := list(itertools.islice(frames, chunk_size)):
            if first is None:
                first = batch[0]
                numbers = self._elements(first[0], first[1])
            for j, (names, masses, *_rest) in enumerate(batch):
                if names != first[0] or not np.array_equal(masses, first[1]):
                    raise FormatError(f"{self.path.name}: frame {start + j}: the atoms (names or masses) differ "
                                      "from frame 0")
            values = np.array([b[2] for b in batch])
            cells = [b[3] for b in batch]
            if any((c is None) != (cells[0] is None) for c in cells):
                raise FormatError(f"{self.path.name}: some frames have a cell and others none")
            cell = None if cells[0] is None else np.array(cells)
            pbc = np.zeros(3, dtype=bool) if cell is None else np.array([True, True, batch[0][4] != 6])
            times_fs = np.array([b[6] for b in batch]) * FS_PER_PS
            yield Trajectory(
                numbers=numbers, masses=first[1], names=list(first[0]),
                positions=values[:, :, 0],
                velocities=values[:, :, 1] / FS_PER_PS if self.keytrj >= 1 else None,
                forces=values[:, :, 2] * DLPOLY_FORCE_TO_EV_PER_A if self.keytrj == 2 else None,
                cell=cell, pbc=pbc, steps=np.array([b[5] for b in batch], dtype=np.int64),
                times=self._times(start, len(batch), times_fs))
            start += len(batch)
        if start == 0:
            raise FormatError(f"{self.path.name}: no frames")

    def _elements(self, names, masses) -> np.ndarray:
        numbers = numbers_from_symbols(names)
        guessed = numbers != 0
        far = guessed & (np.abs(standard_masses(numbers) - masses) > _MASS_TOLERANCE)
        numbers[far] = 0
        unknown = sorted({n for n, z in zip(names, numbers) if z == 0})
        if unknown:
            self.notes.append(f"element unknown for names {', '.join(unknown)} (name and mass disagree or no "
                              "element name); masses from the file")
        return numbers


def _open_history(path, **options):
    return DLPolyHistoryReader(path, **options)


def _register() -> None:
    from . import Format, register_format

    register_format(Format(
        "dlpoly-history", ("history",), "DL_POLY HISTORY (4 or Classic): positions, velocities, forces, cell, masses",
        _open_history, None, "keytrj ≥ 1 (Å/ps)", sniff=is_dlpoly_history))


_register()
