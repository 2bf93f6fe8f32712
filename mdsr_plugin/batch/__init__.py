"""Batch post-processing of an archive of trajectories (``mdsr-batch``).

:func:`process_archive` plans one job per trajectory file
(:mod:`~mdsr_plugin.batch.archive`), skips the jobs whose output is complete and
current according to the manifest (:mod:`~mdsr_plugin.batch.manifest`), and has
the rest run by local worker processes or a Dask cluster
(:mod:`~mdsr_plugin.batch.runner`), every one through
:func:`mdsr_plugin.pipeline.upsample_file`.

Safe to kill at any moment: each output appears only when complete (temporary
name, then rename), the manifest is appended and synced one line per file, and
the next run removes leftover temporary files and redoes what is not recorded
as done.

Nothing is written before the plan is known to be safe: no job writes over a file
any job reads, no two jobs write one file, nothing lands inside the archive
(:func:`~mdsr_plugin.batch.archive.plan_jobs`), and the output folder can be
written to (a probe file, created and deleted).  Each refusal is a
:class:`PlanError`.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..io.atomic import Interrupted, is_temporary_name
from ..methods import checked_settings
from .archive import BatchSettings, Job, PlanError, plan_jobs
from .manifest import LOCK_NAME, MANIFEST_NAME, NO_MD_RUN, Manifest

__all__ = ["BatchSettings", "BatchResult", "Job", "PlanError", "process_archive", "MANIFEST_NAME", "LOCK_NAME"]


@dataclass
class BatchResult:
    """What a batch run did.  ``records`` are this run's manifest records, in completion order."""

    planned: int = 0
    skipped: list[str] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    interrupted: bool = False
    #: What stopped it ("Ctrl-C", "SIGTERM"...), and the exit status that says so (128 + the signal).
    stopped_by: str | None = None
    exit_code: int | None = None
    #: The manifest's records of unchanged files an earlier run found to hold no MD run (not redone).
    known_no_md_run: list[dict] = field(default_factory=list)

    @property
    def done(self) -> list[dict]:
        return [r for r in self.records if r["status"] == "done"]

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.records if r["status"] == "failed"]

    @property
    def no_md_run(self) -> list[dict]:
        """Files a reader recognised as a code's output of no MD run (single points, relaxations),
        in this run or, unchanged since, in an earlier one."""
        return [*self.known_no_md_run, *(r for r in self.records if r["status"] == NO_MD_RUN)]


