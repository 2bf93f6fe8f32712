"""``auto`` on frames far apart: what it chooses, what it estimates, how far off it is.

Three real trajectories from MDAnalysisTests, stored at gaps far beyond the period of
any bond vibration: AMBER ``ace_tip3p.nc`` (1 ps), GROMACS ``adk_oplsaa.trr`` (100 ps)
and ``cobrotoxin.trr`` (50 ps, three frames: too few to measure on).  For each, the
script resolves ``auto`` exactly as ``mdsr-upsample`` does (the warning it logs
included), and for every classical method that suits the file it measures

* ``error_2h``: the true position error (mean absolute, per Cartesian component, Å)
  at the held-back middle frames of 2h gaps (every other coarse frame held back; for
  three frames, the middle one) — the closest to the input's own gap that the input
  can check;
* ``outside``: the largest distance (Å) by which a fine position at the input's own
  gap leaves the box spanned by its gap's two coarse positions (unwrapped);

and for ``auto`` the same for what ``mdsr-upsample`` would write (the driver's output,
:func:`mdsr_plugin.pipeline.stream_method`).  The GROMACS files hold TIP4P virtual sites
(massless), which ``mdsr-upsample`` refuses: the frames are read with MDAnalysis and the
virtual sites left out, so that every version of the package sees the same input.
It writes no trajectory.

With ``--reference`` it also scans gaps on finer trajectories (the bundled 20 fs ethanol,
a GFN1-xTB glycine at 1 fs): which classical method is chosen at 20-80 fs gaps, against
every classical method's true error at the frames left out.

    python bench/auto_far_apart.py [--factor 4] [--json bench/results/auto_far_apart.json] [--label after] \
        [--reference mdsr_plugin/data/examples/ethanol_coarse.xyz 1 2,3,4] \
        [--reference glycine_400K_nve_gfn1_s99.h5md 2 20,25,30,40]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from results_file import append_rows  # noqa: E402

from mdsr_plugin.methods import MethodError, get_method, method_plugins  # noqa: E402
from mdsr_plugin.resolve import resolve_method  # noqa: E402
from mdsr_plugin.pipeline import prepare_coarse, stream_method  # noqa: E402
from mdsr_plugin.settings import UpsampleSettings  # noqa: E402
from mdsr_plugin.trajectory import Trajectory, TrajectoryError, concatenate  # noqa: E402


def cases():
    import MDAnalysisTests.datafiles as data

    return {"ace_tip3p.nc (AMBER)": (data.TRJ_NCBOX, data.PRM_NCBOX),
            "adk_oplsaa.trr (GROMACS)": (data.TRR, data.TPR),
            "cobrotoxin.trr (GROMACS, 3 frames)": (data.TRR_xvf, data.TPR_xvf)}


def frames_without_virtual_sites(trajectory, topology) -> Trajectory:
    """The file's frames as MDAnalysis reads them, less massless virtual sites (TIP4P's M,
    which ``mdsr-upsample`` refuses), in Å, fs, Å/fs, eV/Å; elements a placeholder (only
    positions, velocities, forces and masses matter to the classical methods)."""
    import MDAnalysis as mda

    from mdsr_plugin.io.mdanalysis import dimensions_to_cell
    from mdsr_plugin.units import FS_PER_PS, KJMOL_PER_EV

    universe = mda.Universe(topology, trajectory)
    atoms = universe.select_atoms("prop mass > 0.5")
    positions, velocities, forces, cell, times = [], [], [], [], []
    for ts in universe.trajectory:
        positions.append(atoms.positions.astype(float))
        velocities.append(atoms.velocities / FS_PER_PS)
        forces.append(atoms.forces / KJMOL_PER_EV if ts.has_forces else None)
        cell.append(dimensions_to_cell(ts.dimensions))
        times.append(ts.time * FS_PER_PS)
    return Trajectory(numbers=np.where(atoms.masses < 2, 1, 8), masses=atoms.masses, positions=np.array(positions),
                      velocities=np.array(velocities), forces=None if forces[0] is None else np.array(forces),
                      cell=np.array(cell), pbc=True, times=np.array(times))


def outside_envelope(fine: np.ndarray, coarse: np.ndarray, factor: int) -> np.ndarray:
    """Distance (Å) of each fine position strictly inside a gap outside the box of the gap's
    two coarse positions, shape (n_gaps, factor - 1, n_atoms)."""
    n_gaps = len(coarse) - 1
    x = fine[: n_gaps * factor].reshape(n_gaps, factor, *fine.shape[1:])[:, 1:]
    low = np.minimum(coarse[:-1], coarse[1:])[:, None]
    high = np.maximum(coarse[:-1], coarse[1:])[:, None]
    return np.linalg.norm(np.maximum(low - x, 0) + np.maximum(x - high, 0), axis=-1)


def error_at_held_back(method, continuous: Trajectory, factor: int) -> float:
    """Mean absolute position error (Å) at the middle frames of 2h gaps, the others kept
    (``continuous``: unwrapped coarse frames)."""
    kept = continuous[::2]
    n_gaps = kept.n_frames - 1
    fine = method.interpolate(kept, 2 * factor).positions
    truth = continuous.positions[1::2][:n_gaps]
    return float(np.abs(fine[factor::2 * factor][:n_gaps] - truth).mean())


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def measure(name: str, trajectory: str, topology: str, factor: int) -> list[dict]:
    coarse = frames_without_virtual_sites(trajectory, topology)
    continuous = prepare_coarse(coarse).frames

    rows = {}
    for method_name, plugin in method_plugins().items():
        if plugin.learned or not plugin.suits(coarse, factor, UpsampleSettings(factor=factor)).usable:
            continue
        method = get_method(method_name, factor=factor)
        fine = method.interpolate(continuous, factor).positions
        rows[method_name] = {"file": name, "method": method_name,
                             "error_2h": error_at_held_back(method, continuous, factor),
                             "outside": float(outside_envelope(fine, continuous.positions, factor).max())}

    records = _Records()
    logger = logging.getLogger("mdsr_plugin")
    logger.addHandler(records)
    logger.setLevel(logging.WARNING)
    auto = {"file": name, "method": "auto", "frames": coarse.n_frames, "atoms": coarse.n_atoms, "dt_fs": coarse.dt}
    try:
        method, provenance = resolve_method("auto", coarse, factor, UpsampleSettings(factor=factor))
        auto["chosen"] = method.name
        if provenance.self_validation:
            auto["estimate"] = provenance.self_validation["scores"][0]["position_estimate"]
        written = concatenate(list(stream_method([coarse], factor, method)))  # what mdsr-upsample writes
        auto["outside"] = float(outside_envelope(written.positions, continuous.positions, factor).max())
        auto["error_2h"] = rows[method.name]["error_2h"]
    except (MethodError, TrajectoryError) as err:
        auto["chosen"] = "refused: " + str(err)
    finally:
        logger.removeHandler(records)
    auto["warning"] = " | ".join(records.lines) or None
    return [auto, *rows.values()]


def gap_scan(path, strides, step: int = 1, frames: int | None = None) -> list[dict]:
    """``classical`` (what ``auto`` takes without a checkpoint) on every ``stride``-th frame of
    a finer trajectory, against the truth at the frames in between: the choice, its estimate,
    and every classical method's true error (mean absolute, Å, over the frames left out)."""
    from mdsr_plugin.io import read_trajectory
    from mdsr_plugin.selection import select_method

    fine = read_trajectory(path)[::step][:frames]
    rows = []
    for stride in strides:
        coarse = fine[::stride]
        n = (coarse.n_frames - 1) * stride + 1
        between = np.ones(n, dtype=bool)
        between[::stride] = False
        truth = {}
        for method_name in ("linear", "spline", "hermite", "quintic"):
            positions = get_method(method_name).interpolate(coarse, stride).positions
            truth[method_name] = float(np.abs(positions[between] - fine.positions[:n][between]).mean())
        _, selection = select_method(coarse, stride, UpsampleSettings(factor=stride, method="classical"),
                                     learned=False)
        rows.append({"file": Path(path).name, "method": "classical", "dt_fs": coarse.dt, "frames": coarse.n_frames,
                     "chosen": selection.chosen, "estimate": selection.best.position_estimate,
                     "measured": sorted(s.method for s in selection.scores), "true": truth})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--label", default="", help="recorded with each row (e.g. before, after)")
    parser.add_argument("--reference", nargs=3, action="append", default=[], metavar=("H5MD", "STEP", "STRIDES"),
                        help="also scan gaps on a finer trajectory: every STEP-th frame is the truth, "
                             "every STRIDE-th of those the coarse input (STRIDES comma-separated); repeatable")
    args = parser.parse_args(argv)
    all_rows = []
    for name, (trajectory, topology) in cases().items():
        rows = measure(name, trajectory, topology, args.factor)
        auto, methods = rows[0], rows[1:]
        print(f"{name}: {auto['frames']} frames of {auto['atoms']} atoms {auto['dt_fs']:g} fs apart; "
              f"auto -> {auto['chosen']}"
              + (f", estimate {auto['estimate']:.2g} Å" if "estimate" in auto else ", no estimate")
              + (f", error at held-back 2h gaps {auto['error_2h']:.2g} Å" if "error_2h" in auto else "")
              + (f", {auto['outside']:.3g} Å outside the envelope" if "outside" in auto else ""))
        if auto["warning"]:
            print(f"  warning: {auto['warning']}")
        for row in methods:
            print(f"  {row['method']:8s} error at held-back 2h gaps {row['error_2h']:8.3g} Å, "
                  f"outside {row['outside']:8.3g} Å")
        all_rows += [{**row, "factor": args.factor, "label": args.label} for row in rows]
    for path, step, strides in args.reference:
        rows = gap_scan(path, [int(k) for k in strides.split(",")], step=int(step))
        for row in rows:
            truth = row["true"]
            print(f"{row['file']} at {row['dt_fs']:g} fs: classical -> {row['chosen']} (estimate "
                  f"{row['estimate']:.2g} Å, measured {'/'.join(row['measured'])}); true error "
                  + ", ".join(f"{m} {e:.3g}" for m, e in truth.items())
                  + f"; chosen/best {truth[row['chosen']] / min(truth.values()):.2f}")
        all_rows += [{**row, "label": args.label} for row in rows]
    if args.json:
        append_rows(args.json, all_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
