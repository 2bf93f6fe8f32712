"""Trajectory file formats: one registry, chosen by content, extension or fixed name.

:func:`choose_format` says which format a file is read as and why: ``--format``, else
the one format whose ``sniff`` recognises the file's first bytes, else its extension,
else VASP's fixed names; a file none of them tells is refused in one line listing the
known formats.

Each :class:`Format` is a small record: a name, the extensions it owns, and two
factories, ``open_reader(path, **options)`` and ``open_writer(path, **options)``,
that import their backend (ASE, MDAnalysis, h5py) only when called.

To add a format, write a reader and/or writer following the contracts in
:mod:`mdsr_plugin.io.base` and call :func:`register_format`; a name or extension
already taken is refused rather than silently replaced.

Reader options understood by every reader: ``dt`` (coarse step, fs),
``topology`` (a topology file), and the companion files ``velocities``, ``forces``
and ``cell`` (:mod:`.companions`: CP2K's and i-PI's separate files, a NAMD velocity
DCD).  XYZ files are recognised by their comment lines: CP2K's and i-PI's readers
(:mod:`.cp2k`, :mod:`.ipi`) take over from ASE's for them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..trajectory import Trajectory
from .atomic import NAME_MAX, not_a_file
from .base import FormatError, NotATrajectory, TrajectoryReader, TrajectoryWriter
from .paths import output_paths, refuse_overwrite

log = logging.getLogger(__name__)

__all__ = [
    "Format",
    "FormatError",
    "NotATrajectory",
    "TrajectoryReader",
    "TrajectoryWriter",
    "register_format",
    "unregister_format",
    "get_format",
    "choose_format",
    "format_of_content",
    "formats",
    "open_reader",
    "open_writer",
    "read_trajectory",
    "write_trajectory",
    "output_paths",
    "refuse_overwrite",
    "companion_inputs",
    "input_paths",
    "is_companion_file",
]


@dataclass(frozen=True)
class Format:
    """A registered trajectory format.

    Attributes
    ----------
    name : str
        Name used with ``--format`` / ``format=``.
    extensions : tuple of str
        Lower-case suffixes (with the dot) that select this format.
    description : str
    open_reader, open_writer : callable or None
        Factories ``(path, **options) -> TrajectoryReader / TrajectoryWriter``.
    velocities : str
        How the format stores velocities (for the docs' table).
    needs_topology : bool
        Whether the file lacks the elements, so that a topology file must come with it.
    keeps_provenance : bool
        Whether its writer takes ``parameters=`` (a dict of JSON values: the method,
        model, measured error estimate) and stores them in the file.
    companion_outputs : callable
        ``(path) -> list of Path``: the files its writer adds beside ``path`` (a DCD's
        velocity DCD), so that no companion can overwrite an input (:mod:`.paths`).
    sniff : callable or None
        ``(name, head) -> bool``: whether a file of that (lower-case) name whose first
        bytes are ``head`` is of this format.  Tried before extensions when a file is
        read, so that codes sharing an extension (``.out``, ``.arc``) or writing fixed
        names (``HISTORY``, ``TRAJECTORY``) are told apart by content, as ASE's
        ``filetype`` does.
    signature : str
        What ``sniff`` looks for, in words ("a 'Program PWSCF' line"), for ``-v`` to say
        why a file was read as this format.
    """

    name: str
    extensions: tuple[str, ...]
    description: str
    open_reader: Callable[..., TrajectoryReader] | None = None
    open_writer: Callable[..., TrajectoryWriter] | None = None
    velocities: str = "no"
    needs_topology: bool = False
    keeps_provenance: bool = False
    companion_outputs: Callable[[Path], list[Path]] = lambda path: []
    sniff: Callable[[str, bytes], bool] | None = None
    signature: str = ""


#: Bytes of a file's start that sniffers see (headers of every code fit in it).
SNIFF_BYTES = 8192

_FORMATS: dict[str, Format] = {}
_BY_EXTENSION: dict[str, str] = {}


def register_format(fmt: Format) -> None:
    """Add ``fmt`` to the registry; raises ValueError if its name or an extension is taken."""
    if fmt.name in _FORMATS:
        raise ValueError(f"format {fmt.name!r} is already registered")
    taken = [ext for ext in fmt.extensions if ext in _BY_EXTENSION]
    if taken:
        raise ValueError(f"extension(s) {taken} already belong to {_BY_EXTENSION[taken[0]]!r}")
    _FORMATS[fmt.name] = fmt
    for ext in fmt.extensions:
        _BY_EXTENSION[ext] = fmt.name


def unregister_format(name: str) -> None:
    """Remove a format (for tests and plugins that replace one deliberately)."""
    fmt = _FORMATS.pop(name)
    for ext in fmt.extensions:
        _BY_EXTENSION.pop(ext, None)


def formats() -> dict[str, Format]:
    """The registered formats by name."""
    return dict(_FORMATS)


def get_format(path, format: str | None = None, *, writing: bool = False) -> Format:
    """The format named ``format``, or the one recognised by ``path``'s content, else by its
    extension or fixed name (see :func:`choose_format`).

    With ``writing``, a format mdsr_plugin can only read is refused too, and the
    message lists the extensions it can write.
    """
    return choose_format(path, format, writing=writing)[0]


def choose_format(path, format: str | None = None, *, writing: bool = False) -> tuple[Format, str]:
    """The format of ``path`` and why it was chosen, in words (for ``-v``).

    The order: ``format`` (``--format``); for reading, the one format whose ``sniff``
    recognises the file's first :data:`SNIFF_BYTES`; its extension; a fixed name
    (VASP's ``XDATCAR*``, ``OUTCAR*``, ``vasprun*.xml``).  A file none of these tells is
    refused in one line that lists the known formats.
    """
    path = Path(path)
    if writing and len(path.name.encode()) > NAME_MAX:
        raise FormatError(f"{path.name[:40]}…: the output's name is {len(path.name.encode())} bytes, more than the "
                          f"{NAME_MAX} a file system allows")
    kind = not_a_file(path)
    if kind is not None and writing:  # "-o ." or "-o results/": not a name without an extension; "-o /dev/null"
        raise FormatError(f"{path}: the output names {kind}, not a file")
    if kind not in (None, "a folder"):  # a FIFO or /dev/stdin would hang the sniffing; /dev/zero never ends
        raise FormatError(_not_an_input_file(path, kind))
    if format is not None:
        try:
            fmt = _FORMATS[format.lower()]
        except KeyError:
            raise FormatError(f"unknown format {format!r}; known: {', '.join(sorted(_FORMATS))}") from None
        why = f"named with --format {format}"
    else:
        found = None if writing else _format_of_content(path)
        fmt, why = found if found is not None else _format_of_name(path, writing)
    if writing and fmt.open_writer is None:
        raise FormatError(f"{path.name}: mdsr_plugin cannot write {fmt.name} files; "
                          f"it writes {', '.join(_extensions(writing=True))}")
    return fmt, why


def format_of_content(path) -> Format | None:
    """The one format whose ``sniff`` recognises the first :data:`SNIFF_BYTES` of ``path``,
    whatever its name (a pw.x log ``run.out``, a LAMMPS dump ``dump.out``), or None."""
    found = _format_of_content(Path(path))
    return None if found is None else found[0]


def _format_of_content(path: Path) -> tuple[Format, str] | None:
    """The one format whose sniffer recognises ``path``'s first bytes and the signature it
    saw, or None (no file, unreadable, no match, or several)."""
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError:
        return None
    name = path.name.lower()
    matches = [fmt for fmt in _FORMATS.values() if fmt.sniff is not None and fmt.sniff(name, head)]
    if len(matches) != 1:
        if len(matches) > 1:
            log.info("%s: its content fits %s: going by its name", path.name, " and ".join(f.name for f in matches))
        return None
    fmt = matches[0]
    return fmt, f"recognised by its content: {fmt.signature or _first_sentence(fmt.sniff.__doc__)}"


def _first_sentence(doc: str | None) -> str:
    text = " ".join((doc or "its first bytes").replace("``", "'").split())
    return text.split(". ")[0].rstrip(".")


def _extensions(writing: bool) -> list[str]:
    return sorted(ext for ext, name in _BY_EXTENSION.items() if not writing or _FORMATS[name].open_writer)


def _format_of_name(path: Path, writing: bool) -> tuple[Format, str]:
    name = path.name.lower()
    suffixes = [s.lower() for s in path.suffixes]
    for ext in (("".join(suffixes[-2:]),) if len(suffixes) > 1 else ()) + (path.suffix.lower(), name):
        if ext in _BY_EXTENSION:
            return _FORMATS[_BY_EXTENSION[ext]], f"by its extension {ext}"
    # VASP's files are known by their fixed names (OUTCAR.h2o.md, vasprun.run2.xml...).
    for fixed, label, matches in (("xdatcar", "XDATCAR", name.startswith("xdatcar")),
                                  ("outcar", "OUTCAR", name.startswith("outcar")),
                                  ("vasprun", "vasprun.xml", name.startswith("vasprun") and name.endswith(".xml"))):
        if matches:
            return _FORMATS[fixed], f"by its fixed name (VASP {label})"
    if writing:
        raise FormatError(f"{path.name}: cannot tell the format from the extension; it writes "
                          f"{', '.join(_extensions(writing))} (or pass --output-format)")
    if path.is_dir():
        raise FormatError(f"{path}: is a folder, not a file (mdsr-batch reads folders)")
    if not path.exists():
        raise FormatError(f"{path}: no such file")
    what = "an empty file" if path.is_file() and path.stat().st_size == 0 else "its content, name or extension"
    raise FormatError(f"{path.name}: cannot tell the format from {what}; known formats: {_known_formats()} "
                      "(pass --format NAME if it is one of them)")


def _known_formats() -> str:
    """The readable formats, each with its extensions or how it is recognised, on one line."""
    parts = []
    for fmt in sorted(_FORMATS.values(), key=lambda f: f.name):
        if fmt.open_reader is None:
            continue
        how = [*fmt.extensions] + (["by content"] if fmt.sniff is not None else [])
        parts.append(f"{fmt.name} ({' '.join(how)})" if how else fmt.name)
    return ", ".join(parts)


def open_reader(path, *, format: str | None = None, velocities=None, forces=None, cell=None,
                **options) -> TrajectoryReader:
    """Open ``path`` for streaming; see the module docstring for ``options``.

    Parameters
    ----------
    velocities, forces, cell : path-like, optional
        Files holding that quantity for the same frames (CP2K ``-vel-1.xyz``/``-frc-1.xyz``/
        ``-1.cell``, i-PI ``.vel_0.xyz``/``.for_0.xyz``, a NAMD velocity DCD beside a DCD).
        CP2K's and i-PI's are also found beside their positions file without being named.
    """
    path = Path(path)
    _check_is_file(path)
    fmt = get_format(path, format)
    if fmt.open_reader is None:
        raise FormatError(f"{path.name}: mdsr_plugin cannot read {fmt.name} files")
    named = {"velocities": velocities, "forces": forces, "cell": cell}
    if "top" in options:  # the command line's --top, and the MDSR Universe reader's top=
        if options.get("topology") is not None:
            raise TypeError("give topology= or top=, not both")
        options["topology"] = options.pop("top")
    for key in ("topology",):
        if options.get(key) is not None:
            _check_is_file(Path(options[key]))
    for value in named.values():
        if value is not None:
            _check_is_file(Path(value))
    options = {k: v for k, v in options.items() if v is not None}
    _route_lammps_options(fmt, options)
    if fmt.name == "dcd" and velocities is not None and Path(velocities).suffix.lower() in (".dcd", ".veldcd"):
        # A NAMD velocity DCD is read frame by frame beside its coordinates (io/mdanalysis.py).
        options["velocities"] = velocities
        named["velocities"] = None
    try:
        reader = fmt.open_reader(path, **options)
    except TypeError as err:  # an option this format's reader does not take: say which, not where
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(err))
        if unknown is None:
            raise
        raise TypeError(f"{path.name}: the {fmt.name} reader takes no option {unknown[1]!r}") from None
    from .companions import WithCompanions

    found = {**_companions_found(reader), **{k: Path(v) for k, v in named.items() if v is not None}}
    if not found:
        return reader
    sources = [_quantity_source(Path(p), quantity) for quantity, p in found.items()]
    return WithCompanions(reader, sources)


def _route_lammps_options(fmt: Format, options: dict) -> None:
    """``lammps_units``/``type_map`` (``--lammps-units``, ``--type-map``) go to the readers of
    files LAMMPS writes; the H5MD reader calls the unit system ``units``."""
    given = [k for k in ("lammps_units", "type_map") if k in options]
    if not given:
        return
    if fmt.name == "h5md":
        if "type_map" in options:
            raise FormatError("--type-map goes with a LAMMPS dump; for LAMMPS H5MD give the elements with --top")
        options["units"] = options.pop("lammps_units")
    elif fmt.name in ("lammpsdump", "lammps-netcdf", "dcd"):  # LAMMPS writes DCDs too
        return  # their readers convert from the run's units and map types (io/lammps.py)
    else:
        flags = " and ".join("--" + k.replace("_", "-") for k in given)
        raise FormatError(f"{flags} go{'es' if len(given) == 1 else ''} with a LAMMPS dump or LAMMPS H5MD, "
                          f"not a {fmt.name} file")


def _not_an_input_file(path, kind: str) -> str:
    if kind == "a folder":
        return f"{path}: is a folder, not a file (mdsr-batch reads folders)"
    return f"{path}: is {kind}, not a file; mdsr_plugin reads its input more than once (save the stream to a file first)"


def _check_is_file(path: Path) -> None:
    kind = not_a_file(path)
    if kind is not None:
        raise FormatError(_not_an_input_file(path, kind))
    if not path.is_file():
        raise FormatError(f"{path}: no such file")


def companion_inputs(path, format: str | None = None) -> dict[str, Path]:
    """The files a reader of ``path`` also opens, by what they give, without reading it:
    CP2K's ``-vel-1.xyz``/``-frc-1.xyz``/``-1.cell``, i-PI's ``.vel_0.xyz``/``.for_0.xyz``
    and cp.x's ``.vel``/``.for``/``.cel`` beside their positions file, the cp.x input
    and log that name its elements (keys ``"input"``, ``"log"``), a CPMD trajectory's
    element XYZ and time-step log (``"elements"``, ``"timestep"``), and a Tinker archive's
    ``.vel``/``.frc``/``.key``: the counterpart of
    :func:`output_paths`, for the batch and the overwrite rule."""
    from .cp2k import cp2k_companions, is_cp2k_comment
    from .cpmd import cpmd_companions
    from .ipi import ipi_companions, ipi_quantity
    from .plain_xyz import first_comment
    from .qe_cp import cp_companions, cp_element_sources

    path = Path(path)
    try:
        fmt = get_format(path, format)
    except FormatError:
        return {}
    if fmt.name == "qe-cp":
        logs, inputs = cp_element_sources(path)
        return {**cp_companions(path), **_numbered("input", inputs), **_numbered("log", logs)}
    if fmt.name == "cpmd":
        return cpmd_companions(path)
    if fmt.name == "tinker-arc":
        from .tinker import tinker_companions

        return tinker_companions(path)
    if fmt.name != "xyz":
        return {}
    if ipi_quantity(path) == "positions":
        return ipi_companions(path)
    if is_cp2k_comment(first_comment(path)):
        return cp2k_companions(path)
    return {}


def input_paths(path, format: str | None = None, *given) -> list[Path]:
    """Every file a run reading ``path`` reads: ``path``, the files ``given`` (a topology, a
    velocity, force or cell file; Nones skipped) and the companions its reader finds beside
    it (:func:`companion_inputs`), for the overwrite rule (:func:`refuse_overwrite`)."""
    return [Path(path), *(Path(p) for p in given if p is not None), *companion_inputs(path, format).values()]


def _numbered(key: str, paths: list[Path]) -> dict[str, Path]:
    return {key if i == 0 else f"{key}{i + 1}": p for i, p in enumerate(paths)}


def is_companion_file(path) -> bool:
    """Whether ``path`` holds a quantity other than positions for another file's frames
    (a CP2K velocity/force file, an i-PI velocity/force file, cp.x's ``.vel``/``.for``/
    ``.cel``/``.evp``... beside a cp.x ``.pos``), or less of a run than another file beside
    it (a CPMD run's ``TRAJEC.xyz``, ``GEOMETRY.xyz``, and ``TRAJECTORY`` beside its
    ``FTRAJECTORY``; a SIESTA ``.ANI`` beside its ``.MD_CAR``): never an input of its own in
    a batch."""
    from .cp2k import cp2k_role
    from .cpmd import is_cpmd_companion
    from .ipi import ipi_quantity
    from .qe_cp import is_cp_companion
    from .siesta import is_siesta_companion

    path = Path(path)
    return (cp2k_role(path) in ("velocities", "forces") or ipi_quantity(path) in ("velocities", "forces")
            or is_cp_companion(path) or is_cpmd_companion(path) or is_siesta_companion(path))


def _companions_found(reader) -> dict[str, Path]:
    """The companion files a code wrote beside the positions (CP2K, i-PI and cp.x sets)."""
    from .cp2k import CP2KPositionsReader, cp2k_companions
    from .ipi import IPIPositionsReader, ipi_companions
    from .qe_cp import CPPositionsReader, cp_companions

    if isinstance(reader, CP2KPositionsReader):
        return cp2k_companions(reader.path)
    if isinstance(reader, IPIPositionsReader):
        return ipi_companions(reader.path)
    if isinstance(reader, CPPositionsReader):
        return cp_companions(reader.path)
    return {}


def _quantity_source(path: Path, quantity: str):
    """A reader of ``quantity`` from ``path``, recognised by its content and name."""
    from .cp2k import CP2KCellFile, CP2KQuantityFile, cp2k_role, is_cp2k_comment
    from .cpmd import CPMDQuantityFile, is_cpmd_trajectory
    from .ipi import IPIQuantityFile, ipi_quantity
    from .plain_xyz import first_comment
    from .qe_cp import CPQuantityFile, cp_role, is_cp_companion, is_cp_trajectory

    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    name = path.name.lower()
    # Beside a cp.x .pos a .vel/.for/.cel is cp.x's, even empty or broken: its reader says what is wrong.
    if is_cp_trajectory(name, head) or (cp_role(path) not in (None, "positions") and is_cp_companion(path)):
        return CPQuantityFile(path, quantity)
    if is_cpmd_trajectory(name, head):
        return CPMDQuantityFile(path, quantity)
    if quantity == "cell" and path.suffix.lower() == ".cell":
        return CP2KCellFile(path)
    comment = first_comment(path)
    if ipi_quantity(path) is not None:
        return IPIQuantityFile(path, quantity)
    if is_cp2k_comment(comment) or cp2k_role(path) is not None:
        return CP2KQuantityFile(path, quantity)
    raise FormatError(f"{path.name}: cannot tell how it stores {quantity}; mdsr_plugin reads {quantity} files of "
                      "CP2K (…-vel-1.xyz, …-frc-1.xyz, …-1.cell), i-PI (…vel_0.xyz, …for_0.xyz, with unit tags), "
                      "cp.x (PREFIX.vel, .for, .cel), CPMD (TRAJECTORY, FTRAJECTORY) and NAMD velocity DCDs "
                      "beside a DCD")


def open_writer(path, *, format: str | None = None, **options) -> TrajectoryWriter:
    """A writer for ``path``, its format from the extension unless ``format`` is given."""
    fmt = get_format(path, format, writing=True)
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        there = "is a file, not a folder" if folder.exists() else "output folder does not exist"
        raise FormatError(f"{Path(path).parent}: {there}")
    return fmt.open_writer(path, **options)


def read_trajectory(path, **options) -> Trajectory:
    """Read a whole trajectory into memory (see :func:`open_reader` for options)."""
    with open_reader(path, **options) as reader:
        return reader.read()


def write_trajectory(path, traj: Trajectory, **options) -> list[Path]:
    """Write ``traj`` to ``path`` atomically; returns every file written."""
    with open_writer(path, **options) as writer:
        writer.write(traj)
    return writer.paths


# --------------------------------------------------------------------------- built-ins
def _ase_reader(ase_format):
    def open_(path, **options):
        from .ase_backend import AseReader

        return AseReader(path, ase_format=ase_format, **options)

    return open_


def _vasp_reader(ase_format):
    def open_(path, **options):
        from .vasp import VaspRunReader, XdatcarReader

        if ase_format is None:
            return XdatcarReader(path, **options)
        return VaspRunReader(path, ase_format=ase_format, **options)

    return open_


def _xyz_reader(path, **options):
    """XYZ by its content: CP2K's and i-PI's comment lines name their units and companions;
    everything else is extended XYZ through ASE."""
    from .cp2k import CP2KPositionsReader, cp2k_role, is_cp2k_comment
    from .ipi import IPIPositionsReader, is_ipi_comment
    from .plain_xyz import first_comment

    comment = first_comment(path)
    if is_ipi_comment(comment):
        return IPIPositionsReader(path, **options)
    if is_cp2k_comment(comment) or cp2k_role(path) in ("velocities", "forces"):
        return CP2KPositionsReader(path, **options)
    return _ase_reader("extxyz")(path, **options)


def _mda_reader(mda_format, has_time=True, needs_topology=True):
    def open_(path, **options):
        from .mdanalysis import MDAnalysisReader

        return MDAnalysisReader(
            path, mda_format=mda_format, has_time=has_time, needs_topology=needs_topology, **options
        )

    return open_


def _mda_writer(mda_format, **writer_options):
    def open_(path, **options):
        from .mdanalysis import MDAnalysisWriter

        return MDAnalysisWriter(path, mda_format=mda_format, **writer_options)

    return open_


def _netcdf_writer(path, **options):
    from .mdanalysis import NetCDFWriter

    return NetCDFWriter(path)


def _h5md_reader(path, **options):
    from .h5md import H5MDReader

    return H5MDReader(path, **options)


def _h5md_writer(path, **options):
    from .h5md import H5MDWriter

    return H5MDWriter(path, **options)


def _extxyz_writer(path, **options):
    from .ase_backend import ExtXYZWriter

    return ExtXYZWriter(path, parameters=options.get("parameters"))


def _traj_writer(path, **options):
    from .ase_backend import AseTrajWriter

    return AseTrajWriter(path)


def _dcd_velocity_path(path) -> list[Path]:
    path = Path(path)
    return [path.with_name(path.stem + ".vel.dcd")]


def _dcd_reader(path, **options):
    """A DCD through MDAnalysis; one whose header says LAMMPS wrote it is read in the run's
    units (:class:`.lammps.LAMMPSUniverseReader`: its header time step is not in AKMA)."""
    from .lammps import LAMMPSUniverseReader, lammps_dcd_header
    from .mdanalysis import MDAnalysisReader

    reader = LAMMPSUniverseReader if lammps_dcd_header(path) is not None else MDAnalysisReader
    return reader(path, mda_format="DCD", **options)


def _dcd_writer(path, **options):
    from .mdanalysis import DCDWriter

    return DCDWriter(path)


for _fmt in (
    Format("xyz", (".xyz", ".extxyz"), "extended or plain XYZ (CP2K's time= comments too)",
           _xyz_reader, _extxyz_writer, "momenta (ASE units), or vel columns (Å/fs)",
           keeps_provenance=True),
    Format("traj", (".traj",), "ASE trajectory", _ase_reader("traj"), _traj_writer,
           "momenta (ASE units)"),
    Format("xdatcar", (".xdatcar",), "VASP XDATCAR 5/6 (POTIM from an OUTCAR/INCAR/vasprun beside it, or --dt)",
           _vasp_reader(None), None),
    Format("vasprun", (".vasprun",), "VASP vasprun.xml: positions, forces, cell, POTIM",
           _vasp_reader("vasp-xml"), None, "none (VASP stores none)"),
    Format("outcar", (".outcar",), "VASP OUTCAR: positions, forces, cell, POTIM",
           _vasp_reader("vasp-out"), None, "none (VASP stores none)"),
    Format("h5md", (".h5md", ".h5"), "H5MD (HDF5)", _h5md_reader, _h5md_writer, "velocity group",
           keeps_provenance=True),
    Format("dcd", (".dcd",), "CHARMM/NAMD DCD (needs --top); velocities in a NAMD velocity DCD",
           _dcd_reader, _dcd_writer, "separate .vel.dcd (Å/AKMA)", needs_topology=True,
           companion_outputs=_dcd_velocity_path),
    Format("trr", (".trr",), "GROMACS TRR (needs --top)", _mda_reader("TRR"),
           _mda_writer("TRR"), "yes (nm/ps)", needs_topology=True),
    Format("xtc", (".xtc",), "GROMACS XTC (needs --top)", _mda_reader("XTC"), _mda_writer("XTC"),
           needs_topology=True),
    Format("netcdf", (".nc", ".ncdf", ".netcdf"), "AMBER NetCDF (needs --top)", _mda_reader("NCDF"),
           _netcdf_writer, "yes (Å/ps)", needs_topology=True),
):
    register_format(_fmt)


#: Modules that register the formats of further MD codes (each calls register_format
#: at import, with a ``sniff`` where the extension cannot decide).
_CODE_FORMAT_MODULES: tuple[str, ...] = ("castep", "aims", "dlpoly", "qe", "cpmd", "lammps", "lammps_netcdf", "qe_cp", "tinker", "xtb", "dftbplus", "siesta")

for _module in _CODE_FORMAT_MODULES:
    __import__(f"{__name__}.{_module}")
