"""LAMMPS output read in the units of the run that wrote it: text dumps, and what the
MDAnalysis reader needs for LAMMPS DCDs and Universes built on a dump.

A LAMMPS file stores numbers in the run's ``units`` style (real: Å, fs, Å/fs,
kcal/(mol·Å), g/mol; metal: Å, ps, Å/ps, eV/Å, g/mol; si: m, s, m/s, N, kg; cgs: cm,
s, cm/s, dyne, g; :data:`mdsr_plugin.units.NATIVE_UNITS`) and, unless the dump was
written with ``dump_modify units yes``, does not say which.  The style is, first that
applies:

1. the reader option ``lammps_units`` (``"real"``, ``"metal"``, ``"si"``, ``"cgs"``);
2. the dump's own ``ITEM: UNITS`` header;
3. the ``units`` command (or the ``Unit style :`` line LAMMPS prints before each run)
   in the log and input files beside the file (``log.lammps``, ``log.*``, ``in.*``,
   ``*.in``, ``*.inp``, ``*.lmp``, ``*.lammps``) whose ``dump`` or ``write_dump`` command
   writes that file (LAMMPS
   echoes each command into its log with the variables substituted; ``variable NAME
   index|string VALUE`` is substituted here too), else of ``log.lammps`` alone.

Without a style, positions are read as Å (``real`` and ``metal`` agree on lengths;
a box smaller than 0.001 "Å" is taken for an ``si``/``cgs`` run and refused) and
velocities and forces are refused in one line.  ``lj`` and the other styles are
refused: reduced units have no Å.

Times: the dump's ``ITEM: TIME`` (``dump_modify time yes``), else each frame's step ×
the run's ``timestep`` (from the same files), else ``dt``.  Step numbers are kept as
``Trajectory.steps``.

Atom identities of a dump, per atom, first that applies: the reader option
``type_map`` (type → element, ``"1:O,2:H"``); the dump's ``element`` column; a
topology given with it (a LAMMPS data file: the element whose standard mass is
closest to its ``Masses``); the dump's ``mass`` column (the same); type labels that
name elements (``OW``).  Masses: the dump's ``mass`` column, else the data file's,
else the standard masses of the elements.  An atom left with neither element nor
mass keeps element 0 (``X``) and mass 1 — harmless to positions and velocities, and
warned about — but forces are then refused: quintic Hermite divides them by the mass.

This module registers the ``lammpsdump`` format (recognised by a first ``ITEM:`` line,
whatever the file's name) and tells :mod:`.mdanalysis` which Universes are LAMMPS'
(:func:`universe_reader_class`); ``dump netcdf`` files are :mod:`.lammps_netcdf`'s.
"""

from __future__ import annotations

import fnmatch
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .. import units
from ..trajectory import Trajectory
from .base import FormatError, TrajectoryReader
from .mdanalysis import (
    MDAnalysisReader,
    fill_unknown,
    numbers_from_element_symbols,
    numbers_from_masses,
    numbers_from_names,
    numbers_from_type_map,
    open_topology,
    parse_type_map,
    universe_identities,
)

__all__ = [
    "LAMMPSDumpReader",
    "LAMMPSUniverseReader",
    "universe_reader_class",
    "is_lammps_dump",
    "RunUnits",
    "run_units",
    "parse_type_map",
    "dump_identities",
    "first_frame_identities",
    "check_identities",
    "refuse_tiny_box",
    "lammps_dcd_header",
    "missing_units_message",
]

#: Log and input files that may describe the run, in the dump's folder.
RUN_FILE_PATTERNS = ("log.lammps", "log.*", "in.*", "*.in", "*.inp", "*.lmp", "*.lammps")
"""Names of the log and input files looked at beside a LAMMPS file (``*.inp``: CHARMM-GUI's
``step4.1_equilibration.inp``)."""

_LOG_UNITS = re.compile(r"^\s*Unit style\s*:\s*(\S+)")
_LOG_TIMESTEP = re.compile(r"^\s*Time step\s*:\s*(\S+)")
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w)")
_DATA_SECTIONS = {"Atoms", "Masses", "Velocities", "Bonds"}
_SCAN_LIMIT_BYTES = 256 * 2**20
_COMPRESSION = (".gz", ".bz2", ".xz")
_COORDINATES = (("xu", "yu", "zu"), ("x", "y", "z"), ("xsu", "ysu", "zsu"), ("xs", "ys", "zs"))


def _mass_unit_in_u() -> dict[str, float]:
    """Each style's mass unit in u (g/mol for real and metal, kg for si, g for cgs)."""
    from ase import units as ase_units

    return {"real": 1.0, "metal": 1.0, "si": 1.0 / ase_units._amu, "cgs": 1e-3 / ase_units._amu}


