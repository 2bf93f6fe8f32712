"""``mdsr-upsample``: the command line over :func:`mdsr_plugin.pipeline.upsample_file`.

Every argument is validated before any file is opened; errors are one line on
stderr.  Exit codes: 0 success, 2 usage error, 1 bad input or failure.
"""

from __future__ import annotations

import argparse
import functools
import math
import logging
import sys
import warnings
from pathlib import Path

from .console import closed_pipe_ends_quietly, one_line_warnings

__all__ = ["main", "build_parser"]

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def integer_at_least(minimum: int):
    def parse(text):
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text}")
        return value

    parse.__name__ = f"integer >= {minimum}"  # what argparse names in "invalid ... value"
    return parse


#: ``--factor``, ``--chunk-size``: two or more.
at_least_two = integer_at_least(2)
#: ``--stride``, ``--workers``, counts: one or more.
positive_int = integer_at_least(1)


def positive_float(text):
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be > 0 and finite, got {text}")
    return value


positive_float.__name__ = "number > 0"  # argparse's "invalid <name> value: 'x'"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="mdsr-upsample",
        description="Reconstruct the missing frames (positions and velocities) of a coarse MD trajectory.",
        epilog="Example: mdsr-upsample coarse.xyz --factor 20 -o fine.xyz",
    )
    parser.add_argument("input", help="coarse trajectory (format from the extension)")
    parser.add_argument("-o", "--output", required=True, help="fine trajectory to write (format from the extension)")
    add_upsample_options(parser)
    parser.add_argument("--velocities", help="a file of the input's velocities: CP2K PROJECT-vel-1.xyz, i-PI "
                        "PREFIX.vel_0.xyz, or a NAMD velocity DCD beside a DCD (CP2K's and i-PI's are found "
                        "beside the positions file without this)")
    parser.add_argument("--forces", help="a file of the input's forces: CP2K PROJECT-frc-1.xyz, i-PI PREFIX.for_0.xyz")
    parser.add_argument("--cell", help="a file of the input's cell per frame: CP2K PROJECT-1.cell (NPT runs)")
    parser.add_argument(
        "--adapt", nargs="?", const="", metavar="STEM",
        help="first learn a model from the input's own coarse frames (stored forces and gap consistency; "
        "without stored velocities they are fitted through the model; without forces or a checkpoint of "
        "the molecule a GFN2-xTB prior is learned first), then let auto measure it against the others; the checkpoint is written to "
        "STEM.safetensors/.json (default: beside the output, OUTPUT.adapted) and reused when run again")
    parser.add_argument("--adapt-minutes", type=positive_float,
                        help="time budget of that learning (default 10; run again to continue)")
    parser.add_argument("--adapt-prior", choices=("gfn1-xtb", "gfn2-xtb", "none"),
                        help="with --adapt, for a molecule with no registry checkpoint: first learn a starting "
                        "model from a run of it on this cheap Hamiltonian (tblite; a few minutes), then from "
                        "the input; the most useful on a short DFT archive.  Default: gfn2-xtb when the input "
                        "stores no forces (without them fast vibrations are aliased) and tblite is installed.  "
                        "A periodic box with neither velocities nor forces (XDATCAR) gets this Hamiltonian's "
                        "forces at its own coarse frames instead (default gfn2-xtb where tblite is installed)")
    return parser


def add_upsample_options(parser: argparse.ArgumentParser) -> None:
    """The options shared by ``mdsr-upsample`` and ``mdsr-batch``."""
    from .methods import available_methods

    methods = ", ".join(["auto", "classical", *available_methods()])
    parser.add_argument("--factor", type=at_least_two, required=True, help="fine frames per coarse step, e.g. 20")
    parser.add_argument(
        "--method", default="auto",
        help=f"one of {methods} (default auto: the best the input supports; "
        "classical: the best classical one)",
    )
    parser.add_argument("--no-self-validation", dest="self_validate", action="store_false",
                        help="auto/classical choose by what the input carries and the checkpoints' cards, "
                        "without first measuring the candidates on held-back coarse frames of the input")
    parser.add_argument("--model", help="checkpoint id (see mdsr-models list) or path; implies --method neural")
    parser.add_argument("--dt", type=positive_float, help="coarse time step in fs (overrides the file's)")
    parser.add_argument("--top", help="topology file for formats without atoms (DCD, TRR, NetCDF...)")
    parser.add_argument("--format", dest="input_format", help="input format name, if the extension is ambiguous")
    parser.add_argument("--lammps-units", choices=("real", "metal", "si", "cgs"),
                        help="the LAMMPS run's `units` style, for a LAMMPS dump or LAMMPS H5MD (neither records it; "
                        "else read from a log.lammps or input beside the dump)")
    parser.add_argument("--type-map", metavar="TYPE:ELEMENT,...",
                        help="LAMMPS atom types to elements, e.g. 1:O,2:H (or give the run's data file as --top)")
    parser.add_argument("--output-format", help="output format name, if the extension is ambiguous")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (used by neural methods)")
    parser.add_argument("--precision", choices=("float32", "float64"), default="float32",
                        help="arithmetic of the neural method (default float32: about twice as fast, "
                        "differences ~1e-6 Å)")
    parser.add_argument("--chunk-size", type=at_least_two, default=2000, help="coarse frames per read (memory bound)")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log what is being done")


