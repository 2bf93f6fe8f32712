"""CPMD's MD trajectories: ``TRAJECTORY`` and ``FTRAJECTORY``.

CPMD (``TRAJECTORY`` in ``&CPMD``; ``TRAJECTORY FORCES`` adds ``FTRAJECTORY``) writes one
line per atom and MD step, with no element names::

    TRAJECTORY    nfi  x y z  vx vy vz               '(I7,6(2X,F22.14))'
    FTRAJECTORY   nfi  x y z  vx vy vz  fx fy fz     '(I7,9(2X,F22.14))'

in Hartree atomic units: bohr, bohr / a.u. of time (× 21.877 → Å/fs), hartree/bohr
(× 51.422 → eV/Å).  A run appending to an existing file first writes a line
``<<<<<<  NEW DATA  >>>>>>``.  ``TRAJECTORY SAMPLE n`` writes every n-th step; the step
numbers ``nfi`` tell the stride, so the time of a frame is ``nfi × TIMESTEP``.

The file names are fixed, so a file is recognised by its name (``TRAJECTORY``,
``FTRAJECTORY``, ``TRAJECTORY_2`` of a multiple-walker run...) and a first line of 7 or
10 numbers.  What it lacks is read beside it:

* elements from ``TRAJEC.xyz`` (the same run's XYZ movie, Å) or ``GEOMETRY.xyz``, else
  from ``--top``;
* the time step from an output log's ``TIME STEP FOR IONS:`` or an input's
  ``TIMESTEP`` (``*.out``/``*.log``, then ``*.inp``; Hartree a.u. × 0.0241888 fs), else ``--dt``.

:class:`CPMDQuantityFile` reads the velocities or forces of such a file as a companion of
other positions (``TRAJEC.xyz --velocities TRAJECTORY``).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Iterator

import numpy as np

from ..elements import numbers_from_symbols
from ..trajectory import Trajectory
from ..units import AU_TIME_FS, BOHR, HARTREE
from .base import FormatError, TrajectoryReader
from .companions import QuantityChunk, QuantitySource

__all__ = ["is_cpmd_trajectory", "CPMDTrajectoryReader", "CPMDQuantityFile", "cpmd_timestep", "cpmd_companions",
           "is_cpmd_companion"]

_VELOCITY = BOHR / AU_TIME_FS  # bohr / a.u. time → Å/fs
_FORCE = HARTREE / BOHR  # hartree / bohr → eV/Å
_MARK = "NEW DATA"
_COLUMNS = {7: "TRAJECTORY", 10: "FTRAJECTORY"}
_OUTPUT_STEP = re.compile(r"TIME STEP FOR IONS:\s*([-+0-9.eEdD]+)")
_ELEMENT_FILES = ("TRAJEC.xyz", "GEOMETRY.xyz")  # a run's XYZ movie and last geometry, in that order


def _is_cpmd_name(name: str) -> bool:
    return name.startswith("trajectory") or name.startswith("ftrajectory")


def is_cpmd_trajectory(name: str, head: bytes) -> bool:
    """Whether a file named ``name`` (lower case) starting with ``head`` is a CPMD
    ``TRAJECTORY``/``FTRAJECTORY``: its name, and a first data line of an integer and 6 or 9 numbers."""
    if not _is_cpmd_name(name) or name.endswith((".xyz", ".dcd")):
        return False
    for line in head.decode("ascii", errors="replace").splitlines()[:3]:
        if _MARK in line or not line.strip():
            continue
        parts = line.split()
        try:
            int(parts[0])
            [float(p) for p in parts[1:]]
        except (ValueError, IndexError):
            return False
        return len(parts) in _COLUMNS
    return False


def _rows(path: Path, chunk_size: int, columns: int | None = None):
    """Blocks of ``chunk_size`` frames of a CPMD trajectory: (steps (F,), values (F, N, C-1))."""
    source = path.name
    n_atoms = None
    frame: list[list[float]] = []
    frames: list[np.ndarray] = []
    steps: list[int] = []
    current = None
    with open(path, "r", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if _MARK in line or not line.strip():
                continue
            parts = line.split()
            if columns is None:
                columns = len(parts)
                if columns not in _COLUMNS:
                    raise FormatError(f"{source}: a CPMD TRAJECTORY line has 7 numbers (step, x y z, vx vy vz) or, in "
                                      f"FTRAJECTORY, 10 (+ fx fy fz); line {number} has {columns}")
            if len(parts) != columns:
                raise FormatError(f"{source}: line {number} has {len(parts)} numbers, the first line {columns}")
            try:
                step, values = int(parts[0]), [float(p) for p in parts[1:]]
            except ValueError:
                raise FormatError(f"{source}: line {number} is not CPMD's 'step x y z vx vy vz ...': "
                                  f"{line.strip()[:60]!r}") from None
            if step != current:
                if current is not None:
                    if step < current:
                        raise FormatError(f"{source}: line {number}: step {step} after step {current}; a restarted "
                                          "run appended steps it had already written (cut the overlap)")
                    n_atoms = len(frame) if n_atoms is None else n_atoms
                    if len(frame) != n_atoms:
                        raise FormatError(f"{source}: step {current} has {len(frame)} atom lines, the first step "
                                          f"{n_atoms}")
                    frames.append(np.array(frame))
                    steps.append(current)
                    if len(frames) == chunk_size:
                        yield np.array(steps, dtype=np.int64), np.array(frames)
                        frames, steps = [], []
                current, frame = step, []
            frame.append(values)
    if current is not None:
        if n_atoms is not None and len(frame) != n_atoms:
            raise FormatError(f"{source}: the last step {current} has {len(frame)} atom lines of {n_atoms} "
                              "(the file is cut short)")
        frames.append(np.array(frame))
        steps.append(current)
    if frames:
        yield np.array(steps, dtype=np.int64), np.array(frames)


def _columns(path: Path) -> int:
    with open(path, "r", errors="replace") as handle:
        for line in handle:
            if _MARK not in line and line.strip():
                return len(line.split())
    raise FormatError(f"{path.name}: empty")


def cpmd_timestep(folder) -> tuple[float, Path] | None:
    """The ions' time step (Hartree a.u.) and the file it came from: an output log's
    ``TIME STEP FOR IONS:``, else an input's ``TIMESTEP`` (``TIMESTEP IONS``), in ``folder``."""
    folder = Path(folder)
    logs = []  # every log's step: a folder of restarts with another step is not read as one
    for pattern in ("*.out", "*.log", "*out*"):
        for candidate in sorted(folder.glob(pattern)):
            if candidate not in logs and candidate.is_file() and candidate.stat().st_size < 50_000_000:
                logs.append(candidate)
    # read once per state of the logs: the companion listing, the overwrite rule and the reader all ask
    found = dict(_log_steps(tuple((log, log.stat().st_size, log.stat().st_mtime_ns) for log in logs)))
    if len(set(found.values())) > 1:
        listed = ", ".join(f"{path.name}: {step:g}" for path, step in found.items())
        raise FormatError(f"{folder}: its CPMD logs give different TIME STEP FOR IONS ({listed} a.u.): runs with "
                          "another step; pass --dt")
    if found:
        first = next(iter(found))
        return found[first], first
    for candidate in sorted(folder.glob("*.inp")):
        lines = candidate.read_text(errors="replace").splitlines()
        for i, line in enumerate(lines[:-1]):
            words = line.split()
            if words and words[0].upper() == "TIMESTEP" and "ELECTRONS" not in line.upper():
                try:
                    return float(lines[i + 1].split()[0].lower().replace("d", "e")), candidate
                except (ValueError, IndexError):
                    raise FormatError(f"{candidate.name}: TIMESTEP is not followed by a number") from None
    return None