def missing_units_message(name: str) -> str:
    """The one line refusing velocities or forces of a file whose units are unknown."""
    styles = "|".join(units.LAMMPS_UNIT_STYLES)
    return (f"{name}: LAMMPS dumps do not say their units; pass --lammps-units {styles} "
            "(lammps_units=, the run's `units` command) or put its log.lammps beside the dump")


# --------------------------------------------------------------------------- run settings
@dataclass(frozen=True)
class _RunFile:
    """What one log or input file says: its ``units`` styles, ``timestep`` values (in the
    style's time unit) and the files its ``dump`` commands write."""

    path: Path
    styles: tuple[str, ...]
    timesteps: tuple[float, ...]
    dumps: tuple[str, ...]


def _substitute(text: str, variables: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda m: variables.get(m[1] or m[2], m[0]), text)


def _scan_run_file(path: Path) -> _RunFile:
    styles, timesteps, dumps, variables = [], [], [], {}
    with open(path, errors="replace") as handle:
        for line in handle:
            if match := _LOG_UNITS.match(line):
                styles.append(match[1])
                continue
            if match := _LOG_TIMESTEP.match(line):
                timesteps.append(match[1])
                continue
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            head = words[0]
            if head in _DATA_SECTIONS:  # a data file (often *.lmp): no commands in it
                return _RunFile(path, (), (), ())
            if head == "units" and len(words) > 1:
                styles.append(_substitute(words[1], variables))
            elif head == "timestep" and len(words) > 1:
                timesteps.append(_substitute(words[1], variables))
            elif head == "variable" and len(words) > 3 and words[2] in ("index", "string"):
                variables[words[1]] = words[3]
            elif head == "dump" and len(words) > 5:  # dump ID group style N file ...
                dumps.append(_substitute(words[5], variables))
            elif head == "write_dump" and len(words) > 3:  # write_dump group style file ...: one frame
                dumps.append(_substitute(words[3], variables))
    values = []
    for text in timesteps:
        try:
            values.append(float(text))
        except ValueError:  # an unresolved ${variable} or an equal-style expression
            continue
    return _RunFile(path, tuple(dict.fromkeys(s.lower() for s in styles)), tuple(dict.fromkeys(values)),
                    tuple(dumps))


def _plain_name(name: str) -> str:
    for suffix in _COMPRESSION:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _writes(run_file: _RunFile, path: Path) -> bool:
    """Whether a ``dump`` command of ``run_file`` writes ``path`` (compressed later or
    not; ``*`` and ``%`` in the dump's name match any step or processor)."""
    ours = {path.name, _plain_name(path.name)}
    for written in run_file.dumps:
        name = Path(written).name
        for pattern in {name, _plain_name(name)}:
            if pattern in ours:
                return True
            if ("*" in pattern or "%" in pattern) and any(
                fnmatch.fnmatchcase(o, pattern.replace("%", "*")) for o in ours
            ):
                return True
    return False


def _run_files(path: Path) -> list[_RunFile]:
    """The log and input files beside ``path`` that describe the run that wrote it."""
    found, seen = [], set()
    for pattern in RUN_FILE_PATTERNS:
        for candidate in sorted(path.parent.glob(pattern)):
            if candidate in seen or candidate == path or not candidate.is_file():
                continue
            seen.add(candidate)
            if candidate.stat().st_size <= _SCAN_LIMIT_BYTES:
                found.append(_scan_run_file(candidate))
    naming = [f for f in found if _writes(f, path)]
    return naming or [f for f in found if f.path.name == "log.lammps"]


@dataclass(frozen=True)
class RunUnits:
    """The units of a file LAMMPS wrote, and its MD time step.

    Attributes
    ----------
    style : str or None
        ``"real"``, ``"metal"``, ``"si"`` or ``"cgs"``; None when nothing says.
    source : str
        Where the style came from (for messages).
    timestep : float or None
        The run's MD time step in fs, where its files give one value.
    timestep_note : str
        Why there is no ``timestep`` (for messages).
    timestep_source : str
        The files that gave ``timestep``.
    """

    style: str | None
    source: str = ""
    timestep: float | None = None
    timestep_note: str = ""
    timestep_source: str = ""

    @property
    def native(self) -> units.NativeUnits | None:
        return None if self.style is None else units.NATIVE_UNITS[f"lammps-{self.style}"]

    def describe(self, stored: list[str], name: str) -> list[str]:
        """The summary's phrases: what ``name`` gave, in which units, and the time step's origin."""
        units_said = (f"{self.native.name}, units {self.style} from {self.source}" if self.style is not None
                      else "LAMMPS, units unknown: positions taken as Å")
        notes = [f"{', '.join(['positions', *stored])} from {name} ({units_said})"]
        if self.timestep is not None:
            notes.append(f"time step {self.timestep:g} fs per MD step from {self.timestep_source}")
        return notes

    @property
    def length(self) -> float:
        """Length unit in Å (1 when the style is unknown: real and metal lengths are Å)."""
        return 1.0 if self.style is None else self.native.length

    @property
    def mass(self) -> float:
        """Mass unit in u (1 when the style is unknown)."""
        return 1.0 if self.style is None else _mass_unit_in_u()[self.style]


