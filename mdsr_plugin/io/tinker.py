"""Tinker archives (``.arc``) from ``dynamic``, with the ``.vel`` and ``.frc`` files beside them.

With the ``archive`` keyword, Tinker's ``dynamic`` appends every saved frame to
``NAME.arc`` in Tinker XYZ format (``prtxyz`` in ``prtxyz.f``)::

    n_atoms  title                                   (i6, 2x, a)
    a  b  c  alpha  beta  gamma                      periodic runs only (Å, degrees)
    index  name  x  y  z  type  bonded atoms…        one line per atom, Å

With ``velocity-save`` and ``force-save`` it appends the same layout to ``NAME.vel``
(velocities, Å/ps) and ``NAME.frc`` (forces ``-dE/dx``, kcal/(mol·Å); ``prtvec3``,
``mdsave.f``); these are read when they lie beside the archive.

Nothing in the archive says when a frame was saved: the times come from the output
of ``dynamic`` (a ``*.log``/``*.out`` beside it whose ``Coordinate File  NAME.arc``
lines each follow a ``Current Time  t Picosecond`` line), else from ``--dt``.

Elements come from the atom types' atomic numbers in the force-field file that the
``.key`` beside the archive names (``parameters amoeba09``: its ``atom`` lines), else
from the atom names (``O``, ``HW``, ``CH3`` → C).  ``.arc`` is also the extension of
Materials Studio/DMol3 archives (``!BIOSYM archive``), so the format is recognised by
its content.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import numpy as np

from ..elements import numbers_from_symbols
from ..trajectory import Trajectory
from ..units import NATIVE_UNITS
from .base import FormatError, TrajectoryReader
from .plain_xyz import columns, fixed_frames

__all__ = ["TinkerArchiveReader", "is_tinker_arc", "tinker_companions"]

_UNITS = NATIVE_UNITS["tinker"]
_CURRENT_TIME = re.compile(r"^\s*Current Time\s+([-+0-9.eEdD]+)\s+Picosecond")
_COORDINATE_FILE = re.compile(r"^\s*Coordinate File\s+(\S+)")
_SAVED_AT = re.compile(r"^\s*Instantaneous Values for Frame Saved at\s+(\d+)\s+Dynamics Steps", re.I)
#: Largest error of a frame spacing, relative, that printed times may carry (as for pw.x).
TIME_ROUNDING_TOLERANCE = 1e-3
_PRM_ATOM = re.compile(r'^\s*atom\s+(\d+)\s+\d+\s+\S+\s+"[^"]*"\s+(\d+)\s+([-+0-9.eE]+)', re.I)
_COMPANIONS = {".vel": "velocities", ".frc": "forces"}


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _is_box_line(tokens: list[str]) -> bool:
    return len(tokens) == 6 and all(_is_float(t) and "." in t for t in tokens)


def _is_atom_line(tokens: list[str], index: int) -> bool:
    """``index name x y z type [bonded…]`` (integers where Tinker writes them)."""
    return (len(tokens) >= 6 and tokens[0] == str(index) and not _is_float(tokens[1])
            and all(_is_float(t) for t in tokens[2:5]) and all(t.lstrip("-").isdigit() for t in tokens[5:]))


def is_tinker_arc(name: str, head: bytes) -> bool:
    """Whether ``head`` starts a Tinker XYZ/archive file: a count and title, an optional
    box line, then atom ``1`` with its name, coordinates, type and bonded atoms."""
    if name.endswith(tuple(_COMPANIONS)):
        return False  # the .vel/.frc beside an archive hold other quantities in the same layout
    lines = head.decode("ascii", errors="replace").splitlines()[:3]
    if len(lines) < 2:
        return False
    count = lines[0].split()
    if not count or not count[0].isdigit() or int(count[0]) < 1:
        return False
    second = lines[1].split()
    if _is_box_line(second):
        return len(lines) > 2 and _is_atom_line(lines[2].split(), 1)
    return _is_atom_line(second, 1)


class TinkerArchiveReader(TrajectoryReader):
    """``NAME.arc``: positions (Å), the cell of each frame (periodic runs), velocities and
    forces from ``NAME.vel``/``NAME.frc`` beside it; times (fs) from the log of ``dynamic``."""

    def __init__(self, path, *, dt=None, topology=None):
        super().__init__(path, dt=dt)
        with open(self.path, "r", errors="replace") as handle:
            first = [handle.readline() for _ in range(3)]
        if not is_tinker_arc(self.path.name.lower(), "".join(first).encode()):
            raise FormatError(f"{self.path.name}: not a Tinker archive (expected an atom count and title, an "
                              "optional box line, then '1 NAME x y z TYPE …' atom lines)")
        self.n_atoms = int(first[0].split()[0])
        self.periodic = _is_box_line(first[1].split())
        self.n_header = 2 if self.periodic else 1
        self.n_frames = self._count_frames()
        self.notes = [f"positions{' and cell' if self.periodic else ''} from {self.path.name} (Tinker archive, Å)"]
        found = tinker_companions(self.path)
        self.companions = {quantity: found[quantity] for quantity in _COMPANIONS.values() if quantity in found}
        for quantity, candidate in self.companions.items():
            unit = "Å/ps" if quantity == "velocities" else "kcal/(mol·Å)"
            self.notes.append(f"{quantity} from {candidate.name} ({unit})")
        self.times_fs = None if dt is not None else self._log_times()
        self.types_z, self.types_mass = self._force_field()

    def _count_frames(self) -> int:
        with open(self.path, "rb") as handle:
            n_lines = sum(1 for line in handle if line.strip())
        per_frame = self.n_header + self.n_atoms
        if n_lines % per_frame:
            raise FormatError(f"{self.path.name}: {n_lines} lines do not make whole frames of {per_frame} "
                              f"({self.n_atoms} atoms{' + box' if self.periodic else ''} + title); the last frame "
                              "is cut short: remove it")
        return n_lines // per_frame

    def _log_times(self) -> np.ndarray | None:
        """Each frame's time (fs) from the first ``dynamic`` log beside the archive that names it."""
        for log in sorted(self.path.parent.iterdir()):
            if log.suffix.lower() not in (".log", ".out", ".txt") or not log.is_file():
                continue
            times, steps, current, step, decimals = [], [], None, None, 0
            with open(log, "r", errors="replace") as handle:
                for line in handle:
                    if m := _SAVED_AT.match(line):
                        step = int(m[1])
                    elif m := _CURRENT_TIME.match(line):
                        current = float(m[1].lower().replace("d", "e"))
                        decimals = max(decimals, len(m[1].partition(".")[2]))
                    elif (m := _COORDINATE_FILE.match(line)) and Path(m[1]).name == self.path.name:
                        times.append(current)
                        steps.append(step)
            if not times:
                continue
            if len(times) != self.n_frames or None in times:
                raise FormatError(f"{log.name} logs {len(times)} frames of {self.path.name}, which has "
                                  f"{self.n_frames} (an archive appended over several runs?); pass --dt")
            return self._exact_times(log, np.array(times), steps, 0.5 * 10.0 ** -decimals) * _UNITS.time
        return None

    def _exact_times(self, log, printed, steps, rounding):
        """Times (ps) of the frames from their printed ``Current Time`` (ps, each within
        ``rounding``) and their step numbers: Tinker prints the time to 4 decimals (0.1 fs) by
        default, so frames 0.25 fs apart read 0.3, 0.5, 0.8 fs.  Evenly spaced printed times
        are taken as they are; uneven ones come from the logged step numbers, the time per
        step fitted to every frame (+ the fitted origin where it is not zero), or from the
        printed times where the rounding is within :data:`TIME_ROUNDING_TOLERANCE` of the
        closest spacing; else refused (pass --dt)."""
        spacing = np.diff(printed)
        if not len(spacing) or (spacing.min() > 0 and np.ptp(spacing) <= 1e-9 * np.abs(printed).max()):
            # evenly spaced as printed: a spacing that rounding had changed would vary (0.2, 0.3)
            self.notes.append(f"times from {log.name} ('Current Time' of each saved frame, ps)")
            return printed
        if None not in steps and len(set(steps)) == len(steps):
            steps = np.array(steps, dtype=np.float64)
            slope, origin = np.polyfit(steps, printed, 1)
            # the slope is sure to the rounding over the whole span of times
            if slope > 0 and rounding / (slope * np.ptp(steps)) <= TIME_ROUNDING_TOLERANCE \
                    and np.abs(printed - (origin + slope * steps)).max() <= 2 * rounding:
                if abs(origin) <= rounding:  # a run from time 0: the shortest time step every printed time allows
                    origin, slope = 0.0, next((step for step in (round(slope, k) for k in range(1, 16))
                                               if np.abs(printed - step * steps).max() <= 1.001 * rounding), slope)
                self.notes.append(f"times from {log.name}: its step numbers × {slope * 1e3:.6g} fs, fitted to the "
                                  f"'Current Time' of each saved frame (printed to {rounding * 2e3:g} fs)")
                return origin + slope * steps
        if spacing.min() > 0 and rounding / spacing.min() <= TIME_ROUNDING_TOLERANCE:
            self.notes.append(f"times from {log.name} ('Current Time' of each saved frame, ps)")
            return printed
        raise FormatError(f"{log.name} prints the frames' times to {rounding * 2e3:g} fs, too coarse for their "
                          f"spacing of {np.median(spacing) * 1e3 if len(spacing) else 0:g} fs (Tinker's 'digits'); "
                          "pass --dt")

    def _force_field(self):
        """Atomic number and mass (u) per atom type, from the parameter file the key names."""
        for key in (self.path.with_suffix(".key"), self.path.with_name("tinker.key")):
            if not key.is_file():
                continue
            with open(key, "r", errors="replace") as handle:
                names = [line.split()[1] for line in handle
                         if line.split()[:1] and line.split()[0].lower() == "parameters" and len(line.split()) > 1]
            for name in names:
                for prm in (self.path.parent / name, self.path.parent / (name + ".prm")):
                    if prm.is_file():
                        table = {}
                        with open(prm, "r", errors="replace") as handle:
                            for line in handle:
                                if m := _PRM_ATOM.match(line):
                                    table[int(m[1])] = (int(m[2]), float(m[3]))
                        self.notes.append(f"elements and masses of the atom types from {prm.name}")
                        return ({t: z for t, (z, _) in table.items()}, {t: m for t, (_, m) in table.items()})
        return None, None

    def _elements(self, names: list[str], types: np.ndarray):
        if self.types_z is not None:
            missing = [int(t) for t in types if int(t) not in self.types_z]
            if missing:
                raise FormatError(f"{self.path.name}: atom type {missing[0]} is not in the force-field file; "
                                  "give the parameter file the run used")
            numbers = np.array([self.types_z[int(t)] for t in types])
            masses = np.array([self.types_mass[int(t)] for t in types])
            return numbers, masses
        numbers = numbers_from_symbols(names)
        if not numbers.all():
            i = int(np.argmin(numbers))
            raise FormatError(f"{self.path.name}: cannot tell the element of atom {i + 1} (name {names[i]!r}, type "
                              f"{int(types[i])}); put the run's .key and parameter file beside it")
        return numbers, None

    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        handles = {"positions": open(self.path, "r", errors="replace")}
        try:
            for quantity, companion in self.companions.items():
                handles[quantity] = open(companion, "r", errors="replace")
            yield from self._read(handles, chunk_size)
        finally:
            for handle in handles.values():
                handle.close()

    def _read(self, handles, chunk_size) -> Iterator[Trajectory]:
        n = self.n_atoms
        sources = {q: self.path if q == "positions" else self.companions[q] for q in handles}
        streams = {q: fixed_frames(h, sources[q].name, self.n_header, n) for q, h in handles.items()}
        numbers = masses = names = None
        start = 0
        while True:
            batch = {q: [frame for _, frame in zip(range(chunk_size), stream)] for q, stream in streams.items()}
            count = len(batch["positions"])
            for quantity, frames in batch.items():
                if len(frames) != count:
                    raise FormatError(f"{sources[quantity].name} has {start + len(frames)} frames where "
                                      f"{self.path.name} has {start + count} or more; they must come from the same "
                                      "run (remove the file to read the positions alone)")
            if count == 0:
                break
            arrays, cells = {}, []
            for quantity, frames in batch.items():
                source = sources[quantity].name
                for k, (header, _) in enumerate(frames):
                    if int(header[0].split()[0]) != n:
                        raise FormatError(f"{source}: frame {start + k} has {header[0].split()[0]} atoms, "
                                          f"frame 0 has {n}")
                body = [line for _, lines in frames for line in lines]
                arrays[quantity] = columns(body, 2, 3, source).reshape(count, n, 3)
                if quantity == "positions":
                    if names is None:
                        names = [line.split()[1] for line in body[:n]]
                        types = columns(body[:n], 5, 1, source)[:, 0]
                        numbers, masses = self._elements(names, types)
                    if self.periodic:
                        cells = [self._cell(header[1], source, start + k) for k, (header, _) in enumerate(frames)]
            file_times = None if self.times_fs is None else self.times_fs[start:start + count]
            velocities = arrays.get("velocities")
            forces = arrays.get("forces")
            yield Trajectory(
                numbers=numbers, masses=masses, positions=arrays["positions"] * _UNITS.length,
                velocities=None if velocities is None else velocities * _UNITS.velocity,
                forces=None if forces is None else forces * _UNITS.force,
                cell=np.array(cells) if self.periodic else None, pbc=np.full(3, self.periodic),
                times=self._times(start, count, file_times), names=list(names))
            start += count

    @staticmethod
    def _cell(line: str, source: str, frame: int) -> np.ndarray:
        from ase.geometry import cellpar_to_cell

        tokens = line.split()
        if not _is_box_line(tokens):
            raise FormatError(f"{source}: frame {frame}: expected the box line 'a b c alpha beta gamma', got "
                              f"{line.strip()[:60]!r}")
        return cellpar_to_cell([float(t) for t in tokens]) * _UNITS.length


def tinker_companions(path) -> dict[str, Path]:
    """The files a reader of the archive ``path`` also opens for its quantities and elements:
    ``NAME.vel`` (``"velocities"``), ``NAME.frc`` (``"forces"``) and the ``.key`` (``"key"``)."""
    path = Path(path)
    found = {quantity: path.with_suffix(suffix) for suffix, quantity in _COMPANIONS.items()
             if path.with_suffix(suffix).is_file()}
    for key in (path.with_suffix(".key"), path.with_name("tinker.key")):  # as _force_field reads them
        if key.is_file():
            found["key"] = key
            break
    return found


def _open_arc(path, **options):
    return TinkerArchiveReader(path, **options)


def _register() -> None:
    from . import Format, register_format

    # ``.arc`` is shared with Materials Studio/DMol3: content decides first, and a DMol3 archive
    # that falls through to the extension is refused by the reader in one line.
    register_format(Format("tinker-arc", (".arc",), "Tinker archive .arc (recognised by its atom lines), with "
                           ".vel/.frc beside it", _open_arc, None, "NAME.vel beside it (Å/ps)", sniff=is_tinker_arc,
                           signature="a count and title, an optional box line, then '1 NAME x y z TYPE …'"))


_register()
