"""``auto`` on frames too far apart to reconstruct vibrations (issue #27, item 7).

Real trajectories from MDAnalysisTests, stored far beyond the period of any bond
vibration: AMBER ``ace_tip3p.nc`` (1 ps, 10 frames), GROMACS ``adk_oplsaa.trr``
(100 ps, 10 frames) and ``cobrotoxin.trr`` (50 ps, 3 frames: too few to measure on).
On them quintic and cubic Hermite extrapolate the stored velocities and forces across
the whole gap (atoms 391 Å, 1350 Å, 1.2e6 Å away).  ``auto`` must write a sane output
(every fine position near the box of its gap's two coarse positions) or refuse in
one line, and say in one warning that the frames are too far apart.  Only positions
are checked: the elements read from a TPR are not relied on.
"""

from __future__ import annotations

import json
import logging
from importlib import resources

import numpy as np
import pytest

from mdsr_plugin.checks import ENVELOPE_MARGIN, check_fine_envelope
from mdsr_plugin.cli import main
from mdsr_plugin.io import read_trajectory
from mdsr_plugin.methods import LONG_GAP_FS
from mdsr_plugin.resolve import resolve_method
from mdsr_plugin.periodic import is_wrapped
from mdsr_plugin.pipeline import prepare_coarse
from mdsr_plugin.selection import FAR_APART_ERROR, MIN_FRAMES, select_method
from mdsr_plugin.settings import UpsampleSettings
from mdsr_plugin.trajectory import Trajectory, TrajectoryError

data = pytest.importorskip("MDAnalysisTests.datafiles")

FAR_APART = {  # name: trajectory, topology, whether auto can measure on it
    "ace_tip3p_nc": (data.TRJ_NCBOX, data.PRM_NCBOX, True),
    "adk_oplsaa_trr": (data.TRR, data.TPR, True),
    "cobrotoxin_trr": (data.TRR_xvf, data.TPR_xvf, False),
}
EXAMPLE = resources.files("mdsr_plugin") / "data/examples/ethanol_coarse.xyz"  # 20 fs, velocities, forces
FACTOR = 4


def outside_envelope(fine: np.ndarray, coarse: np.ndarray, factor: int) -> np.ndarray:
    """Å by which each fine position strictly inside a gap lies outside the box of the gap's
    two coarse positions (unwrapped), shape (n_gaps, factor - 1, n_atoms).  (The frames at
    coarse times are the coarse frames as read, possibly another periodic image.)"""
    n_gaps = len(coarse) - 1
    x = fine[: n_gaps * factor].reshape(n_gaps, factor, *fine.shape[1:])[:, 1:]
    low = np.minimum(coarse[:-1], coarse[1:])[:, None]
    high = np.maximum(coarse[:-1], coarse[1:])[:, None]
    return np.linalg.norm(np.maximum(low - x, 0) + np.maximum(x - high, 0), axis=-1)


def frames_without_virtual_sites(trajectory, topology) -> Trajectory:
    """The file's frames as MDAnalysis reads them, less massless virtual sites (TIP4P's M,
    which ``mdsr-upsample`` refuses), in Å, fs, Å/fs, eV/Å.  Elements are a placeholder:
    only positions (and, for the Hermite candidates, velocities, forces and masses) matter."""
    import MDAnalysis as mda

    from mdsr_plugin.io.mdanalysis import dimensions_to_cell
    from mdsr_plugin.units import FS_PER_PS, KJMOL_PER_EV

    universe = mda.Universe(topology, trajectory)
    atoms = universe.select_atoms("prop mass > 0.5")
    frames = {"positions": [], "velocities": [], "forces": [], "cell": [], "times": []}
    for ts in universe.trajectory:
        frames["positions"].append(atoms.positions.astype(float))
        frames["velocities"].append(atoms.velocities / FS_PER_PS)
        frames["forces"].append(atoms.forces / KJMOL_PER_EV if ts.has_forces else None)
        frames["cell"].append(dimensions_to_cell(ts.dimensions))
        frames["times"].append(ts.time * FS_PER_PS)
    forces = None if frames["forces"][0] is None else np.array(frames["forces"])
    return Trajectory(numbers=np.where(atoms.masses < 2, 1, 8), masses=atoms.masses,
                      positions=np.array(frames["positions"]), velocities=np.array(frames["velocities"]),
                      forces=forces, cell=np.array(frames["cell"]), pbc=True, times=np.array(frames["times"]))


@pytest.mark.parametrize("name", list(FAR_APART))
def test_auto_on_real_frames_far_apart_writes_the_best_measured_and_says_so(name, caplog):
    from mdsr_plugin.pipeline import stream_method
    from mdsr_plugin.trajectory import concatenate

    trajectory, topology, measurable = FAR_APART[name]
    coarse = frames_without_virtual_sites(trajectory, topology)
    assert not is_wrapped(coarse.positions, coarse.cell, coarse.pbc).any()  # so the output is not re-wrapped
    with caplog.at_level(logging.WARNING, logger="mdsr_plugin"):
        method, provenance = resolve_method("auto", coarse, FACTOR, UpsampleSettings(factor=FACTOR))
    (warning,) = [r.getMessage() for r in caplog.records if "too far apart" in r.getMessage()]
    assert warning.startswith(f"frames {coarse.dt:g} fs apart: too far apart to reconstruct vibrations")
    assert f"writing {method.name}" in warning and "\n" not in warning
    if measurable:
        # the best measured is written: in the far regime no tie goes to a method of higher order
        validation = provenance.self_validation
        estimates = {s["method"]: s["position_estimate"] for s in validation["scores"]}
        assert validation["chosen"] == method.name and estimates[method.name] == min(estimates.values())
        assert estimates[method.name] > FAR_APART_ERROR and validation["warning"] == warning
        assert f"writing {method.name}, estimated error {estimates[method.name]:.1e} Å" in warning
        assert set(estimates) | set(validation["skipped"]) == {"linear", "spline", "hermite"} | (
            {"quintic", "quintic-spline"} if coarse.has_forces else set())
    else:
        assert coarse.n_frames < MIN_FRAMES and provenance.self_validation is None
        assert f"too few to measure methods on ({MIN_FRAMES} needed)" in warning

    fine = concatenate(list(stream_method([coarse], FACTOR, method)))
    np.testing.assert_array_equal(fine.positions[::FACTOR], coarse.positions)
    continuous = prepare_coarse(coarse).frames.positions  # what the driver interpolated between
    assert outside_envelope(fine.positions, continuous, FACTOR).max() < ENVELOPE_MARGIN


@pytest.mark.parametrize("name", list(FAR_APART))
def test_mdsr_upsample_on_real_frames_far_apart_writes_a_sane_output_or_refuses_in_one_line(
        name, tmp_path, capsys, caplog):
    """Through the command line, the files as they are: the GROMACS ones hold TIP4P
    virtual sites, which the reader may refuse (in one line); what is written is sane."""
    trajectory, topology, _ = FAR_APART[name]
    output = tmp_path / "fine.h5md"
    with caplog.at_level(logging.WARNING, logger="mdsr_plugin"):
        code = main([trajectory, "--top", topology, "--factor", str(FACTOR), "-o", str(output)])
    captured = capsys.readouterr()
    if code != 0:
        assert code == 1 and captured.err.startswith("mdsr-upsample: error: ") and captured.err.count("\n") == 1
        assert not list(tmp_path.iterdir())
        return
    (warning,) = [r.getMessage() for r in caplog.records if "too far apart" in r.getMessage()]
    import h5py

    with h5py.File(output) as f:
        recorded = json.loads(f["parameters"].attrs["mdsr_plugin"])
    assert f"writing {recorded['method']}" in warning and f"({recorded['method']}, factor {FACTOR})" in captured.out
    coarse = read_trajectory(trajectory, topology=topology)
    assert not is_wrapped(coarse.positions, coarse.cell, coarse.pbc).any()
    fine = read_trajectory(output)
    assert fine.n_frames == (coarse.n_frames - 1) * FACTOR + 1
    np.testing.assert_allclose(fine.positions[::FACTOR], coarse.positions, atol=1e-3)
    continuous = prepare_coarse(coarse).frames.positions
    assert outside_envelope(fine.positions, continuous, FACTOR).max() < ENVELOPE_MARGIN


def test_a_method_that_leaves_the_envelope_is_refused_in_one_line(tmp_path, capsys):
    trajectory, topology, _ = FAR_APART["ace_tip3p_nc"]
    output = tmp_path / "fine.h5md"
    assert main([trajectory, "--top", topology, "--factor", str(FACTOR), "-o", str(output), "--method",
                 "quintic"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("mdsr-upsample: error: method 'quintic' put atom ")
    assert "outside the box spanned by its positions at coarse frames" in err
    assert "use --method spline or --method linear" in err
    assert not output.exists() and not list(tmp_path.iterdir())


def test_the_envelope_check_names_method_frame_and_atom():
    coarse = np.zeros((3, 2, 3))
    coarse[1:, 1, 0] = 2.0  # atom 1 moves 2 Å along x in gap 0, stays in gap 1
    fine = np.repeat(coarse[:-1], 4, axis=0)
    fine[5, 1, 1] = ENVELOPE_MARGIN - 0.5  # inside the margin
    check_fine_envelope(fine, coarse, 4, method="m")
    fine[0, 0] = 1e6  # a frame at a coarse time is the coarse frame itself in the output: not checked
    fine[7, 0, 2] = np.inf  # left to Trajectory.validate
    check_fine_envelope(fine, coarse, 4, method="m")
    fine[6, 1, 1] = ENVELOPE_MARGIN + 3.0
    with pytest.raises(TrajectoryError, match=r"method 'm' put atom 1 8 Å outside the box spanned by its positions "
                                              r"at coarse frames 11 and 12 \(fine frame 46; 5 Å allowed\).*"
                                              r"use --method spline or --method linear"):
        check_fine_envelope(fine, coarse, 4, method="m", first_gap=10)


def test_frames_close_together_are_chosen_among_as_before():
    """At 20 fs (the bundled ethanol) only the classical method using the most of the input
    is measured, ties go to priority, nothing is said."""
    coarse = read_trajectory(EXAMPLE)
    assert coarse.dt == 20.0
    _, selection = select_method(coarse, FACTOR, UpsampleSettings(factor=FACTOR), learned=False)
    assert [s.method for s in selection.scores] == ["quintic"] and selection.warning is None
    assert selection.best.position_estimate < FAR_APART_ERROR


def test_a_method_leaving_the_envelope_at_the_input_gap_is_passed_over():
    """On the 1 ps AMBER frames quintic and cubic Hermite put atoms 391 Å and 10 Å out at the
    input's own gap, and so does the quintic spline through the forces: not candidates; the
    next classical methods are measured instead."""
    trajectory, topology, _ = FAR_APART["ace_tip3p_nc"]
    coarse = read_trajectory(trajectory, topology=topology)
    _, selection = select_method(coarse, FACTOR, UpsampleSettings(factor=FACTOR), learned=False)
    assert set(selection.skipped) == {"quintic", "hermite", "quintic-spline"}
    assert all("outside the box spanned" in reason for reason in selection.skipped.values())
    assert {s.method for s in selection.scores} == {"spline", "linear"} and selection.chosen == "linear"


def test_beyond_the_envelope_at_longer_gaps_a_method_is_still_measured_and_beyond_25_fs_all_are():
    """The bundled ethanol at 40 fs: quintic Hermite goes 10 Å out at the 160 fs gaps it is
    measured at, 0.8 Å at 40 fs: it is measured.  Beyond 25 fs every classical method is
    measured and the lowest estimate wins (true midpoint errors: spline 0.046 Å, linear
    0.048, cubic Hermite 0.089, quintic 0.14)."""
    coarse = read_trajectory(EXAMPLE)[::2]
    assert coarse.dt == 40.0 > LONG_GAP_FS
    _, selection = select_method(coarse, FACTOR, UpsampleSettings(factor=FACTOR), learned=False)
    estimates = {s.method: s.position_estimate for s in selection.scores}
    assert set(estimates) == {"linear", "spline", "hermite", "quintic", "quintic-spline"} and not selection.skipped
    assert selection.chosen == "spline" == min(estimates, key=estimates.get)
    assert selection.warning is None  # 0.036 Å: not too far apart


@pytest.mark.parametrize("frames, step, self_validate, chosen", [
    (5, 1, True, "quintic"),  # 20 fs: too few to measure, short enough to trust the order
    (5, 5, True, "linear"),  # 100 fs
    (41, 5, False, "linear"),  # 100 fs, measuring switched off
])
def test_without_measuring_a_long_gap_gets_linear_and_a_warning(frames, step, self_validate, chosen, caplog):
    coarse = read_trajectory(EXAMPLE)[::step][:frames]
    settings = UpsampleSettings(factor=FACTOR, self_validate=self_validate)
    with caplog.at_level(logging.WARNING, logger="mdsr_plugin"):
        method, provenance = resolve_method("auto", coarse, FACTOR, settings)
    assert method.name == provenance.method == chosen and provenance.self_validation is None
    warned = [r.getMessage() for r in caplog.records if "too far apart" in r.getMessage()]
    if coarse.dt > LONG_GAP_FS:
        (warning,) = warned
        assert warning.startswith(f"frames {coarse.dt:g} fs apart: too far apart to reconstruct vibrations")
        assert "writing linear interpolation" in warning and "instead of quintic" in warning
        assert ("too few to measure" if self_validate else "self-validation is off") in warning
    else:
        assert not warned


def test_linear_never_leaves_the_envelope():
    rng = np.random.default_rng(11)
    positions = np.cumsum(rng.normal(0, 30.0, (6, 5, 3)), axis=0)  # 30 Å jumps
    coarse = Trajectory(numbers=[1] * 5, positions=positions, times=1000.0 * np.arange(6))
    from mdsr_plugin.methods import get_method

    fine = get_method("linear").interpolate(coarse, 7).positions
    check_fine_envelope(fine, positions, 7, method="linear")
    assert outside_envelope(fine, positions, 7).max() < 1e-9