def _checked_style(style: str, source: str, name: str) -> str:
    style = str(style).strip().lower()
    if style not in units.LAMMPS_UNIT_STYLES:
        known = ", ".join(units.LAMMPS_UNIT_STYLES)
        what = "reduced units with no Å or fs" if style == "lj" else "not converted by mdsr_plugin"
        raise FormatError(f"{name}: LAMMPS units {style} ({source}) are {what}; mdsr_plugin reads {known}")
    return style


def run_units(path, lammps_units: str | None = None, dump_style: str | None = None,
              dump_source: str = "ITEM: UNITS") -> RunUnits:
    """The units style and time step of the LAMMPS run that wrote ``path``.

    Parameters
    ----------
    path : path-like
        The dump (or DCD) LAMMPS wrote.
    lammps_units : str, optional
        The style the user gave; it wins over the run's files (with a warning where
        they say otherwise) but not over the dump's own ``ITEM: UNITS``.
    dump_style : str, optional
        The style the file itself records (a text dump's ``ITEM: UNITS``, the unit
        attributes of a NetCDF dump).
    dump_source : str
        Where the file records it, for messages.

    Raises
    ------
    FormatError
        For a style mdsr_plugin does not convert (``lj``, ``electron``...), a
        ``lammps_units`` contradicting ``ITEM: UNITS``, or run files that disagree.
    """
    path = Path(path)
    name = path.name
    files = _run_files(path)
    said = {}
    for run_file in files:
        for style in run_file.styles:
            said.setdefault(style, []).append(run_file.path.name)
    if lammps_units is not None:
        style, source = _checked_style(lammps_units, "lammps_units", name), "lammps_units"
        if dump_style is not None and dump_style.strip().lower() != style:
            raise FormatError(f"{name}: the dump says units {dump_style.strip()} ({dump_source}), "
                              f"lammps_units says {style}")
        others = {s: f for s, f in said.items() if s != style}
        if others:
            other, where = next(iter(others.items()))
            warnings.warn(f"{name}: lammps_units={style}, but {where[0]} says units {other}; "
                          "its timestep is not used", stacklevel=3)
    elif dump_style is not None:
        style, source = _checked_style(dump_style, f"the dump's {dump_source}", name), dump_source
    elif len(said) > 1:
        claims = "; ".join(f"{', '.join(files_)} say{'s' if len(files_) == 1 else ''} units {s}"
                           for s, files_ in said.items())
        raise FormatError(f"{name}: the run's files disagree ({claims}); pass --lammps-units "
                          f"{'|'.join(units.LAMMPS_UNIT_STYLES)} (lammps_units=)")
    elif said:
        (style, where), = said.items()
        style, source = _checked_style(style, ", ".join(where), name), ", ".join(where)
    else:
        return RunUnits(None, timestep_note="the run's units are unknown")
    agreeing = [f for f in files if set(f.styles) <= {style}]
    values = sorted({t for f in agreeing for t in f.timesteps})
    native = units.NATIVE_UNITS[f"lammps-{style}"]
    if len(values) == 1:
        given_by = ", ".join(f.path.name for f in agreeing if f.timesteps)
        return RunUnits(style, source, values[0] * native.time, timestep_source=given_by)
    where = ", ".join(f.path.name for f in agreeing)
    if values:
        note = f"{where} set timestep {' and '.join(f'{v:g}' for v in values)} (several runs)"
    elif where:
        note = f"{where} give{'s' if len(agreeing) == 1 else ''} no `timestep`"
    else:
        note = "no log.lammps or input beside the dump gives the run's `timestep`"
    return RunUnits(style, source, None, note)