@functools.lru_cache(maxsize=64)
def _log_steps(logs: tuple) -> tuple:
    """((log, ions' step in a.u.), ...) of the logs ``((path, size, mtime_ns), ...)`` that print one."""
    found = []
    for log, _, _ in logs:
        with open(log, "r", errors="replace") as handle:
            for line in handle:
                if m := _OUTPUT_STEP.search(line):
                    found.append((log, float(m[1].lower().replace("d", "e"))))
                    break
    return tuple(found)


def _elements_beside(path: Path, n_atoms: int):
    """Symbols from the first frame of ``TRAJEC.xyz`` or ``GEOMETRY.xyz`` beside ``path``, and that file."""
    for name in _ELEMENT_FILES:
        candidate = path.with_name(name)
        if not candidate.is_file():
            continue
        with open(candidate, "r", errors="replace") as handle:
            try:
                count = int(handle.readline().split()[0])
            except (ValueError, IndexError):
                raise FormatError(f"{candidate.name}: not an XYZ file (no atom count on its first line)") from None
            handle.readline()
            symbols = [handle.readline().split()[:1] for _ in range(count)]
        if count != n_atoms or not all(symbols):
            raise FormatError(f"{candidate.name} has {count} atoms, {path.name} {n_atoms}: not the same run")
        return [s[0] for s in symbols], candidate
    return None


