"""CASTEP's molecular-dynamics file ``SEED.md``.

Everything in it is in Hartree atomic units.  A four-line header (``BEGIN header`` …
``END header``, a blank line) is followed by one block per MD step, each ended by a
blank line::

    time                                  (a.u. of time, untagged)
    E_pot  E_total/H  E_kin        <-- E  (hartree)
    T                              <-- T  (hartree)
    P                              <-- P  (variable cell or calculate_stress)
    h11 h12 h13                    <-- h  (three lines: each row one cell vector, bohr)
    hv…                            <-- hv (cell velocities, variable cell)
    S…                             <-- S  (stress)
    Sym  i  x  y  z                <-- R  (per atom, bohr)
    Sym  i  vx vy vz               <-- V  (per atom, bohr / a.u. of time)
    Sym  i  fx fy fz               <-- F  (per atom, hartree / bohr)

``i`` counts atoms within their species, so atoms are kept in the order of the ``R``
lines.  The file holds no masses: the standard ones are used.

ASE 3.29 has a ``castep-md`` reader whose units are right (its velocities agree with
these factors to 3e-8; checked on MDANSE's ``PBAnew.md``, whose kinetic energy column
½Σmv² reproduces to 2e-6).  It is not used because it converts with CODATA 2002
constants (a 1 fs step comes out as 1.0000000315 fs, where every other reader here
uses ``ase.units``), drops a last block that no blank line follows, and fails on
CASTEP species labels such as ``H:D``.
"""

from __future__ import annotations

import itertools
from typing import Iterator

import numpy as np

from ..elements import numbers_from_symbols
from ..trajectory import Trajectory
from ..units import AU_TIME_FS, BOHR, HARTREE
from .base import FormatError, TrajectoryReader

__all__ = ["CastepMDReader", "is_castep_md"]

_VELOCITY = BOHR / AU_TIME_FS  # bohr / a.u. time → Å/fs (≈ 21.877)
_FORCE = HARTREE / BOHR  # hartree / bohr → eV/Å (≈ 51.422)


def is_castep_md(name: str, head: bytes) -> bool:
    """Whether ``head`` starts with CASTEP's ``BEGIN header`` … ``END header``, in a file not
    named as CASTEP names its relaxations' and transition searches' files in that layout
    (``SEED.geom``, ``SEED.ts``)."""
    if name.endswith((".geom", ".ts")):
        return False
    return head.lstrip().startswith(b"BEGIN header") and b"END header" in head


class CastepMDReader(TrajectoryReader):
    """``SEED.md``: positions, velocities, forces and the cell of every MD step, times from
    each block's time line (all converted from Hartree atomic units)."""

    def __init__(self, path, *, dt=None, topology=None):
        super().__init__(path, dt=dt)
        with open(self.path, "rb") as handle:
            if not is_castep_md(self.path.name.lower(), handle.read(8192)):
                raise FormatError(f"{self.path.name}: not a CASTEP .md file (no 'BEGIN header' … 'END header' "
                                  "at its top)")
        self.notes = [f"positions, velocities, forces and cell from {self.path.name} (CASTEP .md, bohr, "
                      "bohr/a.u. time, Ha/bohr); times from its time lines (a.u.); standard masses"]

    def _blocks(self):
        """Lists of the non-blank lines of each MD step."""
        with open(self.path, "r", errors="replace") as handle:
            for line in handle:
                if "END header" in line:
                    break
            else:
                raise FormatError(f"{self.path.name}: no 'END header' line")
            block = []
            for line in handle:
                if line.strip():
                    if len(block) > 1 and "<--" not in line:
                        yield block  # a time line starts the next step (no blank line before it)
                        block = []
                    block.append(line)
                elif block:
                    yield block
                    block = []
            if block:
                yield block

    def _frame(self, lines, k):
        source = f"{self.path.name}: step {k}"
        try:
            time = float(lines[0].split()[0])
        except (ValueError, IndexError):
            raise FormatError(f"{source}: the first line is not a time (a.u.): {lines[0].strip()[:60]!r}") from None
        tagged: dict[str, list[list[str]]] = {}
        for line in lines[1:]:
            values, _, tag = line.partition("<--")
            tagged.setdefault(tag.strip(), []).append(values.split())
        cell = self._table(tagged.get("h", []), source, "h", 0)
        if cell.shape[0] != 3:
            raise FormatError(f"{source}: {cell.shape[0]} '<-- h' cell lines, expected 3")
        symbols = [row[0].split(":")[0] for row in tagged.get("R", [])]
        if not symbols:
            raise FormatError(f"{source}: no '<-- R' position lines")
        arrays = [self._table(tagged.get(tag, []), source, tag, 2) for tag in ("R", "V", "F")]
        for tag, array in zip("RVF", arrays):
            if array.shape[0] != len(symbols):
                raise FormatError(f"{source}: {array.shape[0]} '<-- {tag}' lines for {len(symbols)} atoms"
                                  + (" (the file is cut short)" if array.shape[0] < len(symbols) else ""))
        return time, cell, symbols, arrays

    @staticmethod
    def _table(rows, source, tag, first) -> np.ndarray:
        try:
            return np.array([row[first:first + 3] for row in rows], dtype=float).reshape(len(rows), 3)
        except ValueError:
            raise FormatError(f"{source}: cannot read the '<-- {tag}' lines as numbers") from None

    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        frames = (self._frame(lines, k) for k, lines in enumerate(self._blocks()))
        start, symbols = 0, None
        while batch := list(itertools.islice(frames, chunk_size)):
            if symbols is None:
                symbols = batch[0][2]
                numbers = numbers_from_symbols(symbols)
                if not numbers.all():
                    i = int(np.argmin(numbers))
                    raise FormatError(f"{self.path.name}: unknown element {symbols[i]!r} (atom {i})")
            for j, frame in enumerate(batch):
                if frame[2] != symbols:
                    raise FormatError(f"{self.path.name}: step {start + j}: the atoms differ from step 0")
            yield Trajectory(
                numbers=numbers,
                positions=np.array([f[3][0] for f in batch]) * BOHR,
                velocities=np.array([f[3][1] for f in batch]) * _VELOCITY,
                forces=np.array([f[3][2] for f in batch]) * _FORCE,
                cell=np.array([f[1] for f in batch]) * BOHR, pbc=np.ones(3, dtype=bool),
                times=self._times(start, len(batch), np.array([f[0] for f in batch]) * AU_TIME_FS))
            start += len(batch)
        if start == 0:
            raise FormatError(f"{self.path.name}: no MD steps after the header")


def _open_md(path, **options):
    return CastepMDReader(path, **options)


def _register() -> None:
    from . import Format, register_format

    # No extension: ``.md`` is also Markdown and ends names such as dpdata's ``OUTCAR.h2o.md``;
    # the header is what tells a CASTEP file.
    register_format(Format("castep-md", (), "CASTEP .md (Hartree atomic units; recognised by its header): "
                           "positions, velocities, forces, cell", _open_md, None, "yes (bohr/a.u. time)",
                           sniff=is_castep_md))


_register()
