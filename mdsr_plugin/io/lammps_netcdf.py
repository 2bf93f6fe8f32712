"""LAMMPS ``dump netcdf`` files: the AMBER NetCDF convention as LAMMPS writes it, without
a topology.

LAMMPS' ``dump ID group netcdf N file.nc id type x y z vx vy vz fx fy fz`` (the NETCDF
package, ``src/NETCDF/dump_netcdf.cpp``) writes a classic NetCDF file (CDF-5, "64-bit
data", where the netCDF library supports it) with

* global attributes ``Conventions = "AMBER"``, ``program = "LAMMPS"``, ``programVersion``;
* ``time[frame]``: the **MD step number**, with attributes ``units`` (the style's time
  unit: ``femtosecond`` for real, ``picosecond`` for metal...) and ``scale_factor`` (the
  run's ``timestep``, float32), so that time = step × scale_factor;
* ``cell_origin``, ``cell_lengths`` (``units`` = the style's length), ``cell_angles``
  (degrees) per frame; a non-periodic direction has length 0;
* per atom and frame, by the dump's columns: ``coordinates`` (``x y z``),
  ``unwrapped_coordinates`` (``xu``), ``scaled_coordinates`` (``xs``), ``velocities``,
  ``forces`` (each with the style's ``units``), and ``id``, ``type``, ``mass``, ``ix``...
  as one variable each, atoms sorted by id.

MDAnalysis' NCDF reader refuses such a file without a topology, and reads it as AMBER
(Å, ps); this reader gives LAMMPS' numbers in the run's units instead.  The style is
the one the unit attributes name, checked against ``lammps_units`` (``--lammps-units``)
and the log beside the file (:func:`mdsr_plugin.io.lammps.run_units`); atom types
become elements as in a text dump (``type_map``, a LAMMPS data file as ``topology``,
a ``mass`` variable: :func:`mdsr_plugin.io.lammps.dump_identities`).

The file is read with the netCDF4 package (every NetCDF flavour), else with
:mod:`scipy.io` (classic and 64-bit-offset files only, not CDF-5).
"""

from __future__ import annotations

import re
from typing import Iterator

import numpy as np

from .. import units
from ..trajectory import Trajectory
from .base import FormatError, TrajectoryReader
from .lammps import check_identities, dump_identities, missing_units_message, refuse_tiny_box, run_units
from .mdanalysis import completed_cells, parse_type_map

__all__ = ["LAMMPSNetCDFReader", "is_lammps_netcdf", "style_of_unit_attributes"]

#: ``program = "LAMMPS"`` in a classic NetCDF header: the name padded to 8 bytes, NC_CHAR (2),
#: the length 6 (4 bytes in CDF-1/2, 8 in CDF-5), the text.
_PROGRAM_LAMMPS = re.compile(rb"program\x00\x00\x00\x00\x02(?:\x00{3}|\x00{7})\x06LAMMPS")

#: (time unit, length unit) of each style, as ``src/NETCDF/netcdf_units.cpp`` writes them.
_STYLE_OF_UNITS = {
    ("femtosecond", "angstrom"): "real",
    ("picosecond", "angstrom"): "metal",
    ("second", "meter"): "si",
    ("second", "centimeter"): "cgs",
    ("femtoseconds", "bohr"): "electron",
    ("microseconds", "micrometers"): "micro",
    ("nanoseconds", "nanometers"): "nano",
    ("lj", "lj"): "lj",
}

#: Position variables, preferred first (unwrapped coordinates need no image flags).
_POSITIONS = ("unwrapped_coordinates", "coordinates", "scaled_coordinates")


def is_lammps_netcdf(name: str, head: bytes) -> bool:
    """Whether a file starting with ``head`` is a classic NetCDF file LAMMPS wrote (its
    global attribute ``program`` is ``LAMMPS``), whatever its name."""
    return head.startswith(b"CDF") and _PROGRAM_LAMMPS.search(head) is not None


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    return str(value).strip()


def _attribute(obj, name: str):
    """An attribute of a netCDF4 or scipy variable/dataset, or None."""
    return getattr(obj, name, None)


def style_of_unit_attributes(time_unit: str | None, length_unit: str | None) -> str | None:
    """The LAMMPS units style whose time and length units LAMMPS writes as these attributes
    (``"picosecond"``, ``"angstrom"`` → ``"metal"``); None where they name none."""
    if time_unit is None or length_unit is None:
        return None
    return _STYLE_OF_UNITS.get((time_unit.lower(), length_unit.lower()))


