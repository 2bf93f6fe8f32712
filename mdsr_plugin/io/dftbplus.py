"""DFTB+ molecular dynamics: the ``geo_end.xyz`` that a ``VelocityVerlet`` driver appends to.

Every ``MDRestartFrequency`` steps DFTB+ appends a frame (``writeXYZFormat`` in
``formatout.F90``)::

    n_atoms                                              (I5)
    MD iter: k                                           the MD step of the frame
    Sym  x y z  [charge]  [vx vy vz]                     (A5, 3-7 F16.8)

positions in Å, the Mulliken charge (e) when Mulliken analysis is on, and the
velocities converted to Å/ps (``Bohr__AA / au__fs * 1000``).  So an atom line has 3
(positions), 4 (+ charge), 6 (+ velocities) or 7 (+ charge + velocities) numbers after the name.

The frame's time is ``k × TimeStep``, the ``TimeStep`` of the ``VelocityVerlet`` block
in ``dftb_pin.hsd`` or ``dftb_in.hsd`` beside the file, in the unit in its brackets
(``TimeStep [fs] = 1.0``; without brackets DFTB+ reads atomic units), else ``--dt``
(the time between frames).  Species names are the ones the geometry gave (normally element symbols).
"""

from __future__ import annotations

import re
from typing import Iterator

import numpy as np

from ..elements import numbers_from_symbols
from ..trajectory import Trajectory
from ..units import NATIVE_UNITS, TIME_UNITS_FS
from .base import FormatError, TrajectoryReader
from .plain_xyz import columns, fixed_frames

__all__ = ["DftbMDReader", "is_dftb_md_xyz"]

_UNITS = NATIVE_UNITS["dftbplus"]
_MD_ITER = re.compile(r"^\s*MD iter:\s*(\d+)")
_TIME_STEP = re.compile(r"\bTimeStep\s*(?:\[\s*([^\]]*?)\s*\])?\s*=\s*([-+0-9.eEdD]+)", re.I)
#: DFTB+'s names of time units (``unitconversion.F90``), lower case → the keys of TIME_UNITS_FS.
_UNIT_NAMES = {"fs": "fs", "femtosecond": "fs", "femtoseconds": "fs", "ps": "ps", "picosecond": "ps",
               "picoseconds": "ps", "s": "s", "second": "s", "seconds": "s", "au": "au", "a.u.": "au",
               "atomicunit": "au", "atomicunits": "au", "": "au"}


def is_dftb_md_xyz(name: str, head: bytes) -> bool:
    """Whether ``head`` starts an XYZ frame whose comment is DFTB+'s ``MD iter: k``."""
    lines = head.decode("ascii", errors="replace").splitlines()[:2]
    return len(lines) == 2 and lines[0].strip().isdigit() and _MD_ITER.match(lines[1]) is not None


class DftbMDReader(TrajectoryReader):
    """``geo_end.xyz`` of a DFTB+ MD run: positions (Å), velocities (Å/ps → Å/fs) when written,
    Mulliken charges (e, as ``frame_data["charges"]``), steps from ``MD iter:``."""

    def __init__(self, path, *, dt=None, topology=None):
        super().__init__(path, dt=dt)
        with open(self.path, "r", errors="replace") as handle:
            count, comment, first_atom = handle.readline(), handle.readline(), handle.readline()
        if not is_dftb_md_xyz(self.path.name.lower(), (count + comment).encode()):
            raise FormatError(f"{self.path.name}: not a DFTB+ MD geometry file (no 'MD iter: k' comment line); "
                              "a geo_end.xyz of a relaxation holds no trajectory")
        self.n_atoms = int(count)
        self.n_fields = len(first_atom.split()) - 1  # numbers after the species name
        if self.n_fields not in (3, 4, 6, 7):
            raise FormatError(f"{self.path.name}: an atom line has {self.n_fields} numbers; DFTB+ writes 3 "
                              "(x y z), 4 (+ charge), 6 (+ vx vy vz) or 7 (+ charge + vx vy vz)")
        written = {3: "positions", 4: "positions, charges", 6: "positions, velocities",
                   7: "positions, charges, velocities"}[self.n_fields]
        self.notes = [f"{written} from {self.path.name} (DFTB+, Å, Å/ps, e)"]
        self.dt_fs = None if dt is not None else self._time_step()

    def _time_step(self) -> float | None:
        """``TimeStep`` (fs) of the input beside the file, in the unit its brackets name."""
        for name in ("dftb_pin.hsd", "dftb_in.hsd"):
            hsd = self.path.with_name(name)
            if not hsd.is_file():
                continue
            with open(hsd, "r", errors="replace") as handle:
                for line in handle:
                    if m := _TIME_STEP.search(line.split("#", 1)[0]):
                        unit = _UNIT_NAMES.get(m[1].lower() if m[1] else "")
                        if unit is None:
                            raise FormatError(f"{hsd.name}: TimeStep unit [{m[1]}] is not a time unit DFTB+ "
                                              "knows (fs, ps, au); pass --dt")
                        value = float(m[2].lower().replace("d", "e"))
                        dt = value * TIME_UNITS_FS[unit]
                        self.notes.append(f"time step {value:g} {m[1] or 'a.u. (no unit given)'} = {dt:.6g} fs "
                                          f"from {hsd.name}; times = MD iter × time step")
                        return dt
        return None

    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        n = self.n_atoms
        source = self.path.name
        symbols = numbers = None
        start = 0
        with open(self.path, "r", errors="replace") as handle:
            frames = fixed_frames(handle, source, 2, n)
            while batch := [frame for _, frame in zip(range(chunk_size), frames)]:
                steps = []
                for k, (header, _) in enumerate(batch):
                    m = _MD_ITER.match(header[1])
                    if header[0].split() != [str(n)] or m is None:
                        raise FormatError(f"{source}: frame {start + k} does not start with '{n}' and 'MD iter: k' "
                                          f"(got {header[0].strip()[:20]!r}); the file is damaged or mixes runs")
                    steps.append(int(m[1]))
                lines = [line for _, body in batch for line in body]
                table = columns(lines, 1, self.n_fields, source).reshape(len(batch), n, self.n_fields)
                if symbols is None:
                    symbols = [line.split()[0] for line in lines[:n]]
                    numbers = numbers_from_symbols(symbols)
                    if not numbers.all():
                        i = int(np.argmin(numbers))
                        raise FormatError(f"{source}: unknown element {symbols[i]!r} (atom {i + 1}); DFTB+ writes "
                                          "the species names of the geometry: name them by element")
                has_charge = self.n_fields in (4, 7)
                velocities = table[..., -3:] * _UNITS.velocity if self.n_fields >= 6 else None
                steps = np.array(steps, dtype=np.int64)
                file_times = None if self.dt_fs is None else steps * self.dt_fs
                times = self._times(start, len(batch), file_times)
                yield Trajectory(numbers=numbers, positions=table[..., :3] * _UNITS.length, velocities=velocities,
                                 times=times, steps=steps, names=list(symbols),
                                 frame_data={"charges": table[..., 3]} if has_charge else {})
                start += len(batch)
        if start == 0:
            raise FormatError(f"{source}: no frames")


def _open_geo(path, **options):
    return DftbMDReader(path, **options)


def _register() -> None:
    from . import Format, register_format

    register_format(Format("dftbplus-md", (), "DFTB+ geo_end.xyz of an MD run (recognised by 'MD iter:' comments)",
                           _open_geo, None, "vx vy vz columns (Å/ps)", sniff=is_dftb_md_xyz,
                           signature="'MD iter: k' comment lines"))


_register()
