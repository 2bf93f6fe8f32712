"""Self-validated ``auto``: methods measured on held-back coarse frames of the input itself.

The two cases of the own-data issue: on dynamics of the checkpoint's own Hamiltonian
(GFN2-xTB) at 10 fs the shipped Bi-LSTM must win; on another Hamiltonian (GFN1-xTB) at
5 fs, where the stored forces make quintic Hermite 6x better than the checkpoint, quintic
must win.  In both the chosen method's true error must be within 10 % of the best's and
the estimate close to the true error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mdsr_plugin.metrics import position_mae, reconstructed_mask
from mdsr_plugin.pipeline import upsample, upsample_file
from mdsr_plugin.selection import MIN_FRAMES, select_method
from mdsr_plugin.settings import UpsampleSettings


def true_errors(fine, factor, methods):
    coarse = fine[::factor]
    n = (coarse.n_frames - 1) * factor + 1
    mask = reconstructed_mask(n, factor)
    return {m: position_mae(upsample(coarse, factor, m, self_validate=False).positions, fine[:n].positions, mask)
            for m in methods}


@pytest.mark.slow
@pytest.mark.parametrize("case, factor, winner", [("own Hamiltonian", 10, "neural"),
                                                  ("other Hamiltonian", 5, "quintic")])
def test_auto_measures_and_chooses_the_best_method(case, factor, winner, xtb_fine, gfn1_fine):
    fine = xtb_fine[::2] if case == "own Hamiltonian" else gfn1_fine
    coarse = fine[::factor]
    _, selection = select_method(coarse, factor, UpsampleSettings(factor=factor))
    measured = {s.method for s in selection.scores}
    assert {"neural", "quintic"} == measured  # the learned method against the best classical one
    truth = true_errors(fine, factor, measured)
    assert min(truth, key=truth.get) == winner
    assert selection.chosen == winner
    assert truth[selection.chosen] <= 1.1 * min(truth[m] for m in measured)
    assert selection.held_back == coarse.n_frames // 2 and selection.gap_fs == pytest.approx(2 * coarse.dt)
    # the estimate is of the right size: measured 0.8-3.6x the true error (docs/benchmarks.md)
    assert 0.5 < selection.best.position_estimate / truth[winner] < 4


def test_the_estimate_is_printed_and_recorded_in_h5md_xyz_and_the_manifest(tmp_path, xtb_fine, capsys):
    import ase.io
    import h5py

    from mdsr_plugin.batch import BatchSettings, process_archive
    from mdsr_plugin.cli import main
    from mdsr_plugin.io import write_trajectory

    source = tmp_path / "archive" / "coarse.xyz"
    source.parent.mkdir()
    write_trajectory(source, xtb_fine[::2][::5][:41].without("forces"))  # 5 fs, velocities only
    assert main([str(source), "--factor", "5", "-o", str(tmp_path / "fine.h5md")]) == 0
    out = capsys.readouterr().out
    assert "chosen by measuring on the input: estimated position error" in out
    assert "measured on 20 held-back coarse frames at a 10 fs gap" in out and "sampling range" in out
    with h5py.File(tmp_path / "fine.h5md") as f:
        recorded = json.loads(f["parameters"].attrs["mdsr_plugin"])
    assert recorded["self_validation"]["chosen"] == recorded["method"]
    assert {s["method"] for s in recorded["self_validation"]["scores"]} == {"neural", "hermite"}
    assert "estimated position error" in recorded["estimate"]

    summary = upsample_file(source, tmp_path / "fine.xyz", 5)
    info = ase.io.read(tmp_path / "fine.xyz", 0).info
    assert info["mdsr_method"] == summary["method"] and info["mdsr_estimate"] == summary["estimate"]
    assert json.loads(info["mdsr_self_validation"])["held_back"] == 20

    result = process_archive(tmp_path / "archive", tmp_path / "out", BatchSettings(UpsampleSettings(factor=5)))
    (record,) = result.done
    assert record["estimate"] == summary["estimate"] and record["self_validation"]["chosen"] == summary["method"]


def test_too_few_frames_or_no_self_validation_choose_without_measuring(small_traj, tmp_path):
    from mdsr_plugin.io import write_trajectory

    assert small_traj.n_frames < MIN_FRAMES
    path = tmp_path / "small.h5md"
    write_trajectory(path, small_traj)
    summary = upsample_file(path, tmp_path / "fine.h5md", 4)
    assert summary["method"] == "quintic" and summary["estimate"] is None and summary["self_validation"] is None
    long = upsample_file(path, tmp_path / "fine2.h5md", 4, self_validate=False)
    assert long["estimate"] is None


def test_selection_refuses_too_few_frames_in_one_line(small_traj):
    from mdsr_plugin.trajectory import TrajectoryError

    with pytest.raises(TrajectoryError, match=f"at least {MIN_FRAMES} coarse frames"):
        select_method(small_traj, 4, UpsampleSettings(factor=4))


def test_classical_measures_only_the_best_classical_method(xtb_fine):
    coarse = xtb_fine[::2][::10][:21]
    from mdsr_plugin.resolve import resolve_method

    method, provenance = resolve_method("classical", coarse, 10, UpsampleSettings(factor=10, method="classical"))
    scores = provenance.self_validation["scores"]
    assert [s["method"] for s in scores] == ["quintic"] and method.name == provenance.method == "quintic"
    assert all(np.isfinite(s["position_estimate"]) for s in scores)


def test_the_extrapolation_steepens_by_the_given_power(xtb_fine):
    """estimate = mean_profile(4h) * r ** (1 + steepening): positions-only learned methods
    (velocities fitted) use the plain power law, STEEPENING_FITTED = 1."""
    from mdsr_plugin.methods import get_method
    from mdsr_plugin.selection import STEEPENING, STEEPENING_FITTED, measure_method

    sample = xtb_fine[::2][::10]
    steep = measure_method(get_method("hermite"), sample, 10, STEEPENING)
    plain = measure_method(get_method("hermite"), sample, 10, STEEPENING_FITTED)
    assert STEEPENING_FITTED == 1.0 and steep.ratio == plain.ratio < 1
    assert steep.position_estimate / plain.position_estimate == pytest.approx(
        steep.ratio ** (STEEPENING - STEEPENING_FITTED))


def test_the_estimate_comes_with_its_sampling_range(xtb_fine):
    """The range comes from resampling the held-back blocks: it contains the estimate,
    collapses to it when every block errs alike, and is reported where the estimate is."""
    from mdsr_plugin.methods import get_method
    from mdsr_plugin.selection import STEEPENING, Selection, _HeldBack, _position_estimate, _sampling_range, \
        measure_method

    score = measure_method(get_method("hermite"), xtb_fine[::2][::10][:33], 10, STEEPENING)
    low, high = score.position_range
    assert score.estimator == "extrapolation"  # no forward/backward paths to disagree
    assert 0 < low < score.position_estimate < high < 10 * low

    alike = _HeldBack(np.full((1, 8), 2e-3), np.full((1, 8), np.nan), np.full((1, 8), np.nan),
                      np.tile([[1e-3], [4e-3], [1e-3]], (1, 4)), np.full((3, 4), np.nan), None)
    estimate = _position_estimate(alike, STEEPENING, True)
    assert _sampling_range(alike, STEEPENING, True) == pytest.approx((estimate, estimate))
    one_block = _HeldBack(*(a[:, :n] for a, n in zip(
        (alike.position2, alike.velocity2, alike.disagreement2, alike.position4, alike.velocity4), (2, 2, 2, 1, 1))),
        None)
    assert np.isnan(_sampling_range(one_block, STEEPENING, True)).all()  # one block: no range

    line = Selection("hermite", [score], held_back=16, gap_fs=20.0).describe()
    assert f"(sampling range {low:.1e}-{high:.1e} Å)" in line
    assert "sampling range" not in Selection("hermite", [
        score.__class__(**{**score.__dict__, "position_range": (np.nan, np.nan)})], 16, 20.0).describe()
    assert "velocity error" in line
    # input without velocities (positions + forces): none to compare with, none printed
    without = Selection("quintic-spline", [score.__class__(**{**score.__dict__, "velocity_estimate": np.nan})], 16,
                        20.0).describe()
    assert "velocity error" not in without and "nan" not in without


def test_a_bidirectional_method_is_estimated_from_its_disagreement_at_the_input_gap(xtb_fine):
    """error(h) = [error / disagreement at the middle of 2h gaps] x disagreement at the
    middle of the input's own gaps x 0.75 x (mean / middle of the error along 4h gaps)."""
    from mdsr_plugin.methods import method_plugins
    from mdsr_plugin.selection import STEEPENING, _HeldBack, _position_estimate, measure_method

    rng = np.random.default_rng(1)
    p2, d2, p4, d1 = rng.uniform(1, 2, (1, 8)), rng.uniform(3, 5, (1, 8)), rng.uniform(1, 3, (3, 4)), \
        rng.uniform(0.5, 1, 16)
    held = _HeldBack(p2, np.full_like(p2, np.nan), d2, p4, np.full_like(p4, np.nan), d1)
    expected = p2.sum() / d2.sum() * d1.mean() * 0.75 * p4.mean() / p4[1].mean()
    assert _position_estimate(held, STEEPENING, True) == pytest.approx(expected)
    assert _position_estimate(held, STEEPENING, False) != pytest.approx(expected)  # the extrapolation

    coarse = xtb_fine[::2][::5][:33]  # odd factor: the middle of a gap lies between two fine frames
    plugin, settings = method_plugins()["neural"], UpsampleSettings(factor=5)
    found = plugin.suits(coarse, 5, settings).found
    method = plugin.factory(settings)
    method.prepare(coarse, 5, found)
    score = measure_method(method, coarse, 5, STEEPENING)
    extrapolated = measure_method(method, coarse, 5, STEEPENING, from_disagreement=False)
    assert score.estimator == "disagreement" and extrapolated.estimator == "extrapolation"
    assert np.isfinite(score.position_estimate) and score.position_estimate != extrapolated.position_estimate
    assert score.position_range[0] < score.position_estimate < score.position_range[1]


