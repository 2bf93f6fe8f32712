"""``mdsr-train`` and ``mdsr-models``: train learned integrators and inspect the registry."""

from __future__ import annotations

import json
import logging
import sys

from . import card as schema
from ..console import closed_pipe_ends_quietly, one_line_warnings
from ..cli import (EXIT_FAILURE, EXIT_OK, OneLineParser, integer_at_least, at_least_two, check_device, positive_float,
                   usage_error)

__all__ = ["train_main", "models_main"]

#: ``--seed``, ``--force-epochs``, ``--rollout-epochs``: zero or more.
non_negative_int = integer_at_least(0)


@closed_pipe_ends_quietly
def train_main(argv=None) -> int:
    from .models import ARCHITECTURES
    from .train import TrainingSettings

    defaults = TrainingSettings()
    archs = [f"bi{a}" for a in ARCHITECTURES] + [f"uni{a}" for a in ARCHITECTURES]
    parser = OneLineParser(
        prog="mdsr-train",
        description="Train a bi-directional learned integrator on fine-resolution trajectories of one molecule, "
        "or (--from-coarse) on the coarse trajectory itself: its stored forces and gap consistency.",
        epilog="Interrupt at any time; the same command resumes from OUTPUT.train.pt. "
        "Example: mdsr-train --from-coarse aimd_20fs.xyz -o mine/ethanol-pbe --max-minutes 10",
    )
    parser.add_argument("trajectories", nargs="+", help="fine reference trajectories (any supported format), "
                        "or coarse ones with --from-coarse")
    parser.add_argument("-o", "--output", required=True, help="checkpoint stem: writes OUTPUT.safetensors and OUTPUT.json")
    parser.add_argument("--from-coarse", action="store_true",
                        help="learn from coarse frames with velocities (and forces when stored): no fine "
                        "reference needed; the factor is the coarse step / --fine-dt")
    parser.add_argument("--warm-start", default="auto",
                        help="with --from-coarse: auto (the registry's checkpoint of the molecule, if any), "
                        "a checkpoint id or path, or none")
    parser.add_argument("--max-minutes", type=positive_float,
                        help="with --from-coarse: stop (resumably) after this long")
    parser.add_argument("--prior", choices=("auto", "gfn1-xtb", "gfn2-xtb", "none"), default="auto",
                        help="with --from-coarse and no checkpoint to warm-start from: first learn a starting model "
                        "from a run of the molecule on this cheap Hamiltonian (tblite), started from the first "
                        "coarse frame at its temperature (default auto: on gfn2-xtb when the frames carry no "
                        "forces and tblite is installed); a periodic box without forces gets this Hamiltonian's "
                        "forces at its coarse frames (auto: when it has no velocities either)")
    parser.add_argument("--factor", type=at_least_two, help="fine steps per coarse step the model serves")
    parser.add_argument("--arch", default="bilstm", choices=archs, help="architecture (default bilstm)")
    parser.add_argument("--fine-dt", type=positive_float, default=defaults.fine_dt,
                        help="output step in fs (default 1)")
    parser.add_argument("--dt", type=positive_float, help="time step of the input files in fs, if they record none")
    parser.add_argument("--top", help="topology for formats without atoms")
    parser.add_argument("--force-epochs", type=non_negative_int, default=defaults.force_epochs,
                        help=f"epochs of force matching (needs stored forces; default {defaults.force_epochs}, "
                        "0 skips it)")
    parser.add_argument("--rollout-epochs", type=non_negative_int, default=defaults.rollout_epochs,
                        help=f"epochs of learning whole rollouts across gaps (default {defaults.rollout_epochs})")
    parser.add_argument("--max-hours", type=positive_float, help="stop (resumably) after this long")
    parser.add_argument("--seed", type=non_negative_int, default=defaults.seed,
                        help=f"seed of the initial weights and the batches (default {defaults.seed})")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    parser.add_argument("--molecule", default="", help="name recorded in the model card")
    parser.add_argument("--factors", type=at_least_two, nargs="*",
                        help="factors recorded as served (default: --factor)")
    parser.add_argument("--provenance", help="JSON file describing how the data were made")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or per-epoch lines")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    device_error = check_device(args.device)
    if device_error:
        return usage_error(parser, device_error)
    if not args.from_coarse and args.factor is None:
        return usage_error(parser, "--factor is required (or --from-coarse)")
    provenance = {}
    from .checkpoint import CheckpointError
    from .train import check_output_stem

    try:
        check_output_stem(args.output)  # before any data are read or an epoch is run
    except (OSError, CheckpointError) as err:
        print(f"mdsr-train: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        if args.provenance:
            with open(args.provenance, encoding="utf-8") as handle:
                provenance = json.load(handle)
    except OSError as err:
        print(f"mdsr-train: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_FAILURE
    except ValueError as err:
        print(f"mdsr-train: error: {args.provenance}: not valid JSON ({err})", file=sys.stderr)
        return EXIT_FAILURE
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="mdsr-train: %(message)s")
    one_line_warnings("mdsr-train")
    reader_options = {k: v for k, v in {"dt": args.dt, "topology": args.top}.items() if v}
    if args.from_coarse:
        from .adapt import AdaptSettings, adapt

        adapt_settings = AdaptSettings(fine_dt=args.fine_dt, seed=args.seed, device=args.device,
                                       warm_start=None if args.warm_start == "none" else args.warm_start,
                                       max_minutes=args.max_minutes, prior=args.prior)
        return _run_training(lambda: adapt(args.trajectories, args.output, adapt_settings, progress=not args.quiet,
                                           reader_options=reader_options))
    settings = TrainingSettings(
        factor=args.factor, arch=args.arch.removeprefix("bi").removeprefix("uni"),
        bidirectional=args.arch.startswith("bi"), fine_dt=args.fine_dt, seed=args.seed,
        force_epochs=args.force_epochs, rollout_epochs=args.rollout_epochs, max_hours=args.max_hours,
        device=args.device,
        extra={"molecule": args.molecule, "factors": args.factors or [args.factor],
               "provenance": provenance},
    )
    from .train import train

    return _run_training(lambda: train(args.trajectories, args.output, settings, progress=not args.quiet,
                                       reader_options=reader_options))


def _one_line(err: Exception) -> str:
    """``FILE: reason`` for an error from the system, the message itself for ours."""
    return f"{err.filename}: {err.strerror}" if getattr(err, "filename", None) and err.strerror else str(err)


def _run_training(run) -> int:
    """Run a training call; one-line errors, exit codes 0, 1, 130."""
    try:
        card = run()
    except (ValueError, OSError) as err:
        print(f"mdsr-train: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("mdsr-train: interrupted; run the same command to resume", file=sys.stderr)
        return 130
    print(f"wrote {card}")
    return 0


HELD_OUT_METHODS = ("neural", "linear", "spline", "hermite", "quintic")
#: the held-out references of bench/generate_reference_data.sh, by the thermostat in their file name
HELD_OUT_DATA = {"nose-hoover": "Nosé–Hoover", "langevin-weak": "Langevin 2/ps", "langevin": "Langevin 10/ps"}


def _data_label(file: str) -> str:
    """'ethanol_400K_langevin-weak_s99' → 'Langevin 2/ps'; other names as they are."""
    parts = file.split("_")
    return HELD_OUT_DATA.get(parts[2], file) if len(parts) == 4 else file


def _own_validation(validation: dict) -> str:
    """What a card learned from the user's data says of the data it held out, in one line."""
    gaps = validation.get("held_out_gaps")
    if gaps:  # --from-coarse, --adapt: coarse gaps of the input the learning never saw
        force = gaps.get("force_relative_mae")
        return (f"the input's held-out coarse gaps: gap-end position MAE {gaps['gap_end_position_mae']:.2e} Å"
                + ("" if force is None else f", forces {force:.0%} off the stored ones"))
    neural = validation.get("neural", {}).get("position_mae")
    if neural is not None:  # mdsr-train: the last part of its training trajectories
        baseline = validation.get("hermite", {}).get("position_mae")
        return (f"the end of its training data: position MAE {neural:.2e} Å"
                + ("" if baseline is None else f", cubic Hermite {baseline:.2e} Å ({baseline / neural:.1f}x)"))
    return "not measured (bench/neural_accuracy.py --publish records it)"


def describe_card(card: dict, path) -> str:
    """A model card as a person reads it: what the checkpoint serves, what it was trained
    on, and its held-out position MAE against the classical methods (``--json`` has the rest)."""
    from ase import Atoms

    config, training = card[schema.CONFIG], card.get(schema.TRAINING, {})
    provenance = training.get(schema.PROVENANCE, {})
    arch = ("bidirectional " if config[schema.BIDIRECTIONAL] else "uni-directional ") + config[schema.ARCH].upper()
    size = ", ".join(f"{key} {config[key]}" for key in ("width", "depth", "hidden") if config.get(key))
    described = {schema.MODE_VELOCITIES: "positions with velocities", schema.MODE_POSITIONS: "positions only"}
    inputs = " or ".join(described[m] for m in card.get(schema.INPUT_MODES, schema.DEFAULT_INPUT_MODES))
    numbers, factors = card.get(schema.NUMBERS, config.get(schema.NUMBERS, [])), card[schema.FACTORS]
    lines = [
        f"{card[schema.ID]}  ({path})",
        f"molecule      {card.get(schema.MOLECULE) or '?'}: {Atoms(numbers=numbers).get_chemical_formula()}, "
        f"{len(numbers)} atoms, {len(card.get(schema.BONDS, []))} bonds "
        "(atoms are matched by this graph, in any order)",
        f"architecture  {arch} ({size})",
        f"serves        factors {', '.join(map(str, factors))} at a {card[schema.FINE_DT_FS]:g} fs output step; "
        f"input: {inputs}",
    ]
    if not provenance and training.get(schema.FILES):  # mdsr-train's and --from-coarse's own cards
        how = ""
        if training.get("from_coarse"):
            how = " (its own coarse frames" + (f"; started from {training['warm_start']}" if training.get(
                "warm_start") else "") + (", velocities fitted" if training.get("velocities_fitted") else "") + ")"
        lines.append(f"trained on    {len(training[schema.FILES])} file(s): {', '.join(training[schema.FILES])}{how}"
                     + ("" if training.get(schema.COMPLETE, True) else " (training incomplete)"))
    if provenance:
        lines.append(
            f"trained on    {len(training.get(schema.FILES, []))} files, {provenance.get(schema.POTENTIAL, '?')}, "
            f"{', '.join(map(str, provenance.get(schema.TEMPERATURES_K, [])))} K, "
            f"{' and '.join(provenance.get(schema.THERMOSTATS, []))}, "
            f"seeds {', '.join(map(str, provenance.get(schema.SEEDS, [])))}"
            + ("" if training.get(schema.COMPLETE, True) else " (training incomplete)"))
    rows = schema.held_out_rows(card)
    if not rows:
        lines.append("held out      " + _own_validation(card.get(schema.VALIDATION, {})))
        return "\n".join(lines)
    held_out = provenance.get(schema.HELD_OUT, {})
    lines += [
        f"held out      {held_out.get(schema.TEMPERATURE_K, '?')} K, seed {held_out.get(schema.SEED, '?')}: "
        "position MAE (Å); baseline = cubic Hermite with velocities, cubic spline without",
        "",
        f"{'data':16s} {'input':10s} {'factor':>6s} " + " ".join(f"{m:>9s}" for m in HELD_OUT_METHODS)
        + "  baseline/neural",
    ]
    order = list(HELD_OUT_DATA.values())
    grouped = schema.held_out_position_mae(rows)
    # Nosé–Hoover first, then weak and strong Langevin (stable sort keeps the rest in order)
    for (file, mode, factor), mae in sorted(grouped.items(), key=lambda item: order.index(_data_label(item[0][0]))
                                              if _data_label(item[0][0]) in order else len(order)):
        baseline = mae.get(schema.baseline_method(mode))
        ratio = f"{baseline / mae[schema.NEURAL]:.1f}x" if baseline and mae.get(schema.NEURAL) else "-"
        lines.append(f"{_data_label(file):16s} {mode:10s} {factor:6d} "
                     + " ".join(f"{mae[m]:9.2e}" if m in mae else f"{'-':>9s}" for m in HELD_OUT_METHODS)
                     + f"  {ratio:>8s}")
    return "\n".join(lines)


@closed_pipe_ends_quietly
def models_main(argv=None) -> int:
    parser = OneLineParser(prog="mdsr-models", description="List and describe pretrained checkpoints.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="one line per registered checkpoint")
    show = sub.add_parser("show", help="a checkpoint's model card: what it serves, its data, its held-out accuracy")
    show.add_argument("id", help="checkpoint id or path")
    show.add_argument("--json", action="store_true", help="print the whole card as JSON instead")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    # a registry folder or entry that cannot be used is one warning line, then skipped
    logging.basicConfig(level=logging.WARNING, format="mdsr-models: %(message)s")
    one_line_warnings("mdsr-models")
    from .checkpoint import CheckpointError, verify_checkpoint
    from .registry import get_model_entry, list_models, registry_dirs

    try:
        if args.command == "list":
            entries = list_models()
            if not entries:
                print("no checkpoints registered; searched: " + ", ".join(map(str, registry_dirs())))
            for entry in entries:
                card = entry.card
                config = card[schema.CONFIG]
                arch = ("bi" if config[schema.BIDIRECTIONAL] else "uni") + config[schema.ARCH]
                mae = card.get(schema.VALIDATION, {}).get(schema.POSITION_MAE)
                mae_text = f"val MAE {mae:.2e} Å" if mae is not None else ""
                print(f"{entry.id:32s} {card.get(schema.MOLECULE, ''):16s} {arch:8s} "
                      f"factors {','.join(map(str, card[schema.FACTORS])):8s} fine {card[schema.FINE_DT_FS]:g} fs  "
                      f"inputs {'+'.join(card.get(schema.INPUT_MODES, []))}  {mae_text}")
        else:
            entry = get_model_entry(args.id)
            # what would be refused when used is refused here: hashes, weights file, its format
            verify_checkpoint(entry.card_path, expected_card_sha256=entry.card_sha256)
            if args.json:
                print(json.dumps({"path": str(entry.card_path), **entry.card}, indent=1))
            else:
                print(describe_card(entry.card, entry.card_path))
    except CheckpointError as err:
        print(f"mdsr-models: error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK
