"""Trajectory file formats: one registry, chosen by file extension.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..trajectory import Trajectory
from .base import FormatError, TrajectoryReader, TrajectoryWriter
from .paths import output_paths, refuse_overwrite

log = logging.getLogger(__name__)

__all__ = [
    "Format",
    "FormatError",
    "TrajectoryReader",
    "TrajectoryWriter",
    "register_format",
    "unregister_format",
    "get_format",
    "formats",
    "open_reader",
    "open_writer",
    "read_trajectory",
    "write_trajectory",
    "output_paths",
    "refuse_overwrite",
    "companion_inputs",
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
    """The format named ``format``, or the one owning ``path``'s extension.

    With ``writing``, a format mdsr_plugin can only read is refused too, and the
    message lists the extensions it can write.
    """
    if format is not None:
        try:
            fmt = _FORMATS[format.lower()]
        except KeyError:
            raise FormatError(f"unknown format {format!r}; known: {', '.join(sorted(_FORMATS))}") from None
    else:
        fmt = None if writing else _format_of_content(Path(path))
        if fmt is None:
            fmt = _format_of_name(Path(path), writing)
    if writing and fmt.open_writer is None:
        raise FormatError(f"{Path(path).name}: mdsr_plugin cannot write {fmt.name} files; "
                          f"it writes {', '.join(_extensions(writing=True))}")
    return fmt


def _format_of_content(path: Path) -> Format | None:
    """The one format whose sniffer recognises ``path``'s first bytes, or None."""
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError:
        return None
    name = path.name.lower()
    matches = [fmt for fmt in _FORMATS.values() if fmt.sniff is not None and fmt.sniff(name, head)]
    if len(matches) == 1:
        log.info("%s: format %s, recognised by its content", path.name, matches[0].name)
        return matches[0]
    return None


def _extensions(writing: bool) -> list[str]:
    return sorted(ext for ext, name in _BY_EXTENSION.items() if not writing or _FORMATS[name].open_writer)


def _format_of_name(path: Path, writing: bool) -> Format:
    name = path.name.lower()
    suffixes = [s.lower() for s in path.suffixes]
    for ext in (("".join(suffixes[-2:]),) if len(suffixes) > 1 else ()) + (path.suffix.lower(), name):
        if ext in _BY_EXTENSION:
            return _FORMATS[_BY_EXTENSION[ext]]
    # VASP's files are known by their fixed names (OUTCAR.h2o.md, vasprun.run2.xml...).
    if name.startswith("xdatcar"):
        return _FORMATS["xdatcar"]
    if name.startswith("outcar"):
        return _FORMATS["outcar"]
    if name.startswith("vasprun") and name.endswith(".xml"):
        return _FORMATS["vasprun"]
    known = "it writes" if writing else "known extensions:"
    raise FormatError(f"{path.name}: cannot tell the format from the extension; {known} "
                      f"{', '.join(_extensions(writing))} (or pass --{'output-' if writing else ''}format)")


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
    reader = fmt.open_reader(path, **options)
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
    elif fmt.name in ("lammpsdump", "dcd"):  # LAMMPS writes DCDs too
        import inspect

        from .mdanalysis import MDAnalysisReader

        accepted = inspect.signature(MDAnalysisReader.__init__).parameters
        if any(k not in accepted for k in given):  # the text dump reader does not convert units yet
            raise FormatError("--lammps-units and --type-map apply to LAMMPS H5MD files for now; a text LAMMPS "
                              "dump's velocities are read as Å/ps (metal), its forces as kJ/(mol·Å)")
    else:
        flags = " and ".join("--" + k.replace("_", "-") for k in given)
        raise FormatError(f"{flags} go{'es' if len(given) == 1 else ''} with a LAMMPS dump or LAMMPS H5MD, "
                          f"not a {fmt.name} file")


def _check_is_file(path: Path) -> None:
    if path.is_dir():
        raise FormatError(f"{path}: is a folder, not a file (mdsr-batch reads folders)")
    if not path.is_file():
        raise FormatError(f"{path}: no such file")