def test_a_held_back_gap_whose_paths_ran_away_does_not_set_the_calibration():
    """A box fitting velocities over 40 fs gaps: one gap's paths 608 Å apart, the others
    0.3-2 Å.  That gap is left out of c; a gap merely a few times the median is not."""
    from mdsr_plugin.selection import DIVERGED_DISAGREEMENT, STEEPENING, _HeldBack, _position_estimate

    rng = np.random.default_rng(2)
    p2, d2, p4, d1 = rng.uniform(0.1, 0.3, (1, 8)), rng.uniform(0.3, 0.7, (1, 8)), rng.uniform(1, 3, (3, 4)), \
        rng.uniform(0.02, 0.05, 16)
    calm = _HeldBack(p2, np.full_like(p2, np.nan), d2, p4, np.full_like(p4, np.nan), d1)
    runaway_p2, runaway_d2 = p2.copy(), d2.copy()
    runaway_p2[0, 3], runaway_d2[0, 3] = 4.8, 608.0
    runaway = _HeldBack(runaway_p2, calm.velocity2, runaway_d2, p4, calm.velocity4, d1)
    without_that_gap = np.delete(np.arange(8), 3)
    expected = p2[0, without_that_gap].sum() / d2[0, without_that_gap].sum() * d1.mean() * 0.75 * p4.mean() \
        / p4[1].mean()
    assert _position_estimate(runaway, STEEPENING, True) == pytest.approx(expected)
    # a gap a few times the median stays in: the plain ratio of sums
    wide_d2 = d2.copy()
    wide_d2[0, 3] = 0.5 * DIVERGED_DISAGREEMENT * np.median(d2)
    wide = _HeldBack(p2, calm.velocity2, wide_d2, p4, calm.velocity4, d1)
    assert _position_estimate(wide, STEEPENING, True) == pytest.approx(
        p2.sum() / wide_d2.sum() * d1.mean() * 0.75 * p4.mean() / p4[1].mean())


