"""SIESTA's ``SystemLabel.ANI``: the positions of every MD (or relaxation) step.

SIESTA appends one XYZ frame per step (Å; an empty comment line; the species
*labels* of ``ChemicalSpeciesLabel``, which need not be element symbols)::

        3
     (blank)
    O       0.000000   -0.036935    0.000000

The file holds neither times nor velocities.  The time step is ``MD.LengthTimeStep``
(value and unit, default fs) of the ``.fdf`` input beside it, or of the ``fdf*.log``
that SIESTA writes with every value it used; else ``--dt``.  The same input tells the
element of each label (``ChemicalSpeciesLabel``: index, atomic number, label) and
whether the run was dynamics at all: ``MD.TypeOfRun`` CG, Broyden or FIRE (CG is
SIESTA's default) make the ``.ANI`` a relaxation path, which is refused unless
``--dt`` is given.

Because a plain XYZ with empty comments looks the same, an ``.ANI`` is recognised by
its extension and shape together.

``SystemLabel.MD_CAR`` (``WriteMDHistory``) holds the same steps as VASP-like blocks: a
``---SystemLabel---`` line, a scale, the three cell rows (Å), the atom count of each
species, ``Direct`` and the fractional positions of every atom in the input's order.  It
names no element: each atom's species is the fourth column of the input's
``AtomicCoordinatesAndAtomicSpecies`` block, and ``ChemicalSpeciesLabel`` maps it to an
atomic number.  Block ``k`` holds the positions *after* MD step ``MD.InitialTimeStep + k``
(a real SIESTA 5.1 run prints its first block as the coordinates at which step 2 begins),
so its time is that step × ``MD.LengthTimeStep``.

SIESTA's ``.MD`` (unformatted Fortran, binary) and ``.MDE`` (energies and temperature per
step, no positions) are refused in one line that names the ``.ANI`` and ``.MD_CAR`` to
give instead.
"""

from __future__ import annotations

import re
from typing import Iterator

import numpy as np

from ..elements import numbers_from_symbols
from ..trajectory import Trajectory
from ..units import TIME_UNITS_FS
from .base import FormatError, NotATrajectory, TrajectoryReader
from .plain_xyz import columns, fixed_frames

__all__ = ["SiestaAniReader", "SiestaMDCarReader", "is_siesta_ani", "is_siesta_companion", "is_siesta_md_car",
           "is_siesta_md_binary"]

_RELAXATIONS = ("cg", "broyden", "fire")
#: MD.TypeOfRun values that are dynamics; any other (relaxations, FC's displaced geometries, a
#: Lua script's or an external driver's steps) is no trajectory unless --dt says to read it.
_DYNAMICS = ("verlet", "nose", "parrinellorahman", "noseparrinellorahman", "anneal", "tded")


def _key(line: str) -> tuple[str, list[str]]:
    """An fdf line's label, normalised as fdf compares labels (case, '.', '_', '-' ignored),
    and its values, comments dropped."""
    tokens = line.split("#", 1)[0].split()
    if not tokens:
        return "", []
    return re.sub(r"[._-]", "", tokens[0].lower()), tokens[1:]


def is_siesta_ani(name: str, head: bytes) -> bool:
    """Whether ``name`` ends in ``.ani`` and ``head`` starts with an XYZ frame."""
    lines = head.decode("ascii", errors="replace").splitlines()[:3]
    return (name.endswith(".ani") and len(lines) == 3 and lines[0].strip().isdigit()
            and len(lines[2].split()) == 4)


def is_siesta_md_car(name: str, head: bytes) -> bool:
    """Whether ``name`` ends in ``.md_car`` and ``head`` starts with a ``---label---`` line."""
    first = head.split(b"\n", 1)[0].strip()
    return name.endswith(".md_car") and first.startswith(b"---") and first.endswith(b"---")