def process_archive(
    archive,
    out_dir,
    settings: BatchSettings,
    *,
    include=None,
    exclude=(),
    workers: int = 1,
    threads: int | None = None,
    scheduler=None,
    force: bool = False,
    on_record=None,
    on_plan=None,
) -> BatchResult:
    """Upsample every trajectory under ``archive`` into ``out_dir`` (mirrored folders).

    Parameters
    ----------
    archive, out_dir : path-like
    settings : BatchSettings
    include, exclude : sequence of str, optional
        Glob patterns (see :func:`~mdsr_plugin.batch.archive.plan_jobs`).
    workers : int
        Local worker processes (ignored with ``scheduler``).
    threads : int, optional
        CPU threads per worker; default: the machine's cores divided among the workers.
    scheduler : str or distributed.Client, optional
        Run on this Dask cluster instead of local processes.
    force : bool
        Redo files whose output is already complete.
    on_record : callable, optional
        Called with each manifest record as files finish (progress display).
    on_plan : callable, optional
        Called with ``(jobs_to_run, n_skipped)`` before any work starts.

    Returns
    -------
    BatchResult
        ``interrupted`` is True after Ctrl-C; finished files are recorded either way.

    Raises
    ------
    PlanError
        Bad settings or folders, an output that would overwrite an input or land in the
        archive, colliding outputs, an output folder that cannot be written or whose
        manifest cannot be read, or another batch writing to ``out_dir``.  Nothing
        has been written then, except an ``out_dir`` created before the refusal.
    OSError
        Writing the manifest failed during the run (the disk filled up...).
    """
    from ..settings import SettingsError
    from .runner import run_dask, run_local

    try:
        settings = replace(settings, upsample=checked_settings(settings.upsample))
    except SettingsError as err:
        raise PlanError(str(err)) from None
    out_dir = Path(out_dir)
    jobs = plan_jobs(archive, out_dir, settings, include=include, exclude=exclude)
    _check_writable(out_dir)
    result = BatchResult(planned=len(jobs))
    with _exclusive(out_dir):
        _remove_partial_outputs(out_dir, archive=Path(archive).resolve())
        manifest = _read_manifest(out_dir)
        todo = []
        for job in jobs:
            if not force and manifest.is_complete(job):
                earlier = manifest.latest[job.relative]
                if earlier.get("status") == NO_MD_RUN:  # listed as such again, not as done
                    result.known_no_md_run.append(earlier)
                else:
                    result.skipped.append(job.relative)
            else:
                todo.append(job)
        if on_plan is not None:
            on_plan(todo, len(result.skipped))

        def record(entry: dict) -> None:
            manifest.append(entry)
            result.records.append(entry)
            if on_record is not None:
                on_record(entry)

        n_workers = max(1, min(workers, len(todo)))
        if threads is None:
            threads = max(1, (os.cpu_count() or 1) // n_workers)
        try:
            if scheduler is not None:
                run_dask(todo, out_dir.resolve(), scheduler, threads, record)
            else:
                run_local(todo, out_dir.resolve(), n_workers, threads, record)
        except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM/SIGHUP as Interrupted
            result.interrupted = True
            result.stopped_by = err.args[0] if isinstance(err, Interrupted) else "Ctrl-C"
            result.exit_code = getattr(err, "exit_code", 128 + 2)
        # Once no worker runs: the temporary file of a worker that died (killed, or
        # crashed in a library) and the folders of files that failed, which workers make
        # before writing, are removed, so that none loses a file or folder mid-write.
        _remove_partial_outputs(out_dir, archive=Path(archive).resolve())
        _remove_empty_folders(out_dir, {Path(job.output).parent for job in todo})
    return result


def _check_writable(out_dir: Path) -> None:
    """Create ``out_dir`` and a probe file in it, so that a folder that cannot be written
    is one line before any work (not a traceback, nor every file failing)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        # Hidden, so that no scan takes it for a trajectory if a kill leaves it behind.
        handle, probe = tempfile.mkstemp(prefix=".mdsr-batch-probe-", dir=out_dir)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise PlanError(f"{out_dir}: cannot write to the output folder ({err.strerror or err})") from None


def _read_manifest(out_dir: Path) -> Manifest:
    try:
        return Manifest(out_dir)
    except (OSError, UnicodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise PlanError(f"{out_dir / MANIFEST_NAME}: cannot read the manifest ({reason})") from None


@contextmanager
def _exclusive(out_dir: Path):
    """Hold a lock on ``out_dir`` so that two batches never write to it at once."""
    try:
        handle = open(out_dir / LOCK_NAME, "a")
    except OSError as err:
        raise PlanError(f"{out_dir / LOCK_NAME}: cannot open the lock file ({err.strerror or err})") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PlanError(f"{out_dir}: another mdsr-batch is writing to this folder") from None
        yield
    finally:
        handle.close()


def _remove_empty_folders(out_dir: Path, folders) -> None:
    """Delete ``folders`` and their parents below ``out_dir`` where empty, deepest first.

    Only the folders this run's outputs go to: the output folder may hold other
    folders of the user's, or the archive itself.
    """
    out_dir = out_dir.resolve()
    candidates = set()
    for folder in folders:
        folder = Path(folder)
        while folder != out_dir and folder.is_relative_to(out_dir):
            candidates.add(folder)
            folder = folder.parent
    for folder in sorted(candidates, key=lambda f: len(f.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:  # not empty, or already gone
            pass


def _remove_partial_outputs(out_dir: Path, archive: Path) -> None:
    """Delete temporary files left by a killed run (complete outputs have their final names).

    An archive inside ``out_dir`` is not searched: its files are the user's.
    """
    for folder, dirs, names in os.walk(out_dir):
        dirs[:] = [d for d in dirs if Path(folder, d).resolve() != archive]
        for name in names:
            if is_temporary_name(name):
                try:
                    os.unlink(os.path.join(folder, name))
                except FileNotFoundError:
                    pass
