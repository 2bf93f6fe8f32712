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
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..io.atomic import is_temporary_name
from .archive import BatchSettings, Job, PlanError, plan_jobs
from .manifest import MANIFEST_NAME, Manifest

__all__ = ["BatchSettings", "BatchResult", "Job", "PlanError", "process_archive", "MANIFEST_NAME"]

LOCK_NAME = ".mdsr-batch.lock"


@dataclass
class BatchResult:
    """What a batch run did.  ``records`` are this run's manifest records, in completion order."""

    planned: int = 0
    skipped: list[str] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    interrupted: bool = False

    @property
    def done(self) -> list[dict]:
        return [r for r in self.records if r["status"] == "done"]

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.records if r["status"] != "done"]


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
        Bad settings or folders, colliding outputs, or another batch writing to ``out_dir``.
    """
    from ..settings import SettingsError
    from .runner import run_dask, run_local

    try:
        settings = replace(settings, upsample=settings.upsample.checked())
    except SettingsError as err:
        raise PlanError(str(err)) from None
    out_dir = Path(out_dir)
    jobs = plan_jobs(archive, out_dir, settings, include=include, exclude=exclude)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = BatchResult(planned=len(jobs))
    with _exclusive(out_dir):
        _remove_partial_outputs(out_dir)
        manifest = Manifest(out_dir)
        todo = []
        for job in jobs:
            if not force and manifest.is_complete(job):
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
        except KeyboardInterrupt:
            result.interrupted = True
            _remove_partial_outputs(out_dir)
        # Workers make each output's folder before writing; a file that failed leaves it
        # empty.  Removed here, once no worker runs, so that none loses a folder mid-write.
        _remove_empty_folders(out_dir)
    return result


@contextmanager
def _exclusive(out_dir: Path):
    """Hold a lock on ``out_dir`` so that two batches never write to it at once."""
    handle = open(out_dir / LOCK_NAME, "w")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PlanError(f"{out_dir}: another mdsr-batch is writing to this folder") from None
        yield
    finally:
        handle.close()


def _remove_empty_folders(out_dir: Path) -> None:
    """Delete the empty folders under ``out_dir`` (not ``out_dir`` itself), deepest first."""
    for folder, _, _ in os.walk(out_dir, topdown=False):
        if Path(folder) != out_dir:
            try:
                os.rmdir(folder)
            except OSError:  # not empty
                pass


def _remove_partial_outputs(out_dir: Path) -> None:
    """Delete temporary files left by a killed run (complete outputs have their final names)."""
    for folder, _, names in os.walk(out_dir):
        for name in names:
            if is_temporary_name(name):
                try:
                    os.unlink(os.path.join(folder, name))
                except FileNotFoundError:
                    pass
