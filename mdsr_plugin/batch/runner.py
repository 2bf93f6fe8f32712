"""Scheduling the per-file function over worker processes or a Dask cluster.

:func:`run_job` is what a worker executes: it calls
:func:`mdsr_plugin.pipeline.upsample_file` (the same function as ``mdsr-upsample``)
and turns the outcome, success or failure, into a manifest record.  The
scheduling process alone writes the manifest.

Local workers are started with ``spawn`` (CUDA cannot be used in a forked child),
each with ``threads`` CPU threads so that the workers together do not oversubscribe
the cores, and each loads a checkpoint once (see
:func:`mdsr_plugin.neural.checkpoint.load_checkpoint`).  Workers ignore SIGINT: on
Ctrl-C the scheduler stops them with SIGTERM, on which a worker deletes its
unfinished temporary output and exits.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import multiprocessing
import os
import signal
import socket
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from ..io import NotATrajectory
from .archive import Job
from .manifest import NO_MD_RUN

__all__ = ["run_job", "run_local", "run_dask"]

log = logging.getLogger(__name__)

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

#: How long idle workers get to exit at the end before they are terminated.
_GRACE_SECONDS = 5.0


def run_job(job: Job, out_dir: str, threads: int | None = None) -> dict:
    """Upsample one file; return its manifest record.  Bad input never raises.

    Parameters
    ----------
    job : Job
    out_dir : str
        The batch's output folder (output paths are recorded relative to it).
    threads : int, optional
        CPU threads for torch in this process.
    """
    from ..methods import MethodError

    if threads:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    started = time.perf_counter()
    record = {
        "file": job.relative,
        "input_size": job.input_size,
        "fingerprint": job.fingerprint,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }
    settings = job.settings.upsample
    try:
        if job.problem:
            raise _JobProblem(job.problem)
        Path(job.output).parent.mkdir(parents=True, exist_ok=True)
        try:
            summary = _upsample(job, settings)
        except MethodError as err:
            if not (settings.method == "neural" and job.settings.fallback):
                raise
            record["fallback"] = str(err)
            summary = _upsample(job, settings.with_method(job.settings.fallback, model=None))
    except NotATrajectory as err:  # a single point or relaxation among the runs: listed apart, no failure
        record.update(status=NO_MD_RUN, error=_one_line(err))
    except Exception as err:  # noqa: BLE001  a batch records every failure and goes on
        record.update(status="failed", error=_one_line(err))
    else:
        outputs = {}
        for path in summary["outputs"]:
            outputs[os.path.relpath(path, out_dir)] = Path(path).stat().st_size
        record.update(
            status="done", outputs=outputs, frames_in=summary["frames_in"], frames_out=summary["frames_out"],
            method=summary["method"], model=summary["model"], model_sha256=summary.get("model_sha256"),
            disagreement=summary["disagreement"], velocities_fitted=summary["velocities_fitted"],
            estimate=summary.get("estimate"), self_validation=summary.get("self_validation"),
        )
    record["seconds"] = round(time.perf_counter() - started, 3)
    record["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return record


class _JobProblem(Exception):
    """A reason known at planning time (unknown format, missing topology)."""


def _upsample(job: Job, settings) -> dict:
    from ..pipeline import upsample_file

    return upsample_file(job.input, job.output, settings=settings, topology=job.topology,
                         velocities=job.velocities)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    if not isinstance(err, (OSError, ValueError, _JobProblem)) and type(err).__name__ not in text:
        text = f"{type(err).__name__}: {text}"
    return text[:500]


# ------------------------------------------------------------------ local processes
def _init_worker(threads: int, scheduler: int) -> None:
    # Ctrl-C reaches every process of the terminal's group; only the scheduler acts on it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)
    _die_with_parent(scheduler)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="MDAnalysis")
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _die_with_parent(scheduler: int) -> None:
    """Ask Linux to send this worker SIGTERM when the scheduler (process ``scheduler``) dies,
    even by SIGKILL, so that no orphan goes on writing into the output folder.

    The request holds from now on: a scheduler that died while this worker was starting
    (its imports take a second) is seen as a parent that is no longer it, and the worker ends.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: orphans finish their file and exit
        pass
    if os.getppid() != scheduler:
        os._exit(128 + signal.SIGTERM)


def _terminate(signum, frame):
    from ..io.atomic import remove_open_temporaries, when_published

    if when_published(functools.partial(_terminate, signum, None)):
        return  # a DCD and its velocity DCD are being published: end once both are
    remove_open_temporaries()
    os._exit(128 + signum)


def run_local(
    jobs: Iterable[Job], out_dir, workers: int, threads: int, on_record: Callable[[dict], None]
) -> None:
    """Run ``jobs`` on ``workers`` spawned processes; call ``on_record`` for each result.

    ``workers == 1`` runs in this process (no pool).  A worker that dies (a crash
    in a library on a corrupt file) fails only the files it held: the pool is
    restarted for the rest.  KeyboardInterrupt stops the workers and propagates.
    """
    pending = list(jobs)
    out_dir = str(out_dir)
    if workers <= 1:
        for job in pending:
            on_record(run_job(job, out_dir))
        return
    # The thread count must be in the environment before a worker imports numpy or
    # torch, so the children inherit it; the scheduler itself does little arithmetic.
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: str(threads) for name in _THREAD_VARIABLES})
    try:
        while pending:
            pending = _run_pool(pending, out_dir, workers, threads, on_record)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_pool(jobs, out_dir, workers, threads, on_record) -> list[Job]:
    """Run ``jobs`` until done or the pool breaks; return the jobs not yet started."""
    context = multiprocessing.get_context("spawn")
    executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                   initargs=(threads, os.getpid()))
    queue = list(reversed(jobs))
    running = {}
    try:
        while queue or running:
            # Submit at most one job ahead per worker, so that Ctrl-C leaves little to cancel.
            while queue and len(running) < 2 * workers:
                job = queue.pop()
                running[executor.submit(run_job, job, out_dir)] = job
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                try:
                    on_record(future.result())
                except BrokenProcessPool:
                    # Which of the running jobs killed the worker is unknown: fail them all.
                    for other in [job, *running.values()]:
                        on_record(_died(other))
                    running.clear()
                    executor.shutdown(wait=False, cancel_futures=True)
                    return list(reversed(queue))
    except BaseException:
        _stop(executor, grace=0)
        raise
    # Not executor.shutdown(wait=True): a worker killed while idle (the out-of-memory
    # killer) can die holding the lock of the queue the others read their next task
    # from; they then never see the signal to exit, and shutdown would wait forever.
    _stop(executor, grace=_GRACE_SECONDS)
    return []


def _died(job: Job) -> dict:
    return {"file": job.relative, "status": "failed", "input_size": job.input_size,
            "fingerprint": job.fingerprint, "error": "the worker process died while processing this file",
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _stop(executor: ProcessPoolExecutor, grace: float) -> None:
    """Cancel what has not started, give the workers ``grace`` seconds to exit, then
    terminate those left (they delete their temporary files on SIGTERM).

    Only this pool's workers: the calling program may have processes of its own.
    """
    # The pool forgets its processes on shutdown: take them first (a private attribute,
    # the only handle on them that concurrent.futures has).
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    if any(process.exitcode not in (None, 0) for process in processes):
        grace = 0  # one was killed: the others may wait on a lock it held
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)


# ------------------------------------------------------------------ Dask
def run_dask(jobs: Iterable[Job], out_dir, scheduler, threads: int, on_record: Callable[[dict], None]) -> None:
    """Run ``jobs`` on a Dask distributed cluster: the same :func:`run_job` per file.

    Parameters
    ----------
    scheduler : str or distributed.Client
        A scheduler address (``tcp://host:8786``) or a connected client.
    threads : int
        CPU threads for torch in each task; start Dask workers with
        ``--nthreads 1`` and one process per core group.
    """
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise RuntimeError("--scheduler needs Dask: pip install 'mdsr_plugin[dask]'") from None
    client = scheduler if isinstance(scheduler, Client) else Client(scheduler, timeout="30s")
    try:
        out_dir = str(out_dir)
        futures = [client.submit(run_job, job, out_dir, threads, pure=False, key=f"mdsr-{job.fingerprint}-{i}")
                   for i, job in enumerate(jobs)]
        try:
            for future in as_completed(futures):
                on_record(future.result())
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        if client is not scheduler:
            client.close()
