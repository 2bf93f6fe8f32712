"""``mdsr-eval``: score reconstructions against a fine reference; JSON, plots, HTML.

    mdsr-eval REFERENCE --factor N -o REPORT_DIR [--methods ml,hermite,quintic,spline,linear]
    mdsr-eval --reference FINE --candidate UPSAMPLED --factor N -o REPORT_DIR

Exit codes: 0 report written, 1 bad input, 2 usage error.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import warnings
from pathlib import Path

from ..cli import (EXIT_FAILURE, EXIT_OK, OneLineParser, at_least_two, check_device, positive_float, positive_int,
                   usage_error)
from ..console import closed_pipe_ends_quietly, one_line_warnings

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="mdsr-eval",
        description="Make the coarse trajectory from a fine reference, reconstruct it with each method and "
        "compare (or score an existing upsampled file with --candidate). Writes metrics.json, PNG plots "
        "and a self-contained report.html.",
        epilog="Example: mdsr-eval md_1fs.xyz --factor 20 -o report/",
    )
    parser.add_argument("positional_reference", nargs="?", metavar="REFERENCE", help="fine reference trajectory")
    parser.add_argument("--reference", help="fine reference trajectory (alternative to the positional argument)")
    parser.add_argument("--candidate", help="an upsampled trajectory to score instead of reconstructing")
    parser.add_argument("--factor", type=at_least_two, required=True, help="fine frames per coarse step")
    parser.add_argument("-o", "--output", required=True, metavar="REPORT_DIR", help="folder for the report")
    parser.add_argument("--methods", default="ml,hermite,quintic,quintic-spline,spline,linear",
                        help="comma-separated methods to compare (ml = the neural method); "
                             "default: all, skipping those the data cannot support")
    parser.add_argument("--positions-only", action="store_true",
                        help="give the methods positions only (as from an XYZ or DCD archive)")
    parser.add_argument("--dt", type=positive_float, help="reference time step in fs (overrides the file's)")
    parser.add_argument("--stride", type=positive_int, default=1,
                        help="use every STRIDE-th reference frame, e.g. 2 for a 0.5 fs reference and "
                             "a model that outputs 1 fs frames")
    parser.add_argument("--top", help="topology file for formats without atoms (DCD, TRR, NetCDF...)")
    parser.add_argument("--format", dest="input_format", help="reference format name")
    parser.add_argument("--candidate-format", help="candidate format name")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (neural method)")
    parser.add_argument("--model", help="checkpoint id or card path for the neural method (default: the "
                                        "registry's best fit)")
    parser.add_argument("--precision", choices=("float32", "float64"), default="float32",
                        help="precision the neural method runs in")
    parser.add_argument("-q", "--quiet", action="store_true", help="no table on the terminal")
    return parser


@closed_pipe_ends_quietly
def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="MDAnalysis")
    one_line_warnings(parser.prog)
    usage = functools.partial(usage_error, parser)

    reference = args.reference or args.positional_reference
    if reference is None or (args.reference and args.positional_reference):
        return usage("give the reference once: REFERENCE or --reference FILE")
    from ..methods import available_methods

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in ("ml", *available_methods())]
    if unknown or not methods:
        return usage(f"unknown method(s) {unknown}; choose from ml, {', '.join(available_methods())}")
    device_error = check_device(args.device)
    if device_error:
        return usage(device_error)

    from ..io import FormatError
    from ..methods import MethodError
    from ..neural.checkpoint import CheckpointError
    from ..settings import UpsampleSettings
    from ..trajectory import TrajectoryError
    from . import evaluate
    from .report import format_table, write_report

    problem = _unwritable(Path(args.output))
    if problem:  # before the evaluation, which can take minutes
        print(f"mdsr-eval: error: {problem}", file=sys.stderr)
        return EXIT_FAILURE
    options = {k: v for k, v in (("dt", args.dt), ("topology", args.top), ("format", args.input_format))
               if v is not None}
    candidate_options = {k: v for k, v in (("topology", args.top), ("format", args.candidate_format))
                         if v is not None}
    explicit = args.methods != parser.get_default("methods")
    from ..io.atomic import Interrupted, published_while_stopping, stop_on_signals
    from ..threads import limit_requested

    try:
        with stop_on_signals(), limit_requested():  # fewer PyTorch threads if other processes hold cores
            evaluation = evaluate(
                reference, args.factor, methods, candidate=args.candidate, positions_only=args.positions_only,
                strict=explicit, reader_options=options, candidate_options=candidate_options,
                stride=args.stride, settings=UpsampleSettings(factor=args.factor, device=args.device,
                                                              model=args.model, precision=args.precision),
            )
            if not evaluation.metrics:
                raise MethodError("no method could be evaluated: " + "; ".join(
                    f"{k}: {v}" for k, v in evaluation.skipped.items()))
            paths = write_report(evaluation, args.output)
    except (FormatError, TrajectoryError, MethodError, CheckpointError, OSError) as err:
        print(f"mdsr-eval: error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM/SIGHUP (Interrupted): the report is all or nothing
        what = err.args[0] if isinstance(err, Interrupted) else "Ctrl-C"
        # a signal during the renames acts once the report is published
        written = "the report was written" if published_while_stopping() else "no report written"
        print(f"mdsr-eval: interrupted ({what}); {written}", file=sys.stderr)
        return getattr(err, "exit_code", 128 + 2)
    if not args.quiet:
        print(format_table(evaluation))
        print(f"report: {paths['html']}")
    return EXIT_OK


def _unwritable(folder: Path) -> str | None:
    """Why the report cannot go to ``folder`` (made by the report if missing), or None."""
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        return f"{existing}: is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing}: cannot be written to"
    return None


if __name__ == "__main__":
    sys.exit(main())