# --------------------------------------------------------------------------- atom identities
def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def dump_identities(n_atoms: int, types, elements, masses, *, topology=None, ids=None, type_map=None,
                    mass_unit: float = 1.0, source: str):
    """Atomic numbers, masses (u or None) and names of a dump's atoms (module docstring).

    Parameters
    ----------
    n_atoms : int
    types, elements : sequence of str, or None
        The dump's ``type`` and ``element`` columns, ordered by atom id.
    masses : ndarray, shape (n_atoms,), or None
        The dump's ``mass`` column, in the style's mass unit.
    topology : path-like, optional
        A LAMMPS data file (or any topology MDAnalysis reads) with the same atoms.
    ids : ndarray, shape (n_atoms,), int, optional
        The dump's atom ids, checked against the topology's.
    type_map : dict of str to int, optional
    mass_unit : float
        The style's mass unit in u.
    source : str
        The dump's name, for messages.
    """
    masses = None if masses is None else np.asarray(masses, dtype=np.float64) * mass_unit
    top_numbers = top_masses = top_types = None
    if topology is not None:
        top_numbers, top_masses, top_types = _topology_atoms(topology, n_atoms, ids, mass_unit, source)
        if masses is None:
            masses = top_masses
    if type_map is not None:
        mapped = types if types is not None else top_types
        if mapped is None:
            raise FormatError(f"{source}: the dump has no type column for the type map")
        return numbers_from_type_map(mapped, type_map, source), masses, list(mapped)
    numbers = np.zeros(n_atoms, dtype=np.int64)
    if elements is not None:
        numbers = numbers_from_element_symbols(elements)
    if top_numbers is not None:
        numbers = fill_unknown(numbers, top_numbers)
    if masses is not None:
        numbers = fill_unknown(numbers, numbers_from_masses(masses))
    if types is not None and not all(_is_number(t) for t in types):
        numbers = fill_unknown(numbers, numbers_from_names(types)[0])  # type labels (`labelmap`)
    return numbers, masses, None if types is None else list(types)


def _topology_atoms(topology, n_atoms, ids, mass_unit, source):
    """Numbers, masses (u) and types of the atoms of a topology given with a dump."""
    topology = Path(topology)
    universe = open_topology(topology)
    atoms = universe.atoms
    if len(atoms) != n_atoms:
        raise FormatError(f"topology {topology.name} has {len(atoms)} atoms, {source} {n_atoms}")
    if ids is not None and hasattr(atoms, "ids") and not np.array_equal(np.sort(atoms.ids), ids):
        raise FormatError(f"topology {topology.name}: its atom ids are not those of {source}")
    numbers, masses, _ = universe_identities(universe, mass_scale=mass_unit, source=topology.name)
    types = [str(t) for t in atoms.types] if hasattr(atoms, "types") else None
    return numbers, masses, types


def check_identities(numbers, masses, types, *, has_forces: bool, source: str) -> None:
    """Refuse forces of atoms with neither element nor mass; warn about positions and
    velocities of such atoms (they are kept, as element 0 and mass 1)."""
    unknown = numbers == 0
    if masses is not None or not unknown.any():
        return
    if types is not None:
        kinds = sorted({types[i] for i in np.flatnonzero(unknown)}, key=lambda t: (len(t), t))
        listed = ", ".join(kinds[:8]) + ("…" if len(kinds) > 8 else "")
        which = f"atom type{'s' if len(kinds) > 1 else ''} {listed} {'have' if len(kinds) > 1 else 'has'}"
    else:
        which = "the atoms have"
    hint = "pass --type-map TYPE:ELEMENT,... (type_map=, e.g. 1:O,2:H) or the run's data file as --top"
    if has_forces:
        raise FormatError(f"{source}: {which} no element and no mass, and forces cannot be used without masses; {hint}")
    warnings.warn(f"{source}: {which} no element and no mass; written as element X, mass 1 ({hint})", stacklevel=4)


def refuse_tiny_box(box_lengths, source: str) -> None:
    """Without a units style lengths are read as Å; an atomistic box is not under 0.001 Å."""
    longest = float(np.max(box_lengths)) if np.size(box_lengths) else 0.0
    if 0 < longest < 1e-3:
        raise FormatError(f"{source}: the box is {longest:.3g} long: si (m) or cgs (cm) lengths, not Å; pass "
                          f"--lammps-units {'|'.join(units.LAMMPS_UNIT_STYLES)} (lammps_units=)")


def lammps_dcd_header(path) -> dict | None:
    """The header (``istart``, ``nsavc``, ``delta``...) of a DCD written by LAMMPS, or None
    for any other DCD.  LAMMPS writes ``delta`` in its own time unit, not CHARMM's AKMA."""
    from MDAnalysis.lib.formats.libdcd import DCDFile

    try:
        with DCDFile(str(path)) as dcd:
            header = dict(dcd.header)
    except (OSError, ValueError, EOFError):
        return None  # MDAnalysis' reader reports the damage
    return header if "LAMMPS" in str(header.get("remarks", "")) else None


