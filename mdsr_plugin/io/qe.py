"""Quantum ESPRESSO ``pw.x`` molecular dynamics: the output log of ``calculation='md'`` or
``'vc-md'``.

The log (often named ``*.out``, an extension many codes share) is recognised by its
``Program PWSCF`` line.  What one MD step prints, in order::

    Forces acting on atoms (cartesian axes, Ry/au):        forces of the current geometry
         atom    1 type  1   force =    fx fy fz           Ry/bohr (one line per atom)
    Entering Dynamics:    iteration =     k                 md (dynamics_module)
                          time      =   0.0010 pico-seconds
    Entering Dynamics;  it =     k   time =  0.00000 pico-seconds      vc-md (vcsmd)
    CELL_PARAMETERS (alat=  7.01033620)                     vc-md: the new cell, rows = vectors
    ATOMIC_POSITIONS (alat|bohr|angstrom|crystal)           the new positions, at k × dt

so the forces printed *after* an ``ATOMIC_POSITIONS`` block belong to it, and the first
forces belong to the starting geometry of the header (``positions (alat units)``, with
``lattice parameter (alat)`` and the ``crystal axes``).  pw.x prints no velocities.

Units: positions as labelled; cell rows in ``alat`` (the value in the label, else the
header's), bohr or Å; forces Ry/bohr (× 25.711 → eV/Å).  The time step is in Rydberg
atomic units (1 Ry a.u. = 2 Hartree a.u. = 0.0483777 fs): the ``Time step = 20.00 a.u.``
line of an md run; else (vc-md, or a restarted md, print none) the ``dt`` of the input
the log names (``Reading input from md.in``) when it is beside the log; else the printed
times when their rounding leaves dt within 1e-3; else ``--dt``.

ASE 3.29's ``espresso-out`` reader pairs positions and forces the same way, but it is not
used: it returns no times and no time step, converts with CODATA 2006 constants (forces
8e-8 apart from ``ase.units``, which every other reader here uses), and reads the whole
log into memory, where this reader streams it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import numpy as np

from ..elements import numbers_from_symbols
from ..trajectory import Trajectory
from ..units import AU_TIME_FS, BOHR, FS_PER_PS, HARTREE
from .base import FormatError, NotATrajectory, TrajectoryReader

__all__ = ["is_pwscf_output", "PWscfMDReader", "RY_TIME_FS", "RY_FORCE"]

RY_TIME_FS = 2.0 * AU_TIME_FS
"""Rydberg atomic unit of time in fs (≈ 0.0483777): pw.x's ``dt``."""

RY_FORCE = HARTREE / 2.0 / BOHR
"""Ry/bohr → eV/Å (≈ 25.711)."""

_ALAT = re.compile(r"lattice parameter \(alat\)\s*=\s*([-+0-9.eEdD]+)")
_CELLDM1 = re.compile(r"celldm\(1\)\s*=\s*([-+0-9.eE]+)")
_AXIS = re.compile(r"a\(\d\)\s*=\s*\(\s*([-+0-9.eE]+)\s+([-+0-9.eE]+)\s+([-+0-9.eE]+)\s*\)")
_TAU = re.compile(r"^\s*\d+\s+(\S+)\s+tau\(\s*\d+\)\s*=\s*\(\s*([-+0-9.eE]+)\s+([-+0-9.eE]+)\s+([-+0-9.eE]+)")
_SPECIES = re.compile(r"^\s*(\S+)\s+[-+0-9.eE]+\s+([-+0-9.eE]+)\s+(\w+)\s*\(")
_TIME_STEP = re.compile(r"^\s*Time step\s*=\s*([-+0-9.eE]+)\s*a\.u\.")
_MD_STEP = re.compile(r"Entering Dynamics:\s*iteration\s*=\s*(\d+)")
_VC_STEP = re.compile(r"Entering Dynamics;\s*it\s*=\s*(\d+)\s+time\s*=\s*([-+0-9.eE]+)\s*pico")
_MD_TIME = re.compile(r"^\s*time\s*=\s*([-+0-9.eE]+)\s*pico-seconds")
_CARD = re.compile(r"^\s*(ATOMIC_POSITIONS|CELL_PARAMETERS)\s*[({]?\s*([A-Za-z_]*)\s*(?:=\s*([-+0-9.eEdD]+))?")
_INPUT = re.compile(r"Reading input from\s+(\S+)")
_INPUT_DT = re.compile(r"(?<![\w(])dt\s*=\s*([-+0-9.eEdD]+)", re.I)
_FORCE = re.compile(r"^\s*atom\s+\d+\s+type\s+\d+\s+force\s*=\s*([-+0-9.eE]+)\s+([-+0-9.eE]+)\s+([-+0-9.eE]+)")


