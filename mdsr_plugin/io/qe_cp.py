"""Quantum ESPRESSO ``cp.x`` (Car–Parrinello) trajectories: ``PREFIX.pos`` and its set.

cp.x (``CPV/src/print_out.f90``, ``Modules/printout_base.f90``) writes every ``iprint``
steps, into ``outdir``, one file per quantity:

=================  ==========================================  ===========================
file               holds                                       units
=================  ==========================================  ===========================
``PREFIX.pos``     positions                                   bohr
``PREFIX.vel``     velocities                                  bohr / Hartree a.u. of time
``PREFIX.for``     forces (``tprnfor=.true.``; else empty)     hartree / bohr
``PREFIX.cel``     the cell matrix ``h``, row i = (h(i,1..3))  bohr
``PREFIX.evp``     nfi, time (ps), ekinc, T_cell, T_ion (K)…   (energies in hartree)
=================  ==========================================  ===========================

Each frame is a header line ``nfi time`` (``'(I8,1X,F13.8)'``: the MD step and the time
in **ps**; older versions ``'(I7,2X,F11.8)'``) followed by one ``'(3E25.14)'`` line per
atom (``'(3F14.8)'``, three lines, in ``.cel``).  cp.x's time unit is the *Hartree*
atomic unit (``dt = 3.0`` is 0.0726 fs: step 111 of the QEHeat example prints
0.00805488 ps = 111 × 3 × 0.0241888 fs), unlike pw.x's Rydberg one.  ``h = at·alat``
holds the lattice vectors in its *columns*, so the cell (one vector per row) is the
transpose of each ``.cel`` block.  The files are opened with ``position='append'``: a
run repeated with the same prefix appends frames whose steps go back; that is refused.

The files name no elements.  They are taken from, in order:

* ``--top`` (``topology=``), a file naming each atom's element;
* the labels of an ``ATOMIC_POSITIONS`` block that a cp.x output log (``Program CP``)
  beside the files printed: the same array as ``.pos``, in the same order;
* the cp.x input beside them (``ATOMIC_SPECIES`` and ``ATOMIC_POSITIONS`` cards) whose
  ``prefix`` (default ``cp``) is the files' prefix.  cp.x before 6.6 sorted the atoms
  by species, 6.6 and later keep the input order: when the input does not list them
  grouped by species, the version printed in an output log decides, else the run is
  refused.

"Beside" is the files' folder and its parent (``outdir='./traj'`` puts them in a
subfolder of the run's).  The ``dt`` of that input (Hartree a.u.; cp.x's default 1.0)
turns the step numbers into exact times when they agree with the printed ones (F13.8
ps: ±5e-6 fs); otherwise the printed times are used.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import numpy as np

from ..elements import numbers_from_symbols
from ..trajectory import Trajectory
from ..units import AU_TIME_FS, FS_PER_PS, NATIVE_UNITS
from .base import FormatError, TrajectoryReader
from .companions import QuantityChunk, QuantitySource

__all__ = ["is_cp_trajectory", "CPPositionsReader", "CPQuantityFile", "cp_companions", "cp_role",
           "is_cp_companion", "cp_element_sources"]

_AU = NATIVE_UNITS["atomic"]  # bohr, bohr / Hartree a.u. of time, hartree / bohr
#: The files cp.x writes per quantity, by suffix, and what each holds.
_ROLES = {".pos": "positions", ".vel": "velocities", ".for": "forces", ".cel": "cell"}
#: The other per-step files cp.x writes beside them (energies, stress, thermostats...).
_OTHER_SUFFIXES = (".evp", ".str", ".nos", ".eig", ".wfc", ".spr", ".the", ".ncg", ".hrs", ".pol", ".con")
#: ``nfi time``; a time too wide for its Fortran field is printed as asterisks (cp.x before
#: 6.x wrote F11.8 ps: from 100 ps on), and is taken from the step and the input's dt.
_HEADER = re.compile(rb"^\s*(\d+)\s+([-+]?\d*\.\d+(?:[eEdD][-+]?\d+)?|\*+)\s*$")
_ROW = re.compile(rb"^\s*(?:[-+]?\d*\.\d+(?:[eEdD]?[-+]?\d+)?\s+){2}[-+]?\d*\.\d+(?:[eEdD]?[-+]?\d+)?\s*$")
_VERSION = re.compile(r"Program CP v\.?\s*(\d+)\.(\d+)")
_LABELLED = re.compile(r"^\s*(\S+)\s+([-+0-9.eEdD]+)\s+([-+0-9.eEdD]+)\s+([-+0-9.eEdD]+)\s*$")
_SIGNATURE = "a .pos/.vel/.for/.cel name and cp.x's 'NFI TIME(ps)' header line followed by rows of 3 numbers"
#: Time resolution of cp.x's header (F13.8 ps), fs: half its last digit, plus rounding.
_PRINTED_TIME_TOLERANCE_FS = 0.5e-8 * FS_PER_PS + 1e-9


def cp_role(path) -> str | None:
    """``"positions"``, ``"velocities"``, ``"forces"`` or ``"cell"`` from a cp.x file's suffix."""
    return _ROLES.get(Path(path).suffix.lower())