# --------------------------------------------------------------------------- dumps
@dataclass
class _Frame:
    """One dump frame as written: the step, ``ITEM: TIME``, the cell rows and origin
    (the style's length unit), periodicity, and the atom table sorted by id."""

    step: int
    time: float | None
    cell: np.ndarray
    origin: np.ndarray
    pbc: np.ndarray
    columns: dict[str, int]
    table: np.ndarray

    def floats(self, names) -> np.ndarray:
        return self.table[:, [self.columns[n] for n in names]].astype(np.float64)

    def strings(self, name) -> list[str] | None:
        return None if name not in self.columns else [str(v) for v in self.table[:, self.columns[name]]]

    def has(self, *names) -> bool:
        return all(n in self.columns for n in names)


def _open_text(path: Path):
    suffix = path.suffix.lower()
    if suffix == ".gz":
        import gzip

        return gzip.open(path, "rt", errors="replace")
    if suffix == ".bz2":
        import bz2

        return bz2.open(path, "rt", errors="replace")
    if suffix == ".xz":
        import lzma

        return lzma.open(path, "rt", errors="replace")
    return open(path, errors="replace")


def _box(words: list[str], lines: list[str], source: str, index: int):
    """Cell rows, origin and periodicity from ``ITEM: BOX BOUNDS`` and its three lines."""
    try:
        values = np.array([[float(v) for v in line.split()] for line in lines])
    except ValueError:
        raise FormatError(f"{source}: frame {index}: unreadable box bounds") from None
    if words[:2] == ["abc", "origin"]:  # general triclinic: rows a, b, c and the origin
        flags, cell, origin = words[2:], values[:, :3], values[:, 3]
    elif words[:3] == ["xy", "xz", "yz"]:  # restricted triclinic: bounding box and tilts
        flags = words[3:]
        (xlo_b, xhi_b, xy), (ylo_b, yhi_b, xz), (zlo, zhi, yz) = values[:, :3]
        xlo, xhi = xlo_b - min(0.0, xy, xz, xy + xz), xhi_b - max(0.0, xy, xz, xy + xz)
        ylo, yhi = ylo_b - min(0.0, yz), yhi_b - max(0.0, yz)
        cell = np.array([[xhi - xlo, 0.0, 0.0], [xy, yhi - ylo, 0.0], [xz, yz, zhi - zlo]])
        origin = np.array([xlo, ylo, zlo])
    else:
        flags = words
        cell, origin = np.diag(values[:, 1] - values[:, 0]), values[:, 0]
    pbc = np.array([flag == "pp" for flag in flags] if len(flags) == 3 else [True] * 3)
    return cell, origin, pbc


class _DumpFrames:
    """Iterate over the frames of an open dump; ``units`` is its ``ITEM: UNITS``, if any."""

    def __init__(self, handle, source: str):
        self.handle, self.source, self.units = handle, source, None

    def _value(self, index, what):
        line = self.handle.readline()
        if not line.strip():
            raise FormatError(f"{self.source}: frame {index}: no value after ITEM: {what} (the file is cut short?)")
        return line

    def __iter__(self) -> Iterator[_Frame]:
        handle, source, index = self.handle, self.source, 0
        while True:
            line = handle.readline()
            while line and not line.strip():
                line = handle.readline()
            if not line:
                return
            step = time = n_atoms = box = None
            while True:
                if not line.startswith("ITEM:"):
                    raise FormatError(f"{source}: frame {index}: expected an 'ITEM:' line, found {line.strip()[:60]!r}")
                words = line[5:].split()
                item = " ".join(words[:3])
                try:
                    if item.startswith("UNITS"):
                        self.units = self._value(index, "UNITS").strip()
                    elif item.startswith("TIMESTEP"):
                        step = int(self._value(index, "TIMESTEP").split()[0])
                    elif item.startswith("TIME"):
                        time = float(self._value(index, "TIME").split()[0])
                    elif item == "NUMBER OF ATOMS":
                        n_atoms = int(self._value(index, "NUMBER OF ATOMS"))
                    elif item.startswith("BOX BOUNDS"):
                        box = _box(words[2:], [self._value(index, "BOX BOUNDS") for _ in range(3)], source, index)
                    elif item.startswith("ATOMS"):
                        break
                    else:
                        raise FormatError(f"{source}: frame {index}: unknown header 'ITEM: {' '.join(words)}'")
                except ValueError as err:
                    if isinstance(err, FormatError):
                        raise
                    raise FormatError(f"{source}: frame {index}: unreadable ITEM: {item} ({err})") from None
                line = handle.readline()
                if not line:
                    raise FormatError(f"{source}: frame {index} ends in its header (the file is cut short?)")
            if step is None or n_atoms is None or box is None:
                raise FormatError(f"{source}: frame {index} lacks ITEM: TIMESTEP, NUMBER OF ATOMS or BOX BOUNDS")
            names = words[1:]
            lines = [handle.readline() for _ in range(n_atoms)]
            tokens = "".join(lines).split()
            if len(tokens) != n_atoms * len(names):
                raise FormatError(f"{source}: frame {index}: {n_atoms} atom lines of the {len(names)} columns "
                                  f"({' '.join(names)}) expected; the frame is cut short or malformed")
            table = np.array(tokens).reshape(n_atoms, len(names))
            columns = {name: k for k, name in enumerate(names)}
            if "id" in columns:
                try:
                    ids = table[:, columns["id"]].astype(np.int64)
                except ValueError:
                    raise FormatError(f"{source}: frame {index}: atom ids are not integers") from None
                table = table[np.argsort(ids, kind="stable")]
            yield _Frame(step, time, box[0], box[1], box[2], columns, table)
            index += 1