def is_siesta_companion(path) -> bool:
    """Whether ``path`` is less of a SIESTA run than a file beside it, so that a batch reads
    that file only: a ``.ANI`` beside the run's readable ``.MD_CAR`` (the same steps, and the
    cell too), the ``.MD_CAR`` beside an ``.ANI`` where it cannot be read (its input names
    no species of its atoms), or the ``.MDE``/``.MD`` (energies; binary) beside either."""
    from pathlib import Path

    path = Path(path)
    suffix, stem = path.suffix.lower(), path.stem.lower()
    if suffix not in (".ani", ".md_car", ".mde", ".md"):
        return False
    beside = {other.suffix.lower(): other for other in path.parent.glob(f"{path.stem}.*") if other.stem.lower() == stem}
    if suffix == ".ani":
        return ".md_car" in beside and _readable_md_car(beside[".md_car"])
    if suffix == ".md_car":
        return ".ani" in beside and not _readable_md_car(path)
    if not {".ani", ".md_car"} & set(beside):
        return False
    with open(path, "rb") as handle:  # a CASTEP SEED.md is text: never SIESTA's
        return is_siesta_md_binary(path.name.lower(), handle.read(64))


def _readable_md_car(path) -> bool:
    try:
        SiestaMDCarReader(path).close()
    except (FormatError, OSError, ValueError):
        return False
    return True


def is_siesta_md_binary(name: str, head: bytes) -> bool:
    """SIESTA's ``.MD`` (binary Fortran records) or ``.MDE`` (``# Step  T (K)  E_KS …``)."""
    if name.endswith(".md"):
        return b"\x00" in head[:64]  # Markdown and CASTEP's .md are text
    return name.endswith(".mde") and head.lstrip().startswith(b"# Step")


_FDF_INCLUDE_DEPTH = 8  # an include chain deeper than this is a loop


def _fdf_lines(fdf, depth=0):
    """The lines of ``fdf`` with fdf's ``%include FILE`` and ``%block NAME < FILE`` expanded
    (files relative to ``fdf``'s folder; one that is missing is skipped, as nothing of it
    can be read)."""
    if depth > _FDF_INCLUDE_DEPTH:
        raise FormatError(f"{fdf.name}: %include nested more than {_FDF_INCLUDE_DEPTH} deep (a loop?)")
    with open(fdf, "r", errors="replace") as handle:
        for line in handle:
            tokens = line.split("#", 1)[0].split()
            if len(tokens) == 2 and tokens[0].lower() == "%include":
                included = fdf.parent / tokens[1]
                if included.is_file():
                    yield from _fdf_lines(included, depth + 1)
            elif len(tokens) == 4 and tokens[0].lower() == "%block" and tokens[2] == "<":
                included = fdf.parent / tokens[3]
                if included.is_file():
                    yield f"%block {tokens[1]}\n"
                    yield from _fdf_lines(included, depth + 1)
                    yield f"%endblock {tokens[1]}\n"
            else:
                yield line


def _read_fdf(fdf):
    """What one ``.fdf`` or ``fdf*.log`` says (a dict), or None where it says nothing of use."""
    species, dt, run_type, notes = {}, None, None, []
    by_index, atom_species, first_step = {}, [], None
    block = None
    for line in _fdf_lines(fdf):
        key, values = _key(line)
        if key == "%block" and values:
            block = _key(values[0])[0]
        elif key == "%endblock":
            block = None
        elif block == "chemicalspecieslabel" and len(values) >= 2:
            try:
                species[values[1]] = int(values[0])
                by_index[int(key)] = int(values[0])
            except ValueError:
                raise FormatError(f"{fdf.name}: ChemicalSpeciesLabel line {line.strip()!r} does not give an "
                                  "atomic number") from None
        elif block == "atomiccoordinatesandatomicspecies" and len(values) >= 3:
            try:
                atom_species.append(int(values[2]))
            except ValueError:
                raise FormatError(f"{fdf.name}: AtomicCoordinatesAndAtomicSpecies line {line.strip()!r} does "
                                  "not end in a species index") from None
        elif key == "mdinitialtimestep" and values and first_step is None:
            first_step = int(values[0])
        elif key == "mdlengthtimestep" and values and dt is None:
            unit = values[1].lower() if len(values) > 1 else "fs"
            if unit not in TIME_UNITS_FS:
                raise FormatError(f"{fdf.name}: MD.LengthTimeStep unit {values[1]!r} is not fs, ps or ns; "
                                  "pass --dt")
            dt = float(values[0].lower().replace("d", "e")) * TIME_UNITS_FS[unit]
            notes.append(f"time step MD.LengthTimeStep {values[0]} {unit} = {dt:.6g} fs ({fdf.name})")
        elif key == "mdtypeofrun" and values and run_type is None:
            run_type = values[0].lower()
    if not (species or dt is not None or run_type is not None):
        return None
    if species:
        notes.append(f"elements from ChemicalSpeciesLabel in {fdf.name}")
    return dict(path=fdf, species=species, dt=dt, run_type=run_type, notes=notes, by_index=by_index,
                atom_species=atom_species, first_step=1 if first_step is None else first_step)


