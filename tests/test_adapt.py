"""Learning from coarse frames alone: with and without forces, resuming, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mdsr_plugin.neural.adapt import MIN_GAPS, AdaptError, AdaptSettings, adapt

# prior=None: no automatic prior (a GFN2-xTB run of the molecule) where a test drops the forces
TINY = dict(force_epochs=2, gap_epochs=2, width=32, depth=2, hidden=16, warm_start=None, seed=3, prior=None)


@pytest.fixture
def coarse_file(xtb_fine, tmp_path):
    from mdsr_plugin.io import write_trajectory

    path = tmp_path / "coarse.h5md"
    write_trajectory(path, xtb_fine[::2][::10])  # 61 frames at 10 fs, with forces
    return path


@pytest.mark.slow
@pytest.mark.parametrize("forces", [True, False])
def test_adapting_from_coarse_frames_writes_an_ordinary_checkpoint(coarse_file, tmp_path, forces, monkeypatch):
    from mdsr_plugin.io import read_trajectory, write_trajectory
    from mdsr_plugin.pipeline import upsample

    source = coarse_file
    if not forces:
        source = tmp_path / "no_forces.h5md"
        write_trajectory(source, read_trajectory(coarse_file).without("forces"))
    card_file = adapt([source], tmp_path / "models" / "ethanol-own", AdaptSettings(**TINY), progress=False)
    card = json.loads(card_file.read_text())
    assert card["factors"] == [10] and card["fine_dt_fs"] == 1.0 and card["training"]["from_coarse"]
    assert card["training"]["epochs"] == ({"forces": 2, "gaps": 2} if forces else {"gaps": 2})
    held = card["validation"]["held_out_gaps"]
    assert held["gap_end_position_mae"] > 0 and ("force_mae" in held) == forces
    monkeypatch.setenv("MDSR_MODELS_PATH", str(card_file.parent))
    coarse = read_trajectory(source)
    fine = upsample(coarse, 10, "neural", model=str(card_file))
    np.testing.assert_array_equal(fine.positions[::10], coarse.positions)
    assert np.isfinite(fine.positions).all()


@pytest.mark.slow
def test_a_resumed_run_without_velocities_learns_on_from_the_velocities_it_fitted(coarse_file, tmp_path,
                                                                                   monkeypatch):
    from mdsr_plugin.io import read_trajectory
    from mdsr_plugin.neural import adapt as adapt_module

    fits = []
    real_fit = adapt_module._fitted_velocities
    monkeypatch.setattr(adapt_module, "_fitted_velocities", lambda *a: fits.append(1) or real_fit(*a))
    coarse = read_trajectory(coarse_file).without("velocities")
    stem = tmp_path / "eth"
    settings = AdaptSettings(**{**TINY, "force_epochs": 1, "max_minutes": 0.0})
    for _ in range(3):  # forces; first gap epoch (the fit); second gap epoch, resumed
        card = adapt([coarse], stem, settings, progress=False)
    assert json.loads(card.read_text())["training"]["epochs"] == {"forces": 1, "gaps": 2}
    assert len(fits) == 1
    with np.load(tmp_path / "eth.train-velocities.npz", allow_pickle=False) as kept:
        assert kept["file_0"].shape == coarse.positions.shape


@pytest.mark.slow
def test_adapting_resumes_where_it_stopped(coarse_file, tmp_path):
    stem = tmp_path / "m" / "eth"
    settings = AdaptSettings(**{**TINY, "gap_epochs": 3})
    adapt([coarse_file], stem, AdaptSettings(**{**TINY, "gap_epochs": 3, "max_minutes": 0.0}), progress=False)
    first = [json.loads(line) for line in open(f"{stem}.log.jsonl")]
    assert len(first) == 1  # one epoch, then the (zero) time budget stopped it
    adapt([coarse_file], stem, AdaptSettings(**{**TINY, "gap_epochs": 3, "max_minutes": 0.0}), progress=False)
    assert len(open(f"{stem}.log.jsonl").readlines()) == 2  # continued: epoch 2, not epoch 1 again
    card = adapt([coarse_file], stem, settings, progress=False)
    records = [json.loads(line) for line in open(f"{stem}.log.jsonl")]
    assert [(r["stage"], r["epoch"]) for r in records] == [("forces", 1), ("forces", 2), ("gaps", 1),
                                                           ("gaps", 2), ("gaps", 3)]
    assert json.loads(card.read_text())["training"]["complete"]
    # complete: called again, even without its resumable state, it learns nothing more
    (stem.parent / "eth.train.pt").unlink()
    assert adapt([coarse_file], stem, settings, progress=False) == card
    assert len(open(f"{stem}.log.jsonl").readlines()) == 5


def test_too_few_coarse_frames_or_no_velocities_is_one_line_and_writes_nothing(xtb_fine, tmp_path):
    from mdsr_plugin.cli import main as _unused  # noqa: F401  (the package imports cleanly)
    from mdsr_plugin.io import write_trajectory
    from mdsr_plugin.neural.cli import train_main

    short = tmp_path / "short.h5md"
    write_trajectory(short, xtb_fine[::2][::10][:12])
    out = tmp_path / "out"
    # the same words as a box's refusal (tests/test_box.py): one rule, context 2 each side here
    with pytest.raises(AdaptError, match=rf"^9 usable gaps; learning from coarse frames needs at least {MIN_GAPS} "
                                         rf"\({MIN_GAPS + 3} coarse frames of one run\)$"):
        adapt([short], out / "m", AdaptSettings(**TINY), progress=False)
    positions_only = tmp_path / "positions.h5md"
    write_trajectory(positions_only, xtb_fine[::2][::10].without("velocities", "forces"))
    assert train_main(["--from-coarse", str(positions_only), "-o", str(out / "m"), "-q",
                       "--warm-start", "none", "--prior", "none"]) == 1
    assert not out.exists()


# ---------------------------------------------------------------- mdsr-upsample --adapt
@pytest.mark.slow
def test_a_prior_on_a_cheap_hamiltonian_is_learned_first_and_warm_starts_the_learning(coarse_file, tmp_path):
    """--prior: the molecule is run on GFN1-xTB at the input's temperature and coarse step, a
    model learned from that run is the starting point, and a second call reuses both."""
    pytest.importorskip("tblite")
    from ase import Atoms

    from mdsr_plugin.hamiltonians import make_calculator
    from mdsr_plugin.io import read_trajectory
    from mdsr_plugin.neural.prior import kinetic_temperature

    stem = tmp_path / "m" / "eth"
    settings = AdaptSettings(**{**TINY, "prior": "gfn1-xtb"}, prior_frames=40)
    card_file = adapt([coarse_file], stem, settings, progress=False)
    card = json.loads(card_file.read_text())
    assert card["training"]["warm_start"] == "eth.prior" and card["training"]["settings"]["prior"] == "gfn1-xtb"
    prior_card = json.loads((tmp_path / "m" / "eth.prior.json").read_text())
    assert prior_card["training"]["warm_start"] is None and prior_card["training"]["files"] != card["training"]["files"]
    # the architecture settings are recorded where they built the network: the prior's, not the warm-started one's
    assert prior_card["training"]["settings"]["hidden"] == prior_card["config"]["hidden"]
    assert not {"arch", "hidden", "width", "depth"} & set(card["training"]["settings"])

    coarse, prior = read_trajectory(coarse_file), read_trajectory(tmp_path / "m" / "eth.prior.h5md")
    assert prior.n_frames == 40 and prior.dt == pytest.approx(coarse.dt) and list(prior.numbers) == list(coarse.numbers)
    # the stored forces are GFN1-xTB's at the stored positions (eV/Å; to the SCF's tolerance, the MD
    # starts each SCF from the last step's), not the input's GFN2-xTB ones
    atoms = Atoms(numbers=prior.numbers, positions=prior.positions[7])
    atoms.calc = make_calculator("gfn1-xtb")
    np.testing.assert_allclose(prior.forces[7], atoms.get_forces(), atol=1e-3)
    atoms.calc = make_calculator("gfn2-xtb")
    assert np.abs(prior.forces[7] - atoms.get_forces()).mean() > 0.02
    # at the input's temperature (a 9-atom molecule's kinetic temperature fluctuates: a loose band);
    # a velocity unit error would be off by ~100x
    assert 0.5 < kinetic_temperature(prior) / kinetic_temperature(coarse) < 2.0

    written = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "m").iterdir()}
    assert adapt([coarse_file], stem, settings, progress=False) == card_file
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "m").iterdir()} == written  # nothing redone


@pytest.mark.slow
def test_an_unfinished_prior_leaves_the_learning_unfinished_and_is_learned_from_again_once_done(coarse_file,
                                                                                                tmp_path):
    pytest.importorskip("tblite")
    stem = tmp_path / "m" / "eth"
    hurried = AdaptSettings(**{**TINY, "prior": "gfn1-xtb"}, prior_frames=40, max_minutes=0.0)
    card = json.loads(adapt([coarse_file], stem, hurried, progress=False).read_text())
    prior = json.loads((tmp_path / "m" / "eth.prior.json").read_text())
    assert not prior["training"]["complete"] and not card["training"]["complete"]
    assert len(open(f"{stem}.log.jsonl").readlines()) == 1  # one epoch per call, then the budget
    card = json.loads(adapt([coarse_file], stem, AdaptSettings(**{**TINY, "prior": "gfn1-xtb"}, prior_frames=40),
                            progress=False).read_text())
    prior = json.loads((tmp_path / "m" / "eth.prior.json").read_text())
    assert prior["training"]["complete"] and card["training"]["complete"]
    records = [json.loads(line) for line in open(f"{stem}.log.jsonl")]
    # the prior changed, so the learning started again from it rather than continuing
    assert [(r["stage"], r["epoch"]) for r in records[1:]] == [("forces", 1), ("forces", 2), ("gaps", 1), ("gaps", 2)]


def test_adapt_prior_settings_are_checked_and_the_kinetic_temperature_has_its_units():
    from mdsr_plugin.neural.prior import kinetic_temperature
    from mdsr_plugin.settings import SettingsError, UpsampleSettings
    from mdsr_plugin.trajectory import Trajectory

    with pytest.raises(SettingsError, match="one of gfn1-xtb, gfn2-xtb"):
        UpsampleSettings(factor=10, adapt="mine/x", adapt_prior="pbe").checked()
    with pytest.raises(SettingsError, match="goes with adapt"):
        UpsampleSettings(factor=10, adapt_prior="gfn1-xtb").checked()
    # 3 atoms of 1 u at 0.01 Å/fs: E_kin = 3 * 0.5 * 1e-4 u Å²/fs² = 0.015546 eV over 3N - 6 = 3
    # degrees of freedom: T = 2 E_kin / (3 k_B) = 120.3 K
    v = np.zeros((2, 3, 3))
    v[..., 0] = 0.01
    frames = Trajectory(numbers=[1, 1, 1], masses=[1.0, 1.0, 1.0], positions=np.zeros((2, 3, 3)), velocities=v,
                        times=[0.0, 10.0])
    assert kinetic_temperature(frames) == pytest.approx(120.27, rel=1e-3)


def test_the_automatic_prior_is_for_frames_without_forces_of_a_molecule_with_no_checkpoint(xtb_fine, monkeypatch,
                                                                                        caplog):
    """Without forces, gap consistency pins the potential only at the coarse frames (fast
    vibrations aliased): a prior on GFN2-xTB, unless a checkpoint or the forces say more."""
    import sys

    from mdsr_plugin.neural.adapt import AUTO_PRIOR, AUTOMATIC_PRIOR, resolved_prior

    pytest.importorskip("tblite")
    with_forces, without = [xtb_fine[::20]], [xtb_fine[::20].without("forces")]
    assert AdaptSettings().prior == AUTO_PRIOR and AUTOMATIC_PRIOR == "gfn2-xtb"
    assert resolved_prior(AUTO_PRIOR, without, has_checkpoint=False) == "gfn2-xtb"
    assert resolved_prior(AUTO_PRIOR, with_forces, has_checkpoint=False) is None
    assert resolved_prior(AUTO_PRIOR, without, has_checkpoint=True) is None
    assert resolved_prior(AUTO_PRIOR, with_forces + without, has_checkpoint=False) == "gfn2-xtb"
    assert resolved_prior("gfn1-xtb", with_forces, has_checkpoint=True) == "gfn1-xtb"  # asked for: given
    assert resolved_prior(None, without, has_checkpoint=False) is None
    # without tblite: none, and a warning that says what is lost and how to get it
    monkeypatch.setitem(sys.modules, "tblite.ase", None)
    with caplog.at_level("WARNING", logger="mdsr_plugin.neural.adapt"):
        assert resolved_prior(AUTO_PRIOR, without, has_checkpoint=False) is None
    assert "aliased" in caplog.text and "mdsr_plugin[reference]" in caplog.text


@pytest.mark.slow
def test_frames_without_forces_learn_from_an_automatic_prior(coarse_file, tmp_path):
    """The default prior="auto", forces dropped, no checkpoint: the molecule is run on GFN2-xTB
    first, the card records it, and the summary's record names it."""
    pytest.importorskip("tblite")
    from mdsr_plugin.io import read_trajectory

    coarse = read_trajectory(coarse_file).without("forces")
    settings = AdaptSettings(**{**TINY, "prior": "auto"}, prior_frames=40)
    card = json.loads(adapt([coarse], tmp_path / "m" / "eth", settings, progress=False).read_text())
    assert card["training"]["settings"]["prior"] == "gfn2-xtb" and card["training"]["warm_start"] == "eth.prior"
    assert (tmp_path / "m" / "eth.prior.h5md").exists()