def _open_binary(path: Path):
    suffix = path.suffix.lower()
    if suffix == ".gz":
        import gzip

        return gzip.open(path, "rb")
    if suffix == ".bz2":
        import bz2

        return bz2.open(path, "rb")
    if suffix == ".xz":
        import lzma

        return lzma.open(path, "rb")
    return open(path, "rb")


def _count_frames(path: Path) -> int:
    """Frames in a dump: its ``ITEM: TIMESTEP`` lines, counted in blocks of bytes."""
    marker = b"ITEM: TIMESTEP"
    count, tail = 0, b""
    with _open_binary(path) as raw:
        while block := raw.read(1 << 24):
            data = tail + block
            count += data.count(marker)
            tail = data[-(len(marker) - 1):]  # a marker cut by the block boundary is counted next time
    return count


def _first_frame(path: Path) -> tuple[_Frame, str | None]:
    """The first frame of a dump and its ``ITEM: UNITS`` (None if it has none)."""
    with _open_text(path) as handle:
        frames = _DumpFrames(handle, path.name)
        first = next(iter(frames), None)
    if first is None:
        raise FormatError(f"{path.name}: no frames")
    return first, frames.units


def _mass_column(frame: _Frame) -> np.ndarray | None:
    return frame.floats(["mass"])[:, 0] if frame.has("mass") else None


def first_frame_identities(path, *, type_map=None, mass_unit: float = 1.0, topology=None):
    """:func:`dump_identities` of the atoms of a dump's first frame."""
    path = Path(path)
    first, _ = _first_frame(path)
    ids = first.floats(["id"]).astype(np.int64)[:, 0] if first.has("id") else None
    return dump_identities(len(first.table), first.strings("type"), first.strings("element"),
                           _mass_column(first), topology=topology, ids=ids, type_map=type_map,
                           mass_unit=mass_unit, source=path.name)