def is_cp_trajectory(name: str, head: bytes) -> bool:
    """Whether a file named ``name`` (lower case) starting with ``head`` is a cp.x
    ``.pos``/``.vel``/``.for``/``.cel``: that suffix, a first line ``NFI TIME`` (an integer
    and a decimal number) and a next line of three numbers."""
    if Path(name).suffix not in _ROLES:
        return False
    lines = head.split(b"\n", 2)
    return len(lines) > 2 and _HEADER.match(lines[0]) is not None and _ROW.match(lines[1]) is not None


def _file_is_cp(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return is_cp_trajectory(path.name.lower(), handle.read(512))
    except OSError:
        return False


def cp_companions(positions_path) -> dict[str, Path]:
    """The ``.vel``, ``.for`` and ``.cel`` files cp.x wrote beside ``PREFIX.pos``.

    An empty file (cp.x creates ``.for`` even when ``tprnfor`` is off) is left out.
    """
    path = Path(positions_path)
    if cp_role(path) != "positions":
        return {}
    found = {}
    for suffix, quantity in _ROLES.items():
        candidate = path.with_suffix(suffix)
        if quantity != "positions" and candidate.is_file() and candidate.stat().st_size > 0:
            found[quantity] = candidate
    return found


def is_cp_companion(path) -> bool:
    """Whether ``path`` is one of the files cp.x writes beside a cp.x ``PREFIX.pos``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".pos" or (suffix not in _ROLES and suffix not in _OTHER_SUFFIXES):
        return False
    return any(_file_is_cp(sibling) for sibling in (path.with_suffix(".pos"), path.with_suffix(".POS"))
               if sibling.is_file())


def _float(text: str) -> float:
    return float(text.lower().replace("d", "e"))


def _blocks(path: Path, rows: int | None, chunk_size: int):
    """Chunks of ``chunk_size`` frames: (steps (F,) int, times (F,) ps, values (F, rows, 3)).

    ``rows`` (atoms, or 3 for ``.cel``) is read from the first frame when None.
    """
    source = path.name
    steps, times, frames = [], [], []
    current: list[list[float]] | None = None
    previous = None
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            header = _HEADER.match(line)
            if header is not None:
                if current is not None:
                    rows = _close_frame(current, rows, steps[-1], source)
                    frames.append(current)
                    if len(frames) == chunk_size:
                        yield np.array(steps), np.array(times), np.array(frames)
                        steps, times, frames = [], [], []
                step = int(header[1])
                if previous is not None and step <= previous:
                    raise FormatError(f"{source}: line {number}: step {step} after step {previous}; cp.x appends to "
                                      "its files when a run is repeated with the same prefix: keep one run's frames "
                                      "(cut the file at the repeat)")
                previous = step
                steps.append(step)
                times.append(np.nan if header[2].startswith(b"*") else _float(header[2].decode()))
                current = []
                continue
            if current is None:
                raise FormatError(f"{source}: line {number} is not cp.x's 'NFI TIME(ps)' frame header: "
                                  f"{line.decode(errors='replace').strip()[:60]!r}")
            parts = line.split()
            try:
                current.append([_float(p.decode()) for p in parts])
            except ValueError:
                current.append([])
            if len(current[-1]) != 3:
                raise FormatError(f"{source}: line {number} is not 3 numbers (step {steps[-1]}): "
                                  f"{line.decode(errors='replace').strip()[:60]!r}")
    if current is not None:
        if rows is not None and len(current) != rows:
            raise FormatError(f"{source}: the last step {steps[-1]} has {len(current)} rows of {rows} "
                              "(the file is cut short)")
        frames.append(current)
    if frames:
        yield np.array(steps), np.array(times), np.array(frames)


def _close_frame(frame: list, rows: int | None, step: int, source: str) -> int:
    if rows is None:
        rows = len(frame)
    if len(frame) != rows or rows == 0:
        raise FormatError(f"{source}: step {step} has {len(frame)} rows, the first step {rows}")
    return rows


def _rows_per_frame(path: Path) -> int:
    """Rows of the first frame (atoms; 3 in ``.cel``), read from the start of the file."""
    count, seen_header = 0, False
    with open(path, "rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            if _HEADER.match(line):
                if seen_header:
                    return count
                seen_header = True
            elif seen_header:
                count += 1
            else:
                break
    if not seen_header or count == 0:
        raise FormatError(f"{path.name}: not a cp.x trajectory file: no 'NFI TIME(ps)' header followed by rows "
                          "of 3 numbers")
    return count


# --------------------------------------------------------------------------- elements
def _beside(path: Path) -> list[Path]:
    """Small files in the folder of ``path`` and its parent, the folder's first."""
    found = []
    path = path.absolute()  # "cp.pos" given in its own folder: its parent's parent is that folder's parent
    for folder in (path.parent, path.parent.parent):
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_file() and entry.suffix.lower() not in _ROLES and entry.stat().st_size < 50_000_000:
                    found.append(entry)
            except OSError:
                continue
        if folder == folder.parent:
            break
    return found


def _head(path: Path, size: int = 8192) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read(size).decode("utf-8", errors="replace")
    except OSError:
        return ""


class _Log:
    """What a cp.x output log says: its version and the labels of an ``ATOMIC_POSITIONS`` block."""

    def __init__(self, path: Path, n_atoms: int):
        self.path = path
        match = _VERSION.search(_head(path))
        self.version = (int(match[1]), int(match[2])) if match else None
        self.labels = None
        with open(path, "r", errors="replace") as handle:
            for line in handle:
                # printout_pos(what='pos', label=atm): '   ATOMIC_POSITIONS', then '(3X,A3,3E25.14)' rows.
                if line.strip() == "ATOMIC_POSITIONS":
                    rows = [_LABELLED.match(next(handle, "")) for _ in range(n_atoms)]
                    if all(rows):
                        self.labels = [m[1] for m in rows]


class _Input:
    """A cp.x input: ``prefix``, ``dt`` (Hartree a.u.), species labels and masses, atom labels."""

    def __init__(self, path: Path):
        self.path = path
        text = path.read_text(errors="replace")
        body = "\n".join(line.split("!")[0] for line in text.splitlines())
        prefix = re.search(r"(?<![\w])prefix\s*=\s*['\"]([^'\"]+)['\"]", body, re.I)
        self.prefix = prefix[1].strip() if prefix else "cp"  # cp.x's default prefix
        dt = re.search(r"(?<![\w(])dt\s*=\s*([-+0-9.eEdD]+)", body, re.I)
        self.dt_au = _float(dt[1]) if dt else 1.0  # cp.x's default dt
        nat = re.search(r"(?<![\w])nat\s*=\s*(\d+)", body, re.I)
        self.nat = int(nat[1]) if nat else None
        lines = body.splitlines()
        self.species: dict[str, float] = {}  # label -> mass (u), in ATOMIC_SPECIES order
        self.labels: list[str] = []
        for i, line in enumerate(lines):
            card = line.strip().upper()
            if card.startswith("ATOMIC_SPECIES"):
                for row in lines[i + 1:]:
                    parts = row.split()
                    if len(parts) < 2 or not _is_number(parts[1]):
                        break
                    self.species[parts[0]] = _float(parts[1])
            elif card.startswith("ATOMIC_POSITIONS") and self.nat:
                rows = [row.split() for row in lines[i + 1:] if row.strip()][: self.nat]
                self.labels = [r[0] for r in rows if len(r) >= 4]

    def usable(self, prefix: str, n_atoms: int) -> bool:
        return (self.prefix == prefix and self.nat == n_atoms and len(self.labels) == n_atoms
                and all(label in self.species for label in self.labels))

    def grouped(self) -> bool:
        """Whether the atoms are listed by species in ATOMIC_SPECIES order (cp.x < 6.6's order)."""
        order = list(self.species)
        ranks = [order.index(label) for label in self.labels]
        return ranks == sorted(ranks)

    def sorted_labels(self) -> list[str]:
        order = list(self.species)
        return sorted(self.labels, key=order.index)  # stable: cp.x kept the input order within a species


def _is_number(text: str) -> bool:
    try:
        _float(text)
    except ValueError:
        return False
    return True


def cp_element_sources(path) -> tuple[list[Path], list[Path]]:
    """The cp.x output logs and inputs beside ``path`` (its folder and the parent), by content."""
    logs, inputs = [], []
    for candidate in _beside(Path(path)):
        head = _head(candidate)
        if "Program CP" in head:
            logs.append(candidate)
        elif re.search(r"ATOMIC_SPECIES", head, re.I) and re.search(r"&control", head, re.I):
            inputs.append(candidate)
        elif candidate.stat().st_size > len(head.encode()) and re.search(r"&control", head, re.I):
            # A long input (many atoms) has its cards after the first 8 KB.
            if re.search(r"ATOMIC_SPECIES", candidate.read_text(errors="replace"), re.I):
                inputs.append(candidate)
    return logs, inputs


def _identities(path: Path, n_atoms: int):
    """(labels, masses or None, the note saying where they came from, the input or None)."""
    prefix = path.stem
    log_paths, input_paths = cp_element_sources(path)
    inputs = [i for i in (_Input(p) for p in input_paths) if i.usable(prefix, n_atoms)]
    if len({tuple(i.labels) for i in inputs}) > 1:
        raise FormatError(f"{path.name}: the cp.x inputs {', '.join(i.path.name for i in inputs)} beside it list "
                          "different atoms; give the elements with --top")
    given = inputs[0] if inputs else None
    logs = [log for log in (_Log(p, n_atoms) for p in log_paths) if log.labels is not None or log.version]
    labelled = [log for log in logs if log.labels is not None]
    if len({tuple(log.labels) for log in labelled}) > 1:
        raise FormatError(f"{path.name}: the cp.x logs {', '.join(log.path.name for log in labelled)} beside it "
                          "list different atoms; give the elements with --top")
    masses = None
    if labelled:
        labels, note = labelled[0].labels, f"elements from the ATOMIC_POSITIONS labels of {labelled[0].path.name}"
    elif given is not None:
        labels = given.labels
        if not given.grouped():
            versions = {log.version for log in logs if log.version}
            if len(versions) != 1:
                raise FormatError(f"{path.name}: {given.path.name} does not list the atoms grouped by species, and "
                                  "cp.x before 6.6 wrote them sorted by species, 6.6 and later in input order: put "
                                  "the run's output log beside the files, or give the elements with --top")
            if versions.pop() < (6, 6):
                labels = given.sorted_labels()
        note = f"elements from {given.path.name} (ATOMIC_SPECIES, ATOMIC_POSITIONS)"
    else:
        raise FormatError(f"{path.name}: cp.x's files name no elements; put the run's cp.x input (prefix "
                          f"'{prefix}') or output log beside them (or in the folder above), or pass --top (a file "
                          "naming each atom's element)")
    if given is not None:
        if not all(label in given.species for label in labels):
            raise FormatError(f"{path.name}: the labels of the log ({', '.join(sorted(set(labels)))}) are not the "
                              f"species of {given.path.name}; give the elements with --top")
        masses = np.array([given.species[label] for label in labels])
        note += f"; masses from {given.path.name}"
    return labels, masses, note, given


# --------------------------------------------------------------------------- readers
class CPPositionsReader(TrajectoryReader):
    """``PREFIX.pos`` of cp.x: positions (bohr → Å), MD steps and times (ps → fs); elements,
    masses and ``dt`` from the files beside it (see the module docstring)."""

    def __init__(self, path, *, dt=None, topology=None):
        super().__init__(path, dt=dt)
        role = cp_role(self.path)
        if role != "positions":
            raise FormatError(f"{self.path.name} holds cp.x {role or 'data'}, not positions; give "
                              f"{self.path.with_suffix('.pos').name}, whose velocities, forces and cell are then "
                              "found beside it")
        if not _file_is_cp(self.path):
            raise FormatError(f"{self.path.name}: not a cp.x .pos file (a line 'NFI TIME(ps)', then one row of "
                              "3 numbers per atom, bohr)")
        self.n_atoms = _rows_per_frame(self.path)
        self.masses, self.dt_au, source = None, None, None
        if topology is not None:
            from .mdanalysis import topology_identities

            self.numbers, self.masses, self.names = topology_identities(topology, self.n_atoms)
            source = f"elements from {Path(topology).name}"
            found = None
        else:
            labels, self.masses, source, found = _identities(self.path, self.n_atoms)
            self.names = list(labels)
            self.numbers = numbers_from_symbols(labels)
        if not self.numbers.all():
            i = int(np.argmin(self.numbers))
            raise FormatError(f"{self.path.name}: cannot tell the element of atom {i} "
                              f"({self.names[i] if self.names else '?'}); give the elements with --top")
        self.notes = [f"positions from {self.path.name} (cp.x, bohr × {_AU.length:.6f}); {source}"]
        #: why times cannot come from the steps, where they must (a time printed as ****)
        self._no_dt = ("with --top the cp.x input beside the files is not read" if topology is not None
                       else "no cp.x input beside the files gives its dt")
        if topology is None and found is not None and dt is None:
            self._check_dt(found)
        if self.path.with_suffix(".for").is_file() and self.path.with_suffix(".for").stat().st_size == 0:
            self.notes.append(f"{self.path.with_suffix('.for').name} is empty (tprnfor was off): no forces")

    def _check_dt(self, found: _Input) -> None:
        """Keep the input's ``dt`` if the first frame's printed time is its step × dt."""
        steps, times_ps, _ = next(_blocks(self.path, self.n_atoms, 1))
        stepped, printed = steps[0] * found.dt_au * AU_TIME_FS, times_ps[0] * FS_PER_PS
        if np.isnan(printed):  # the time overflowed its field: the steps are all there is
            self.dt_au = found.dt_au
            self.notes.append(f"times: MD step × dt = {found.dt_au:g} Hartree a.u. from {found.path.name} (the "
                              "printed time overflowed its field: ****)")
        elif abs(stepped - printed) <= _PRINTED_TIME_TOLERANCE_FS + 1e-9 * abs(printed):
            self.dt_au = found.dt_au
            self.notes.append(f"times: MD step × dt = {found.dt_au:g} Hartree a.u. ({found.dt_au * AU_TIME_FS:.6g} "
                              f"fs) from {found.path.name}, where it agrees with the printed time (ps)")
        else:
            self._no_dt = f"the dt of {found.path.name} does not give the printed times"
            self.notes.append(f"times as printed (ps, 8 decimals): step {steps[0]} × dt = {found.dt_au:g} a.u. of "
                              f"{found.path.name} is not the printed {times_ps[0]:g} ps")

    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        start = 0
        for steps, times_ps, values in _blocks(self.path, self.n_atoms, chunk_size):
            file_times = times_ps * FS_PER_PS
            overflowed = np.isnan(file_times)
            if self.dt_au is not None:
                # step × dt is exact where it agrees with the 8-decimal ps (or where the time
                # overflowed its field); a changed dt or a reset counter keeps the printed time.
                stepped = steps * self.dt_au * AU_TIME_FS
                agree = np.abs(stepped - file_times) <= _PRINTED_TIME_TOLERANCE_FS + 1e-9 * np.abs(file_times)
                file_times = np.where(agree | overflowed, stepped, file_times)
            elif overflowed.any() and self.dt_override is None:
                i = int(np.argmax(overflowed))
                raise FormatError(f"{self.path.name}: step {steps[i]}: cp.x printed the time as **** (past 100 ps, "
                                  f"older versions), and {self._no_dt} to give times from the steps; pass --dt")
            yield Trajectory(numbers=self.numbers, masses=self.masses, names=self.names,
                             positions=values * _AU.length, times=self._times(start, len(steps), file_times),
                             steps=steps.astype(np.int64))
            start += len(steps)


class CPQuantityFile(QuantitySource):
    """``PREFIX.vel`` (bohr/a.u. time), ``PREFIX.for`` (Ha/bohr) or ``PREFIX.cel`` (bohr,
    lattice vectors in the columns) of cp.x, with each frame's step and time."""

    _UNITS = {"velocities": ("velocity", "bohr/a.u. time → Å/fs"), "forces": ("force", "Ha/bohr → eV/Å"),
              "cell": ("length", "bohr → Å, columns are the vectors")}

    def __init__(self, path, quantity: str):
        path = Path(path)
        if quantity not in self._UNITS:
            raise FormatError(f"{path.name}: a cp.x file gives velocities, forces or the cell, not {quantity}")
        role = cp_role(path)
        if role is not None and role != quantity:
            raise FormatError(f"{path.name} holds cp.x {role}, not {quantity}")
        if path.stat().st_size == 0:
            raise FormatError(f"{path.name} is empty (cp.x creates .for even when tprnfor is off); leave it out")
        attribute, units = self._UNITS[quantity]
        super().__init__(path, quantity, f"cp.x, {units}")
        self._factor = getattr(_AU, attribute)
        self._rows = 3 if quantity == "cell" else None

    def chunks(self, chunk_size) -> Iterator[QuantityChunk]:
        for steps, times_ps, values in _blocks(self.path, self._rows, chunk_size):
            if self.quantity == "cell":
                values = np.swapaxes(values, 1, 2)  # h(i, j): vector j in column j
            yield QuantityChunk(values * self._factor, steps.astype(np.int64), times_ps * FS_PER_PS)


def _open(path, **options):
    return CPPositionsReader(path, **options)


def _register() -> None:
    from . import Format, register_format

    # ".pos" is every code's: the layout decides (a .pos that is not cp.x's is refused in one line).
    register_format(Format("qe-cp", (".pos",), "Quantum ESPRESSO cp.x PREFIX.pos (+ .vel, .for, .cel beside it; "
                           "elements from the cp.x input or log beside it, or --top)", _open, None,
                           "PREFIX.vel (bohr/a.u. time)", sniff=is_cp_trajectory, signature=_SIGNATURE))


_register()