def test_a_prior_is_refused_for_an_unknown_hamiltonian_or_too_short_input_and_nothing_is_written(xtb_fine,
                                                                                                small_traj, tmp_path):
    out = tmp_path / "m"
    with pytest.raises(AdaptError, match="one of gfn1-xtb, gfn2-xtb, not 'pbe'"):
        adapt([xtb_fine[::20]], out / "x", AdaptSettings(**{**TINY, "prior": "pbe"}), progress=False)
    with pytest.raises(AdaptError, match="one of gfn1-xtb, gfn2-xtb, not 'pbe'"):  # a box too
        adapt([small_traj.without("forces")], out / "x", AdaptSettings(**{**TINY, "prior": "pbe"}), progress=False)
    # too short: refused before any work on the prior
    with pytest.raises(AdaptError, match="needs at least"):
        adapt([xtb_fine[::20][:12]], out / "x", AdaptSettings(**{**TINY, "prior": "gfn1-xtb"}), progress=False)
    assert not out.exists()


@pytest.fixture
def gfn1_coarse_file(gfn1_fine, tmp_path):
    """GFN1-xTB ethanol (not the shipped checkpoint's Hamiltonian), 121 frames at 10 fs."""
    from mdsr_plugin.io import write_trajectory

    path = tmp_path / "aimd_10fs.h5md"
    write_trajectory(path, gfn1_fine[::10])
    return path