def _open_dataset(path):
    """The file opened with netCDF4 (scaling off: ``scale_factor`` is applied here), else scipy."""
    try:
        import netCDF4
    except ImportError:
        netCDF4 = None
    if netCDF4 is not None:
        try:
            dataset = netCDF4.Dataset(str(path), "r")
        except OSError as err:
            raise FormatError(f"{path.name}: not a readable NetCDF file ({err})") from None
        dataset.set_auto_maskandscale(False)
        return dataset
    from scipy.io import netcdf_file

    try:
        return netcdf_file(str(path), "r", mmap=False)
    except (TypeError, ValueError, OSError) as err:
        raise FormatError(f"{path.name}: scipy cannot read this NetCDF file ({err}); LAMMPS writes CDF-5 "
                          "files, which need the netCDF4 package: pip install netCDF4") from None


class LAMMPSNetCDFReader(TrajectoryReader):
    """A NetCDF file written by LAMMPS' ``dump netcdf``, in the units of its run.

    Positions (``unwrapped_coordinates``, else ``coordinates`` plus ``ix iy iz`` images
    where dumped, else ``scaled_coordinates``), ``velocities`` and ``forces`` are read in
    float64 from the file's float32 or float64, sorted by atom id, and converted with
    ``NATIVE_UNITS["lammps-<style>"]``; the cell from ``cell_lengths``/``cell_angles``
    (LAMMPS' restricted triclinic orientation), its origin kept (positions are not shifted).
    Times are each frame's step (the ``time`` variable) × the run's ``timestep`` (the
    ``scale_factor`` of ``time``, else the log's), unless ``dt`` is given.

    Parameters
    ----------
    path : path-like
    dt : float, optional
        Coarse step in fs, overriding the file's times.
    topology : path-like, optional
        The run's LAMMPS data file (masses, hence elements), atoms in id order.
    lammps_units : str, optional
        ``"real"``, ``"metal"``, ``"si"`` or ``"cgs"``; refused where the file's unit
        attributes say another style.
    type_map : dict or str, optional
        Element of each atom type: ``{"1": "O", "2": "H"}`` or ``"1:O,2:H"``.
    """

    def __init__(self, path, *, dt=None, topology=None, lammps_units=None, type_map=None):
        super().__init__(path, dt=dt)
        name = self.path.name
        type_map = parse_type_map(type_map)
        self._data = _open_dataset(self.path)
        try:
            self._setup(name, topology, lammps_units, type_map)
        except BaseException:
            self.close()
            raise

    def _setup(self, name, topology, lammps_units, type_map):
        variables = self._data.variables
        missing = [v for v in ("time", "cell_lengths", "cell_angles") if v not in variables]
        if missing:
            raise FormatError(f"{name}: no {', '.join(missing)} variable: not a LAMMPS dump netcdf file")
        self._position_name = next((v for v in _POSITIONS if v in variables), None)
        if self._position_name is None:
            raise FormatError(f"{name}: no positions (coordinates, unwrapped_coordinates or scaled_coordinates); "
                              "dump x y z, xu yu zu or xs ys zs")
        time = variables["time"]
        time_unit = _text(_attribute(time, "units"))
        length_unit = _text(_attribute(variables["cell_lengths"], "units"))
        file_style = style_of_unit_attributes(time_unit, length_unit)
        if file_style is None and (time_unit or length_unit):
            raise FormatError(f"{name}: unit attributes {time_unit!r} (time) and {length_unit!r} (length) name no "
                              f"LAMMPS units style; mdsr_plugin reads {', '.join(units.LAMMPS_UNIT_STYLES)}")
        self.run = run_units(self.path, lammps_units, file_style, dump_source="its unit attributes")
        self._has_velocities = "velocities" in variables
        self._has_forces = "forces" in variables
        self.n_frames = int(time.shape[0])
        if self.n_frames == 0:
            raise FormatError(f"{name}: no frames")
        self._n_atoms = int(variables[self._position_name].shape[1])
        if self.run.style is None:
            if self._has_velocities or self._has_forces:
                raise FormatError(missing_units_message(name))
            refuse_tiny_box(np.asarray(variables["cell_lengths"][0], dtype=np.float64), name)
        self._timestep = self._file_timestep(time)
        if self.dt_override is None and self._timestep is None:
            raise FormatError(f"{name}: the file records no time step; pass --dt or dt= (coarse step in fs), or "
                              f"put the run's log.lammps beside it ({self.run.timestep_note})")
        self._order = None
        ids = None
        if "id" in variables:
            ids = self._per_atom("id", 0).astype(np.int64)
            self._order = np.argsort(ids, kind="stable")
            ids = ids[self._order]
        self._ids = ids
        types = self._per_atom("type", 0) if "type" in variables else None
        masses = self._per_atom("mass", 0) if "mass" in variables else None
        if self._order is not None:
            types = None if types is None else types[self._order]
            masses = None if masses is None else masses[self._order]
        self._numbers, self._masses, self._names = dump_identities(
            self._n_atoms, None if types is None else [str(int(t)) for t in types], None, masses,
            topology=topology, ids=ids, type_map=type_map, mass_unit=self.run.mass, source=name)
        check_identities(self._numbers, self._masses, self._names, has_forces=self._has_forces, source=name)

    def _file_timestep(self, time) -> float | None:
        """fs per MD step: the ``scale_factor`` of ``time`` (float32, read back as the decimal
        it was written from: 0.001, not 0.0010000000475), else the run's log."""
        native = self.run.native
        scale = _attribute(time, "scale_factor")
        if scale is not None and native is not None:
            value = float(np.ravel(scale)[0])
            if value > 0:
                return float(str(np.float32(value))) * native.time
        return self.run.timestep

    def _per_atom(self, variable: str, frame: int) -> np.ndarray:
        """One frame of a per-atom variable, as written (file order)."""
        values = self._data.variables[variable]
        return np.asarray(values[frame] if len(values.shape) > 1 and values.shape[0] == self.n_frames
                          else values[:])

    def _block(self, variable: str, start: int, stop: int) -> np.ndarray:
        """Frames start..stop of a per-atom vector variable, float64, sorted by atom id."""
        values = np.asarray(self._data.variables[variable][start:stop], dtype=np.float64)
        return values if self._order is None else values[:, self._order]

    def _check_ids(self, start: int, stop: int) -> None:
        if self._ids is None:
            return
        ids = np.asarray(self._data.variables["id"][start:stop], dtype=np.int64)
        ids = ids if self._order is None else ids[:, self._order]
        changed = np.flatnonzero((ids != self._ids).any(axis=1))
        if changed.size:
            raise FormatError(f"{self.path.name}: frame {start + int(changed[0])}: atom ids differ from frame 0's "
                              "(LAMMPS sorts them: was the file appended to by another run?)")

    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        variables = self._data.variables
        length = self.run.length
        native = self.run.native
        for start in range(0, self.n_frames, chunk_size):
            stop = min(start + chunk_size, self.n_frames)
            self._check_ids(start, stop)
            origin = np.asarray(variables["cell_origin"][start:stop], dtype=np.float64) \
                if "cell_origin" in variables else np.zeros((stop - start, 3))
            lengths = np.asarray(variables["cell_lengths"][start:stop], dtype=np.float64)
            angles = np.asarray(variables["cell_angles"][start:stop], dtype=np.float64)
            # LAMMPS writes length 0 for a non-periodic direction (the AMBER convention): a slab
            # (boundary p p f) keeps its periodic rows, and gets a unit row normal to them where
            # the length is 0 (ASE's complete_cell), so that its atoms are unwrapped across the
            # periodic faces; that row is no box, as pbc says.
            pbc = lengths[0] > 0
            # in Å; over the length unit, the file's cell for its positions and image flags
            cell_a = completed_cells(np.column_stack([lengths * length, angles])) if pbc.any() else None
            cell = None if cell_a is None else cell_a / length
            positions = self._block(self._position_name, start, stop)
            if self._position_name == "scaled_coordinates":
                if not pbc.all():
                    raise FormatError(f"{self.path.name}: scaled coordinates in a box that is not periodic "
                                      "along every axis; dump x y z")
                positions = origin[:, None, :] + np.einsum("fni,fij->fnj", positions, cell)
            elif self._position_name == "coordinates" and cell is not None \
                    and all(v in variables for v in ("ix", "iy", "iz")):
                images = np.stack([self._block(v, start, stop) for v in ("ix", "iy", "iz")], axis=-1)
                images[..., ~pbc] = 0  # no image along a non-periodic axis
                positions = positions + np.einsum("fni,fij->fnj", images, cell)
            steps = np.rint(np.asarray(variables["time"][start:stop], dtype=np.float64)).astype(np.int64)
            file_times = None if self._timestep is None else steps * self._timestep
            yield Trajectory(
                numbers=self._numbers,
                masses=self._masses,
                names=self._names,
                positions=positions * length,
                times=self._times(start, stop - start, file_times),
                velocities=self._block("velocities", start, stop) * native.velocity if self._has_velocities else None,
                forces=self._block("forces", start, stop) * native.force if self._has_forces else None,
                cell=cell_a,
                pbc=pbc,
                steps=steps,
            )

    def close(self) -> None:
        data = getattr(self, "_data", None)
        if data is not None:
            data.close()
            self._data = None


def _open(path, **options):
    return LAMMPSNetCDFReader(path, **options)


def _register() -> None:
    from . import Format, register_format

    # No extension: ``.nc`` belongs to AMBER NetCDF (through MDAnalysis, with a topology);
    # LAMMPS' files are told apart by their ``program`` attribute.
    register_format(Format(
        "lammps-netcdf", (), "LAMMPS dump netcdf (AMBER convention, recognised by program = LAMMPS): "
        "positions, velocities, forces in the run's units", _open, None, "velocities variable (the run's units)",
        sniff=is_lammps_netcdf))


_register()