def settings_from_args(args):
    """The :class:`~mdsr_plugin.settings.UpsampleSettings` of the shared options (not yet checked)."""
    from .settings import UpsampleSettings

    return UpsampleSettings(
        factor=args.factor, method=args.method, model=args.model, device=args.device, precision=args.precision,
        dt=args.dt, input_format=args.input_format,
        output_format=args.output_format and args.output_format.lower(), chunk_size=args.chunk_size,
        self_validate=args.self_validate, lammps_units=args.lammps_units, type_map=args.type_map,
        **_adapt_settings(args),
    )


def _adapt_settings(args) -> dict:
    """``adapt``/``adapt_minutes``/``adapt_prior`` from ``--adapt [STEM]`` (mdsr-upsample only)."""
    from .settings import SettingsError

    stem = getattr(args, "adapt", None)
    if stem is None:
        for option in ("adapt_prior", "adapt_minutes"):  # they would be ignored without a word
            if getattr(args, option, None) is not None:
                raise SettingsError(f"--{option.replace('_', '-')} goes with --adapt")
        return {}
    if stem == "":  # beside the output: fine.xyz -> fine.adapted.{safetensors,json}
        output = Path(args.output)
        stem = str(output.with_name(output.stem + ".adapted"))
    minutes = {} if args.adapt_minutes is None else {"adapt_minutes": args.adapt_minutes}  # else the settings' 10
    return {"adapt": stem, **minutes, "adapt_prior": args.adapt_prior}


def check_upsample_options(args) -> str | None:
    """A usage-error message for the shared options, or None if they are valid."""
    from .io import formats
    from .methods import checked_settings

    # method, model, factor, precision, adapt... are the settings' own checks (one place);
    # here only what the settings do not hold: format names and the device
    for option, name in (("--format", args.input_format), ("--output-format", args.output_format)):
        if name is not None and name.lower() not in formats():
            return f"{option}: unknown format {name!r}; known: {', '.join(sorted(formats()))}"
    if args.output_format is not None and formats()[args.output_format.lower()].open_writer is None:
        return f"--output-format: mdsr_plugin cannot write {args.output_format} files"
    problem = check_device(args.device)
    if problem:
        return problem
    from .settings import SettingsError

    try:
        args.settings = checked_settings(settings_from_args(args))
    except SettingsError as err:
        return str(err)
    if args.settings.model is not None:
        # a mistyped id is an option's error: say so before any input is read (a checkpoint
        # that is there but altered is bad input, refused when it is loaded)
        from .neural.card import CheckpointError, UnknownCheckpoint
        from .neural.registry import get_model_entry

        try:
            get_model_entry(args.settings.model)
        except UnknownCheckpoint as err:
            return f"--model: {err}"
        except CheckpointError:
            pass
    return None


def check_device(device: str) -> str | None:
    """An error message if ``device`` cannot be used, else None."""
    if device == "cpu":
        return None
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return f"--device {device}: CUDA is not available on this machine"
        return None
    return f"--device must be cpu or cuda[:N], got {device!r}"


def start_command(parser: argparse.ArgumentParser, argv):
    """Parse ``argv``, check the shared upsampling options and set up logging.

    Returns the arguments, or an exit code when the command ends here (``--help``,
    a malformed or invalid option, reported on stderr).
    """
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    problem = check_upsample_options(args)
    if problem:
        return usage_error(parser, problem)
    # A deprecation notice about MDAnalysis' own DCD internals says nothing to the user.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="MDAnalysis")
    one_line_warnings(parser.prog)  # as its errors are: not Python's source file and line
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format=f"{parser.prog}: %(message)s")
    return args