@pytest.mark.slow
def test_upsample_adapt_learns_then_measures_every_candidate_on_frames_its_training_held_out(
        gfn1_coarse_file, tmp_path, capsys):
    import h5py

    from mdsr_plugin.cli import main
    from mdsr_plugin.io import read_trajectory

    out = tmp_path / "out" / "fine.h5md"
    out.parent.mkdir()
    assert main([str(gfn1_coarse_file), "--factor", "10", "-o", str(out), "--adapt", "--adapt-minutes", "0.01"]) == 0
    printed = capsys.readouterr().out
    stem = out.parent / "fine.adapted"
    assert f"learned from the input in" in printed and str(stem) + ".json" in printed
    assert "from ethanol-bilstm-f20-1fs" in printed  # warm start: the registry's ethanol
    assert "time budget reached, run again to continue" in printed
    # an ordinary checkpoint beside the output, with no registry manifest in the user's folder
    assert {p.name for p in out.parent.iterdir()} >= {"fine.h5md", "fine.adapted.json", "fine.adapted.safetensors"}
    assert not (out.parent / "manifest.json").exists()
    card = json.loads((out.parent / "fine.adapted.json").read_text())
    held = card["training"]["held_out_frames"]
    assert held["file"] == gfn1_coarse_file.name and held["stop"] == 121
    # gaps g = c-1 ... 121-c-1 have their context inside (c frames each side); the last h are
    # held out, so the last training gap ends at frame 121-c-h; forces of the last 16 frames
    # (at least MIN_HELD_OUT_GAPS, 10 % being 12) were held out too
    c, h = card["config"]["context"], card["training"]["gaps"]["held_out"]
    assert h == 16 and held["start"] == max(121 - c - h + 1, 121 - 16)
    with h5py.File(out) as f:
        parameters = json.loads(f["parameters"].attrs["mdsr_plugin"])
    validation = parameters["self_validation"]
    assert {s["method"] for s in validation["scores"]} == {"adapted", "neural", "quintic"}
    # the learned models from their forward/backward disagreement, the classical one extrapolated
    assert {s["method"]: s["estimator"] for s in validation["scores"]} == {
        "adapted": "disagreement", "neural": "disagreement", "quintic": "extrapolation"}
    # measured on the held-out frames only: held back at level 2 are half of them
    assert validation["held_back"] == (held["stop"] - held["start"]) // 2
    assert parameters["method"] == validation["chosen"]
    fine = read_trajectory(out)
    assert fine.n_frames == 1201 and np.isfinite(fine.positions).all()


@pytest.mark.slow
def test_python_adapt_and_the_adapted_method(gfn1_fine, tmp_path):
    from mdsr_plugin.pipeline import upsample, upsample_stream
    from mdsr_plugin.settings import SettingsError

    coarse = gfn1_fine[::10]
    stem = tmp_path / "eth-own"
    fine = upsample(coarse, 10, "adapted", adapt=str(stem), adapt_minutes=0.01)
    np.testing.assert_array_equal(fine.positions[::10], coarse.positions)
    assert (tmp_path / "eth-own.json").exists()
    with pytest.raises(SettingsError, match="use upsample"):
        list(upsample_stream([coarse], 10, adapt=str(stem)))


def _water_positions_only():
    """40 frames of a vibrating water molecule, positions only: no registry checkpoint knows
    water, and without forces nothing tells the potential (ethanol's positions alone are
    learned from, warm-started from the shipped ethanol checkpoint)."""
    from mdsr_plugin.trajectory import Trajectory

    times = np.arange(40) * 10.0
    stretch = 0.02 * np.sin(2 * np.pi * times / 9.0)[:, None]
    base = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    positions = np.broadcast_to(base, (40, 3, 3)).copy()
    positions[:, 1, 0] += stretch[:, 0]
    positions[:, 2] += stretch * np.array([-0.25, 0.97, 0.0])
    return Trajectory(numbers=[8, 1, 1], positions=positions, times=times)