class LAMMPSDumpReader(TrajectoryReader):
    """A LAMMPS text dump (``dump atom``/``custom``), read in the units of its run.

    Positions (``xu yu zu``, else ``x y z`` unwrapped with ``ix iy iz`` where present,
    else the scaled ``xsu``/``xs`` columns), ``vx vy vz`` and ``fx fy fz`` are read as
    written, in float64, sorted by atom id, and converted with
    ``NATIVE_UNITS["lammps-<style>"]``; the box keeps LAMMPS' origin (positions are not
    shifted) and its ``pp``/``ff``/``ss`` flags.  The module docstring gives how the
    units, times and elements are found.

    Parameters
    ----------
    path : path-like
        ``.lammpstrj``, ``.dump``..., optionally ``.gz``, ``.bz2`` or ``.xz`` compressed.
    dt : float, optional
        Coarse step in fs, overriding the file's times.
    topology : path-like, optional
        The run's LAMMPS data file (its ``Masses`` give masses and elements), or any
        topology MDAnalysis reads with the same atoms in id order.
    lammps_units : str, optional
        The run's units style: ``"real"``, ``"metal"``, ``"si"`` or ``"cgs"``.
    type_map : dict or str, optional
        Element of each atom type: ``{"1": "O", "2": "H"}`` or ``"1:O,2:H"``.
    """

    def __init__(self, path, *, dt=None, topology=None, lammps_units=None, type_map=None):
        super().__init__(path, dt=dt)
        name = self.path.name
        type_map = parse_type_map(type_map)
        first, dump_style = _first_frame(self.path)
        self.run = run_units(self.path, lammps_units, dump_style)
        self._has_velocities = first.has("vx", "vy", "vz")
        self._has_forces = first.has("fx", "fy", "fz")
        if self.run.style is None:
            if self._has_velocities or self._has_forces:
                raise FormatError(missing_units_message(name))
            refuse_tiny_box(np.linalg.norm(first.cell, axis=1), name)
        if not any(first.has(*c) for c in _COORDINATES):
            raise FormatError(f"{name}: no positions (x y z, xu yu zu, xs ys zs or xsu ysu zsu columns)")
        self._use_time_item = first.time is not None and self.run.style is not None
        if dt is None and not self._use_time_item and self.run.timestep is None:
            raise FormatError(
                f"{name}: the file records no time step; pass --dt or dt= (coarse step in fs), or put the run's "
                f"log.lammps beside the dump (a dump stores step numbers; times are step × the run's `timestep`; "
                f"{self.run.timestep_note})"
            )
        self._ids = first.floats(["id"]).astype(np.int64)[:, 0] if first.has("id") else None
        masses = _mass_column(first)
        if masses is not None and self.run.style is None and 0 < masses.max() < 1e-6:
            raise FormatError(f"{name}: masses of {masses.max():.3g} are si (kg) or cgs (g) masses; "
                              f"pass --lammps-units {'|'.join(units.LAMMPS_UNIT_STYLES)} (lammps_units=)")
        self._numbers, self._masses, self._names = dump_identities(
            len(first.table), first.strings("type"), first.strings("element"), masses, topology=topology,
            ids=self._ids, type_map=type_map, mass_unit=self.run.mass, source=name,
        )
        check_identities(self._numbers, self._masses, self._names, has_forces=self._has_forces, source=name)
        self._n_atoms = len(first.table)
        self._frame_count = None
        stored = [q for q, has in (("velocities", self._has_velocities), ("forces", self._has_forces)) if has]
        self.notes = self.run.describe([*stored, "box"], name)

    @property
    def n_frames(self) -> int:
        """Frames in the dump (counted once, from its ``ITEM: TIMESTEP`` lines)."""
        if self._frame_count is None:
            self._frame_count = _count_frames(self.path)
        return self._frame_count

    def _positions(self, frame: _Frame) -> np.ndarray:
        names = next(c for c in _COORDINATES if frame.has(*c))
        positions = frame.floats(names)
        if names[0].startswith("xs"):
            positions = frame.origin + positions @ frame.cell
        if names[0] in ("x", "xs") and frame.has("ix", "iy", "iz"):
            positions = positions + frame.floats(["ix", "iy", "iz"]) @ frame.cell
        return positions

    def _check_atoms(self, frame: _Frame, index: int) -> None:
        if len(frame.table) != self._n_atoms:
            raise FormatError(f"{self.path.name}: frame {index} has {len(frame.table)} atoms, frame 0 {self._n_atoms}")
        if self._ids is not None and not np.array_equal(frame.floats(["id"])[:, 0].astype(np.int64), self._ids):
            raise FormatError(f"{self.path.name}: frame {index}: atom ids differ from frame 0's")
        for quantity, columns in (("velocities", ("vx", "vy", "vz")), ("forces", ("fx", "fy", "fz"))):
            if frame.has(*columns) != (self._has_velocities if quantity == "velocities" else self._has_forces):
                raise FormatError(f"{self.path.name}: frame {index}: {quantity} columns differ from frame 0's")

    def _assemble(self, frames: list[_Frame], start: int) -> Trajectory:
        native = self.run.native
        length = self.run.length
        steps = np.array([f.step for f in frames], dtype=np.int64)
        if self._use_time_item:
            file_times = np.array([f.time for f in frames]) * native.time
        elif self.run.timestep is not None:
            file_times = steps * self.run.timestep
        else:
            file_times = None
        velocities = forces = None
        if self._has_velocities:
            velocities = np.array([f.floats(["vx", "vy", "vz"]) for f in frames]) * native.velocity
        if self._has_forces:
            forces = np.array([f.floats(["fx", "fy", "fz"]) for f in frames]) * native.force
        return Trajectory(
            numbers=self._numbers,
            masses=self._masses,
            names=self._names,
            positions=np.array([self._positions(f) for f in frames]) * length,
            times=self._times(start, len(frames), file_times),
            velocities=velocities,
            forces=forces,
            cell=np.array([f.cell for f in frames]) * length,
            pbc=frames[0].pbc,
            steps=steps,
        )

    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        start, pending = 0, []
        with _open_text(self.path) as handle:
            for index, frame in enumerate(_DumpFrames(handle, self.path.name)):
                self._check_atoms(frame, index)
                pending.append(frame)
                if len(pending) == chunk_size:
                    yield self._assemble(pending, start)
                    start, pending = start + len(pending), []
        if pending:
            yield self._assemble(pending, start)


