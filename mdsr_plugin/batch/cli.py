"""``mdsr-batch``: upsample every trajectory of an archive, resumably, on workers or Dask.

Exit codes: 0 every file done (or already done, or found to hold no MD run: a single point
or relaxation log among the runs, listed apart), 1 some file failed, 2 usage
error, 128 + the signal when stopped by Ctrl-C (130), SIGTERM (143) or SIGHUP (129): finished
files are kept and recorded; run again to go on.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from ..cli import EXIT_FAILURE, EXIT_OK, add_upsample_options, positive_int, start_command, usage_error
from ..console import closed_pipe_ends_quietly

__all__ = ["main", "build_parser"]

EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mdsr-batch",
        description="Upsample every trajectory under ARCHIVE_DIR into OUT_DIR, mirroring its folders. "
        "Run it again after an interruption: finished files are skipped, failed ones retried.",
        epilog="Example: mdsr-batch aimd_runs/ -o aimd_fine/ --factor 20 --workers 2",
    )
    parser.add_argument("archive", metavar="ARCHIVE_DIR", help="folder searched recursively for trajectories")
    parser.add_argument("-o", "--output", metavar="OUT_DIR", required=True, help="folder for outputs and manifest")
    add_upsample_options(parser)
    parser.add_argument("--include", action="append", metavar="GLOB",
                        help="only files matching (name or relative path; repeatable; default: every "
                             "trajectory extension mdsr_plugin reads)")
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip matching files")
    parser.add_argument("--fallback", metavar="METHOD",
                        help="method for files the neural method has no checkpoint for "
                             "(e.g. classical or hermite); default: such files fail")
    parser.add_argument("--workers", type=positive_int, default=1, help="local worker processes (default 1)")
    parser.add_argument("--threads", type=positive_int, help="CPU threads per worker (default: cores / workers)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on a Dask distributed cluster (e.g. tcp://host:8786) instead of local workers")
    parser.add_argument("--force", action="store_true", help="redo files whose output is already complete")
    return parser


@closed_pipe_ends_quietly
def main(argv=None) -> int:
    parser = build_parser()
    args = start_command(parser, argv)
    if isinstance(args, int):
        return args
    usage = functools.partial(usage_error, parser)
    if args.top is not None and not Path(args.top).is_file():
        return usage(f"--top {args.top}: no such file")
    if args.fallback is not None:
        from ..methods import available_methods

        from ..methods import method_plugins

        if args.fallback != "classical" and (args.fallback not in available_methods()
                                             or method_plugins()[args.fallback].learned):
            return usage(f"--fallback must be classical or a classical method, got {args.fallback!r}")
    if args.scheduler is not None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            return usage("--scheduler needs Dask: pip install 'mdsr_plugin[dask]'")

    from . import PlanError, process_archive
    from .archive import BatchSettings

    settings = BatchSettings(upsample=args.settings, fallback=args.fallback,
                             topology=None if args.top is None else str(Path(args.top).resolve()))
    from ..io.atomic import stop_on_signals

    display = _Display(quiet=args.quiet)
    try:
        with stop_on_signals():  # SIGTERM (timeout, SLURM) and SIGHUP stop the batch as Ctrl-C does
            result = process_archive(
                args.archive, args.output, settings, include=args.include, exclude=args.exclude,
                workers=args.workers, threads=args.threads, scheduler=args.scheduler, force=args.force,
                on_record=display.record, on_plan=display.plan,
            )
    except PlanError as err:
        return usage(str(err))
    except OSError as err:  # the manifest could not be appended mid-run (disk full...)
        print(f"mdsr-batch: error: {' '.join(str(err).split())}; run the same command again "
              "once fixed: finished files are kept", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        display.close()
    if not args.quiet:
        _print_summary(result, Path(args.output))
    else:  # quiet: only what went wrong, a line each, where scripts look for errors
        for record in result.failed:
            print(f"mdsr-batch: failed: {record['file']}: {record['error']}", file=sys.stderr)
    if result.interrupted:
        print(f"mdsr-batch: interrupted ({result.stopped_by}); finished files are kept, run the same command "
              "again to finish", file=sys.stderr)
        return result.exit_code or EXIT_INTERRUPTED
    return EXIT_FAILURE if result.failed else EXIT_OK


class _Display:
    """One progress bar over files (with frames so far), drawn by the scheduling process only."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bar = None
        self.frames = 0
        self.failures = 0

    def plan(self, jobs, n_skipped):
        if self.quiet:
            return
        from tqdm.auto import tqdm

        if n_skipped:
            print(f"{n_skipped} file(s) already done; {len(jobs)} to process", file=sys.stderr)
        self.bar = tqdm(total=len(jobs), unit="file", desc="mdsr-batch", disable=None, dynamic_ncols=True)

    def record(self, entry):
        self.frames += entry.get("frames_out") or 0
        self.failures += entry["status"] == "failed"
        if self.bar is not None:
            self.bar.set_postfix(fine_frames=self.frames, failed=self.failures, refresh=False)
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _print_summary(result, out_dir: Path) -> None:
    done, failed = result.done, result.failed
    frames_in = sum(r.get("frames_in") or 0 for r in done)
    frames_out = sum(r.get("frames_out") or 0 for r in done)
    seconds = sum(r.get("seconds") or 0 for r in result.records)
    rows = [
        ("done", len(done), f"{frames_in} -> {frames_out} frames"),
        ("already done", len(result.skipped), "skipped"),
        ("failed", len(failed), "see below" if failed else ""),
        ("no MD run", len(result.no_md_run), "single points, relaxations: see below" if result.no_md_run else ""),
        ("not started", result.planned - len(result.skipped) - len(result.records) - len(result.known_no_md_run), ""),
    ]
    print(f"{'status':<14}{'files':>7}  detail")
    for status, count, detail in rows:
        print(f"{status:<14}{count:>7}  {detail}")
    print(f"worker time {seconds:.1f} s; manifest: {out_dir / 'mdsr-manifest.jsonl'}")
    if failed:
        width = max(len(r["file"]) for r in failed)
        print("\nfailed files:")
        for r in failed:
            print(f"  {r['file']:<{width}}  {r['error']}")
    if result.no_md_run:
        width = max(len(r["file"]) for r in result.no_md_run)
        print("\nfiles of no MD run (not upsampled; --exclude them to keep them out of the manifest):")
        for r in result.no_md_run:
            print(f"  {r['file']:<{width}}  {r['error']}")
    fallbacks = [r for r in done if r.get("fallback")]
    if fallbacks:
        print(f"\n{len(fallbacks)} file(s) used the fallback method (no fitting checkpoint):")
        for r in fallbacks:
            print(f"  {r['file']}  ({r['method']})")


if __name__ == "__main__":
    sys.exit(main())
