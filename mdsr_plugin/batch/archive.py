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

What a plan guarantees, before anything is written (a breach is a :class:`PlanError`,
which ``mdsr-batch`` reports in one line with exit code 2):

* **No input is overwritten.**  Each job lists the files it reads
  (:attr:`Job.reads`: the trajectory, its topology, its velocity DCD) and the files
  it writes (:attr:`Job.writes`: the output and the companions its writer adds,
  from :func:`mdsr_plugin.io.output_paths`).  Every written path, and the batch's
  own manifest and lock file, goes through :func:`mdsr_plugin.io.refuse_overwrite`
  against every file that any job reads.
* **No two jobs write one file.**  Output names are not made unique by renaming:
  ``run.dcd`` stays ``OUT/run.dcd``, so that the manifest of an archive begun
  earlier still matches.  A name that depended on which other files are in the
  archive would change when one is added, and orphan finished outputs.  Instead,
  every path every job writes is collected, companions included (``a.xyz`` ->
  ``a.dcd`` and ``a.vel.dcd`` meets ``a.vel.xyz`` -> ``a.vel.dcd`` under
  ``--output-format dcd``), and a path claimed twice is refused, naming both inputs.
* **Nothing is written into the archive.**  An output folder *inside* the archive
  is allowed and never scanned, so that its files are never inputs.  It must be
  new, empty, or already a batch output folder (it holds the manifest or the lock
  file).  A folder holding other files, such as the archive's own trajectories, is
  refused: they would be skipped silently and could be overwritten.  An archive
  *inside* the output folder is allowed as long as no output lands inside the
  archive.  That happens when a subfolder mirrors onto the archive itself:
  ``mdsr-batch x/A -o x`` with a folder ``x/A/A/`` would write ``x/A/A/run.xyz``'s
  output to ``x/A/run.xyz``.  Such a plan is refused, because that output would be
  an input of the next run.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..io import (FormatError, companion_inputs, format_of_content, formats, get_format, is_companion_file,
                  output_paths, refuse_overwrite)
from ..io.atomic import not_a_file
from ..settings import UpsampleSettings
from .manifest import LOCK_NAME, MANIFEST_NAME

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
    """One file to upsample: absolute paths plus the settings.

    ``companions`` are the other files it reads (topology, velocity DCD); ``writes``
    every file it writes, ``output`` first, then the companions its writer adds
    (empty for a job with a ``problem``, which fails without writing).
    """

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
    writes: tuple[str, ...] = field(default=())

    @property
    def reads(self) -> tuple[str, ...]:
        """Every file the job reads: the input, then its companions."""
        return (self.input, *self.companions)


def default_patterns() -> list[str]:
    """Glob patterns for every readable trajectory extension (and VASP's and CPMD's fixed names)."""
    patterns = {f"*{ext}" for fmt in formats().values() if fmt.open_reader for ext in fmt.extensions}
    return sorted(patterns | {"XDATCAR*", "OUTCAR*", "vasprun*.xml", "TRAJECTORY", "FTRAJECTORY"})