def companion_inputs(path, format: str | None = None) -> dict[str, Path]:
    """The files a reader of ``path`` also opens, by quantity, without reading it:
    CP2K's ``-vel-1.xyz``/``-frc-1.xyz``/``-1.cell`` and i-PI's ``.vel_0.xyz``/``.for_0.xyz``
    beside their positions file (the counterpart of :func:`output_paths`, for the batch
    and the overwrite rule)."""
    from .cp2k import cp2k_companions, is_cp2k_comment
    from .ipi import ipi_companions, ipi_quantity
    from .plain_xyz import first_comment

    path = Path(path)
    try:
        fmt = get_format(path, format)
    except FormatError:
        return {}
    if fmt.name != "xyz":
        return {}
    if ipi_quantity(path) == "positions":
        return ipi_companions(path)
    if is_cp2k_comment(first_comment(path)):
        return cp2k_companions(path)
    return {}


def is_companion_file(path) -> bool:
    """Whether ``path`` holds a quantity other than positions for another file's frames
    (a CP2K velocity/force file, an i-PI velocity/force file): never an input of its own."""
    from .cp2k import cp2k_role
    from .ipi import ipi_quantity

    path = Path(path)
    return cp2k_role(path) in ("velocities", "forces") or ipi_quantity(path) in ("velocities", "forces")


def _companions_found(reader) -> dict[str, Path]:
    """The companion files a code wrote beside the positions (CP2K and i-PI sets)."""
    from .cp2k import CP2KPositionsReader, cp2k_companions
    from .ipi import IPIPositionsReader, ipi_companions

    if isinstance(reader, CP2KPositionsReader):
        return cp2k_companions(reader.path)
    if isinstance(reader, IPIPositionsReader):
        return ipi_companions(reader.path)
    return {}


def _quantity_source(path: Path, quantity: str):
    """A reader of ``quantity`` from ``path``, recognised by its content and name."""
    from .cp2k import CP2KCellFile, CP2KQuantityFile, cp2k_role, is_cp2k_comment
    from .ipi import IPIQuantityFile, ipi_quantity
    from .plain_xyz import first_comment

    if quantity == "cell" and path.suffix.lower() == ".cell":
        return CP2KCellFile(path)
    comment = first_comment(path)
    if ipi_quantity(path) is not None:
        return IPIQuantityFile(path, quantity)
    if is_cp2k_comment(comment) or cp2k_role(path) is not None:
        return CP2KQuantityFile(path, quantity)
    raise FormatError(f"{path.name}: cannot tell how it stores {quantity}; mdsr_plugin reads {quantity} files of "
                      "CP2K (…-vel-1.xyz, …-frc-1.xyz, …-1.cell), i-PI (…vel_0.xyz, …for_0.xyz, with unit tags) "
                      "and NAMD velocity DCDs beside a DCD")


def open_writer(path, *, format: str | None = None, **options) -> TrajectoryWriter:
    """A writer for ``path``, its format from the extension unless ``format`` is given."""
    fmt = get_format(path, format, writing=True)
    if not Path(path).resolve().parent.is_dir():
        raise FormatError(f"{Path(path).parent}: output folder does not exist")
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
           _mda_reader("DCD"), _dcd_writer, "separate .vel.dcd (Å/AKMA)", needs_topology=True,
           companion_outputs=_dcd_velocity_path),
    Format("trr", (".trr",), "GROMACS TRR (needs --top)", _mda_reader("TRR"),
           _mda_writer("TRR"), "yes (nm/ps)", needs_topology=True),
    Format("xtc", (".xtc",), "GROMACS XTC (needs --top)", _mda_reader("XTC"), _mda_writer("XTC"),
           needs_topology=True),
    Format("netcdf", (".nc", ".ncdf", ".netcdf"), "AMBER NetCDF (needs --top)", _mda_reader("NCDF"),
           _netcdf_writer, "yes (Å/ps)", needs_topology=True),
    Format("lammpsdump", (".lammpstrj", ".dump", ".lammpsdump", ".lammpstrj.bz2"),
           "LAMMPS dump (needs --dt)", _mda_reader("LAMMPSDUMP", has_time=False, needs_topology=False),
           None, "vx vy vz columns"),
):
    register_format(_fmt)


#: Modules that register the formats of further MD codes (each calls register_format
#: at import, with a ``sniff`` where the extension cannot decide).
_CODE_FORMAT_MODULES: tuple[str, ...] = ("castep", "aims", "dlpoly", "qe", "cpmd")

for _module in _CODE_FORMAT_MODULES:
    __import__(f"{__name__}.{_module}")