def _cpmd_trajectory_beside(path: Path) -> Path | None:
    """The CPMD ``FTRAJECTORY`` or ``TRAJECTORY`` in ``path``'s folder (the one with forces first)."""
    for name in ("FTRAJECTORY", "TRAJECTORY"):
        candidate = path.with_name(name)
        if candidate != path and candidate.is_file():
            with open(candidate, "rb") as handle:
                if is_cpmd_trajectory(name.lower(), handle.read(4096)):
                    return candidate
    return None


def cpmd_companions(path) -> dict[str, Path]:
    """The files a reader of the CPMD trajectory ``path`` also opens: the XYZ that names its
    elements (key ``"elements"``) and the output or input giving the time step (``"timestep"``)."""
    path = Path(path)
    found = {}
    elements = next((path.with_name(name) for name in _ELEMENT_FILES if path.with_name(name).is_file()), None)
    if elements is not None:
        found["elements"] = elements
    try:
        step = cpmd_timestep(path.parent)
    except FormatError:
        step = None  # the reader says what is wrong with it
    if step is not None:
        found["timestep"] = step[1]
    return found


def is_cpmd_companion(path) -> bool:
    """Whether ``path`` is another view of a CPMD run whose ``FTRAJECTORY`` or ``TRAJECTORY``
    lies beside it, so that a batch reads that file instead: its ``TRAJEC.xyz`` (positions
    alone, no time step) and ``GEOMETRY.xyz`` (the last frame) give its elements, and a
    ``TRAJECTORY`` holds ``FTRAJECTORY``'s frames without the forces."""
    path = Path(path)
    if path.name in _ELEMENT_FILES:
        return _cpmd_trajectory_beside(path) is not None
    if path.name == "TRAJECTORY":
        beside = _cpmd_trajectory_beside(path)
        return beside is not None and beside.name == "FTRAJECTORY"
    return False


