"""Formats read and written through MDAnalysis: DCD (+ NAMD velocity DCD), TRR, XTC,
AMBER NetCDF, LAMMPS dump.

Units at this boundary: MDAnalysis gives Å, ps, Å/ps and kJ/(mol·Å); we convert
to Å, fs, Å/fs and eV/Å here.  A NAMD velocity DCD stores velocities as
"positions" in Å per AKMA time unit.
"""

from __future__ import annotations

import errno
import functools
import re
import shutil
import warnings
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np

from .. import units
from ..elements import symbols_of
from ..trajectory import Trajectory
from .base import Float32Times, FormatError, TrajectoryReader, TrajectoryWriter, float32_rounding
from .binary_ends import check_complete

__all__ = [
    "MDAnalysisReader",
    "MDAnalysisWriter",
    "DCDWriter",
    "topology_identities",
    "universe_identities",
    "numbers_from_element_symbols",
    "numbers_from_masses",
    "numbers_from_names",
    "numbers_from_type_map",
    "parse_type_map",
    "refuse_virtual_sites",
    "fill_unknown",
    "open_topology",
    "cell_to_dimensions",
    "completed_cells",
    "dimensions_to_cell",
    "register_universe_reader",
    "unregister_universe_reader",
    "universe_reader_class",
]


def dimensions_to_cell(dimensions) -> np.ndarray:
    """MDAnalysis box ``[a, b, c, alpha, beta, gamma]`` (Å, degrees) → cell rows, shape (..., 3, 3), Å."""
    from ase.geometry import cellpar_to_cell

    dimensions = np.asarray(dimensions, dtype=np.float64)
    if dimensions.ndim == 1:
        return cellpar_to_cell(dimensions)
    return np.array([cellpar_to_cell(d) for d in dimensions])


def completed_cells(dimensions) -> np.ndarray:
    """Cell rows (F, 3, 3), Å, of MDAnalysis boxes (F, 6) some of whose lengths may be 0 (a
    non-periodic axis): each such row becomes a 1 Å row normal to the others, as ASE
    completes a cell, so that positions can be unwrapped across the periodic faces."""
    from ase.geometry import complete_cell

    cells = dimensions_to_cell(np.asarray(dimensions, dtype=np.float64).reshape(-1, 6))
    if np.all(np.asarray(dimensions)[..., :3] > 0):
        return cells
    return np.stack([complete_cell(cell) for cell in cells])


def cell_to_dimensions(cell) -> np.ndarray:
    """Cell rows, shape (..., 3, 3), Å → MDAnalysis box ``[a, b, c, alpha, beta, gamma]`` (Å, degrees).

    ASE's ``cell_to_cellpar``, vectorised over frames with the same formula (a frame
    at a time cost ~15 µs, as much as upsampling it).
    """
    cell = np.asarray(cell, dtype=np.float64)
    frames = cell.reshape(-1, 3, 3)
    lengths = np.sqrt(np.einsum("fij,fij->fi", frames, frames))
    angles = []
    for j, k in ((2, 1), (0, 2), (1, 0)):  # alpha = ∠(c, b), beta = ∠(a, c), gamma = ∠(b, a)
        ll = lengths[:, j] * lengths[:, k]
        degenerate = ll <= 1e-16
        cosine = np.einsum("fi,fi->f", frames[:, j], frames[:, k]) / np.where(degenerate, 1.0, ll)
        angles.append(np.where(degenerate, 90.0, 180.0 / np.pi * np.arccos(cosine)))
    return np.column_stack([lengths, *angles]).reshape(*cell.shape[:-2], 6)


#: Standard atomic masses are matched within this fraction of the mass (at least
#: ``_MASS_FLOOR`` u): force fields round them (AMBER's 12.01, CHARMM's 65.37 for Zn),
#: while a reduced mass of 1 (Lennard-Jones), 1.0 for H or a united atom (CH2 =
#: 14.027, not N) stays unmatched.
_MASS_TOLERANCE = 1e-3
_MASS_FLOOR = 0.003

#: Atom names of massless sites in files without masses (GRO, PDB): TIP4P's M/MW,
#: TIP5P's and OPC's lone pairs and extra points.
_VIRTUAL_SITE_NAME = re.compile(r"^(M|MW\d*|EPW?\d*|LP\d*)$", re.IGNORECASE)


def numbers_from_element_symbols(symbols) -> np.ndarray:
    """Atomic numbers of element symbols as topologies store them (``"C"``, ``"CL"``, ``"Na"``);
    0 for blanks and anything that is not an element symbol.  Names (``"CA"``) are not
    guessed here: see :func:`numbers_from_names`."""
    from ase.data import atomic_numbers

    return np.array([atomic_numbers.get(str(s).strip().capitalize(), 0) for s in symbols], dtype=np.int64)


def numbers_from_masses(masses) -> np.ndarray:
    """The element whose standard mass is closest to each mass (u), 0 where none is within
    0.1 % (0.003 u at least) or two are.

    Parameters
    ----------
    masses : ndarray, shape (n_atoms,), u
    """
    from ase.data import atomic_masses

    masses = np.asarray(masses, dtype=np.float64)
    standard = atomic_masses[1:119]
    tolerance = np.maximum(_MASS_FLOOR, _MASS_TOLERANCE * standard)
    numbers = np.zeros(len(masses), dtype=np.int64)
    for value in np.unique(masses):  # a topology has few distinct masses
        close = np.flatnonzero(np.abs(standard - value) <= tolerance)
        if len(close) == 1:
            numbers[masses == value] = close[0] + 1
    return numbers