def test_with_fitted_velocities_the_error_profile_along_a_gap_takes_in_the_disagreement_s_own():
    """Fitted velocities are wrong at the coarse frames, so the error is nearly flat along a
    gap: the 4h gaps' peaked profile and the disagreement's flat one at h are both used
    (their geometric mean).  Stored velocities keep the 4h profile alone."""
    from mdsr_plugin.selection import STEEPENING_FITTED, _HeldBack, _position_estimate, _sampling_range

    rng = np.random.default_rng(3)
    p2, d2, p4, d1 = rng.uniform(1, 2, (1, 8)), rng.uniform(3, 5, (1, 8)), rng.uniform(1, 3, (3, 4)), \
        rng.uniform(0.5, 1, 16)
    along = d1 * rng.uniform(1.0, 1.3, 16)
    stored = _HeldBack(p2, np.full_like(p2, np.nan), d2, p4, np.full_like(p4, np.nan), d1)
    fitted = _HeldBack(p2, stored.velocity2, d2, p4, stored.velocity4, d1, along)
    trapezoid = 0.75 * p4.mean() / p4[1].mean()
    c = p2.sum() / d2.sum()
    assert _position_estimate(stored, STEEPENING_FITTED, True) == pytest.approx(c * d1.mean() * trapezoid)
    assert _position_estimate(fitted, STEEPENING_FITTED, True) == pytest.approx(
        c * d1.mean() * np.sqrt(trapezoid * along.mean() / d1.mean()))
    # the resampled blocks carry the profile along: the range brackets the estimate
    low, high = _sampling_range(fitted, STEEPENING_FITTED, True)
    assert low < _position_estimate(fitted, STEEPENING_FITTED, True) < high