class CPMDTrajectoryReader(TrajectoryReader):
    """``TRAJECTORY`` or ``FTRAJECTORY``: positions, velocities (and forces) from Hartree atomic
    units; elements and the time step from the files beside it (see the module docstring)."""

    def __init__(self, path, *, dt=None, topology=None):
        super().__init__(path, dt=dt)
        self.columns = _columns(self.path)
        if self.columns not in _COLUMNS:
            raise FormatError(f"{self.path.name}: not a CPMD TRAJECTORY (7 numbers per line) or FTRAJECTORY (10): "
                              f"its first line has {self.columns}")
        kind = _COLUMNS[self.columns]
        first = next(_rows(self.path, 1, self.columns), None)
        if first is None:
            raise FormatError(f"{self.path.name}: no steps")
        n_atoms = first[1].shape[1]
        self.masses, self.names = None, None
        found = _elements_beside(self.path, n_atoms)
        if found is not None:
            symbols, origin = found
            self.numbers, self.names = numbers_from_symbols(symbols), symbols
            source = f"elements from {origin.name}"
        elif topology is not None:
            from .mdanalysis import topology_identities

            self.numbers, self.masses, self.names = topology_identities(topology, n_atoms)
            source = f"elements from {Path(topology).name}"
        else:
            raise FormatError(f"{self.path.name}: a CPMD {kind} names no elements; put the run's TRAJEC.xyz or "
                              "GEOMETRY.xyz beside it, or pass --top (a file naming each atom's element)")
        if not self.numbers.all():
            i = int(np.argmin(self.numbers))
            raise FormatError(f"{self.path.name}: unknown element of atom {i} ({self.names[i] if self.names else '?'})")
        what = "positions, velocities and forces" if self.columns == 10 else "positions and velocities"
        self.notes = [f"{what} from {self.path.name} (CPMD {kind}: bohr, bohr/a.u. time × {_VELOCITY:.4f}"
                      + (f", Ha/bohr × {_FORCE:.4f}" if self.columns == 10 else "") + f"); {source}"]
        self.timestep_fs = None
        if dt is None and (step := cpmd_timestep(self.path.parent)) is not None:
            self.timestep_fs = step[0] * AU_TIME_FS
            self.notes.append(f"time step {step[0]:g} a.u. = {self.timestep_fs:.6g} fs per step from {step[1].name}")
        if self.columns == 7 and self.path.with_name("FTRAJECTORY").is_file():
            self.notes.append("FTRAJECTORY beside it holds the same frames with forces: give it instead to use them")

    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        start = 0
        for steps, values in _rows(self.path, chunk_size, self.columns):
            file_times = None if self.timestep_fs is None else steps * self.timestep_fs
            yield Trajectory(numbers=self.numbers, masses=self.masses, names=self.names,
                             positions=values[..., 0:3] * BOHR, velocities=values[..., 3:6] * _VELOCITY,
                             forces=values[..., 6:9] * _FORCE if self.columns == 10 else None,
                             times=self._times(start, len(steps), file_times), steps=steps)
            start += len(steps)


class CPMDQuantityFile(QuantitySource):
    """The velocities (``TRAJECTORY``, ``FTRAJECTORY``) or forces (``FTRAJECTORY``) of a CPMD
    trajectory, for other positions of the same run (``TRAJEC.xyz``), matched by step."""

    def __init__(self, path, quantity: str):
        columns = _columns(Path(path))
        if quantity not in ("velocities", "forces") or (quantity == "forces" and columns != 10):
            raise FormatError(f"{Path(path).name}: a CPMD {_COLUMNS.get(columns, 'trajectory')} does not give "
                              f"{quantity}" + (" (FTRAJECTORY has the forces)" if quantity == "forces" else ""))
        units = "bohr/a.u. time → Å/fs" if quantity == "velocities" else "Ha/bohr → eV/Å"
        super().__init__(path, quantity, f"CPMD, {units}")
        self._columns = columns

    def chunks(self, chunk_size) -> Iterator[QuantityChunk]:
        pick, factor = (slice(3, 6), _VELOCITY) if self.quantity == "velocities" else (slice(6, 9), _FORCE)
        for steps, values in _rows(self.path, chunk_size, self._columns):
            yield QuantityChunk(values[..., pick] * factor, steps, None)


def _open(path, **options):
    return CPMDTrajectoryReader(path, **options)


def _register() -> None:
    from . import Format, register_format

    # Fixed names without an extension: recognised by name and layout only.
    register_format(Format("cpmd", (), "CPMD TRAJECTORY / FTRAJECTORY (Hartree atomic units; elements from "
                           "TRAJEC.xyz/GEOMETRY.xyz or --top; TIMESTEP from the output/input beside it)",
                           _open, None, "yes (bohr/a.u. time)", sniff=is_cpmd_trajectory,
                           signature="the fixed name TRAJECTORY/FTRAJECTORY and lines of an integer and 6 "
                           "or 9 numbers"))


_register()