@pytest.mark.parametrize("case", ["too few frames", "positions only"])
def test_upsample_adapt_refuses_bad_input_in_one_line_and_writes_nothing(case, gfn1_fine, tmp_path, capsys):
    from mdsr_plugin.cli import main
    from mdsr_plugin.io import write_trajectory

    source = tmp_path / "in" / "coarse.xyz"
    source.parent.mkdir()
    coarse = gfn1_fine[::10][:15] if case == "too few frames" else _water_positions_only()
    write_trajectory(source, coarse)
    out = tmp_path / "out"
    out.mkdir()
    # positions only, with no checkpoint of water: refused where no prior is to be run
    no_prior = ["--adapt-prior", "none"] if case == "positions only" else []
    assert main([str(source), "--factor", "10", "-o", str(out / "fine.xyz"), "--adapt", "-q", *no_prior]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("mdsr-upsample: error: --adapt: ") and "\n" not in error
    assert ("needs at least" in error) if case == "too few frames" else ("positions only" in error)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("argv, message", [
    (["--adapt", "--model", "ethanol-bilstm-f20-1fs"], "not both"),
    (["--adapt", "--method", "hermite"], "auto or adapted"),
    (["--method", "adapted"], "needs a checkpoint learned from the input"),
    (["--adapt", "--adapt-minutes", "0"], "must be > 0"),
    (["--adapt-prior", "gfn1-xtb"], "--adapt-prior goes with --adapt"),
    (["--adapt-minutes", "5", "--method", "hermite"], "--adapt-minutes goes with --adapt"),  # was ignored
])
def test_adapt_options_that_contradict_each_other_are_usage_errors(argv, message, tmp_path, capsys):
    from mdsr_plugin.cli import main

    source = tmp_path / "c.xyz"
    source.write_text("")
    assert main([str(source), "--factor", "10", "-o", str(tmp_path / "f.xyz"), *argv]) == 2
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------- the checkpoint's force check
@pytest.mark.slow
def test_force_check_tells_the_checkpoints_hamiltonian_from_another(xtb_fine, gfn1_fine, tmp_path, caplog):
    from mdsr_plugin.io import write_trajectory
    from mdsr_plugin.neural.upsampler import FORCE_MISMATCH, LearnedUpsampler
    from mdsr_plugin.pipeline import upsample_file

    own, other = LearnedUpsampler(), LearnedUpsampler()
    own.prepare(xtb_fine[::2][::10], 10)
    other.prepare(gfn1_fine[::10], 10)
    # measured: 4 % on its own GFN2-xTB, 14.5 % on GFN1-xTB (docs/benchmarks.md "Force check")
    assert own.force_check["relative"] < FORCE_MISMATCH < other.force_check["relative"]
    assert not own.force_check["mismatch"] and other.force_check["mismatch"]
    # the record an output stores says "another Hamiltonian" only where the check found one
    assert own.force_check["warning"] is None and "another Hamiltonian" in other.force_check["warning"]
    assert own.force_check["frames"] == 61 and own.force_check["force_mae"] > 0  # every frame, up to 64
    # used on the other Hamiltonian's input, the user is warned and the output records it
    source = tmp_path / "gfn1.h5md"
    write_trajectory(source, gfn1_fine[::10])
    with caplog.at_level("WARNING"):
        summary = upsample_file(source, tmp_path / "fine.xyz", 10, method="neural")
    assert summary["force_check"]["mismatch"]
    assert any("probably from another Hamiltonian" in r.message and "--adapt" in r.message for r in caplog.records)
    assert "mdsr_force_check" in (tmp_path / "fine.xyz").read_text().splitlines()[1]


def test_a_checkpoint_learned_from_coarse_frames_is_judged_by_its_own_force_error():
    """A small model learned from scratch fits its own forces to ~10-20 %: its force check
    must not call its own input "another Hamiltonian" (the threshold scales with it)."""
    from mdsr_plugin.neural.upsampler import FORCE_ERROR_ON_OWN_DATA, FORCE_MISMATCH, LearnedUpsampler

    shipped, adapted = LearnedUpsampler(), LearnedUpsampler(name="adapted")
    shipped.card = {"validation": {"held_out": {}}}
    adapted.card = {"validation": {"held_out_gaps": {"force_relative_mae": 0.18}}}
    assert shipped._own_force_error() == (FORCE_ERROR_ON_OWN_DATA, FORCE_MISMATCH)
    own, threshold = adapted._own_force_error()
    assert own == 0.18 and threshold == pytest.approx(0.18 * FORCE_MISMATCH / FORCE_ERROR_ON_OWN_DATA)


@pytest.mark.slow
def test_the_force_check_is_reported_when_the_checkpoints_hamiltonian_fits(xtb_fine, tmp_path, capsys):
    from mdsr_plugin.cli import main
    from mdsr_plugin.io import write_trajectory

    source = tmp_path / "gfn2.h5md"
    write_trajectory(source, xtb_fine[::2][::10])
    assert main([str(source), "--factor", "10", "-o", str(tmp_path / "fine.h5md"), "--method", "neural"]) == 0
    captured = capsys.readouterr()
    assert "checkpoint forces against the input's stored forces:" in captured.out
    assert "another Hamiltonian" not in captured.err


@pytest.mark.parametrize("case", ["positions only", "short box"])
def test_in_memory_input_that_cannot_be_learned_from_is_one_clear_error(case, gfn1_fine, small_traj, tmp_path):
    from mdsr_plugin.pipeline import upsample

    coarse = _water_positions_only() if case == "positions only" else small_traj
    message = "positions only" if case == "positions only" else "5 usable gaps; .* at least 20"
    with pytest.raises(ValueError, match=message):
        upsample(coarse, 10, adapt=str(tmp_path / "m"), adapt_prior="none")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- no stored velocities
@pytest.mark.slow
@pytest.mark.parametrize("quantities", ["positions + forces", "positions only"])
def test_learning_without_stored_velocities_fits_them_and_upsamples(quantities, gfn1_fine, tmp_path):
    """Issue #29: what VASP (positions + forces) and XYZ archives (positions) store.  The
    velocities of the coarse frames are fitted through the model (the forces' potential, or
    the shipped ethanol checkpoint it warm-starts from), the gaps then learned from."""
    from mdsr_plugin.pipeline import upsample

    coarse = gfn1_fine[:481:10].without("velocities")  # 49 frames at 10 fs
    warm = None
    if quantities == "positions only":
        coarse, warm = coarse.without("forces"), "auto"
    settings = AdaptSettings(**{**TINY, "warm_start": warm, "gap_epochs": 1})
    card_path = adapt([coarse], tmp_path / "m", settings, progress=False)
    card = json.loads(card_path.read_text())
    assert card["training"]["velocities_fitted"] is True
    assert (card["training"]["warm_start"] is None) == (quantities == "positions + forces")
    assert card["training"]["epochs"] == ({"forces": 2, "gaps": 1} if quantities == "positions + forces"
                                          else {"gaps": 1})
    fine = upsample(coarse, 10, "neural", model=str(card_path), self_validate=False)
    assert fine.n_frames == (coarse.n_frames - 1) * 10 + 1
    np.testing.assert_array_equal(fine.positions[::10], coarse.positions)
    truth = gfn1_fine[:481]
    inside = np.arange(fine.n_frames) % 10 != 0
    error = np.abs(fine.positions - truth.positions)[inside].mean()
    assert error < 0.05  # Å: a fitted path, not noise (the cubic spline's is 6e-3 here)


def test_positions_and_forces_too_short_are_refused_in_one_line_with_nothing_written(gfn1_fine, tmp_path):
    coarse = gfn1_fine[:150:10].without("velocities")  # 15 frames
    with pytest.raises(AdaptError, match=r"^12 usable gaps; learning from coarse frames needs at least 20") as err:
        adapt([coarse], tmp_path / "m", AdaptSettings(**TINY), progress=False)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_files_that_store_different_quantities_are_refused(gfn1_fine, tmp_path):
    with pytest.raises(AdaptError, match="has no velocities and <trajectory 0> has: learn from files that store"):
        adapt([gfn1_fine[::10], gfn1_fine[::10].without("velocities")], tmp_path / "m", AdaptSettings(**TINY),
              progress=False)