def plan_jobs(
    archive, out_dir, settings: BatchSettings, include=None, exclude=()
) -> list[Job]:
    """One :class:`Job` per trajectory file under ``archive``, in a stable (sorted) order.

    Parameters
    ----------
    archive, out_dir : path-like
        The folder to search and the folder to mirror it into.  An ``out_dir``
        inside ``archive`` is not searched (see the module docstring).
    settings : BatchSettings
    include, exclude : sequence of str
        Glob patterns matched against the file name and against the path relative to
        ``archive``; without ``include``, every file with a readable trajectory's extension
        or fixed name (in any case) or whose content a reader recognises.
        A file that an explicit pattern selects but that is no readable trajectory
        becomes a failing job ("unknown format"), so that it is reported.

    Raises
    ------
    PlanError
        ``archive`` is not a folder; ``out_dir`` equals it, is a file, or lies inside
        it and holds files a batch did not write; a job would write over a file some
        job reads, or into the archive; two jobs would write the same file.
    """
    if settings.upsample.adapt is not None:  # one checkpoint stem would be written by every job
        raise PlanError("adapt learns a checkpoint from one input; run mdsr-upsample --adapt on each file "
                        "(or learn one with mdsr-train and give it with --model)")
    archive, out_dir = Path(archive).resolve(), Path(out_dir).resolve()
    if not archive.is_dir():
        raise PlanError(f"{archive}: no such folder")
    if out_dir == archive:
        raise PlanError("the output folder must not be the archive folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise PlanError(f"{out_dir}: the output folder is a file")
    _refuse_foreign_output_folder(archive, out_dir)
    # Files in an output folder inside the archive are never inputs; an archive inside
    # the output folder is the input, all of it.
    skip = None if archive.is_relative_to(out_dir) else out_dir
    if include:
        files = [p for p in _walk(archive, skip=skip) if _matches(p, archive, include)]
    else:
        folded = [pattern.lower() for pattern in default_patterns()]
        files = [p for p in _walk(archive, skip=skip) if _selected_by_default(p, archive, folded)]
    files = [p for p in files if not _matches(p, archive, exclude)]
    velocity_files = {p for p in files if p.name.lower().endswith(VELOCITY_SUFFIXES)}
    topology_files = {p for p in files if p.suffix.lower() in TOPOLOGY_EXTENSIONS}
    jobs = []
    for path in files:
        if path in velocity_files or (path in topology_files and not _readable(path, settings)):
            continue
        if is_companion_file(path):  # CP2K's -vel-1.xyz, i-PI's .for_0.xyz: read with their positions
            continue
        jobs.append(_plan_one(path, archive, out_dir, settings))
    _refuse_overwriting_inputs(jobs, out_dir)
    _refuse_shared_writes(jobs, out_dir)
    _refuse_writes_into_archive(jobs, archive, out_dir)
    return jobs


def _refuse_foreign_output_folder(archive: Path, out_dir: Path) -> None:
    """An output folder inside the archive is never searched, so it must hold nothing of
    the archive's: be new, empty, or a batch output folder already (manifest or lock)."""
    if not out_dir.is_relative_to(archive) or not out_dir.is_dir():
        return
    if (out_dir / MANIFEST_NAME).exists() or (out_dir / LOCK_NAME).exists():
        return
    for path in _walk(out_dir, skip=None):
        raise PlanError(
            f"{out_dir}: the output folder is inside the archive and already holds files mdsr-batch "
            f"did not write ({path.relative_to(archive).as_posix()}), which would be skipped or "
            "overwritten; choose a new output folder or one outside the archive"
        )


def _refuse_overwriting_inputs(jobs: list[Job], out_dir: Path) -> None:
    """Every file the batch writes against every file any job reads, by the one rule
    (:func:`mdsr_plugin.io.refuse_overwrite`).

    Handing the rule all writes and all reads at once would resolve writes x reads
    paths, quadratic in the archive's size; so the reads are first indexed by the two
    things :func:`~mdsr_plugin.io.paths.same_file` compares (the resolved path, the
    inode), and each write goes to the rule with the reads that can match it.
    """
    by_name, by_inode = defaultdict(set), defaultdict(set)
    for read in {r for job in jobs for r in job.reads}:
        by_name[os.path.realpath(read)].add(read)
        inode = _inode(read)
        if inode is not None:
            by_inode[inode].add(read)
    writes = [(out_dir / MANIFEST_NAME, "batch manifest"), (out_dir / LOCK_NAME, "batch lock file")]
    writes += [(Path(path), f"output of {job.relative}") for job in jobs for path in job.writes]
    for path, what in writes:
        candidates = set(by_name.get(os.path.realpath(path), ()))
        inode = _inode(path)
        if inode is not None:
            candidates |= by_inode.get(inode, set())
        try:
            refuse_overwrite(sorted(candidates), [path], what=what)
        except FormatError as err:
            raise PlanError(str(err)) from None


def _inode(path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:  # not there (yet): only its name can clash
        return None
    return st.st_dev, st.st_ino


def _refuse_shared_writes(jobs: list[Job], out_dir: Path) -> None:
    """Refuse a plan in which two jobs (or a job and the manifest) would write one path.

    Written paths are built from the resolved ``out_dir`` and relative names, so equal
    paths are equal strings; every companion counts, not only the outputs.
    """
    owners = {str(out_dir / MANIFEST_NAME): "the batch manifest", str(out_dir / LOCK_NAME): "the batch lock file"}
    for job in jobs:
        for path in job.writes:
            if path in owners:
                first = owners[path]
                raise PlanError(
                    f"{first} and {_writer_of(job, path, out_dir)} would both be written to "
                    f"{Path(path).relative_to(out_dir).as_posix()}; exclude one (--exclude)"
                )
            owners[path] = _writer_of(job, path, out_dir)


def _writer_of(job: Job, path: str, out_dir: Path) -> str:
    if path == job.output:
        return job.relative
    return f"{job.relative} (the companion of its output {Path(job.output).relative_to(out_dir).as_posix()})"


def _refuse_writes_into_archive(jobs: list[Job], archive: Path, out_dir: Path) -> None:
    """With the archive inside the output folder, an output can land inside the archive
    (``x/A/A/run.xyz`` -> ``x/A/run.xyz`` for ``mdsr-batch x/A -o x``); the next run
    would take it for an input.  (An output folder inside the archive is never
    searched, so writes into it are fine.)"""
    if out_dir.is_relative_to(archive):
        return
    for job in jobs:
        for path in job.writes:
            if Path(path).is_relative_to(archive):
                raise PlanError(
                    f"{job.relative} would be written to {path}, inside the archive (the output folder "
                    f"{out_dir} holds the archive and a folder of it mirrors onto the archive); choose an "
                    "output folder outside the archive"
                )


def _walk(root: Path, skip: Path | None):
    """Files under ``root``, sorted, without hidden files or folders and without what lies in
    ``skip`` (the output folder: a symbolic link resolving into it is skipped too)."""
    for folder, dirs, names in os.walk(root):
        folder = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (folder / d).resolve() != skip)
        for name in sorted(names):
            if name.startswith("."):  # offset caches, partial outputs
                continue
            path = folder / name
            if not_a_file(path) is not None:  # a FIFO or device: reading it would wait or never end
                continue
            if skip is None or not path.resolve().is_relative_to(skip):
                yield path


def _matches(path: Path, root: Path, patterns) -> bool:
    relative = path.relative_to(root).as_posix()
    return any(fnmatch.fnmatch(path.name, p) or fnmatch.fnmatch(relative, p) for p in patterns)


def _selected_by_default(path: Path, root: Path, folded) -> bool:
    """A readable trajectory's extension or fixed name in any case (DL_POLY's ``HISTORY``,
    SIESTA's ``run.ANI``), or content a reader recognises whatever the name: AIMD codes
    write their trajectories into logs and files named by the user (pw.x's and FHI-aims'
    ``run.out``, CASTEP's ``SEED.md``, a LAMMPS dump called ``dump.out``).  ``folded``:
    :func:`default_patterns` in lower case."""
    name, relative = path.name.lower(), path.relative_to(root).as_posix().lower()
    if any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(relative, p) for p in folded):
        return True
    fmt = format_of_content(path)
    return fmt is not None and fmt.open_reader is not None


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
    # The files the reader finds beside the input (a CP2K or i-PI set) are read too: they
    # enter the overwrite rule and the fingerprint that decides whether a job is redone.
    beside = companion_inputs(path, settings.upsample.input_format).values() if fmt is not None else ()
    companions = tuple(str(p) for p in (topology, velocities, *beside) if p is not None)
    # A job with a problem fails before opening a writer: it writes nothing.
    writes = () if problem else tuple(str(p) for p in output_paths(output, settings.upsample.output_format))
    return Job(
        input=str(path), relative=relative, output=str(output), settings=settings,
        topology=None if topology is None else str(topology),
        velocities=None if velocities is None else str(velocities),
        input_size=path.stat().st_size, problem=problem, companions=companions, writes=writes,
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
    if matched.startswith("."):
        stem = name[: -len(matched)]
    elif matched:  # a name ending, not a suffix (DL_POLY's HISTORY, xtb.trj): the whole name, less its suffix
        stem = path.stem if path.suffix else name
    else:  # recognised by its content: the whole name, so that dump.0 and dump.200 stay apart
        stem = name
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