def numbers_from_names(names) -> tuple[np.ndarray, np.ndarray]:
    """Atomic numbers guessed from atom names (``"OW"``, ``"CA"`` → C, ``"SOD"`` → Na) by
    MDAnalysis' guesser, and which names are virtual sites (``"MW"``: MDAnalysis' ``DUMMY``).

    Returns
    -------
    numbers : ndarray, shape (n_atoms,), int
        0 where the guess is no element (numeric LAMMPS types).
    virtual : ndarray, shape (n_atoms,), bool
    """
    from MDAnalysis.guesser.default_guesser import DefaultGuesser

    guesser = DefaultGuesser(None)
    guessed = {}
    for name in set(names):
        text = str(name).strip()
        guess = guesser.guess_atom_element(text) if text else ""
        virtual = guess == "DUMMY" or bool(_VIRTUAL_SITE_NAME.match(text))
        guessed[name] = (0 if virtual else int(numbers_from_element_symbols([guess])[0]), virtual)
    numbers = np.array([guessed[name][0] for name in names], dtype=np.int64)
    virtual = np.array([guessed[name][1] for name in names], dtype=bool)
    return numbers, virtual


def parse_type_map(value, source: str = "type_map") -> dict[str, int] | None:
    """Atom type → atomic number, from a dict (``{1: "O", "2": "H"}``) or a string
    (``"1:O,2:H"``; ``=`` works as well as ``:``); None stays None.

    Raises
    ------
    FormatError
        For a malformed string, an unknown element symbol or a type given twice.
    """
    if value is None:
        return None
    if isinstance(value, str):
        pairs = []
        for item in value.replace(";", ",").split(","):
            if not item.strip():
                continue
            key, sep, symbol = item.partition(":") if ":" in item else item.partition("=")
            if not sep or not key.strip() or not symbol.strip():
                raise FormatError(f"{source}: {value!r} is not a type map; write TYPE:ELEMENT pairs, e.g. 1:O,2:H")
            pairs.append((key.strip(), symbol.strip()))
    elif isinstance(value, Mapping):
        pairs = [(str(k).strip(), str(v).strip()) for k, v in value.items()]
    else:
        raise FormatError(f"{source}: a type map is a dict or a string such as 1:O,2:H, not {type(value).__name__}")
    from ase.data import atomic_numbers

    mapping: dict[str, int] = {}
    for key, symbol in pairs:
        number = atomic_numbers.get(symbol.capitalize(), 0)
        if number == 0:
            raise FormatError(f"{source}: {symbol!r} (type {key}) is no element symbol")
        if mapping.get(key, number) != number:
            raise FormatError(f"{source}: type {key} is given two elements")
        mapping[key] = number
    if not mapping:
        raise FormatError(f"{source}: the type map is empty")
    return mapping