# --------------------------------------------------------------------------- through MDAnalysis
class LAMMPSUniverseReader(MDAnalysisReader):
    """A Universe on a file LAMMPS wrote: its DCD (read as such by MDAnalysis' CHARMM
    reader, whose AKMA time step is wrong for it), or MDAnalysis' own reading of a dump
    (``upsample_universe``).  Positions, velocities and forces are those MDAnalysis gives
    (a dump's positions shifted by the box origin, in float32), converted from the run's
    units; times are the MD step × the run's time step (a DCD's header ``delta`` is in
    the run's time unit; a dump's from its log, or the ``dt`` given to the Universe).
    Atoms: a dump's own columns (:func:`first_frame_identities`), else the topology's,
    with masses in the style's mass unit.
    """

    def _attach(self, universe, owns=True, type_map=None, lammps_units=None):
        self._attach_trajectory(universe, owns)
        trajectory = universe.trajectory
        filename = Path(trajectory.filename)
        is_dump = type(trajectory).__name__ == "DumpReader"
        run = self._run = run_units(filename, lammps_units)
        ts = trajectory.ts
        if run.style is None:
            if ts.has_velocities or ts.has_forces:
                raise FormatError(missing_units_message(filename.name))
            refuse_tiny_box(ts.dimensions[:3] if ts.dimensions is not None else [], filename.name)
        else:
            native = run.native
            self._length, self._velocity, self._force = native.length, native.velocity, native.force
        if is_dump:
            self._step_of = lambda ts: int(ts.data["step"])
            # MDAnalysis' time is step × the Universe's dt (ps), 1 ps unless dt= was given to it.
            given = ts.data.get("dt")
            self._timestep = run.timestep if given is None else float(given) * units.FS_PER_PS
        else:
            header = lammps_dcd_header(filename)
            first, every = int(header["istart"]), int(header["nsavc"]) or 1
            self._step_of = lambda ts: first + every * ts.frame
            if run.style is not None:
                self._timestep = float(header["delta"]) * run.native.time
        self.has_time = self._timestep is not None
        if is_dump and Path(universe.filename or "") == filename:  # atoms from the dump itself
            self._numbers, self._masses, self._names = first_frame_identities(
                filename, type_map=type_map, mass_unit=run.mass)
        else:
            self._numbers, self._masses, self._names = universe_identities(
                universe, type_map=type_map, mass_scale=run.mass)
            if self._names is None and hasattr(universe.atoms, "types"):
                self._names = [str(t) for t in universe.atoms.types]
        check_identities(self._numbers, self._masses, self._names,
                         has_forces=bool(ts.has_forces), source=filename.name)


    @property
    def notes(self) -> list[str]:
        """What was read in which units: the run's, not the format's (the summary's "read" line)."""
        return self._run.describe(self._stored(box="box"), self.path.name)


def universe_reader_class(universe):
    """:class:`LAMMPSUniverseReader` for a Universe on a dump or on a DCD LAMMPS wrote
    (MDAnalysis' CHARMM reader), None for any other."""
    trajectory = universe.trajectory
    kind = type(trajectory).__name__
    if kind == "DumpReader" and trajectory.format == "LAMMPSDUMP":
        return LAMMPSUniverseReader
    if kind == "DCDReader" and trajectory.format == "DCD" and trajectory.filename \
            and lammps_dcd_header(trajectory.filename) is not None:
        return LAMMPSUniverseReader
    return None


# --------------------------------------------------------------------------- registration
#: The items a dump frame can start with (``dump_modify units yes``/``time yes`` put
#: ``ITEM: UNITS`` and ``ITEM: TIME`` before ``ITEM: TIMESTEP``).
_FIRST_ITEMS = (b"ITEM: TIMESTEP", b"ITEM: UNITS", b"ITEM: TIME")


def is_lammps_dump(name: str, head: bytes) -> bool:
    """Whether a file starting with ``head`` is a LAMMPS text dump: its first line is an
    ``ITEM:`` header, whatever the name (pyiron writes ``dump.out``, others ``*.txt``)."""
    return head.lstrip().startswith(_FIRST_ITEMS)


def _open_dump(path, **options):
    return LAMMPSDumpReader(path, **options)


def _register() -> None:
    from . import Format, register_format
    from .mdanalysis import register_universe_reader

    register_format(Format(
        "lammpsdump", (".lammpstrj", ".dump", ".lammpsdump", ".lammpstrj.bz2"),
        "LAMMPS text dump, in the run's units (--lammps-units, ITEM: UNITS, or its log.lammps)",
        _open_dump, None, "vx vy vz columns (the run's units)", sniff=is_lammps_dump))
    register_universe_reader("lammps", universe_reader_class)


_register()