class _SiestaRunReader(TrajectoryReader):
    """What a SIESTA trajectory's input (``.fdf`` or ``fdf*.log`` beside it) says: elements,
    time step, whether the run was dynamics; ``what`` names the file in messages."""

    what = "SIESTA file"
    needs_atom_species = False  # True where the file names no element: each atom's species comes from the input

    def _read_input(self, dt) -> None:
        self.notes = [f"positions from {self.path.name} ({self.what}, Å; no velocities in it)"]
        self.species, self.dt_fs, run_type, source = self._input()
        if source is None and self.other_inputs and (dt is None or self.needs_atom_species):
            label = re.sub(r"\.(ani|md_car)$", "", self.path.name, flags=re.IGNORECASE)
            raise FormatError(f"{self.path.name}: no input of this run (SystemLabel {label}) beside it, only another "
                              f"run's ({', '.join(self.other_inputs)}): put the run's .fdf beside it"
                              + ("" if self.needs_atom_species else ", or pass --dt"))
        if run_type is not None and run_type not in _DYNAMICS:
            what = "a relaxation" if run_type in _RELAXATIONS else "not molecular dynamics"
            if dt is None:
                raise NotATrajectory(f"{self.path.name}: the run is {what} (MD.TypeOfRun {run_type} in {source}), "
                                     "so its frames are no trajectory; pass --dt to read them anyway")
            self.notes.append(f"MD.TypeOfRun {run_type} in {source}: {what}, read as asked")

    def _input(self):
        """Labels → atomic numbers, time step (fs), MD.TypeOfRun and the file they came from;
        also sets ``species_numbers`` (species index → atomic number), ``atom_species`` (each
        atom's species index in ``AtomicCoordinatesAndAtomicSpecies``) and ``first_step``
        (``MD.InitialTimeStep``, default 1).  ``%include`` and ``%block … < FILE`` are followed
        (:func:`_fdf_lines`); where the file names no element and the ``.fdf`` still has no
        coordinate block, an ``fdf*.log``, which SIESTA writes with every block expanded, is
        read instead."""
        folder = self.path.parent
        label = re.sub(r"\.(ani|md_car)$", "", self.path.name, flags=re.IGNORECASE).lower()
        inputs = sorted(folder.glob("*.fdf")) + sorted(folder.glob("fdf*.log"))
        # Never another run's input: SystemLabel names a run's files.  One that sets no label may
        # be a part of this run's (an %include'd struct.fdf, an input named md.in that is no
        # .fdf), or SIESTA's default run "siesta": it is read after those that name this run.
        labels = {fdf: self._system_label(fdf) for fdf in inputs}
        fdfs = [fdf for fdf in inputs if labels[fdf] in (None, label)]
        self.other_inputs = [f"{fdf.name}: SystemLabel {labels[fdf]}" for fdf in inputs if fdf not in fdfs]
        if self.other_inputs:
            self.notes.append(f"not read, another run's input: {', '.join(self.other_inputs)}")
        self.species_numbers, self.atom_species, self.first_step = {}, [], 1
        # read in order of preference (this run's label, then an .fdf before a log), only as far as needed
        found = (run for fdf in sorted(fdfs, key=lambda p: (labels[p] != label, p.suffix != ".fdf"))
                 if (run := _read_fdf(fdf)) is not None)
        run = next(found, None)
        if run is None:
            return {}, None, None, None
        if self.needs_atom_species and not run["atom_species"]:
            run = next((other for other in found if other["atom_species"]), run)
        self.species_numbers, self.atom_species, self.first_step = run["by_index"], run["atom_species"], \
            run["first_step"]
        self.notes.extend(run["notes"])
        fdf, run_type = run["path"], run["run_type"]
        # SIESTA's default MD.TypeOfRun is CG: an input that names none is a relaxation.
        if run_type is None and fdf.suffix == ".fdf":
            return run["species"], run["dt"], "cg", f"{fdf.name}, which names none: SIESTA's default"
        return run["species"], run["dt"], run_type, fdf.name

    @staticmethod
    def _system_label(fdf) -> str | None:
        for line in _fdf_lines(fdf):  # %include'd files too
            key, values = _key(line)
            if key == "systemlabel" and values:
                return values[0].lower()
        return None

    def _numbers(self, labels: list[str]) -> np.ndarray:
        if self.species:
            missing = [x for x in labels if x not in self.species]
            if missing:
                raise FormatError(f"{self.path.name}: species label {missing[0]!r} is not in the input's "
                                  "ChemicalSpeciesLabel block")
            numbers = np.array([self.species[x] for x in labels], dtype=np.int64)
            bad = (numbers <= 0) | (numbers > 118)
            if bad.any():
                i = int(np.argmax(bad))
                raise FormatError(f"{self.path.name}: species {labels[i]!r} has atomic number {numbers[i]} (a ghost "
                                  "or synthetic atom), which mdsr_plugin cannot upsample")
            return numbers
        numbers = numbers_from_symbols(labels)
        if not numbers.all():
            i = int(np.argmin(numbers))
            raise FormatError(f"{self.path.name}: unknown element {labels[i]!r} (atom {i + 1}); put the run's .fdf "
                              "(ChemicalSpeciesLabel) beside it")
        return numbers