def usage_error(parser: argparse.ArgumentParser, message: str) -> int:
    """Print ``message`` as one line on stderr; return the usage exit code.

    The usage block is left to ``--help``: a refusal is one line a script can grep.
    """
    print(f"{parser.prog}: error: {message} (see {parser.prog} --help)", file=sys.stderr)
    return EXIT_USAGE


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage block), exit code 2."""

    def error(self, message):
        usage_error(self, message)
        raise SystemExit(EXIT_USAGE)


@closed_pipe_ends_quietly
def main(argv=None) -> int:
    parser = build_parser()
    args = start_command(parser, argv)
    if isinstance(args, int):
        return args

    from .io import FormatError, get_format, input_paths, output_paths, refuse_overwrite
    from .io.atomic import Interrupted, published_while_stopping, remove_open_temporaries, stop_on_signals
    from .methods import MethodError

    usage = functools.partial(usage_error, parser)
    try:
        log_format_choice(args.input, args.input_format)
        get_format(args.output, args.output_format, writing=True)
        # One rule for every file the run writes (the output, its companions, a learned
        # checkpoint) against every file it reads.
        writes = [*output_paths(args.output, args.output_format), *adapt_paths(args.settings)]
        refuse_overwrite(input_paths(args.input, args.input_format, args.top, args.velocities, args.forces, args.cell),
                         writes)
    except FormatError as err:
        return usage(str(err))
    except OSError as err:  # a name the system refuses (too long, a loop of links)
        return usage(f"{err.filename}: {err.strerror}" if err.filename else _one_line(err))

    from .neural.checkpoint import CheckpointError
    from .pipeline import upsample_file
    from .threads import limit_requested
    from .trajectory import TrajectoryError

    try:
        with stop_on_signals(), limit_requested():  # fewer PyTorch threads if other processes hold cores
            summary = upsample_file(args.input, args.output, settings=args.settings, topology=args.top,
                                    velocities=args.velocities, forces=args.forces, cell=args.cell,
                                    progress=not args.quiet)
    except (FormatError, TrajectoryError, MethodError, CheckpointError, OSError) as err:
        print(f"mdsr-upsample: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM from timeout/SLURM (Interrupted)
        remove_open_temporaries()
        kept = "; the learning's state is saved, run again to continue" if args.settings.adapt else ""
        what = f"stopped by {err.args[0]}" if isinstance(err, Interrupted) else "interrupted"
        written = published_while_stopping()  # the signal came just after they were published
        said = f"after writing {', '.join(map(str, written))}" if written else "no output written"
        print(f"mdsr-upsample: {what}; {said}{kept}", file=sys.stderr)
        return err.exit_code if isinstance(err, Interrupted) else 128 + 2
    if not args.quiet:
        print(f"read {summary['frames_in']} frames: {'; '.join(summary['read'])}", file=sys.stderr)
        outputs = ", ".join(summary["outputs"])
        model = f" {summary['model']}" if summary["model"] else ""
        print(
            f"{summary['frames_in']} coarse frames -> {summary['frames_out']} fine frames "
            f"({summary['method']}{model}, factor {args.factor}) in {summary['seconds']:.2f} s: {outputs}"
        )
        if summary.get("adapted"):
            a = summary["adapted"]
            start = "from scratch"
            if a.get("prior_forces"):
                start = f"from scratch, on {a['prior']} forces at its coarse frames"
            elif a.get("prior"):
                start = f"from a run of the molecule on {a['prior']}"
            elif a["warm_start"]:
                start = f"from {a['warm_start']}"
            print(f"learned from the input in {a['minutes']:.1f} min: {a['checkpoint']} "
                  f"({start}; held-out gap error "
                  f"{a['held_out_gap_position_mae']:.1e} Å{'' if a['complete'] else '; time budget reached, run again to continue'})")
        if summary.get("estimate"):
            print(f"chosen by measuring on the input: {summary['estimate']}")
        check = summary.get("force_check")
        if check and not check["mismatch"]:  # a mismatch was already a warning
            print(f"checkpoint forces against the input's stored forces: {check['relative']:.1%} off "
                  f"(MAE {check['force_mae']:.2g} eV/Å over {check['frames']} frames; "
                  f"{check['own_relative']:.1%} on held-out data of its own Hamiltonian)")
        if summary["disagreement"]:
            d = summary["disagreement"]
            print(f"forward/backward disagreement: mean {d['mean']:.2e} Å, max {d['max']:.2e} Å "
                  "(large values mark frames the model is unsure of)")
        if summary.get("velocities_fitted"):
            print("the input has no velocities: they were fitted by shooting through the model "
                  "(input with velocities is faster and more accurate)")
    return EXIT_OK


def log_format_choice(path, input_format: str | None = None) -> None:
    """Say (at INFO, shown by ``-v``) which format ``path`` is read as and why, and which
    files beside it its reader also opens; raises FormatError when no format fits."""
    from .io import choose_format, companion_inputs

    fmt, why = choose_format(path, input_format)
    log.info("%s: read as %s (%s)", Path(path).name, fmt.name, why)
    beside = companion_inputs(path, input_format)
    if beside:
        log.info("%s: also read beside it: %s", Path(path).name,
                 ", ".join(f"{p.name} ({what})" for what, p in beside.items()))


def adapt_paths(settings) -> list[Path]:
    """The files ``--adapt STEM`` writes (the checkpoint and its card, their resumable state,
    a prior's run or forces and its model), for the overwrite rule."""
    if settings is None or settings.adapt is None:
        return []
    stem = Path(settings.adapt)
    learned = (".safetensors", ".json", ".train.pt", ".log.jsonl")  # neural/adapt.py: adapt()
    written = (*learned, ".train-velocities.npz", ".prior.h5md", ".prior.h5md.partial.npz",
               *(".prior" + ext for ext in learned))  # neural/training.py, neural/prior.py
    return [stem.with_name(stem.name + ext) for ext in written]


def _one_line(err: BaseException) -> str:
    """``err`` as one line (a library's message may span several)."""
    return " ".join(str(err).split()) or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