def test_the_disagreement_along_a_gap_is_the_mean_over_its_inner_fine_frames(xtb_fine):
    from mdsr_plugin.methods import method_plugins
    from mdsr_plugin.selection import _own_gap_disagreement, _upsampled

    coarse = xtb_fine[::2][::5][:9]
    plugin, settings = method_plugins()["neural"], UpsampleSettings(factor=5)
    method = plugin.factory(settings)
    method.prepare(coarse, 5, plugin.suits(coarse, 5, settings).found)
    middle, along = _own_gap_disagreement(method, coarse, 5)
    every = np.asarray(_upsampled(method, coarse, 5).frame_data["disagreement"])
    assert middle.shape == along.shape == (8,)
    assert along[3] == pytest.approx(every[16:20].mean())  # fine frames 16-19 lie inside gap 3
    assert middle[3] == pytest.approx(0.5 * (every[17] + every[18]))  # odd factor: the two around the middle


@pytest.mark.slow
def test_fitted_velocities_of_positions_only_input_are_estimated_from_the_disagreement(xtb_fine):
    """Positions alone: the shipped checkpoint fits the coarse velocities, and ``auto``
    estimates its error from its forward/backward disagreement, as with stored velocities
    (the extrapolation gave 0.42x the true error on a learned model; docs/benchmarks.md)."""
    from mdsr_plugin.selection import select_method

    coarse = xtb_fine[::2][::20].without("velocities", "forces")  # 31 frames at 20 fs
    _, selection = select_method(coarse, 20, UpsampleSettings(factor=20))
    scores = {score.method: score for score in selection.scores}
    assert scores["neural"].estimator == "disagreement" and np.isfinite(scores["neural"].position_estimate)
    assert scores["spline"].estimator == "extrapolation"