class SiestaAniReader(_SiestaRunReader):
    """``SystemLabel.ANI``: positions (Å) of every step; times (fs) from ``MD.LengthTimeStep``."""

    what = "SIESTA .ANI"

    def __init__(self, path, *, dt=None, topology=None):
        super().__init__(path, dt=dt)
        with open(self.path, "r", errors="replace") as handle:
            head = handle.read(8192)
        if not is_siesta_ani(self.path.name.lower(), head.encode()):
            raise FormatError(f"{self.path.name}: not a SIESTA .ANI (expected an atom count, a comment line and "
                              "'label x y z' lines)")
        self.n_atoms = int(head.split("\n", 1)[0])
        self._read_input(dt)

    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        n = self.n_atoms
        source = self.path.name
        labels = numbers = None
        start = 0
        with open(self.path, "r", errors="replace") as handle:
            frames = fixed_frames(handle, source, 2, n)
            while batch := [frame for _, frame in zip(range(chunk_size), frames)]:
                for k, (header, _) in enumerate(batch):
                    if header[0].split() != [str(n)]:
                        raise FormatError(f"{source}: frame {start + k} has {header[0].strip()[:20]!r} atoms, frame 0 "
                                          f"has {n}")
                lines = [line for _, body in batch for line in body]
                if labels is None:
                    labels = [line.split()[0] for line in lines[:n]]
                    numbers = self._numbers(labels)
                positions = columns(lines, 1, 3, source).reshape(len(batch), n, 3)
                file_times = None if self.dt_fs is None else (start + np.arange(len(batch))) * self.dt_fs
                yield Trajectory(numbers=numbers, positions=positions, times=self._times(start, len(batch), file_times),
                                 names=list(labels))
                start += len(batch)
        if start == 0:
            raise FormatError(f"{source}: no frames")