def is_pwscf_output(name: str, head: bytes) -> bool:
    """Whether ``head`` is the start of a pw.x log (its ``Program PWSCF`` line)."""
    return b"Program PWSCF" in head


def _float(text: str) -> float:
    return float(text.lower().replace("d", "e"))


class _Header:
    """What the log says before the first SCF: alat (bohr), cell (Å), atoms, species, time step."""

    def __init__(self, path: Path):
        self.alat = None
        self.axes: list[list[float]] = []
        self.labels: list[str] = []
        self.tau: list[list[float]] = []  # alat units
        self.species: dict[str, tuple[str, float]] = {}  # label -> (element, mass u)
        self.time_step_au = None
        self.input_name = None
        self.steps: list[int] = []  # every MD iteration number, in order
        self.printed_ps: list[float] = []  # the time printed with each (md: k·dt; vc-md: (k-1)·dt)
        self.vc = False
        self._scan(path)

    def _scan(self, path: Path) -> None:
        in_species = in_sites = False
        with open(path, "r", errors="replace") as handle:
            for line in handle:
                if self.alat is None and (m := _ALAT.search(line)):
                    self.alat = _float(m[1])
                elif self.alat is not None and not self.axes and (m := _CELLDM1.search(line)):
                    # celldm(1) is alat with 6 decimals where the alat line has 4.
                    if abs(float(m[1]) - self.alat) < 1e-4 * max(self.alat, 1.0):
                        self.alat = float(m[1])
                elif "crystal axes: (cart. coord. in units of alat)" in line and not self.axes:
                    found = [_AXIS.search(next(handle, "")) for _ in range(3)]
                    self.axes = [[float(x) for x in m.groups()] for m in found] if all(found) else []
                elif "atomic species" in line and "pseudopotential" in line and not self.species:
                    in_species = True
                elif in_species:
                    m = _SPECIES.match(line)
                    if m is None:
                        in_species = False
                    else:
                        self.species[m[1]] = (m[3], float(m[2]))
                elif "positions (alat units)" in line and not self.labels:
                    in_sites = True
                elif in_sites:
                    m = _TAU.match(line)
                    if m is None:
                        in_sites = False
                    else:
                        self.labels.append(m[1])
                        self.tau.append([float(m[2]), float(m[3]), float(m[4])])
                elif self.input_name is None and (m := _INPUT.search(line)):
                    self.input_name = m[1]
                elif self.time_step_au is None and (m := _TIME_STEP.match(line)):
                    self.time_step_au = float(m[1])
                elif m := _MD_STEP.search(line):
                    self.steps.append(int(m[1]))
                    t = _MD_TIME.match(next(handle, ""))
                    self.printed_ps.append(np.nan if t is None else float(t[1]))
                elif m := _VC_STEP.search(line):
                    self.vc = True
                    self.steps.append(int(m[1]))
                    self.printed_ps.append(float(m[2]))


