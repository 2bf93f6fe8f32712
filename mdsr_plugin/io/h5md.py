"""H5MD (HDF5 for molecular data) reader and writer, through h5py.

The writer follows H5MD 1.1 the way MDAnalysis' H5MD reader expects it:
``particles/<group>/{position,velocity,force}/{value,step,time}`` with per-frame
``step`` and ``time`` arrays (MDAnalysis cannot read the fixed-increment form),
``unit`` attributes it knows (``Angstrom``, ``fs``, ``Angstrom fs-1``,
``kJ mol-1 Angstrom-1``) and the units module they belong to, ``species`` (atomic
numbers), ``mass`` (u) and the box, all exactly as given.  MDAnalysis reads ``box/edges``
as lengths and angles (a along x, b in the xy plane), so for a cell in another orientation
its box and these positions disagree: the writer says so once (the TRR, XTC, NetCDF and
DCD writers rotate such vectors instead).  Extra per-frame values (the neural model's disagreement) go to ``observables/``,
and provenance to ``parameters/``; MDAnalysis ignores both.

The reader takes files of any writer, or refuses them in one line.  H5MD leaves
open what ``species`` numbers mean and what a value without a ``unit`` attribute is
in (the writer's reduced units), so the reader asks ``h5md/creator`` and follows
what that writer is known to store (:data:`WRITERS`):

- every ``unit`` attribute is converted (:func:`unit_factor`: H5MD's ``"nm ps-1"``
  syntax and ``"Angstrom/fs"``, symbols from :data:`UNIT_SYMBOLS`, built on
  ``ase.units``), except ZnH5MD's velocity and momentum labels, which do not say
  what ZnH5MD stores (ASE's arrays: Å and u·Å per ASE time unit);
- values without one are taken in the writer's known units, or in the system the
  caller names with ``units=`` (a key of :data:`mdsr_plugin.units.NATIVE_UNITS`, or a
  LAMMPS style such as ``"metal"``), else refused, naming what lacks a unit;
- ``species`` are atomic numbers only from writers known to store them (mdsr_plugin,
  ZnH5MD); LAMMPS' are atom types and other writers' unknown, so elements then come
  from ``topology=`` or the file is refused.

``step``/``time`` may be per-frame arrays or H5MD 1.1's fixed increments (scalars
with an optional ``offset``); ``species``, ``mass`` and ``box/edges`` may be fixed
datasets or time-dependent groups.  To teach the reader another writer, add an
entry to :data:`WRITERS`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from ase import units as _ase

from .. import units
from ..trajectory import Trajectory
from .base import FormatError, TrajectoryReader, TrajectoryWriter

__all__ = ["H5MDReader", "H5MDWriter", "UNIT_SYMBOLS", "WRITERS", "WriterConvention", "unit_factor"]

_FORCE_UNIT = "kJ mol-1 Angstrom-1"  # one MDAnalysis reads; eV/Å is not in its table
_CREATOR = "mdsr_plugin"

# ------------------------------------------------------------------------------ units
# Dimensions as powers of (length, mass, time); values in ASE's units (Å, u, eV, and
# its time unit Å·√(u/eV) ≈ 10.18 fs), so every factor below comes from ase.units.
_L, _M, _T = (1, 0, 0), (0, 1, 0), (0, 0, 1)
_ENERGY = (2, 1, -2)
_FORCE = (1, 1, -2)

#: What the writer says once of a cell MDAnalysis cannot pair with these positions.
MDA_ORIENTATION = ("the cell is not in the orientation MDAnalysis reads (a along x, b in the xy plane): H5MD "
                   "keeps it and the positions exactly, but MDAnalysis' H5MD reader would pair them with a box "
                   "rotated against them (distances across the box wrong); for MDAnalysis write .trr, .nc or "
                   ".dcd, whose vectors are rotated into its orientation")


#: Units of the per-frame values methods add (``Trajectory.frame_data``), for their ``unit``
#: attribute: the neural model's forward/backward disagreement, a reference run's energy.
OBSERVABLE_UNITS = {"disagreement": "Angstrom", "potential_energy": "eV"}

#: Unit symbols the reader converts: symbol → (value in ASE units, (length, mass, time) powers).
UNIT_SYMBOLS: dict[str, tuple[float, tuple[int, int, int]]] = {
    **dict.fromkeys(("Angstrom", "angstrom", "Ang", "A", "\u00c5"), (_ase.Angstrom, _L)),
    "nm": (_ase.nm, _L),
    "pm": (_ase.m * 1e-12, _L),
    "cm": (_ase.m * 1e-2, _L),
    "m": (_ase.m, _L),
    **dict.fromkeys(("bohr", "Bohr"), (_ase.Bohr, _L)),
    "fs": (_ase.fs, _T),
    "ps": (_ase.fs * units.FS_PER_PS, _T),
    "ns": (_ase.s * 1e-9, _T),
    "s": (_ase.s, _T),
    "AKMA": (_ase.fs * units.FS_PER_AKMA, _T),
    **dict.fromkeys(("u", "amu", "Da"), (1.0, _M)),
    "g": (_ase.kg * 1e-3, _M),
    "kg": (_ase.kg, _M),
    "eV": (_ase.eV, _ENERGY),
    # kJ/mol is exactly 1/KJMOL_PER_EV eV, the factor the writer (and MDAnalysis) uses, so that
    # forces written and read back are the same numbers (ase.units' CODATA 2014 kJ is 8e-9 off)
    "J": (_ase.mol / units.KJMOL_PER_EV * 1e-3, _ENERGY),
    "kJ": (_ase.mol / units.KJMOL_PER_EV, _ENERGY),
    "cal": (_ase.kcal * 1e-3, _ENERGY),
    "kcal": (_ase.kcal, _ENERGY),
    **dict.fromkeys(("Ha", "hartree", "Hartree"), (_ase.Hartree, _ENERGY)),
    **dict.fromkeys(("Ry", "Rydberg"), (_ase.Rydberg, _ENERGY)),
    "N": (_ase.J / _ase.m, _FORCE),
    "mol": (_ase.mol, (0, 0, 0)),
}

#: Each quantity's dimensions and its internal unit (Å, u, fs, Å/fs, u·Å/fs, eV/Å) in ASE units.
_QUANTITIES = {
    "length": (_L, 1.0),
    "mass": (_M, 1.0),
    "time": (_T, _ase.fs),
    "velocity": ((1, 0, -1), 1.0 / _ase.fs),
    "momentum": ((1, 1, -1), 1.0 / _ase.fs),
    "force": (_FORCE, 1.0),
}

_FACTOR = re.compile(r"(?P<symbol>[^\W\d_]+)\^?(?P<power>[+-]?\d+)?")


def unit_factor(unit: str, quantity: str) -> float:
    """Factor turning values in ``unit`` into mdsr_plugin's internal unit of ``quantity``.

    Parameters
    ----------
    unit : str
        An H5MD unit string: factors separated by spaces, each a symbol of
        :data:`UNIT_SYMBOLS` with an optional signed power (``"kJ mol-1 nm-1"``), and
        at most one leading number; ``/`` (``"eV/Angstrom"``, ``"kJ/(mol*nm)"``) puts
        the factors after it in the denominator.
    quantity : {"length", "mass", "time", "velocity", "momentum", "force"}

    Returns
    -------
    float
        Internal value = file value × this factor (into Å, u, fs, Å/fs, u·Å/fs, eV/Å).

    Raises
    ------
    FormatError
        For a symbol not in :data:`UNIT_SYMBOLS` or a unit of another dimension.
    """
    value, dims = 1.0, np.zeros(3, dtype=int)
    text = unit.replace("(", " ").replace(")", " ").replace("*", " ").replace("\u00b7", " ")
    for position, part in enumerate(text.split("/")):
        sign = 1 if position == 0 else -1
        for token in part.split():
            try:
                value *= float(token) ** sign
                continue
            except ValueError:
                pass
            match = _FACTOR.fullmatch(token)
            if match is None or match["symbol"] not in UNIT_SYMBOLS:
                raise FormatError(f"unit {unit!r}: unknown symbol {token!r} "
                                  f"(known: {', '.join(sorted(UNIT_SYMBOLS, key=str.lower))})")
            power = sign * int(match["power"] or 1)
            symbol_value, symbol_dims = UNIT_SYMBOLS[match["symbol"]]
            value *= symbol_value**power
            dims += power * np.asarray(symbol_dims)
    expected, internal = _QUANTITIES[quantity]
    if tuple(dims) != expected:
        raise FormatError(f"unit {unit!r} is no {quantity} unit")
    return value / internal


# ----------------------------------------------------------------- writers' conventions
#: ASE's own arrays: Å, fs (ZnH5MD's time labels), Å and u·Å per ASE time unit, eV/Å.
_ASE_ARRAYS = units.NativeUnits("ASE: Å; Å/ASE time; eV/Å", 1.0, 1.0, units.ASE_TIME_PER_FS, 1.0)


@dataclass(frozen=True)
class WriterConvention:
    """What one H5MD writer stores where the format leaves it open.

    Attributes
    ----------
    label : str
        How messages name the writer.
    species : {"elements", "types", "unknown"}
        Whether its ``species`` are atomic numbers, atom types (LAMMPS), or not known.
    unlabelled : NativeUnits or None
        The units of its values without a ``unit`` attribute; None where unknown
        (H5MD: such values are in the writer's reduced units).
    ase_velocities : bool
        Whether its velocity and momentum values are ASE's arrays (per ASE time unit)
        whatever their ``unit`` label says.
    """

    label: str
    species: str
    unlabelled: units.NativeUnits | None = None
    ase_velocities: bool = False


#: Known writers by ``h5md/creator/name`` (lower case).  LAMMPS ``dump h5md`` writes
#: ``atom->type`` as species and no units; ZnH5MD (checked up to 0.4.8, and the
#: MDAnalysisTests ``cu.h5md`` of 0.2) writes ``atoms.get_velocities()`` labelled
#: ``Angstrom/fs`` and ``atoms.arrays["momenta"]`` labelled ``eV/fs``, both per ASE
#: time unit; MDAnalysis writes no species and labels every value.
WRITERS: dict[str, WriterConvention] = {
    "mdsr_plugin": WriterConvention("mdsr_plugin", "elements", units.NATIVE_UNITS["internal"]),
    "znh5md": WriterConvention("ZnH5MD", "elements", _ASE_ARRAYS, ase_velocities=True),
    "lammps": WriterConvention("LAMMPS dump h5md", "types"),
}
_UNKNOWN_WRITER = WriterConvention("", "unknown")


def _native_units(name: str) -> units.NativeUnits:
    """``units=``: a key of NATIVE_UNITS, or a LAMMPS style name (``"metal"``)."""
    key = name.lower()
    if key not in units.NATIVE_UNITS and f"lammps-{key}" in units.NATIVE_UNITS:
        key = f"lammps-{key}"
    if key not in units.NATIVE_UNITS:
        styles = ", ".join(units.LAMMPS_UNIT_STYLES)
        others = ", ".join(k for k in units.NATIVE_UNITS if not k.startswith("lammps-"))
        raise FormatError(f"units={name!r} is not a unit system mdsr_plugin converts: give a LAMMPS style "
                          f"({styles}; lj is reduced, without physical units) or one of {others}")
    return units.NATIVE_UNITS[key]


def _text(value) -> str:
    if isinstance(value, np.ndarray) and value.shape == (1,):
        value = value[0]
    return value.decode() if isinstance(value, bytes) else str(value)


def _unit_attribute(dataset) -> str | None:
    unit = dataset.attrs.get("unit")
    return None if unit is None else _text(unit).strip()


class H5MDReader(TrajectoryReader):
    """Read ``particles/<group>`` of an H5MD file in chunks.

    Parameters
    ----------
    path : path-like
    topology : path-like, optional
        Elements, masses and names where the file's ``species`` are no elements (LAMMPS
        atom types, an unknown writer's numbers) or absent.
    dt : float, optional
        Coarse time step in fs, overriding the file's ``time``.
    group : str, optional
        Particle group; by default ``"all"``, or the only one.
    units : str, optional
        The unit system of values without a ``unit`` attribute: a LAMMPS ``units``
        style (``"real"``, ``"metal"``, ``"si"``, ``"cgs"``) or another key of
        :data:`mdsr_plugin.units.NATIVE_UNITS`.  ``unit`` attributes always win.
    """

    def __init__(self, path, *, topology=None, dt=None, group=None, units=None):
        super().__init__(path, dt=dt)
        import h5py

        try:
            self._file = h5py.File(self.path, "r")
        except OSError as err:
            raise FormatError(f"{self.path.name}: not a readable HDF5 file ({err})") from None
        try:
            self._open(group, topology, units)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ opening
    def _open(self, group, topology, units_name) -> None:
        import h5py

        name = self.path.name
        particles = self._file.get("particles")
        if not isinstance(particles, h5py.Group) or not len(particles):
            raise FormatError(f"{name}: no 'particles' group; not an H5MD trajectory")
        if group is None:
            if "all" not in particles and len(particles) > 1:
                raise FormatError(f"{name}: several particle groups ({', '.join(particles)}); pass group=")
            group = "all" if "all" in particles else next(iter(particles))
        if group not in particles:
            raise FormatError(f"{name}: no particle group {group!r} (it has {', '.join(particles)})")
        self._group, self._where = particles[group], f"particles/{group}"
        creator = self._file.get("h5md/creator")
        self.creator = "" if creator is None else _text(creator.attrs.get("name", "")).strip()
        self.convention = WRITERS.get(self.creator.lower(), _UNKNOWN_WRITER)
        try:
            self._system = self.convention.unlabelled if units_name is None else _native_units(units_name)
        except FormatError as err:
            raise FormatError(f"{name}: {err}") from None
        self._system_name = units_name
        self._writer = self.convention.label or (f"writer {self.creator!r}" if self.creator else "an unnamed writer")

        position = self._group.get("position")
        if position is None:
            raise FormatError(f"{name}: {self._where} has no positions")
        values = self._value(position)
        if values.ndim != 3 or values.shape[2] != 3:
            raise FormatError(f"{name}: {self._where}/position has shape {values.shape}; "
                              "mdsr_plugin reads 3-dimensional positions (frames, atoms, 3)")
        self.n_frames, n_atoms = values.shape[:2]
        self._steps = self._axis(position, "step")
        file_times = self._axis(position, "time")

        missing: list[str] = []  # what lacks a unit, refused together in one line
        self._factors = {"position": self._factor(values, "length", "position", missing)}
        self._times_fs = None
        if file_times is not None and self.dt_override is None:
            self._times_fs = file_times * self._factor(position["time"], "time", "time", missing)
        self._vectors = {"position": values}
        for quantity, names in (("velocity", ("velocity",)), ("force", ("force", "forces"))):
            element = next((self._group[n] for n in names if n in self._group), None)
            if element is not None:
                self._vectors[quantity] = self._aligned(element, quantity)
                self._factors[quantity] = self._factor(self._vectors[quantity], quantity, quantity, missing)
        momentum = self._group.get("momentum")
        if "velocity" not in self._vectors and momentum is not None:  # ZnH5MD 0.2
            self._vectors["momentum"] = self._aligned(momentum, "momentum")
            self._factors["momentum"] = self._factor(self._vectors["momentum"], "momentum", "momentum", missing)
        self._cell, self._pbc = self._read_box(missing)

        problems = []
        if missing:
            problems.append(self._missing_units(missing))
        identities = self._identities(n_atoms, topology, problems)
        if problems:
            raise FormatError(f"{name}: " + "; ".join(problems))
        self._numbers, self._masses, self._names = identities
        self._observables = self._frame_observables()
        self.notes = self._describe(topology)

    def _value(self, element):
        """The ``value`` dataset of a time-dependent element, or the fixed dataset itself."""
        import h5py

        if isinstance(element, h5py.Group):
            if "value" not in element:
                raise FormatError(f"{self.path.name}: {element.name} has no 'value' dataset")
            return element["value"]
        return element

    def _axis(self, element, key: str) -> np.ndarray | None:
        """Per-frame ``step`` or ``time`` of a time-dependent element (n_frames,), from the
        per-frame array or from H5MD 1.1's fixed increment (a scalar, with an ``offset``)."""
        import h5py

        if not isinstance(element, h5py.Group) or key not in element:
            return None
        dataset = element[key]
        if dataset.ndim == 0:
            offset = np.asarray(dataset.attrs.get("offset", 0)).reshape(-1)[0]
            return offset + np.arange(self.n_frames) * dataset[()]
        if dataset.shape != (self.n_frames,):
            raise FormatError(f"{self.path.name}: {element.name}/{key} has {dataset.shape[0]} values "
                              f"for {self.n_frames} frames")
        return np.asarray(dataset[()])

    def _aligned(self, element, quantity: str):
        """``element``'s values, checked to be stored at the positions' frames."""
        values = self._value(element)
        frames = values.shape[0] if values.ndim else 0
        if frames != self.n_frames:
            raise FormatError(f"{self.path.name}: {quantity} is stored for {frames} frames, positions for "
                              f"{self.n_frames}; mdsr_plugin reads quantities stored at the same steps")
        steps = self._axis(element, "step")
        if steps is not None and self._steps is not None and not np.array_equal(steps, self._steps):
            raise FormatError(f"{self.path.name}: {quantity} is stored at other steps than the positions "
                              f"(first {steps[0]} vs {self._steps[0]})")
        return values

    def _factor(self, dataset, quantity: str, what: str, missing: list[str]) -> float:
        """Internal value = file value × this, from ``dataset``'s unit attribute, the writer's
        convention or ``units=``; adds ``what`` to ``missing`` when none of them tells."""
        label = _unit_attribute(dataset)
        if quantity in ("velocity", "momentum") and self.convention.ase_velocities:
            # ZnH5MD stores ASE's arrays whatever it labels them ("Angstrom/fs", "eV/fs").
            return units.ASE_TIME_PER_FS
        if label is not None:
            try:
                return unit_factor(label, quantity)
            except FormatError as err:
                raise FormatError(f"{self.path.name}: {dataset.name}: {err}") from None
        if self._system is None:
            missing.append(what)
            return 1.0
        if quantity == "momentum":  # with masses in u
            return self._system.velocity
        return getattr(self._system, quantity)

    def _missing_units(self, missing: list[str]) -> str:
        styles = ", ".join(repr(s) for s in units.LAMMPS_UNIT_STYLES)
        if self.convention.label == WRITERS["lammps"].label:
            return (f"written by LAMMPS dump h5md, which records no units (its values are in the run's "
                    f"`units` style, which it does not record either); give it as units= ({styles})")
        return (f"{', '.join(missing)} {'has' if len(missing) == 1 else 'have'} no unit attribute and "
                f"{self._writer} is not known to write fixed units (H5MD: the writer's reduced units); "
                f"give the file's unit system as units= (a LAMMPS style {styles}, or 'internal' for "
                "Å, fs, Å/fs, eV/Å)")

    def _read_box(self, missing: list[str]):
        """The cell: a fixed (3, 3) array in Å, or (time-dependent ``value``, factor); and pbc."""
        import h5py

        box = self._group.get("box")
        if box is None or "edges" not in box:
            return None, np.zeros(3, dtype=bool)
        boundary = box.attrs.get("boundary")
        boundary = [] if boundary is None else [_text(b) for b in np.asarray(boundary).reshape(-1)]
        pbc = np.array([b == "periodic" for b in boundary] or [True] * 3)
        edges = box["edges"]
        value = self._aligned(edges, "box/edges") if isinstance(edges, h5py.Group) else edges
        factor = self._factor(value, "length", "box/edges", missing)
        if not isinstance(edges, h5py.Group):
            fixed = np.asarray(value[()], dtype=np.float64)
            return (np.diag(fixed) if fixed.ndim == 1 else fixed) * factor, pbc
        return (value, factor), pbc

    # -------------------------------------------------------------- identities
    def _identities(self, n_atoms: int, topology, problems: list[str]):
        species = self._group.get("species")
        kind = self.convention.species if species is not None else "absent"
        if kind == "elements":
            numbers = self._per_atom(species, "species", n_atoms)
            if not np.array_equal(numbers, np.round(numbers)):
                problems.append("species are not whole numbers")
                return None
            mass = self._group.get("mass")
            masses = None
            if mass is not None:  # without a unit: u, as both writers of element species store it
                label = _unit_attribute(self._value(mass))
                try:
                    factor = 1.0 if label is None else unit_factor(label, "mass")
                except FormatError as err:
                    raise FormatError(f"{self.path.name}: {self._value(mass).name}: {err}") from None
                masses = self._per_atom(mass, "mass", n_atoms) * factor
            return numbers.astype(np.int64), masses, None
        if topology is not None:
            from .mdanalysis import topology_identities

            numbers, masses, names = topology_identities(topology, n_atoms)
            unknown = np.flatnonzero(numbers == 0) if masses is None else []
            if len(unknown):
                i = int(unknown[0])
                label = f" ({names[i]})" if names else ""
                problems.append(f"topology {Path(topology).name} gives atom {i}{label} neither an element nor a "
                                "mass; give one that names the elements (XYZ, PDB, a LAMMPS data file with Masses)")
            return numbers, masses, names
        fix = "pass --top (topology=) with a file naming each atom's element, in the file's atom order (XYZ, PDB...)"
        if kind == "types":
            problems.append(f"its species are LAMMPS atom types, not elements; {fix}")
        elif kind == "unknown":
            problems.append(f"species written by {self._writer} are not known to be atomic numbers; {fix}")
        else:
            problems.append(f"{self._where} has no species (elements); {fix}")
        return None

    def _per_atom(self, element, what: str, n_atoms: int) -> np.ndarray:
        """A per-atom property, fixed or time-dependent (taken from its first frame, and
        refused if its last frame differs: atoms changing identity cannot be interpolated)."""
        values = self._value(element)
        first = np.asarray(values[0] if values.ndim == 2 else values[()], dtype=np.float64).reshape(-1)
        if values.ndim == 2 and values.shape[0] > 1:
            last = np.asarray(values[-1], dtype=np.float64).reshape(-1)
            if not np.array_equal(first, last):
                raise FormatError(f"{self.path.name}: {what} changes between frames; mdsr_plugin reads "
                                  "trajectories whose atoms keep their identity")
        if first.shape != (n_atoms,) or not np.isfinite(first).all():
            raise FormatError(f"{self.path.name}: {what} has {first.size} values (or NaN) for {n_atoms} atoms")
        return first

    def _frame_observables(self) -> dict:
        """Per-frame observables stored as ``observables/<name>/value`` (ours: energies, uncertainty)."""
        import h5py

        observables = self._file.get("observables")
        if not isinstance(observables, h5py.Group):
            return {}
        return {
            name: group["value"]
            for name, group in observables.items()
            if isinstance(group, h5py.Group) and isinstance(group.get("value"), h5py.Dataset)
            and group["value"].shape[:1] == (self.n_frames,)
        }

    def _describe(self, topology) -> list[str]:
        names = {"velocity": "velocities", "momentum": "velocities (momenta ÷ masses)", "force": "forces"}
        stored = [names[q] for q in self._vectors if q != "position"] + (["cell"] if self._cell is not None else [])
        notes = [f"positions{''.join(', ' + q for q in stored)} from {self.path.name} (H5MD by {self._writer})"]
        if self.convention.ase_velocities and ("velocity" in self._vectors or "momentum" in self._vectors):
            notes.append("velocities taken per ASE time unit (≈10.18 fs), as ZnH5MD stores them whatever its label")
        if self._system_name is not None:
            notes.append(f"values without a unit attribute in {self._system.name} (units={self._system_name!r})")
        if topology is not None and self.convention.species != "elements":
            notes.append(f"elements from {Path(topology).name}")
        return notes

    # ------------------------------------------------------------------ reading
    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        for start in range(0, self.n_frames, chunk_size):
            stop = min(start + chunk_size, self.n_frames)
            arrays = {q: np.asarray(v[start:stop], dtype=np.float64) * self._factors[q]
                      for q, v in self._vectors.items()}
            velocities = arrays.get("velocity")
            if "momentum" in arrays:
                velocities = arrays["momentum"] / self._masses_or_standard()[:, None]
            cell = self._cell
            if isinstance(cell, tuple):  # time-dependent box
                value, factor = cell
                cell = np.asarray(value[start:stop], dtype=np.float64) * factor
                if cell.ndim == 2:
                    cell = np.einsum("fi,ij->fij", cell, np.eye(3))
            yield Trajectory(
                numbers=self._numbers,
                masses=self._masses,
                names=self._names,
                positions=arrays["position"],
                times=self._times(start, stop - start,
                                  None if self._times_fs is None else self._times_fs[start:stop]),
                velocities=velocities,
                forces=arrays.get("force"),
                cell=cell,
                pbc=self._pbc,
                steps=None if self._steps is None else self._steps[start:stop],
                frame_data={name: values[start:stop] for name, values in self._observables.items()},
            )

    def _masses_or_standard(self) -> np.ndarray:
        from ..elements import standard_masses

        return self._masses if self._masses is not None else standard_masses(self._numbers)

    def close(self):
        if getattr(self, "_file", None) is not None:
            self._file.close()
            self._file = None


class H5MDWriter(TrajectoryWriter):
    """Write an H5MD file readable by MDAnalysis' H5MD reader.

    Parameters
    ----------
    path : path-like
    dtype : numpy dtype
        Storage type of positions, velocities and forces (float64 keeps the
        coarse frames bit-exact; float32 halves the size).
    parameters : dict, optional
        Provenance (method, model id, factor...) stored as JSON in ``parameters/``.
    compression : {"gzip", "lzf", None}
        HDF5 filter of the per-frame data (gzip is readable by every HDF5 tool).
    """

    def __init__(self, path, *, dtype=np.float64, parameters=None, compression="gzip"):
        super().__init__(path)
        self.dtype = np.dtype(dtype)
        self.parameters = parameters or {}
        self.compression = compression

    def _open(self, first: Trajectory) -> None:
        import h5py

        # No raw-data chunk cache: with HDF5's default (1 MiB per dataset) the writer's resident
        # memory grew with every block appended (+46 MB over 665 000 frames of 96 atoms, without
        # bound), without it it stays flat, and appending whole blocks is no slower
        # (docs/benchmarks.md, "Where the creep comes from").
        self._file = h5py.File(self.temporary_paths[0], "w", rdcc_nbytes=0)
        root = self._file.create_group("h5md")
        root.attrs["version"] = np.array([1, 1])
        # values carry "unit" attributes, which H5MD 1.1 ties to its units module
        root.create_group("modules").create_group("units").attrs["version"] = np.array([1, 0])
        root.create_group("author").attrs["name"] = "mdsr_plugin user"
        creator = root.create_group("creator")
        creator.attrs["name"] = _CREATOR
        from .. import __version__

        creator.attrs["version"] = __version__
        group = self._file.create_group("particles/all")
        n = first.n_atoms
        group.create_dataset("species", data=first.numbers.astype(np.int32))
        group.create_dataset("mass", data=first.masses).attrs["unit"] = "u"
        box = group.create_group("box")
        box.attrs["dimension"] = 3
        if first.cell is not None:
            box.attrs["boundary"] = np.array(
                [b"periodic" if p else b"none" for p in first.pbc], dtype="S8"
            )
        else:
            box.attrs["boundary"] = np.array([b"none"] * 3, dtype="S8")
        self._series = {}
        self._series["position"] = self._time_series(group, "position", (n, 3), "Angstrom")
        if first.velocities is not None:
            self._series["velocity"] = self._time_series(group, "velocity", (n, 3), "Angstrom fs-1")
        if first.forces is not None:
            self._series["force"] = self._time_series(group, "force", (n, 3), _FORCE_UNIT)
        if first.cell is not None:
            self._series["edges"] = self._time_series(box, "edges", (3, 3), "Angstrom")
        for key, values in first.frame_data.items():
            self._series[f"observables/{key}"] = self._time_series(
                self._file.require_group("observables"), key, values.shape[1:], OBSERVABLE_UNITS.get(key)
            )
        params = self._file.create_group("parameters")
        params.attrs["mdsr_plugin"] = json.dumps(self.parameters, sort_keys=True)

    def _time_series(self, parent, name, shape, unit):
        group = parent.create_group(name)
        is_vector = len(shape) == 2 and shape[1] == 3
        value = group.create_dataset(
            "value",
            shape=(0, *shape),
            maxshape=(None, *shape),
            dtype=self.dtype if is_vector else np.float64,
            chunks=(max(1, min(1024, 2**20 // max(1, 8 * int(np.prod(shape))))), *shape),
            **self._filters(),
        )
        if unit:
            value.attrs["unit"] = unit
        step = group.create_dataset("step", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(4096,))
        time = group.create_dataset("time", shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(4096,))
        time.attrs["unit"] = "fs"
        return value, step, time

    def _filters(self) -> dict:
        if self.compression != "gzip":
            return {"compression": self.compression}
        # Byte-shuffled gzip at level 1: on trajectory floats it is both smaller (~20 %
        # below the raw size) and faster than gzip's default level 4 without shuffling
        # (~5 %); see docs/benchmarks.md.
        return {"compression": "gzip", "compression_opts": 1, "shuffle": True}

    def _write(self, traj: Trajectory) -> None:
        steps = traj.steps if traj.steps is not None else self.frames_written + np.arange(traj.n_frames)
        arrays = {
            "position": traj.positions,
            "velocity": traj.velocities,
            "force": None if traj.forces is None else traj.forces * units.KJMOL_PER_EV,
            "edges": traj.cell,
        }
        from .mdanalysis import in_mda_orientation

        if traj.cell is not None and not in_mda_orientation(traj.cell).all():
            self.say_once("orientation", MDA_ORIENTATION)
        arrays.update({f"observables/{k}": v for k, v in traj.frame_data.items()})
        for key, (value, step, time) in self._series.items():
            data = arrays.get(key)
            if data is None:
                raise FormatError(f"{self.path.name}: a later chunk lacks {key} that the first had")
            old = value.shape[0]
            new = old + traj.n_frames
            for dataset in (value, step, time):
                dataset.resize(new, axis=0)
            value[old:new] = data
            step[old:new] = steps
            time[old:new] = traj.times

    def _close(self) -> None:
        self._file.close()
