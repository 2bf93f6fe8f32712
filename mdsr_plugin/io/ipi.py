"""i-PI's XYZ trajectories: ``PREFIX.pos_0.xyz``, ``.vel_0.xyz``, ``.for_0.xyz``.

Every frame's comment says what the file holds and in which units::

    # CELL(abcABC):  7.0 7.0 7.0 90.0 90.0 90.0  Step: 4  Bead: 0 positions{atomic_unit}  cell{atomic_unit}

Positions, velocities, forces and the cell each carry their own unit tag (one run can
write positions in Å and velocities in atomic units), so the tag of each file decides,
never its name.  The time between frames is the ``Step`` difference times the input's
``<timestep>``, read from the ``input.xml`` beside the files when there is one.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

import numpy as np

from ..elements import numbers_from_symbols
from ..trajectory import Trajectory
from ..units import AU_TIME_FS, FS_PER_PS, IPI_FORCE, IPI_LENGTH, IPI_VELOCITY
from .base import FormatError, TrajectoryReader
from .companions import QuantityChunk, QuantitySource
from .plain_xyz import first_comment, xyz_blocks

__all__ = ["is_ipi_comment", "ipi_quantity", "IPIPositionsReader", "IPIQuantityFile", "ipi_companions"]

_CELL = re.compile(r"#\s*CELL[\(\[{]abcABC[\)\]}]\s*:\s*((?:[-+0-9.eE]+\s+){5}[-+0-9.eE]+)")
_STEP = re.compile(r"Step:\s*(\d+)")
_TAG = re.compile(r"\b(positions|velocities|forces|x_centroid|v_centroid|f_centroid|cell)\{([^}]*)\}")
_ALIASES = {"x_centroid": "positions", "v_centroid": "velocities", "f_centroid": "forces"}
_TABLES = {"positions": IPI_LENGTH, "velocities": IPI_VELOCITY, "forces": IPI_FORCE, "cell": IPI_LENGTH}
_TIME_UNITS = {"femtosecond": 1.0, "picosecond": FS_PER_PS, "atomic_unit": AU_TIME_FS}
#: Companion file names i-PI's default and its regression tests use: pos/vel/for and the long names.
_KINDS = {"positions": ("pos", "positions", "xc"), "velocities": ("vel", "velocities", "vc"),
          "forces": ("for", "forces", "fc")}


def is_ipi_comment(comment: str | None) -> bool:
    return comment is not None and _CELL.match(comment) is not None and _TAG.search(comment) is not None


def _tags(comment: str) -> dict[str, str]:
    return {_ALIASES.get(name, name): unit.strip().lower() for name, unit in _TAG.findall(comment)}


def ipi_quantity(path) -> str | None:
    """What an i-PI XYZ file holds according to its first comment (positions, velocities, forces)."""
    comment = first_comment(path)
    if not is_ipi_comment(comment):
        return None
    quantities = [q for q in _tags(comment) if q != "cell"]
    return quantities[0] if quantities else None


def _factor(quantity: str, unit: str, source: str) -> float:
    table = _TABLES[quantity]
    if unit not in table:
        raise FormatError(f"{source}: i-PI unit {quantity}{{{unit}}} is not one mdsr_plugin converts "
                          f"(known: {', '.join(sorted(table))})")
    return table[unit]


def _parse(comments, quantity: str, source: str):
    """Steps (n,), cells (n, 3, 3) Å, and the unit factor of ``quantity`` from the comment lines."""
    from ase.geometry import cellpar_to_cell

    steps, cells, factor = [], [], None
    for k, comment in enumerate(comments):
        cell, step = _CELL.match(comment), _STEP.search(comment)
        tags = _tags(comment)
        if cell is None or step is None or quantity not in tags:
            raise FormatError(f"{source}: frame {k}: not an i-PI {quantity} comment line: {comment!r}")
        factor = _factor(quantity, tags[quantity], source)
        cell_factor = _factor("cell", tags.get("cell", "atomic_unit"), source)
        parameters = np.array(cell[1].split(), dtype=float)
        cells.append(cellpar_to_cell(np.concatenate([parameters[:3] * cell_factor, parameters[3:]])))
        steps.append(int(step[1]))
    return np.asarray(steps, dtype=np.int64), np.asarray(cells), factor


def input_timestep(folder) -> float | None:
    """The ``<timestep>`` (fs) of the i-PI ``input.xml`` in ``folder``, or None."""
    candidate = Path(folder) / "input.xml"
    if not candidate.is_file():
        return None
    try:
        node = ET.parse(candidate).getroot().find(".//timestep")
    except ET.ParseError:
        return None
    if node is None or not (node.text or "").strip():
        return None
    unit = node.get("units", "atomic_unit").strip().lower()
    if unit not in _TIME_UNITS:
        raise FormatError(f"{candidate.name}: timestep in {unit!r}, which mdsr_plugin does not convert")
    return float(node.text) * _TIME_UNITS[unit]


def ipi_companions(positions_path) -> dict[str, Path]:
    """The velocity and force files of the same prefix and bead beside an i-PI positions file."""
    path = Path(positions_path)
    match = re.match(r"^(?P<prefix>.+)\.(?P<kind>[a-z_]+?)_(?P<bead>\d+|c)\.xyz$", path.name)
    if match is None or match["kind"] not in _KINDS["positions"]:
        return {}
    found = {}
    for quantity in ("velocities", "forces"):
        for kind in _KINDS[quantity]:
            candidate = path.with_name(f"{match['prefix']}.{kind}_{match['bead']}.xyz")
            if candidate.is_file() and ipi_quantity(candidate) == quantity:
                found[quantity] = candidate
                break
    return found


class IPIPositionsReader(TrajectoryReader):
    """An i-PI positions file: positions and cell in the units their tags name, steps, and
    times from ``Step`` × the input's time step (or ``--dt`` per frame)."""

    def __init__(self, path, *, dt=None, topology=None):
        super().__init__(path, dt=dt)
        quantity = ipi_quantity(self.path)
        if quantity != "positions":
            raise FormatError(f"{self.path.name} holds i-PI {quantity}, not positions; give the positions file, "
                              f"whose {quantity} are then found beside it")
        self.timestep = input_timestep(self.path.parent)
        tags = _tags(first_comment(self.path))
        self.notes = [f"positions from {self.path.name} (i-PI, positions{{{tags['positions']}}} → Å, "
                      f"cell{{{tags.get('cell', 'atomic_unit')}}} → Å)"]
        if self.timestep is not None:
            self.notes.append(f"time step {self.timestep:g} fs per MD step from input.xml")

    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        start = 0
        first_step = None
        for block in xyz_blocks(self.path, chunk_size):
            numbers = numbers_from_symbols(block.symbols)
            if not numbers.all():
                i = int(np.argmin(numbers))
                raise FormatError(f"{self.path.name}: unknown element {block.symbols[i]!r} (atom {i})")
            steps, cells, factor = _parse(block.comments, "positions", self.path.name)
            first_step = steps[0] if first_step is None else first_step
            file_times = None if self.timestep is None else steps * self.timestep
            yield Trajectory(numbers=numbers, positions=block.values * factor, cell=cells, pbc=True,
                             times=self._times(start, block.n_frames, file_times), steps=steps)
            start += block.n_frames


class IPIQuantityFile(QuantitySource):
    """An i-PI velocities or forces file, converted by its own unit tag."""

    def __init__(self, path, quantity: str):
        held = ipi_quantity(path)
        if held != quantity:
            raise FormatError(f"{Path(path).name} holds i-PI {held}, not {quantity}")
        unit = _tags(first_comment(path))[quantity]
        target = "Å/fs" if quantity == "velocities" else "eV/Å"
        super().__init__(path, quantity, f"i-PI, {quantity}{{{unit}}} → {target}")

    def chunks(self, chunk_size) -> Iterator[QuantityChunk]:
        for block in xyz_blocks(self.path, chunk_size):
            steps, _, factor = _parse(block.comments, self.quantity, self.path.name)
            yield QuantityChunk(block.values * factor, steps, None)