class PWscfMDReader(TrajectoryReader):
    """A pw.x MD log: positions (Å), forces (eV/Å), the cell (vc-md: per step), times (fs).

    Frame 0 is the header's starting geometry with the first forces; frame k the
    ``ATOMIC_POSITIONS`` of iteration k with the forces printed after them.  Positions
    with no forces after them (the last step of a run) are left out, as are the first
    forces of a restarted run (they belong to the restart's geometry, which the log does
    not print).
    """

    def __init__(self, path, *, dt=None, topology=None):
        super().__init__(path, dt=dt)
        with open(self.path, "rb") as handle:
            if not is_pwscf_output(self.path.name.lower(), handle.read(8192)):
                raise FormatError(f"{self.path.name}: not a pw.x output (no 'Program PWSCF' line)")
        head = _Header(self.path)
        if not head.steps:
            raise NotATrajectory(f"{self.path.name}: a pw.x log with no MD step ('Entering Dynamics'); mdsr_plugin reads "
                              "calculation='md' or 'vc-md' runs, not scf/relax")
        if head.alat is None or len(head.axes) != 3 or not head.labels:
            raise FormatError(f"{self.path.name}: the pw.x header lacks the lattice parameter, crystal axes or "
                              "starting positions")
        self.alat = head.alat  # bohr
        self.labels = head.labels
        self.tau = np.array(head.tau)  # alat units
        self.numbers = self._numbers(head)
        self.masses = np.array([head.species[label][1] if label in head.species else np.nan
                                for label in self.labels])
        self.masses = None if np.isnan(self.masses).any() else self.masses
        self.cell0 = np.array(head.axes) * self.alat * BOHR
        self.restarted = head.steps[0] != 1
        self.first_step = head.steps[0] - 1
        kind = "vc-md" if head.vc else "md"
        self.notes = [f"positions, forces and cell from {self.path.name} (pw.x {kind}; positions as labelled, "
                      f"alat = {self.alat:g} bohr; forces Ry/bohr × {RY_FORCE:.4f}; pw.x prints no velocities)"]
        self.dt_fs = None if dt is not None else self._time_step(head)
        if self.restarted:
            self.notes.append(f"restarted run: frames from iteration {head.steps[0]} (the restart geometry, whose "
                              "forces come first, is not printed)")

    def _numbers(self, head: _Header) -> np.ndarray:
        elements = [head.species.get(label, (label, 0.0))[0] for label in self.labels]
        numbers = numbers_from_symbols(elements)
        if not numbers.all():
            i = int(np.argmin(numbers))
            raise FormatError(f"{self.path.name}: cannot tell the element of species {self.labels[i]!r} (atom {i})")
        return numbers

    def _time_step(self, head: _Header) -> float | None:
        """The MD time step in fs (see the module docstring for where it is looked for)."""
        if head.time_step_au is not None:
            dt = head.time_step_au * RY_TIME_FS
            self.notes.append(f"time step {head.time_step_au:g} Ry a.u. = {dt:.6g} fs ('Time step' line)")
            return dt
        if head.input_name is not None:
            candidate = self.path.with_name(Path(head.input_name).name)
            if candidate.is_file() and candidate.resolve() != self.path.resolve():
                au = _input_dt(candidate)
                dt = au * RY_TIME_FS
                self.notes.append(f"time step dt = {au:g} Ry a.u. = {dt:.6g} fs from {candidate.name}")
                return dt
        steps, printed = np.array(head.steps), np.array(head.printed_ps) * FS_PER_PS
        if len(steps) > 1 and np.isfinite(printed).all() and steps[-1] > steps[0]:
            span = steps[-1] - steps[0]
            dt = (printed[-1] - printed[0]) / span
            resolution = 0.01 if head.vc else 0.1  # fs: F8.5 ps (vcsmd), F8.4 ps (dynamics_module)
            if dt > 0 and resolution / span / dt < 1e-3:
                self.notes.append(f"time step {dt:.6g} fs from the printed times (±{resolution / span:.2g} fs; "
                                  "no 'Time step' line nor input beside the log)")
                return dt
        return None

    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        frames = self._frames()
        start = 0
        while True:
            batch = [f for _, f in zip(range(chunk_size), frames)]
            if not batch:
                break
            steps = np.array([b[0] for b in batch], dtype=np.int64)
            file_times = None if self.dt_fs is None else steps * self.dt_fs
            times = self._times(start, len(batch), file_times)
            yield Trajectory(numbers=self.numbers, masses=self.masses, positions=np.array([b[1] for b in batch]),
                             forces=np.array([b[2] for b in batch]), cell=np.array([b[3] for b in batch]),
                             pbc=True, times=times, steps=steps, names=list(self.labels))
            start += len(batch)
        if start == 0:
            raise FormatError(f"{self.path.name}: no MD step with both positions and forces")

    def _frames(self):
        """(step, positions Å, forces eV/Å, cell Å) per MD step, in file order."""
        n = len(self.labels)
        cell = self.cell0
        pending = None if self.restarted else (self.first_step, self.tau * self.alat * BOHR, cell)
        step = self.first_step
        with open(self.path, "r", errors="replace") as handle:
            for line in handle:
                if "Forces acting on atoms" in line:
                    forces = self._forces(handle, n)
                    if pending is not None:
                        yield pending[0], pending[1], forces * RY_FORCE, pending[2]
                    pending = None
                elif m := (_MD_STEP.search(line) or _VC_STEP.search(line)):
                    step = int(m[1])
                elif m := _CARD.match(line):
                    rows, labels = self._rows(handle, 3 if m[1] == "CELL_PARAMETERS" else n, m[1])
                    unit = m[2].lower()
                    if m[1] == "CELL_PARAMETERS":
                        cell = rows * self._length(unit, m[3], m[1])
                    else:
                        if labels != self.labels:
                            raise FormatError(f"{self.path.name}: iteration {step}: the atoms of ATOMIC_POSITIONS "
                                              "differ from the header's")
                        positions = rows @ cell if unit == "crystal" else rows * self._length(unit, None, m[1])
                        pending = (step, positions, cell)

    def _length(self, unit: str, value, card: str) -> float:
        if unit == "alat":
            return (self.alat if value is None else _float(value)) * BOHR
        if unit == "bohr":
            return BOHR
        if unit == "angstrom":
            return 1.0
        raise FormatError(f"{self.path.name}: {card} in {unit or 'no unit'!r}; mdsr_plugin reads alat, bohr, "
                          "angstrom" + (" and crystal" if card == "ATOMIC_POSITIONS" else ""))

    def _rows(self, handle, count: int, card: str):
        rows, labels = [], []
        for line in handle:
            if not line.strip() and not rows:
                continue
            parts = line.split()
            offset = 0 if card == "CELL_PARAMETERS" else 1
            try:
                rows.append([float(x) for x in parts[offset:offset + 3]])
            except ValueError:
                rows.append([])
            if len(rows[-1]) != 3:
                raise FormatError(f"{self.path.name}: {card} cut short or malformed at {line.strip()!r}")
            if offset:
                labels.append(parts[0])
            if len(rows) == count:
                return np.array(rows), labels
        raise FormatError(f"{self.path.name}: {card} cut short at the end of the file")

    def _forces(self, handle, n: int) -> np.ndarray:
        rows = []
        for line in handle:
            if not line.strip() and not rows:
                continue
            m = _FORCE.match(line)
            if m is None:
                raise FormatError(f"{self.path.name}: 'Forces acting on atoms' has {len(rows)} atom lines, "
                                  f"the header {n} atoms")
            rows.append([float(m[1]), float(m[2]), float(m[3])])
            if len(rows) == n:
                return np.array(rows)
        raise FormatError(f"{self.path.name}: forces cut short at the end of the file")


def _input_dt(path: Path) -> float:
    """``dt`` (Ry a.u.) of a pw.x input's ``&CONTROL`` namelist; 20 (pw.x's default) if absent."""
    text = path.read_text(errors="replace")
    control = re.search(r"&control(.*?)^\s*/", text, re.I | re.S | re.M)
    body = re.sub(r"!.*", "", control[1]) if control else ""
    match = _INPUT_DT.search(body)
    return 20.0 if match is None else _float(match[1])


def _open(path, **options):
    return PWscfMDReader(path, **options)


def _register() -> None:
    from . import Format, register_format

    # No extension: ``.out`` is every code's; the "Program PWSCF" line tells a pw.x log.
    register_format(Format("pwscf", (".pwo",), "Quantum ESPRESSO pw.x MD log (calculation='md'/'vc-md'; recognised "
                           "by 'Program PWSCF'): positions, forces, cell", _open, None,
                           "none (pw.x prints none)", sniff=is_pwscf_output,
                           signature="a 'Program PWSCF' line (pw.x's log)"))


_register()