class SiestaMDCarReader(_SiestaRunReader):
    """``SystemLabel.MD_CAR``: fractional positions and the cell of every MD step (module
    docstring); elements from the input's species columns, times from its time step."""

    what = "SIESTA .MD_CAR"
    needs_atom_species = True

    def __init__(self, path, *, dt=None, topology=None):
        super().__init__(path, dt=dt)
        with open(self.path, "rb") as handle:
            head = handle.read(8192)
        if not is_siesta_md_car(self.path.name.lower(), head):
            raise FormatError(f"{self.path.name}: not a SIESTA .MD_CAR (expected a '---SystemLabel---' line)")
        lines = head.decode("ascii", errors="replace").splitlines()
        try:
            counts = [int(word) for word in lines[5].split()]
        except (IndexError, ValueError):
            raise FormatError(f"{self.path.name}: line 6 should give the atom count of each species") from None
        self.n_atoms = sum(counts)
        self._read_input(dt)
        species = self.atom_species
        if len(species) != self.n_atoms or not self.species_numbers:
            raise FormatError(f"{self.path.name}: names no element; put the run's .fdf (ChemicalSpeciesLabel and "
                              f"AtomicCoordinatesAndAtomicSpecies for its {self.n_atoms} atoms) beside it")
        # SIESTA counts species 1 to the highest one any atom is of (md_out.F90), not every label
        if [species.count(k) for k in range(1, max(species) + 1)] != counts:
            raise FormatError(f"{self.path.name}: its species counts {counts} are not those of the input's "
                              "AtomicCoordinatesAndAtomicSpecies block: another run's .fdf?")
        unknown = sorted(set(species) - set(self.species_numbers))
        if unknown:
            raise FormatError(f"{self.path.name}: species {unknown[0]} of the input's AtomicCoordinatesAndAtomicSpecies "
                              "is not in its ChemicalSpeciesLabel block")
        self.numbers = np.array([self.species_numbers[k] for k in species], dtype=np.int64)
        if ((self.numbers <= 0) | (self.numbers > 118)).any():
            i = int(np.argmax((self.numbers <= 0) | (self.numbers > 118)))
            raise FormatError(f"{self.path.name}: atom {i + 1} has atomic number {self.numbers[i]} (a ghost or "
                              "synthetic atom), which mdsr_plugin cannot upsample")
        self.notes.append("each atom's species from AtomicCoordinatesAndAtomicSpecies")

    def _blocks(self, handle):
        """(cell (3, 3) Å, fractional positions (N, 3)) of each block, checked."""
        n, source = self.n_atoms, self.path.name
        while True:
            first = handle.readline()
            while first and not first.strip():  # blank lines at the end (an editor's, a copy's)
                first = handle.readline()
            if not first:
                return
            header = [first] + [handle.readline() for _ in range(6)]
            if not header[-1] or not header[0].strip().startswith("---"):
                raise FormatError(f"{source}: a block is cut short or does not start with '---SystemLabel---'")
            if header[6].strip().lower()[:1] != "d":
                raise FormatError(f"{source}: {header[6].strip()!r} positions; SIESTA writes 'Direct' ones")
            scale = float(header[1])
            if scale <= 0:
                raise FormatError(f"{source}: scale {scale} (SIESTA writes 1.0)")
            cell = np.array([row.split()[:3] for row in header[2:5]], dtype=np.float64) * scale
            rows = [handle.readline() for _ in range(n)]
            if not rows[-1]:
                raise FormatError(f"{source}: the last block has fewer than {n} atoms (a run still writing?)")
            yield cell, columns(rows, 0, 3, source)

    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        start = 0
        with open(self.path, "r", errors="replace") as handle:
            blocks = self._blocks(handle)
            while batch := [block for _, block in zip(range(chunk_size), blocks)]:
                cells = np.stack([cell for cell, _ in batch])
                positions = np.einsum("fni,fij->fnj", np.stack([frac for _, frac in batch]), cells)
                steps = self.first_step + start + np.arange(len(batch))
                file_times = None if self.dt_fs is None else steps * self.dt_fs
                yield Trajectory(numbers=self.numbers, positions=positions, cell=cells, pbc=np.ones(3, dtype=bool),
                                 times=self._times(start, len(batch), file_times), steps=steps)
                start += len(batch)
        if start == 0:
            raise FormatError(f"{self.path.name}: no frames")


def _open_ani(path, **options):
    return SiestaAniReader(path, **options)


def _open_md_car(path, **options):
    return SiestaMDCarReader(path, **options)


def _refuse_md(path, **options):
    from pathlib import Path

    path = Path(path)
    what = "holds energies and temperatures only" if path.suffix.lower() == ".mde" else \
        "is SIESTA's binary (unformatted Fortran) MD file, which mdsr_plugin does not read"
    raise FormatError(f"{path.name}: {what}; give {path.stem}.ANI or {path.stem}.MD_CAR, which SIESTA writes beside "
                      "it with the positions of every step (and the .fdf for the time step)")


def _register() -> None:
    from . import Format, register_format

    register_format(Format("siesta-ani", (".ani",), "SIESTA SystemLabel.ANI (positions of every step; time step "
                           "from the .fdf beside it)", _open_ani, None, "none (SIESTA's .ANI has none)",
                           sniff=is_siesta_ani, signature=".ANI name and XYZ frames"))
    register_format(Format("siesta-md-car", (".md_car",), "SIESTA SystemLabel.MD_CAR (positions and cell of every "
                           "step; elements and time step from the .fdf beside it)", _open_md_car, None,
                           "none (SIESTA's .MD_CAR has none)", sniff=is_siesta_md_car,
                           signature="a .MD_CAR name and a '---SystemLabel---' line"))
    register_format(Format("siesta-md", (".mde",), "SIESTA .MD/.MDE (refused: give SystemLabel.ANI)", _refuse_md,
                           None, sniff=is_siesta_md_binary,
                           signature="a binary .MD or an energies-only .MDE"))


_register()
