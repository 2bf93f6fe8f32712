"""Finding the trajectories of an archive and planning one job per file.

A job is plain data (paths and settings), so that it can be sent to a worker
process or a Dask worker.  The output of ``ARCHIVE/a/b/run.dcd`` is
``OUT/a/b/run.<ext>``: the folder structure is mirrored.

Companion files are never jobs of their own:

* a NAMD velocity DCD ``run.vel.dcd`` (or ``run.veldcd``) goes with ``run.dcd``;
* a topology for formats without elements (DCD, TRR, XTC, NetCDF) is ``--top`` if
  given, else a topology file with the trajectory's stem beside it
  (``run.psf``, ``run.pdb``, ``run.gro``, ``run.prmtop``...), else the only topology
  file in that folder.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..io import FormatError, formats, get_format
from ..settings import UpsampleSettings

__all__ = ["BatchSettings", "Job", "PlanError", "default_patterns", "plan_jobs", "TOPOLOGY_EXTENSIONS"]

#: Topology files MDAnalysis reads that mdsr_plugin looks for beside a trajectory.
TOPOLOGY_EXTENSIONS = (".psf", ".pdb", ".gro", ".prmtop", ".parm7", ".top", ".tpr", ".data", ".mol2", ".crd")
VELOCITY_SUFFIXES = (".vel.dcd", ".veldcd")


class PlanError(ValueError):
    """The archive cannot be planned as asked (a usage error: nothing has been written)."""


@dataclass(frozen=True)
class BatchSettings:
    """What every file of a batch is upsampled with: the options of ``mdsr-upsample``
    (:class:`~mdsr_plugin.settings.UpsampleSettings`) plus the batch's own.

    ``upsample.output_format`` None keeps each input's format (H5MD for formats
    mdsr_plugin cannot write).  ``topology`` is used for every file that needs one.
    ``fallback`` names the method used when the neural method has no checkpoint for
    a file (None: such a file fails); ``"classical"`` means the best classical
    method the input supports.
    """

    upsample: UpsampleSettings
    topology: str | None = None
    fallback: str | None = None

    def result_key(self) -> dict:
        """The settings that change what is written (not the device, batch or chunk size)."""
        key = {**self.upsample.as_dict(), "topology": self.topology, "fallback": self.fallback}
        for name in ("device", "chunk_size", "batch_gaps"):
            key.pop(name)
        return key


@dataclass(frozen=True)
class Job:
    """One file to upsample: absolute paths plus the settings."""

    input: str
    relative: str  # the input's path inside the archive, the manifest's key
    output: str
    settings: BatchSettings
    topology: str | None = None
    velocities: str | None = None
    input_size: int = 0
    fingerprint: str = ""
    problem: str | None = None  # known before running (unknown format...): the job fails with it
    companions: tuple[str, ...] = field(default=())


def default_patterns() -> list[str]:
    """Glob patterns for every readable trajectory extension (and VASP's XDATCAR files)."""
    patterns = {f"*{ext}" for fmt in formats().values() if fmt.open_reader for ext in fmt.extensions}
    return sorted(patterns | {"XDATCAR*"})


def plan_jobs(
    archive, out_dir, settings: BatchSettings, include=None, exclude=()
) -> list[Job]:
    """One :class:`Job` per trajectory file under ``archive``, in a stable (sorted) order.

    Parameters
    ----------
    archive, out_dir : path-like
        The folder to search and the folder to mirror it into (skipped if inside ``archive``).
    settings : BatchSettings
    include, exclude : sequence of str
        Glob patterns matched against the file name and against the path relative to
        ``archive``; ``include`` defaults to every readable trajectory extension.
        A file that an explicit pattern selects but that is no readable trajectory
        becomes a failing job ("unknown format"), so that it is reported.

    Raises
    ------
    PlanError
        ``archive`` is not a folder, ``out_dir`` equals it, or two inputs would be
        written to the same output.
    """
    archive, out_dir = Path(archive).resolve(), Path(out_dir).resolve()
    if not archive.is_dir():
        raise PlanError(f"{archive}: no such folder")
    if out_dir == archive:
        raise PlanError("the output folder must not be the archive folder")
    include = list(include) if include else default_patterns()
    files = [p for p in _walk(archive, skip=out_dir) if _matches(p, archive, include)]
    files = [p for p in files if not _matches(p, archive, exclude)]
    velocity_files = {p for p in files if p.name.lower().endswith(VELOCITY_SUFFIXES)}
    topology_files = {p for p in files if p.suffix.lower() in TOPOLOGY_EXTENSIONS}
    jobs, owners = [], {}
    for path in files:
        if path in velocity_files or (path in topology_files and not _readable(path, settings)):
            continue
        job = _plan_one(path, archive, out_dir, settings)
        if job.output in owners:
            raise PlanError(
                f"{owners[job.output]} and {job.relative} would both be written to "
                f"{Path(job.output).relative_to(out_dir)}; exclude one (--exclude)"
            )
        owners[job.output] = job.relative
        jobs.append(job)
    return jobs


def _walk(root: Path, skip: Path):
    """Files under ``root``, sorted, without hidden files or folders and without ``skip``."""
    for folder, dirs, names in os.walk(root):
        folder = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (folder / d).resolve() != skip)
        for name in sorted(names):
            if not name.startswith("."):  # offset caches, partial outputs
                yield folder / name


