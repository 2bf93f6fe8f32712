"""CP2K's MD output: ``PROJECT-pos-1.xyz`` and the files it writes beside it.

CP2K (``MOTION/PRINT``) writes each quantity to a file of its own, every one with its
own print frequency:

=========================  ===================================  ============================
file                       holds                                units
=========================  ===================================  ============================
``PROJECT-pos-1.xyz``      positions                            Å
``PROJECT-vel-1.xyz``      velocities                           bohr / atomic unit of time
``PROJECT-frc-1.xyz``      forces (``PROJECT-NAME-frc-1.xyz``   hartree / bohr
                           when FORCES has a FILENAME)
``PROJECT-1.cell``         cell vectors per step (NPT)          Å (``Step Time[fs] Ax..Cz``)
=========================  ===================================  ============================

Every XYZ frame's comment is ``i = STEP, time = FS, E = HARTREE``.  The velocity and
force files have exactly the shape of the positions file, so their name is what tells
them apart; one is refused as positions.  The ``1`` is CP2K's replica index.
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
from .companions import QuantityChunk, QuantitySource
from .plain_xyz import xyz_blocks

__all__ = ["is_cp2k_comment", "cp2k_role", "CP2KPositionsReader", "CP2KQuantityFile", "CP2KCellFile",
           "cp2k_companions"]

_COMMENT = re.compile(r"^\s*i\s*=\s*(-?\d+)\s*,\s*time\s*=\s*([-+0-9.eE]+)")
_NAME = re.compile(r"^(?P<project>.+)-(?P<kind>pos|vel|frc)-(?P<replica>\d+)\.xyz$")
_ROLES = {"pos": "positions", "vel": "velocities", "frc": "forces"}


def is_cp2k_comment(comment: str | None) -> bool:
    """Whether an XYZ comment line is CP2K's ``i = STEP, time = FS, E = ...``."""
    return comment is not None and _COMMENT.match(comment) is not None


def cp2k_role(path) -> str | None:
    """``"positions"``, ``"velocities"`` or ``"forces"`` from a CP2K file name, else None."""
    match = _NAME.match(Path(path).name)
    return None if match is None else _ROLES[match["kind"]]


def _steps_and_times(comments, source: str):
    steps, times = [], []
    for k, comment in enumerate(comments):
        match = _COMMENT.match(comment)
        if match is None:
            raise FormatError(f"{source}: frame {k}: comment is not CP2K's 'i = STEP, time = FS, ...': {comment!r}")
        steps.append(int(match[1]))
        times.append(float(match[2]))
    return np.asarray(steps, dtype=np.int64), np.asarray(times)


def cp2k_companions(positions_path) -> dict[str, Path]:
    """The velocity, force and cell files CP2K wrote beside ``PROJECT-pos-1.xyz``."""
    path = Path(positions_path)
    match = _NAME.match(path.name)
    if match is None or match["kind"] != "pos":
        return {}
    project, replica = match["project"], match["replica"]
    found = {}
    velocity = path.with_name(f"{project}-vel-{replica}.xyz")
    if velocity.is_file():
        found["velocities"] = velocity
    # FORCES with a FILENAME gives PROJECT-NAME-frc-1.xyz: the plain name, else the one such file.
    forces = path.with_name(f"{project}-frc-{replica}.xyz")
    named = sorted(path.parent.glob(f"{_glob_escape(project)}-*-frc-{replica}.xyz"))
    if forces.is_file():
        found["forces"] = forces
    elif len(named) == 1:
        found["forces"] = named[0]
    cell = path.with_name(f"{project}-{replica}.cell")
    if cell.is_file():
        found["cell"] = cell
    return found


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


class CP2KPositionsReader(TrajectoryReader):
    """``PROJECT-pos-1.xyz``: positions (Å), MD steps and times (fs) from the comment lines."""

    def __init__(self, path, *, dt=None, topology=None):
        super().__init__(path, dt=dt)
        role = cp2k_role(self.path)
        if role in ("velocities", "forces"):
            raise FormatError(f"{self.path.name} holds CP2K {role}, not positions; give the positions file "
                              f"(…-pos-1.xyz), whose {role} are then found beside it")
        self.notes = [f"positions from {self.path.name} (CP2K, Å)"]

    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        start = 0
        for block in xyz_blocks(self.path, chunk_size):
            numbers = numbers_from_symbols(block.symbols)
            if not numbers.all():
                i = int(np.argmin(numbers))
                raise FormatError(f"{self.path.name}: unknown element {block.symbols[i]!r} (atom {i})")
            steps, times = _steps_and_times(block.comments, self.path.name)
            yield Trajectory(numbers=numbers, positions=block.values * NATIVE_UNITS["cp2k"].length,
                             times=self._times(start, block.n_frames, times), steps=steps)
            start += block.n_frames


class CP2KQuantityFile(QuantitySource):
    """``PROJECT-vel-1.xyz`` (bohr/a.u. time) or ``PROJECT-frc-1.xyz`` (hartree/bohr)."""

    _UNITS = {"velocities": ("velocity", "bohr/a.u. time → Å/fs"), "forces": ("force", "Ha/bohr → eV/Å")}

    def __init__(self, path, quantity: str):
        if quantity not in self._UNITS:
            raise FormatError(f"{Path(path).name}: a CP2K file gives velocities or forces, not {quantity}")
        role = cp2k_role(path)
        if role is not None and role != quantity:
            raise FormatError(f"{Path(path).name} holds CP2K {role}, not {quantity}")
        attribute, units = self._UNITS[quantity]
        super().__init__(path, quantity, f"CP2K, {units}")
        self._factor = getattr(NATIVE_UNITS["cp2k"], attribute)

    def chunks(self, chunk_size) -> Iterator[QuantityChunk]:
        for block in xyz_blocks(self.path, chunk_size):
            steps, times = _steps_and_times(block.comments, self.path.name)
            yield QuantityChunk(block.values * self._factor, steps, times)


class CP2KCellFile(QuantitySource):
    """``PROJECT-1.cell``: ``Step Time[fs] Ax Ay Az Bx By Bz Cx Cy Cz Volume`` per line, Å."""

    def __init__(self, path, quantity: str = "cell"):
        if quantity != "cell":
            raise FormatError(f"{Path(path).name}: a CP2K .cell file gives the cell, not {quantity}")
        super().__init__(path, "cell", "CP2K, Å")

    def chunks(self, chunk_size) -> Iterator[QuantityChunk]:
        try:
            table = np.loadtxt(self.path, comments="#", ndmin=2)
        except ValueError as err:
            raise FormatError(f"{self.path.name}: not a CP2K .cell file ({err})") from None
        if table.shape[1] != 12:
            raise FormatError(f"{self.path.name}: a CP2K .cell line has 12 columns (Step, Time, Ax..Cz, Volume), "
                              f"this one {table.shape[1]}")
        for first in range(0, len(table), chunk_size):
            rows = table[first:first + chunk_size]
            yield QuantityChunk(rows[:, 2:11].reshape(-1, 3, 3) * NATIVE_UNITS["cp2k"].length,
                                rows[:, 0].astype(np.int64), rows[:, 1])