def numbers_from_type_map(types, type_map: dict, source: str) -> np.ndarray:
    """Atomic numbers of atom ``types`` (strings) through ``type_map`` (type → atomic number).

    Raises
    ------
    FormatError
        Naming the types the map leaves out.
    """
    missing = sorted({str(t) for t in types} - set(type_map), key=_natural_key)
    if missing:
        given = ",".join(f"{k}:{symbols_of([z])[0]}" for k, z in type_map.items())
        raise FormatError(f"{source}: atom type{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                          f"not in the type map ({given}); give every type an element")
    return np.array([type_map[str(t)] for t in types], dtype=np.int64)


def _natural_key(text: str):
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def fill_unknown(numbers: np.ndarray, guesses: np.ndarray) -> np.ndarray:
    """``numbers`` with its zeros (unknown elements) taken from ``guesses``."""
    return np.where(numbers == 0, guesses, numbers)


def _from_file(universe, attribute: str):
    """The topology attribute ``attribute`` of every atom as the file gave it, or None
    where the topology lacks it or MDAnalysis guessed it (masses from types in a GRO/PDB)."""
    topology_attribute = getattr(universe._topology, attribute, None)
    if topology_attribute is None or getattr(topology_attribute, "is_guessed", False):
        return None
    return getattr(universe.atoms, attribute)


def refuse_virtual_sites(virtual: np.ndarray, names, source: str) -> None:
    """One-line :class:`FormatError` for massless virtual sites (TIP4P's M, lone pairs).

    ``Trajectory`` needs a mass > 0 for every atom, and a virtual site has no dynamics of
    its own to interpolate (its position follows from its constructing atoms); turning it
    into an oxygen or dropping it silently would both give a wrong output.
    """
    if not virtual.any():
        return
    first = int(np.argmax(virtual))
    label = f" ({names[first]})" if names is not None else ""
    count = int(virtual.sum())
    raise FormatError(
        f"{source}: atom {first}{label} is a massless virtual site (TIP4P M or a lone pair; {count} in all); "
        "mdsr_plugin interpolates atoms with mass only: remove the virtual sites from trajectory and topology first "
        "(e.g. gmx trjconv -n and gmx convert-tpr -n with a group without them)"
    )


def universe_identities(universe, *, type_map: dict | None = None, mass_scale: float = 1.0,
                        source: str | None = None):
    """Atomic numbers, masses and names of a Universe's atoms.

    Elements, per atom, from the first that knows them: ``type_map`` (type → atomic
    number, :func:`parse_type_map`); the topology's elements; its
    masses (the element of the closest standard mass, :func:`numbers_from_masses`); its
    names (MDAnalysis' guesser; types when it has no names).  Force-field types
    (``opls_113``) are never read as elements.  Masses are the topology's own; masses
    MDAnalysis guessed are not returned (``None``: the standard masses of the elements).

    Parameters
    ----------
    universe : MDAnalysis.Universe
    type_map : dict of str to int, optional
    mass_scale : float
        The topology's mass unit in u (LAMMPS ``si``: kg, ``cgs``: g).
    source : str, optional
        The file named in errors; the Universe's topology file by default.

    Returns
    -------
    numbers : ndarray, shape (n_atoms,), int
        0 where the element is unknown.
    masses : ndarray, shape (n_atoms,), u, or None
    names : list of str or None

    Raises
    ------
    FormatError
        For massless virtual sites (TIP4P's M), in one line (:func:`refuse_virtual_sites`).
    """
    atoms = universe.atoms
    source = source or (Path(universe.filename).name if universe.filename else "topology")
    names = [str(n) for n in atoms.names] if hasattr(atoms, "names") else None
    types = [str(t) for t in atoms.types] if hasattr(atoms, "types") else None
    labels = names if names is not None else types
    masses = _from_file(universe, "masses")
    if labels is not None:
        guessed, virtual_name = numbers_from_names(labels)
    else:
        guessed, virtual_name = np.zeros(len(atoms), dtype=np.int64), np.zeros(len(atoms), dtype=bool)
    if masses is not None:
        masses = np.asarray(masses, dtype=np.float64) * mass_scale
        refuse_virtual_sites(~(masses > 0), names, source)
    else:
        refuse_virtual_sites(virtual_name, names, source)
    if type_map is not None:
        if types is None:
            raise FormatError(f"{source}: the topology has no atom types for the type map")
        return numbers_from_type_map(types, type_map, source), masses, names
    elements = _from_file(universe, "elements")
    numbers = np.zeros(len(atoms), dtype=np.int64)
    if elements is not None:
        numbers = numbers_from_element_symbols(elements)
    if masses is not None:
        numbers = fill_unknown(numbers, numbers_from_masses(masses))
    numbers = fill_unknown(numbers, guessed)
    return numbers, masses, names


def topology_format(topology) -> str | None:
    """The MDAnalysis topology format of a LAMMPS data file named as LAMMPS users name them
    (``*.lmp``, ``*.lammps``, ``data.*``), which MDAnalysis does not know by name; None otherwise."""
    path = Path(topology)
    if path.suffix.lower() in (".lmp", ".lammps") or path.name.lower().startswith("data."):
        return "DATA"
    return None


def open_topology(topology):
    """A Universe of a topology file alone (LAMMPS data files by their usual names too);
    a file MDAnalysis cannot read is one :class:`FormatError` line."""
    import MDAnalysis as mda

    options = {"topology_format": topology_format(topology)} if topology_format(topology) else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return mda.Universe(str(topology), **options)
    except Exception as err:  # MDAnalysis raises ValueError, KeyError, IndexError, OSError...
        raise FormatError(f"{Path(topology).name}: cannot be read as a topology ({' '.join(str(err).split())})") \
            from None


def topology_identities(topology, n_atoms: int, **options):
    """Atomic numbers, masses and names read from a topology file with MDAnalysis
    (``options``: those of :func:`universe_identities`)."""
    universe = open_topology(topology)
    if len(universe.atoms) != n_atoms:
        raise FormatError(
            f"topology {Path(topology).name} has {len(universe.atoms)} atoms, the trajectory {n_atoms}"
        )
    return universe_identities(universe, **options)


def _drop_half_built_reader(err: BaseException) -> None:
    """Free the reader a failed ``mda.Universe(...)`` left in ``err``'s traceback, quietly.

    MDAnalysis' ``ReaderBase.__del__`` closes a file its ``__init__`` never opened when
    the header was garbage, and Python prints that AttributeError as "Exception ignored
    in ... __del__" after our one-line error.  Collect it here with that report muted.
    """
    import gc
    import sys

    previous = sys.unraisablehook
    sys.unraisablehook = lambda report: None
    try:
        err.__traceback__ = None
        del err
        gc.collect()
    finally:
        sys.unraisablehook = previous


def _reader_without_offset_cache(base):
    """``base`` (MDAnalysis' XTC or TRR reader) that finds its frames' offsets by scanning the
    file every time: MDAnalysis otherwise saves them as hidden ``.NAME_offsets.npz`` and
    ``.lock`` files beside the trajectory, that is inside the user's archive, which is
    never written to (scanning costs about 0.1 s per 100 000 frames)."""

    class Reader(base):
        def _load_offsets(self):
            self._read_offsets(store=False)

    Reader.__name__ = Reader.__qualname__ = f"{base.__name__}WithoutOffsetCache"
    return Reader


@functools.lru_cache(maxsize=None)
def _readers_without_cache() -> dict:
    """{"XTC": ..., "TRR": ...}, made once (the subclasses set no ``format``, so MDAnalysis does
    not register them in place of its own readers)."""
    from MDAnalysis.coordinates.TRR import TRRReader
    from MDAnalysis.coordinates.XTC import XTCReader

    return {"XTC": _reader_without_offset_cache(XTCReader), "TRR": _reader_without_offset_cache(TRRReader)}


#: The units each MDAnalysis format stores (what the summary names; MDAnalysis converts
#: them to Å, Å/ps, kJ/(mol·Å) and ps, and the reader from those).
_FILE_UNITS = {
    "TRR": "GROMACS TRR: nm, nm/ps, kJ/(mol·nm), ps",
    "XTC": "GROMACS XTC: nm, ps",
    "NCDF": "AMBER NetCDF: Å, velocities × their scale_factor → Å/ps, kcal/(mol·Å), ps",
    "DCD": "DCD: Å, time step in AKMA units",
}


class MDAnalysisReader(TrajectoryReader):
    """Stream a trajectory through an MDAnalysis ``Universe``.

    Units: MDAnalysis gives Å, ps, Å/ps and kJ/(mol·Å) for the formats it converts;
    files written by LAMMPS (a DCD, a Universe built on a dump) hold the run's own
    units, which :mod:`.lammps` finds, and are converted from those.

    Parameters
    ----------
    path : path-like
    mda_format : str
        MDAnalysis format name (``"DCD"``, ``"TRR"``, ``"NCDF"``...).  Files LAMMPS wrote
        are read by the classes of :mod:`.lammps` (the format registry picks them).
    topology : path-like, optional
        Needed by formats without atom information (DCD, TRR, XTC, NetCDF).
    velocities : path-like, optional
        A NAMD velocity DCD with the same frames.
    dt : float, optional
        Coarse step in fs, overriding the file's.
    has_time : bool
        Whether the format records frame times.
    type_map : dict or str, optional
        Element of each atom type (``{"1": "O", "2": "H"}`` or ``"1:O,2:H"``), for
        topologies whose types are LAMMPS numbers; it overrides every other source.
    lammps_units : str, optional
        The units style (``"real"``, ``"metal"``, ``"si"``, ``"cgs"``) of a DCD LAMMPS
        wrote; refused for files LAMMPS did not write.
    """

    def __init__(self, path, *, mda_format, topology=None, velocities=None, dt=None,
                 has_time=True, needs_topology=True, type_map=None, lammps_units=None):
        super().__init__(path, dt=dt)
        import MDAnalysis as mda

        if needs_topology and topology is None:
            raise FormatError(f"{self.path.name}: {mda_format} files need a topology; pass --top FILE")
        self.has_time = has_time
        type_map = parse_type_map(type_map)
        check_complete(self.path, mda_format)  # MDAnalysis drops a DCD's or XTC's cut last frame silently
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                args = [str(topology)] if topology is not None else []
                kwargs = {"format": _readers_without_cache().get(str(mda_format).upper(), mda_format)}
                if topology is None:
                    kwargs["topology_format"] = mda_format
                elif topology_format(topology):
                    kwargs["topology_format"] = topology_format(topology)
                self.universe = mda.Universe(*args, str(self.path), **kwargs)
        except FormatError:
            raise
        except Exception as err:  # MDAnalysis raises IOError, ValueError, EOFError, struct errors...
            message = f"{self.path.name}: cannot be read as {mda_format} ({' '.join(str(err).split())})"
            _drop_half_built_reader(err)
            raise FormatError(message) from None
        self._attach(self.universe, type_map=type_map, lammps_units=lammps_units)
        if velocities is not None:
            from MDAnalysis.coordinates.DCD import DCDReader

            check_complete(velocities, "DCD")
            try:
                self._velocity_reader = DCDReader(str(velocities))
            except Exception as err:
                message = f"{Path(velocities).name}: not a readable velocity DCD ({' '.join(str(err).split())})"
                _drop_half_built_reader(err)
                raise FormatError(message) from None
            if self._velocity_reader.n_frames != self.n_frames:
                raise FormatError(
                    f"{Path(velocities).name} has {self._velocity_reader.n_frames} frames, "
                    f"{self.path.name} has {self.n_frames}"
                )
            if self._velocity_reader.n_atoms != len(self._numbers):
                raise FormatError(f"{Path(velocities).name}: atom count differs from {self.path.name}")

    @classmethod
    def from_universe(cls, universe, *, dt: float | None = None, has_time: bool = True,
                      type_map=None, lammps_units: str | None = None) -> "MDAnalysisReader":
        """Stream the trajectory of an existing Universe (any format, in memory too).

        ``dt`` (fs) overrides the trajectory's time step; ``has_time=False`` requires it.
        ``type_map`` and ``lammps_units`` are those of the reader; a Universe on a LAMMPS
        dump or DCD is read in the run's units (:mod:`.lammps`), with MDAnalysis'
        positions (shifted by the box origin, for a dump).
        """
        if cls is MDAnalysisReader:
            cls = universe_reader_class(universe) or cls
        reader = cls.__new__(cls)
        TrajectoryReader.__init__(reader, universe.trajectory.filename or "Universe", dt=dt)
        reader.has_time = has_time
        reader.universe = universe
        reader._attach(universe, owns=False, type_map=parse_type_map(type_map), lammps_units=lammps_units)
        return reader

    def _attach(self, universe, owns=True, type_map=None, lammps_units=None):
        self._attach_trajectory(universe, owns)
        if lammps_units is not None:
            kind = universe.trajectory.format
            kind = kind[0] if isinstance(kind, (list, tuple)) else kind
            raise FormatError(f"{self.path.name}: lammps_units is for files LAMMPS wrote (dumps, DCDs); "
                              f"this {kind} file is not one")
        self._numbers, self._masses, self._names = universe_identities(universe, type_map=type_map)

    def _attach_trajectory(self, universe, owns):
        """Hold ``universe``; subclasses reading other units change the factors set here."""
        self._owns_universe = owns
        self._velocity_reader = None
        self.n_frames = len(universe.trajectory)
        #: Factors from what MDAnalysis hands over to Å, Å/fs and eV/Å.
        self._length, self._velocity, self._force = 1.0, 1.0 / units.FS_PER_PS, 1.0 / units.KJMOL_PER_EV
        #: ``ts -> MD step``, and fs per MD step, where times are step × timestep.
        self._step_of = None
        self._timestep = None
        #: (frame, fields) of the first frame read: every frame must store what it stores.
        self._fields_of_first = None
        self._float32_times = None

    def _even_times(self) -> Float32Times | None:
        """The float32 time grid of the file (XTC, TRR, NetCDF store float32 ps), found
        once from its first and last frames; None where times come from elsewhere."""
        if not self.has_time or self._timestep is not None or self.dt_override is not None:
            return None
        if self._float32_times is None:
            trajectory = self.universe.trajectory
            first, last = (float(trajectory[i].time) for i in (0, -1)) if self.n_frames > 1 else (0.0, 0.0)
            self._float32_times = Float32Times(first, last, self.n_frames, units.FS_PER_PS)
        return self._float32_times

    def _stored(self, box: str = "cell") -> list[str]:
        """What the file's first frame read holds besides positions, as the summary names it."""
        fields = {} if self._fields_of_first is None else self._fields_of_first[1]
        stored = [q for q in ("velocities", "forces") if fields.get(q) and
                  not (q == "velocities" and self._velocity_reader is not None)]
        return stored + ([box] if fields.get("a box") else [])

    @property
    def notes(self) -> list[str]:
        """Which file gave what, in which units (the summary's "read" line)."""
        stored = self._stored()
        kind = self.universe.trajectory.format
        kind = kind[0] if isinstance(kind, (list, tuple)) else kind
        notes = [f"positions{''.join(', ' + q for q in stored)} from {self.path.name} "
                 f"({_FILE_UNITS.get(str(kind).upper(), f'{kind} through MDAnalysis')})"]
        if self._velocity_reader is not None:
            notes.append(f"velocities from {Path(self._velocity_reader.filename).name} (NAMD velocity DCD, "
                         f"Å per AKMA time × {units.NAMD_VELOCITY_TO_ANGSTROM_PER_FS * units.FS_PER_PS:.8g} → Å/ps)")
        grid = self._float32_times.note(self.path.name) if self._float32_times is not None else None
        return notes + ([grid] if grid else [])

    def _check_fields(self, frame: int, ts) -> None:
        """One-line :class:`FormatError` where frame ``frame`` stores velocities, forces or a box
        and the first frame read does not, or the other way round (GROMACS writes velocities
        and forces to a TRR every ``nstvout``/``nstfout`` steps, positions every ``nstxout``):
        a value missing from one frame cannot be made up, and every method needs it at all."""
        fields = {"velocities": ts.has_velocities, "forces": ts.has_forces,
                  "a box": ts.dimensions is not None and bool(np.any(ts.dimensions[:3] > 0))}
        if self._fields_of_first is None:
            self._fields_of_first = (frame, fields)
            return
        first, expected = self._fields_of_first
        for name, present in fields.items():
            if present != expected[name]:
                has, lacks = (frame, first) if present else (first, frame)
                raise FormatError(
                    f"{self.path.name}: frame {has} stores {name} and frame {lacks} does not (a TRR whose "
                    f"velocities or forces are saved less often than its positions?); give frames that all "
                    f"store the same, e.g. gmx trjconv -skip to keep those with {name}, or -o run.xtc for "
                    f"positions alone")

    def _read_frames(self, start: int, stop: int):
        """Positions (Å), times (fs), steps, velocities (Å/fs), forces (eV/Å) and boxes
        (lengths Å) of frames start..stop."""
        n, n_atoms = stop - start, len(self._numbers)
        positions, times = np.empty((n, n_atoms, 3)), np.empty(n)
        steps = None if self._step_of is None else np.empty(n, dtype=np.int64)
        velocities = forces = boxes = None
        i = 0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "no dt information": times are handled here
                for i, ts in enumerate(self.universe.trajectory[start:stop]):
                    self._check_fields(start + i, ts)
                    positions[i] = ts.positions
                    times[i] = ts.time * units.FS_PER_PS
                    if steps is not None:
                        steps[i] = self._step_of(ts)
                    if ts.has_velocities:
                        velocities = np.empty((n, n_atoms, 3)) if velocities is None else velocities
                        velocities[i] = ts.velocities
                    if ts.has_forces:
                        forces = np.empty((n, n_atoms, 3)) if forces is None else forces
                        forces[i] = ts.forces
                    # a length of 0 marks a non-periodic axis (AMBER's convention, and ours for a slab)
                    if ts.dimensions is not None and np.any(ts.dimensions[:3] > 0):
                        boxes = np.empty((n, 6)) if boxes is None else boxes
                        boxes[i] = ts.dimensions
        except FormatError:
            raise
        except (OSError, ValueError, EOFError) as err:
            raise FormatError(f"{self.path.name}: frame {start + i} is unreadable ({err})") from None
        if self._length != 1.0:
            positions *= self._length
            if boxes is not None:
                boxes[:, :3] *= self._length
        velocities = None if velocities is None else velocities * self._velocity
        forces = None if forces is None else forces * self._force
        grid = self._even_times()
        if self._timestep is not None:
            times = steps * self._timestep
        elif grid is not None:
            times = grid(times, start)
        return positions, times, steps, velocities, forces, boxes

    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        for start in range(0, self.n_frames, chunk_size):
            stop = min(start + chunk_size, self.n_frames)
            positions, times, steps, velocities, forces, boxes = self._read_frames(start, stop)
            if self._velocity_reader is not None:
                velocities = np.array([ts.positions.copy() for ts in self._velocity_reader[start:stop]])
                velocities = velocities * units.NAMD_VELOCITY_TO_ANGSTROM_PER_FS
            yield Trajectory(
                numbers=self._numbers,
                masses=self._masses,
                names=self._names,
                positions=positions,
                times=self._times(start, stop - start, times if self.has_time else None),
                velocities=velocities,
                forces=forces,
                cell=None if boxes is None else completed_cells(boxes),
                pbc=np.zeros(3, dtype=bool) if boxes is None else boxes[0, :3] > 0,
                steps=steps,
            )

    def close(self):
        universe = getattr(self, "universe", None)
        if universe is not None and self._owns_universe:  # never close a caller's Universe
            universe.trajectory.close()
        if self._velocity_reader is not None:
            self._velocity_reader.close()


#: Reader classes for Universes on files a particular code wrote in its own units, which
#: MDAnalysis opens as a generic format (LAMMPS' DCDs and dumps): name → ``(universe) -> class
#: or None``.  Filled by the code's module (io/lammps.py registers itself when io/__init__
#: imports it), so that this module never imports a module above it.
_UNIVERSE_READERS: dict = {}


def register_universe_reader(name: str, pick) -> None:
    """Let ``pick(universe)`` choose the reader class (a :class:`MDAnalysisReader` subclass) of
    Universes on files that code wrote; raises ValueError if ``name`` is taken."""
    if name in _UNIVERSE_READERS:
        raise ValueError(f"a Universe reader {name!r} is already registered")
    _UNIVERSE_READERS[name] = pick


def unregister_universe_reader(name: str) -> None:
    """Remove a picker added by :func:`register_universe_reader`."""
    del _UNIVERSE_READERS[name]


def universe_reader_class(universe):
    """The registered reader class for ``universe`` (a LAMMPS DCD or dump), or None."""
    for pick in _UNIVERSE_READERS.values():
        chosen = pick(universe)
        if chosen is not None:
            return chosen
    return None


def _empty_universe(traj: Trajectory):
    """A Universe with ``traj``'s atoms and a one-frame trajectory to fill per written frame."""
    import MDAnalysis as mda

    universe = mda.Universe.empty(
        traj.n_atoms, trajectory=True, velocities=traj.has_velocities, forces=traj.has_forces
    )
    symbols = symbols_of(traj.numbers)
    universe.add_TopologyAttr("names", traj.names or symbols)
    universe.add_TopologyAttr("types", symbols)
    universe.add_TopologyAttr("elements", symbols)
    universe.add_TopologyAttr("masses", traj.masses)
    return universe


#: What a writer says once where it rotates a file's vectors (:func:`rotations_to_mda_frame`).
ROTATED = ("the cell is not in the orientation MDAnalysis reads (a along x, b in the xy plane): positions, "
           "velocities, forces and cell are written rigidly rotated into it (distances and dynamics unchanged)")


class MDAnalysisWriter(TrajectoryWriter):
    """Write through an MDAnalysis writer (TRR, NetCDF, XTC): positions, velocities (Å/ps),
    forces (kJ/(mol·Å)), time (ps) and box per frame.

    Parameters
    ----------
    path : path-like
    mda_format : str
    writer_options : dict
        Extra keyword arguments of the MDAnalysis writer.
    """

    #: Whether the format marks a non-periodic axis by a box length of 0 (AMBER's NetCDF
    #: convention).  GROMACS' box is a matrix MDAnalysis zeroes whole for a length of 0,
    #: so a slab's TRR or XTC holds its whole cell, as GROMACS' own do (pbc = xy is an
    #: .mdp setting, not in the file).
    marks_nonperiodic_axes = False

    def __init__(self, path, *, mda_format, **writer_options):
        self.mda_format = mda_format
        self.writer_options = writer_options
        super().__init__(path)

    def _writer_kwargs(self, first: Trajectory) -> dict:
        return dict(self.writer_options)

    def _open(self, first):
        import MDAnalysis as mda

        self._universe = _empty_universe(first)
        self._writer = mda.Writer(
            str(self.temporary_paths[0]), n_atoms=first.n_atoms, format=self.mda_format,
            **self._writer_kwargs(first),
        )

    def _fill(self, ts, traj, i, positions, boxes):
        ts.positions = positions
        ts.time = traj.times[i] / units.FS_PER_PS
        ts.frame = self.frames_written + i
        ts.data["step"] = int(traj.steps[i]) if traj.steps is not None else self.frames_written + i
        ts.dimensions = None if boxes is None else boxes[i]

    def _write(self, traj):
        if traj.cell is not None and not np.all(traj.pbc) and not self.marks_nonperiodic_axes:
            self.say_once("slab", f"{self.mda_format} cannot say which axes are periodic: the whole cell is "
                                   "written, as GROMACS' own boxes are, and read back as periodic along every axis")
        rotations = rotations_to_mda_frame(traj.cell)
        if rotations is not None:
            self.say_once("rotated", ROTATED)
        self._check_time_rounding(traj)
        with warnings.catch_warnings():
            # "No dimensions set": a gas-phase trajectory has no box, which is fine.
            warnings.simplefilter("ignore", UserWarning)
            try:
                self._write_frames(traj, rotations)
            except OSError as err:  # GROMACS' library says "XTC write error = float" for a full disk
                if shutil.disk_usage(self.temporary_paths[0].parent).free < 2**20:
                    raise OSError(errno.ENOSPC, f"{self.path}: no space left on device ({err})") from None
                raise

    def _check_time_rounding(self, traj) -> None:
        """Say once where the format's float32 times (ps) round the frames' times by more than
        1e-3 of their step: MDAnalysis then reads them uneven (mdsr_plugin evens them out)."""
        if traj.n_frames < 2:
            return
        rounding = float32_rounding(np.abs(traj.times).max() / units.FS_PER_PS, units.FS_PER_PS)
        step = float(traj.times[1] - traj.times[0])
        if rounding > 1e-3 * step:
            self.say_once("times", f"{self.mda_format} stores times as float32 ps: at {traj.times.max() / 1000:g} ps "
                                    f"they are rounded to {rounding:.2g} fs, {rounding / step:.1%} of the {step:g} fs "
                                    "step, so other programs read them uneven (.h5md keeps them exactly)")

    def _write_frames(self, traj, rotations):
        if rotations is not None:  # every vector into MDAnalysis' orientation, a chunk at a time
            def rotate(vectors):
                return None if vectors is None else vectors @ rotations

            traj = replace(traj, positions=rotate(traj.positions), velocities=rotate(traj.velocities),
                           forces=rotate(traj.forces))
        boxes = None if traj.cell is None else _box(traj.cell, traj.pbc if self.marks_nonperiodic_axes else None)
        ts = self._universe.trajectory.ts
        for i in range(traj.n_frames):
            self._fill(ts, traj, i, traj.positions[i], boxes)
            if traj.velocities is not None:
                ts.velocities = traj.velocities[i] * units.FS_PER_PS
            if traj.forces is not None:
                ts.forces = traj.forces[i] * units.KJMOL_PER_EV
            self._writer.write(self._universe.atoms)

    def _close(self):
        self._writer.close()


class NetCDFWriter(MDAnalysisWriter):
    """AMBER NetCDF (Å/ps velocities, kcal/(mol·Å) forces after MDAnalysis' conversion).

    MDAnalysis' NetCDF writer must be told up front which per-frame variables the
    file has; a declared variable left unset fails on the first frame, so they follow
    the first chunk.
    """

    marks_nonperiodic_axes = True

    def __init__(self, path):
        super().__init__(path, mda_format="NCDF")

    def _writer_kwargs(self, first):
        return {"velocities": first.has_velocities, "forces": first.has_forces}


class DCDWriter(TrajectoryWriter):
    """DCD positions, with the time step in the header (AKMA units), and velocities in a
    NAMD-convention velocity DCD beside it (``fine.dcd`` → ``fine.vel.dcd``, Å/AKMA).

    MDAnalysis writes each file's header (its layout, flags and time step); the frames
    are then appended a whole chunk at a time as one array of Fortran records, and
    the frame count in the header is set on closing.  MDAnalysis' own writer goes
    through Python once per frame and file, which made DCD the slowest output by
    far.  The bytes are the same as MDAnalysis' writer produces
    (``tests/test_io_roundtrip.py``).
    """

    @staticmethod
    def velocity_path(path) -> Path:
        from . import get_format

        (velocity,) = get_format(path, "dcd").companion_outputs(path)
        return velocity

    def _paths(self):
        return [self.path, self.velocity_path(self.path)]

    def _open(self, first):
        import MDAnalysis as mda

        if first.n_frames < 2:
            raise FormatError("DCD output needs at least two frames to record the time step")
        dt = first.dt
        # istart (in steps of dt) carries the start time; DCD cannot store other offsets.
        istart = int(round(first.times[0] / dt))
        if abs(istart * dt - first.times[0]) > 1e-6 * dt:
            self.say_once("start", f"DCD stores the start time as a whole number of steps: {first.times[0]:g} fs is "
                                   f"written as {istart * dt:g} fs (.h5md keeps it)")
        header = {"dt": dt / units.FS_PER_PS, "istart": istart, "nsavc": 1}
        self._handles = []
        for temporary in self.temporary_paths[: 1 + first.has_velocities]:
            mda.Writer(str(temporary), n_atoms=first.n_atoms, format="DCD", **header).close()
            handle = open(temporary, "r+b")
            handle.seek(0, 2)
            self._handles.append(handle)
        # One frame = four Fortran records, each framed by its byte count: the unit cell
        # (6 float64, CHARMM's extra block, always written by MDAnalysis), then the
        # x, y and z coordinates (N float32 each).
        n = first.n_atoms
        coordinate = [(f"{axis}{part}", "=f4", (n,)) if part == "" else (f"{axis}{part}", "=i4")
                      for axis in "xyz" for part in ("_head", "", "_tail")]
        self._record = np.dtype([("box_head", "=i4"), ("box", "=f8", (6,)), ("box_tail", "=i4"), *coordinate])
        self._markers = {"box_head": 48, "box_tail": 48, **{f"{a}_{p}": 4 * n for a in "xyz" for p in ("head", "tail")}}

    def _write(self, traj):
        records = np.empty(traj.n_frames, self._record)
        for name, value in self._markers.items():
            records[name] = value
        records["box"] = _dcd_unit_cells(traj.cell, traj.n_frames, traj.pbc)
        rotations = rotations_to_mda_frame(traj.cell)
        if rotations is not None:
            self.say_once("rotated", ROTATED)
        vectors = [traj.positions]
        if len(self._handles) > 1:
            vectors.append(traj.velocities / units.NAMD_VELOCITY_TO_ANGSTROM_PER_FS)
        for handle, values in zip(self._handles, vectors):
            if rotations is not None:
                values = np.einsum("fni,fij->fnj", values, rotations)
            for k, axis in enumerate("xyz"):
                records[axis] = values[:, :, k]
            handle.write(records.tobytes())

    def _close(self):
        for handle in self._handles:
            handle.seek(8)  # NSET, the number of frames, in the first header record
            handle.write(np.int32(self.frames_written).tobytes())
            handle.close()
        if len(self._handles) == 1:
            # No velocities: publish only the coordinate file.
            self._files.final.pop()
            self._files.temporary.pop()


def _box(cell, pbc) -> np.ndarray:
    """MDAnalysis dimensions (..., 6) of cells (..., 3, 3) Å, with length 0 along each
    non-periodic axis (``pbc`` False: a slab's vacuum direction), the AMBER convention LAMMPS
    writes too.  These formats have no per-axis periodicity, and the completed row of such an
    axis is no box."""
    dimensions = cell_to_dimensions(right_handed(cell))  # the box of the rotated vectors
    if pbc is not None:
        dimensions[..., :3][..., ~np.asarray(pbc, dtype=bool)] = 0.0
    return dimensions


def _dcd_unit_cells(cell, n_frames, pbc=None) -> np.ndarray:
    """DCD unit-cell records (F, 6) as MDAnalysis' DCD writer makes them: the box in
    float32, ordered [A, cos γ, B, cos β, cos α, C] (the NAMD/VMD convention), zeros
    (angle cosines 1) without a cell; length 0 along a non-periodic axis (:func:`_box`)."""
    if cell is None:
        dimensions = np.zeros((n_frames, 6), dtype=np.float32)
    else:
        dimensions = _box(np.asarray(cell).reshape(n_frames, 3, 3), pbc).reshape(n_frames, 6).astype(np.float32)
    box = dimensions[:, [0, 5, 1, 4, 3, 2]]
    box[:, [1, 3, 4]] = np.sin(np.deg2rad(90.0 - box[:, [1, 3, 4]]))
    return box


def right_handed(cell) -> np.ndarray:
    """Cells (..., 3, 3) with the third vector negated where the cell is left-handed: the
    same lattice (and so the same periodic images), in a cell that a proper rotation
    takes to MDAnalysis' orientation; a mirror would change every chiral centre."""
    cell = np.asarray(cell, dtype=np.float64)
    flip = np.where(np.linalg.det(cell) < 0, -1.0, 1.0)
    return np.concatenate([cell[..., :2, :], cell[..., 2:, :] * flip[..., None, None]], axis=-2)


def canonical_cells(dimensions) -> np.ndarray:
    """MDAnalysis' cell rows (..., 3, 3), Å, of boxes ``[a, b, c, alpha, beta, gamma]``: a along
    x, b in the xy plane (``MDAnalysis.lib.mdamath.triclinic_vectors``' layout), vectorised."""
    dimensions = np.asarray(dimensions, dtype=np.float64)
    a, b, c = dimensions[..., 0], dimensions[..., 1], dimensions[..., 2]
    cos_alpha, cos_beta, cos_gamma = np.cos(np.deg2rad(dimensions[..., 3:6])).transpose(
        (dimensions.ndim - 1, *range(dimensions.ndim - 1)))
    sin_gamma = np.sin(np.deg2rad(dimensions[..., 5]))
    cy = (cos_alpha - cos_beta * cos_gamma) / sin_gamma
    cells = np.zeros((*dimensions.shape[:-1], 3, 3))
    cells[..., 0, 0] = a
    cells[..., 1, 0], cells[..., 1, 1] = b * cos_gamma, b * sin_gamma
    cells[..., 2, 0], cells[..., 2, 1] = c * cos_beta, c * cy
    cells[..., 2, 2] = c * np.sqrt(np.clip(1.0 - cos_beta**2 - cy**2, 0.0, None))
    return cells


def in_mda_orientation(cell, tolerance: float = 0.0) -> np.ndarray:
    """Per cell (..., 3, 3): whether it is lower triangular with a positive diagonal, the
    orientation MDAnalysis builds from lengths and angles (and what most MD codes write);
    ``tolerance``, Å, for the entries above the diagonal (a cell rebuilt from lengths and
    angles holds round-off there)."""
    cell = np.asarray(cell)
    return (np.abs(cell[..., [0, 0, 1], [1, 2, 2]]) <= tolerance).all(axis=-1) & (
        np.diagonal(cell, axis1=-2, axis2=-1) > 0).all(axis=-1)


def rotations_to_mda_frame(cell) -> np.ndarray | None:
    """Rotations (F, 3, 3) taking row vectors of each cell's orientation to MDAnalysis' (a
    along x, b in the xy plane), or None where every cell is in it already.

    MDAnalysis keeps a box as lengths and angles, so the writers of formats it reads (TRR,
    XTC, NetCDF, DCD) rotate every vector by these, so that positions and box agree there,
    and say so once per file (:data:`ROTATED`); a left-handed cell is first taken as its
    right-handed equivalent (:func:`right_handed`), so that the map is a proper rotation."""
    if cell is None:
        return None
    cell = np.asarray(cell, dtype=np.float64).reshape(-1, 3, 3)
    in_place = in_mda_orientation(cell)
    if in_place.all():
        return None
    cell = right_handed(cell)
    rotations = np.linalg.solve(cell, canonical_cells(cell_to_dimensions(cell)))
    rotations[in_place] = np.eye(3)
    return rotations