def _matches(path: Path, root: Path, patterns) -> bool:
    relative = path.relative_to(root).as_posix()
    return any(fnmatch.fnmatch(path.name, p) or fnmatch.fnmatch(relative, p) for p in patterns)


def _readable(path: Path, settings: BatchSettings) -> bool:
    try:
        return get_format(path, settings.upsample.input_format).open_reader is not None
    except FormatError:
        return False


def _plan_one(path: Path, archive: Path, out_dir: Path, settings: BatchSettings) -> Job:
    relative = path.relative_to(archive).as_posix()
    problem = topology = velocities = None
    try:
        fmt = get_format(path, settings.upsample.input_format)
        if fmt.open_reader is None:
            raise FormatError(f"mdsr_plugin cannot read {fmt.name} files")
    except FormatError as err:
        fmt, problem = None, f"unknown format: {err}"
    if fmt is not None and fmt.needs_topology:
        topology = settings.topology or _find_topology(path)
        if topology is None:
            problem = f"{fmt.name} needs a topology: none given (--top) and none found beside the file"
    if fmt is not None and fmt.name == "dcd":
        velocities = _find_velocities(path)
    output = _output_path(path, fmt, archive, out_dir, settings)
    companions = tuple(str(p) for p in (topology, velocities) if p is not None)
    return Job(
        input=str(path), relative=relative, output=str(output), settings=settings,
        topology=None if topology is None else str(topology),
        velocities=None if velocities is None else str(velocities),
        input_size=path.stat().st_size, problem=problem, companions=companions,
        fingerprint=_fingerprint(path, companions, settings),
    )


def _find_topology(path: Path) -> Path | None:
    for ext in TOPOLOGY_EXTENSIONS:
        candidate = path.with_suffix(ext)
        if candidate.is_file():
            return candidate
    beside = [p for p in sorted(path.parent.iterdir()) if p.suffix.lower() in TOPOLOGY_EXTENSIONS and p.is_file()]
    return beside[0] if len(beside) == 1 else None


def _find_velocities(path: Path) -> Path | None:
    stem = path.name[: -len(path.suffix)]
    for suffix in VELOCITY_SUFFIXES:
        candidate = path.with_name(stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def _output_path(path: Path, fmt, archive: Path, out_dir: Path, settings: BatchSettings) -> Path:
    target_dir = out_dir / path.parent.relative_to(archive)
    name = path.name
    matched = _matched_extension(name, fmt)
    stem = name[: -len(matched)] if matched else path.stem
    if settings.upsample.output_format is not None:
        extension = formats()[settings.upsample.output_format].extensions[0]
    elif fmt is not None and fmt.open_writer is not None and matched:
        extension = matched  # same format: keep the input's own spelling (.extxyz stays .extxyz)
    else:
        extension = ".h5md"  # a format mdsr_plugin reads but cannot write (LAMMPS dump, XDATCAR)
    return target_dir / (stem + extension)


def _matched_extension(name: str, fmt) -> str:
    if fmt is None:
        return ""
    lower = name.lower()
    for ext in sorted(fmt.extensions, key=len, reverse=True):
        if lower.endswith(ext):
            return name[-len(ext):]
    return ""


def _fingerprint(path: Path, companions, settings: BatchSettings) -> str:
    """A hash of the settings and of the input's (and companions') size and modification time:
    a completed output is reused only while all of them are unchanged."""
    stats = []
    for p in (path, *companions):
        st = Path(p).stat()
        stats.append([str(p), st.st_size, st.st_mtime_ns])
    text = json.dumps({"settings": settings.result_key(), "files": stats}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
