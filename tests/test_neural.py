"""The neural upsampler: architectures, frames of reference, atom order, checkpoints, registry,
training and resumption, and the method inside the streaming pipeline.

Models here are tiny and trained for seconds: these tests check behaviour, not accuracy
(accuracy is measured in bench/ and recorded in docs/benchmarks.md).
"""

import json
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mdsr_plugin.methods import MethodError  # noqa: E402
from mdsr_plugin.neural.checkpoint import CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402
from mdsr_plugin.molecule import (  # noqa: E402
    GraphMismatch,
    automorphisms,
    best_order,
    infer_bonds,
    kabsch_rotations,
    match_atoms,
)
from mdsr_plugin.neural.models import ARCHITECTURES, build_model, default_config  # noqa: E402
from mdsr_plugin.neural.registry import list_models, write_manifest  # noqa: E402
from mdsr_plugin.neural.train import TrainingSettings, train  # noqa: E402
from mdsr_plugin.pipeline import upsample  # noqa: E402

ETHANOL = [6, 6, 8, 1, 1, 1, 1, 1, 1]
TINY = dict(force_epochs=1, force_samples_per_epoch=1000, rollout_epochs=1, rollout_windows_per_epoch=64,
            rollout_batch=32, width=32, depth=2, hidden=16, factor=10)

CUDA = [pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


def random_rotation(seed):
    from scipy.spatial.transform import Rotation

    return Rotation.random(random_state=seed).as_matrix()


# ----------------------------------------------------------------------------- geometry
def test_graph_matching_undoes_a_shuffle(xtb_fine):
    positions = xtb_fine.positions[0]
    bonds = infer_bonds(xtb_fine.numbers, positions)
    assert len(bonds) == 8  # ethanol: C-C, C-O, O-H, 5 C-H
    perm = np.random.default_rng(3).permutation(9)
    order = match_atoms(xtb_fine.numbers[perm], positions[perm], xtb_fine.numbers, bonds)
    assert list(xtb_fine.numbers[perm][order]) == list(xtb_fine.numbers)
    assert set(infer_bonds(xtb_fine.numbers, positions[perm][order])) == set(bonds)


def test_automorphism_counts(xtb_fine):
    bonds = infer_bonds(xtb_fine.numbers, xtb_fine.positions[0])
    assert len(automorphisms(xtb_fine.numbers, bonds)) == 12  # 3! methyl × 2! methylene
    ring = [(i, (i + 1) % 6) for i in range(6)] + [(i, i + 6) for i in range(6)]
    assert len(automorphisms([6] * 6 + [1] * 6, ring)) == 12  # benzene's graph: D6


def test_different_molecule_is_refused(xtb_fine):
    bonds = infer_bonds(xtb_fine.numbers, xtb_fine.positions[0])
    dimethyl_ether_bonds = [(0, 2), (1, 2)] + [(0, 3), (0, 4), (0, 5), (1, 6), (1, 7), (1, 8)]
    with pytest.raises(GraphMismatch):
        match_atoms(ETHANOL, xtb_fine.positions[0], ETHANOL, dimethyl_ether_bonds)
    assert match_atoms(ETHANOL, xtb_fine.positions[0], ETHANOL, bonds) is not None


def test_kabsch_recovers_a_rotation():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(9, 3))
    target -= target.mean(0)
    rotation = random_rotation(1)
    mobile = (target @ rotation.T)[None]
    found = kabsch_rotations(mobile, target, np.ones(9))
    np.testing.assert_allclose(mobile[0] @ found[0], target, atol=1e-12)


def test_best_order_does_not_depend_on_the_input_order(xtb_fine):
    numbers, positions = xtb_fine.numbers, xtb_fine.positions[5]
    bonds = infer_bonds(numbers, xtb_fine.positions[0])
    symmetries = automorphisms(numbers, bonds)
    chosen = []
    for seed in range(4):
        perm = np.random.default_rng(seed).permutation(9)
        order = match_atoms(numbers[perm], positions[perm], numbers, bonds)
        order = best_order(order, symmetries, positions[perm], xtb_fine.positions[0], xtb_fine.masses)
        chosen.append(positions[perm][order])
    for other in chosen[1:]:
        np.testing.assert_array_equal(other, chosen[0])


# ----------------------------------------------------------------------------- models
def tiny_model(arch, bidirectional=True):
    config = default_config(arch, ETHANOL, bidirectional=bidirectional)
    config.update(width=16, depth=2, hidden=8 if config["hidden"] else 0)
    torch.manual_seed(0)
    model = build_model(config)
    model.inverse_distance_mean.fill_(0.5)
    model.inverse_distance_std.fill_(0.3)
    return model


def window_batch(xtb_fine, n=3, k=2, factor=10):
    fine = xtb_fine[::2]  # 1 fs
    starts = [0, 150, 300][:n]
    x = np.array([fine.positions[s : s + (2 * k) * factor : factor] for s in starts])
    v = np.array([fine.velocities[s : s + (2 * k) * factor : factor] for s in starts])
    x = x - x.mean(axis=2, keepdims=True)
    as_t = lambda a: torch.as_tensor(a)  # noqa: E731
    return (as_t(x[:, :k]), as_t(v[:, :k])), (as_t(x[:, k:]), as_t(v[:, k:]))


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_every_architecture_reproduces_the_gap_ends(xtb_fine, arch, bidirectional):
    model = tiny_model(arch, bidirectional).eval()
    start, end = window_batch(xtb_fine, k=model.context)
    x, v, disagreement = model.interpolate(start, end, 10, 1.0)
    assert x.shape == (3, 11, 9, 3) and v.shape == x.shape and disagreement.shape == (3, 11)
    torch.testing.assert_close(x[:, 0], start[0][:, -1], rtol=0, atol=1e-12)
    torch.testing.assert_close(v[:, 0], start[1][:, -1], rtol=0, atol=1e-12)
    if bidirectional:
        torch.testing.assert_close(x[:, -1], end[0][:, 0], rtol=0, atol=1e-12)
        assert (disagreement[:, 1:-1] > 0).all()
    else:
        assert (disagreement == 0).all()


def test_shooting_recovers_the_velocities_of_the_models_own_dynamics(xtb_fine):
    """Positions-only input: coarse frames that the model's own (time-reversible) dynamics
    connect exactly give back the velocities that made them, far better than the spline's."""
    from scipy.interpolate import CubicSpline

    from mdsr_plugin.neural.shooting import estimate_velocities

    model = tiny_model("hnn").eval()  # velocity Verlet on a conservative force: reversible
    fine = xtb_fine[::2]
    x = torch.as_tensor(fine.positions[:1] - fine.positions[0].mean(axis=0))
    v = torch.as_tensor(fine.velocities[:1])
    positions, velocities = [x[0]], [v[0]]
    with torch.no_grad():
        for _ in range(8):  # 8 gaps of 10 steps of 1 fs
            xs, vs = model.rollout(x, v, 10, 1.0)
            x, v = xs[:, -1], vs[:, -1]
            positions.append(x[0])
            velocities.append(v[0])
    positions, velocities = torch.stack(positions).numpy(), torch.stack(velocities).numpy()
    estimated = estimate_velocities(model, positions, 10.0, 10)
    spline = CubicSpline(np.arange(9), positions.reshape(9, -1), axis=0)(np.arange(9), 1).reshape(positions.shape) / 10
    assert np.abs(spline - velocities).max() > 5e-4  # Å/fs: the starting guess is far off
    np.testing.assert_allclose(estimated, velocities, rtol=0, atol=5e-6)


def test_shooting_normal_equations_match_the_dense_least_squares_step():
    """The banded block solve equals the Gauss–Newton step of the explicit residual Jacobian."""
    from mdsr_plugin.neural.shooting import _gauss_newton_step

    rng = np.random.default_rng(4)
    g, m, t = 5, 6, 20.0
    residuals = tuple(rng.normal(size=(g, m)) for _ in range(4))
    jacobians = tuple(rng.normal(size=(g, m, m)) for _ in range(4))
    jfx, jfv, jbx, jbv = jacobians
    dense = np.zeros((g, 4 * m, (g + 1) * m))  # residuals of gap k against all velocities
    eye, zero = np.eye(m), np.zeros((m, m))
    for k in range(g):
        dense[k, :, k * m : (k + 1) * m] = np.vstack([jfx[k], jfv[k] * t, zero, eye * t])
        dense[k, :, (k + 1) * m : (k + 2) * m] = np.vstack([zero, -eye * t, -jbx[k], -jbv[k] * t])
    jacobian = dense.reshape(g * 4 * m, -1)
    r = np.concatenate(residuals, axis=1).reshape(-1)
    expected = np.linalg.lstsq(jacobian, -r, rcond=None)[0]
    np.testing.assert_allclose(_gauss_newton_step(residuals, jacobians, t).ravel(), expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_batched_equals_one_by_one(xtb_fine, arch):
    model = tiny_model(arch).eval()
    start, end = window_batch(xtb_fine, k=model.context)
    together, _, _ = model.interpolate(start, end, 10, 1.0)
    for i in range(3):
        alone, _, _ = model.interpolate(tuple(a[i : i + 1] for a in start), tuple(a[i : i + 1] for a in end), 10, 1.0)
        torch.testing.assert_close(alone[0], together[i], rtol=0, atol=1e-10)


def test_hamiltonian_force_is_rotation_equivariant(xtb_fine):
    model = tiny_model("hnn").eval()
    x = torch.as_tensor(xtb_fine.positions[:4])
    rotation = torch.as_tensor(random_rotation(2))
    torch.testing.assert_close(model.forces(x @ rotation.T), model.forces(x) @ rotation.T, rtol=0, atol=1e-10)


def test_checkpoint_round_trip_and_tampering(tmp_path, xtb_fine):
    model = tiny_model("lstm").eval()
    card = {"id": "tiny", "fine_dt_fs": 1.0, "factors": [10], "bonds": [], "numbers": ETHANOL}
    card_file = save_checkpoint(model, card, tmp_path / "tiny")
    reloaded, read_back = load_checkpoint(card_file)
    start, end = window_batch(xtb_fine)
    torch.testing.assert_close(reloaded.interpolate(start, end, 10, 1.0)[0], model.interpolate(start, end, 10, 1.0)[0])
    assert read_back["config"] == model.config and not any(p.requires_grad for p in reloaded.parameters())
    # a weights file changed after the card was written is refused
    weights = tmp_path / "tiny.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 does not match its model card"):
        load_checkpoint(card_file)
    with pytest.raises(CheckpointError, match="registry manifest"):
        load_checkpoint(card_file, expected_card_sha256="0" * 64)


def test_checkpoint_weights_are_as_readable_as_its_card(tmp_path):
    """safetensors creates its file 0600: colleagues could read a card but not its weights."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        card_file = save_checkpoint(tiny_model("hnn"), {"id": "t", "fine_dt_fs": 1.0, "factors": [10], "bonds": []},
                                    tmp_path / "t")
    finally:
        os.umask(old)
    modes = {stat.S_IMODE(path.stat().st_mode) for path in (card_file, tmp_path / "t.safetensors")}
    assert modes == {0o644}


def test_checkpoint_files_hold_no_pickles(tmp_path):
    model = tiny_model("hnn")
    save_checkpoint(model, {"id": "t", "fine_dt_fs": 1.0, "factors": [10], "bonds": []}, tmp_path / "t")
    raw = (tmp_path / "t.safetensors").read_bytes()
    assert b"\x80\x02" not in raw[:8] and raw[8:9] == b"{"  # safetensors: length + JSON header
    json.loads((tmp_path / "t.json").read_text())


# ----------------------------------------------------------------------------- training + method
@pytest.fixture(scope="session")
def trained(tmp_path_factory, xtb_fine):
    """A registry directory with tiny checkpoints of each architecture, trained on xtb_fine."""
    directory = tmp_path_factory.mktemp("models")
    source = directory / "ethanol.h5md"
    from mdsr_plugin.io import write_trajectory

    write_trajectory(source, xtb_fine)
    cards = {}
    for arch in ("lstm", "node"):
        settings = TrainingSettings(arch=arch, seed=1, extra={"molecule": "ethanol"}, **TINY)
        cards[arch] = train([source], directory / f"ethanol-bi{arch}", settings, progress=False)
    return directory, source, cards


@pytest.fixture
def registry(trained, monkeypatch):
    directory, source, cards = trained
    monkeypatch.setenv("MDSR_MODELS_PATH", str(directory))
    return directory, source, cards


def coarse_from(xtb_fine, stride=20):
    return xtb_fine[:: stride][:30]  # 10 fs coarse → factor 10 gives the 1 fs the models serve


@pytest.mark.slow
def test_training_writes_card_manifest_and_log(registry):
    directory, _, cards = registry
    card = json.loads(cards["lstm"].read_text())
    assert card["config"]["arch"] == "lstm" and card["factors"] == [10] and card["fine_dt_fs"] == 1.0
    assert card["numbers"] == ETHANOL and len(card["bonds"]) == 8
    assert {"position_mae", "neural", "hermite", "spline", "neural_positions_only"} <= set(card["validation"])
    assert card["validation"]["hermite"]["position_mae"] > 0
    assert {"position_mae", "hermite_position_mae"} <= set(card["validation"]["windows"])
    assert card["training"]["settings"]["seed"] == 1
    assert {e.id for e in list_models()} >= {"ethanol-bilstm", "ethanol-binode"}
    lines = (directory / "ethanol-bilstm.log.jsonl").read_text().splitlines()
    assert [json.loads(line)["stage"] for line in lines] == ["forces", "rollout"]


@pytest.mark.slow
def test_training_resumes_where_it_stopped(tmp_path, trained):
    directory, source, _ = trained
    output = tmp_path / "resumable"
    settings = TrainingSettings(arch="hnn", seed=2, **{**TINY, "rollout_epochs": 1})
    train([source], output, settings, progress=False)
    first = (tmp_path / "resumable.log.jsonl").read_text().splitlines()
    settings.rollout_epochs = 2  # the interrupted run had more to do: run it again
    train([source], output, settings, progress=False)
    lines = (tmp_path / "resumable.log.jsonl").read_text().splitlines()
    assert lines[: len(first)] == first
    assert [json.loads(line)["epoch"] for line in lines] == [1, 1, 2]  # forces 1; rollout 1, then 2


@pytest.mark.slow
@pytest.mark.parametrize("model_id", ["ethanol-bilstm", "ethanol-binode"])
def test_neural_method_reproduces_coarse_frames_and_reports_disagreement(registry, xtb_fine, model_id):
    coarse = coarse_from(xtb_fine)
    fine = upsample(coarse, 10, "neural", model=model_id)
    assert fine.n_frames == (coarse.n_frames - 1) * 10 + 1
    np.testing.assert_array_equal(fine.positions[::10], coarse.positions)
    np.testing.assert_array_equal(fine.velocities[::10], coarse.velocities)
    assert fine.frame_data["disagreement"].shape == (fine.n_frames,)


@pytest.mark.slow
@pytest.mark.parametrize("model_id", ["ethanol-bilstm", "ethanol-binode"])
@pytest.mark.parametrize("positions_only", [False, True])
def test_rotated_translated_input_gives_rotated_translated_output(registry, xtb_fine, model_id, positions_only):
    # the node architecture is not rotation equivariant: positions-only input must be
    # fitted in each gap's canonical frame too, or its velocities depend on the orientation
    # (measured 0.03 Å when the fit ran in the input frame).  The fit runs in float64: in
    # float32 a one-ulp difference in the rollouts decided where it stopped, and moved these
    # tiny models' output by up to 1.6e-4 Å with the orientation and the machine.
    coarse = coarse_from(xtb_fine)
    rotation, shift = random_rotation(5), np.array([12.0, -3.0, 40.0])
    moved = replace(coarse, positions=coarse.positions @ rotation.T + shift, velocities=coarse.velocities @ rotation.T)
    if positions_only:
        coarse, moved = coarse.without("velocities", "forces"), moved.without("velocities", "forces")
    fine = upsample(coarse, 10, "neural", model=model_id)
    fine_moved = upsample(moved, 10, "neural", model=model_id)
    np.testing.assert_allclose(fine_moved.positions, fine.positions @ rotation.T + shift, atol=1e-6)
    np.testing.assert_allclose(fine_moved.velocities, fine.velocities @ rotation.T, atol=1e-6)


@pytest.mark.slow
def test_shuffled_atom_order_gives_the_same_reconstruction(registry, xtb_fine):
    coarse = coarse_from(xtb_fine)
    perm = np.random.default_rng(11).permutation(coarse.n_atoms)
    shuffled = replace(coarse, numbers=coarse.numbers[perm], masses=coarse.masses[perm],
                       positions=coarse.positions[:, perm], velocities=coarse.velocities[:, perm],
                       forces=coarse.forces[:, perm])
    fine = upsample(coarse, 10, "neural")
    fine_shuffled = upsample(shuffled, 10, "neural")
    np.testing.assert_allclose(fine_shuffled.positions, fine.positions[:, perm], atol=1e-10)


@pytest.mark.slow
def test_batch_size_does_not_change_results(registry, xtb_fine):
    from mdsr_plugin.neural.upsampler import LearnedUpsampler

    coarse = coarse_from(xtb_fine)
    one = upsample(coarse, 10, LearnedUpsampler(model="ethanol-bilstm", batch_gaps=1, precision="float64"))
    many = upsample(coarse, 10, LearnedUpsampler(model="ethanol-bilstm", batch_gaps=512, precision="float64"))
    np.testing.assert_allclose(one.positions, many.positions, rtol=0, atol=1e-10)


@pytest.mark.slow
def test_float32_inference_agrees_with_float64(registry, xtb_fine):
    coarse = coarse_from(xtb_fine)
    single = upsample(coarse, 10, "neural", model="ethanol-bilstm")  # float32, the default
    double = upsample(coarse, 10, "neural", model="ethanol-bilstm", precision="float64")
    np.testing.assert_allclose(single.positions, double.positions, rtol=0, atol=1e-5)
    np.testing.assert_allclose(single.velocities, double.velocities, rtol=0, atol=1e-6)
    # the coarse frames are the input's, to the last digit, in either precision
    np.testing.assert_array_equal(single.positions[::10], coarse.positions)
    with pytest.raises(MethodError, match="precision must be float32 or float64"):
        upsample(coarse, 10, "neural", model="ethanol-bilstm", precision="float16")


@pytest.mark.slow
def test_auto_uses_a_matching_checkpoint_and_positions_only_input(registry, xtb_fine):
    from mdsr_plugin.resolve import choose_auto

    coarse = coarse_from(xtb_fine)[:8]
    assert choose_auto(coarse, 10) == "neural"
    assert choose_auto(coarse, 20) != "neural"  # no checkpoint serves 0.5 fs output
    positions_only = coarse.without("velocities", "forces")
    fine = upsample(positions_only, 10, "neural")
    np.testing.assert_array_equal(fine.positions[::10], positions_only.positions)
    assert np.isfinite(fine.velocities).all()


def registry_copy(trained, folder):
    """A registry folder holding a copy of the trained ``ethanol-bilstm`` checkpoint (no manifest yet)."""
    import shutil

    copy = folder / "models"
    copy.mkdir()
    for f in trained[0].glob("ethanol-bilstm.*"):
        if f.suffix in (".json", ".safetensors"):
            shutil.copy(f, copy)
    return copy


@pytest.mark.slow
def test_auto_prefers_a_classical_method_its_held_out_data_show_better(tmp_path, trained, xtb_fine, monkeypatch):
    from mdsr_plugin.resolve import choose_auto

    copy = registry_copy(trained, tmp_path)
    card = json.loads((copy / "ethanol-bilstm.json").read_text())
    # held-out rows as bench/neural_accuracy.py --publish writes them: quintic (from frames
    # with forces) beats the checkpoint on average at factor 10, cubic Hermite does not
    rows = [{"factor": 10, "mode": "velocities", "method": m, "position_mae": e}
            for m, e in (("neural", 2e-4), ("neural", 1e-3), ("quintic", 1e-4), ("quintic", 8e-4),
                         ("hermite", 1e-3), ("hermite", 2e-3))]
    card["validation"]["held_out"] = {"rows": rows}
    (copy / "ethanol-bilstm.json").write_text(json.dumps(card))
    write_manifest(copy)
    # only this copy: the shipped ethanol checkpoint would fit the same input
    monkeypatch.setattr("mdsr_plugin.neural.registry.registry_dirs", lambda: [copy])
    coarse = coarse_from(xtb_fine)
    assert coarse.has_forces
    assert choose_auto(coarse, 10) == "quintic"
    assert choose_auto(coarse.without("forces"), 10) == "neural"
    assert choose_auto(coarse.without("velocities", "forces"), 10) == "neural"  # no rows for this mode


@pytest.mark.slow
def test_no_matching_checkpoint_is_one_clear_error(registry, small_traj):
    with pytest.raises(MethodError, match="no checkpoint fits .* available: .*ethanol-bilstm.* --method hermite"):
        upsample(small_traj.without("forces"), 4, "neural")


@pytest.mark.slow
def test_cli_model_option_summary_and_outputs(registry, xtb_fine, tmp_path, capsys):
    from mdsr_plugin.cli import main
    from mdsr_plugin.io import read_trajectory, write_trajectory

    source = tmp_path / "coarse.xyz"
    write_trajectory(source, coarse_from(xtb_fine))
    code = main([str(source), "--factor", "10", "-o", str(tmp_path / "fine.h5md"), "--model", "ethanol-binode"])
    out = capsys.readouterr().out
    assert code == 0 and "neural" in out and "ethanol-binode" in out and "disagreement" in out
    assert "no velocities" not in out
    positions_only = tmp_path / "positions.xyz"
    write_trajectory(positions_only, coarse_from(xtb_fine)[:6].without("velocities", "forces"))
    assert main([str(positions_only), "--factor", "10", "-o", str(tmp_path / "fitted.xyz"), "--model", "ethanol-bilstm"]) == 0
    assert "the input has no velocities: they were fitted by shooting" in capsys.readouterr().out
    assert "disagreement" in read_trajectory(tmp_path / "fine.h5md").frame_data
    assert main([str(source), "--factor", "10", "-o", str(tmp_path / "bad.xyz"), "--model", "nope"]) == 2
    # a mistyped id is a usage error, refused before the input is read
    assert "error: --model: no checkpoint 'nope'; registered:" in capsys.readouterr().err
    assert not (tmp_path / "bad.xyz").exists()
    assert main([str(source), "--factor", "10", "-o", str(tmp_path / "fine.xyz"), "--model", "ethanol-bilstm", "-q"]) == 0
    assert main([str(source), "--factor", "10", "-o", str(tmp_path / "fine64.xyz"), "--model", "ethanol-bilstm",
                 "--precision", "float64", "-q"]) == 0
    assert main([str(source), "--factor", "10", "-o", str(tmp_path / "half.xyz"), "--precision", "half"]) == 2
    assert "invalid choice: 'half'" in capsys.readouterr().err and not (tmp_path / "half.xyz").exists()
    import ase.io

    assert "disagreement" in ase.io.read(tmp_path / "fine.xyz", index=5).info


@pytest.mark.slow
def test_models_cli(registry, capsys):
    from mdsr_plugin.neural.cli import models_main

    assert models_main(["list"]) == 0
    out = capsys.readouterr().out
    assert "ethanol-bilstm" in out and "bilstm" in out
    assert models_main(["show", "ethanol-binode", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["arch"] == "node"
    assert models_main(["show", "ethanol-binode"]) == 0
    summary = capsys.readouterr().out
    assert "bidirectional NODE" in summary and "C2H6O, 9 atoms, 8 bonds" in summary
    assert "factors 10 at a 1 fs output step" in summary
    # tiny test models have no held-out rows of the registry's data: the end of their own training data
    assert "held out      the end of its training data: position MAE" in summary and "trained on    " in summary
    assert models_main(["show", "unknown-model"]) == 1
    assert "no checkpoint 'unknown-model'" in capsys.readouterr().err


@pytest.mark.slow
def test_altered_card_is_refused_by_the_manifest(tmp_path, trained, xtb_fine, monkeypatch):
    copy = registry_copy(trained, tmp_path)
    write_manifest(copy)
    card = json.loads((copy / "ethanol-bilstm.json").read_text())
    card["factors"] = [10, 20]
    (copy / "ethanol-bilstm.json").write_text(json.dumps(card))
    monkeypatch.setenv("MDSR_MODELS_PATH", str(copy))
    with pytest.raises(CheckpointError, match="registry manifest"):
        upsample(coarse_from(xtb_fine), 10, "neural", model="ethanol-bilstm")


@pytest.mark.slow
@pytest.mark.parametrize("device", CUDA)
def test_cuda_matches_cpu(registry, xtb_fine, device):
    coarse = coarse_from(xtb_fine)
    cpu = upsample(coarse, 10, "neural", model="ethanol-bilstm")
    gpu = upsample(coarse, 10, "neural", model="ethanol-bilstm", device=device)
    np.testing.assert_allclose(gpu.positions, cpu.positions, atol=1e-5)  # float32 on both
    cpu = upsample(coarse, 10, "neural", model="ethanol-bilstm", precision="float64")
    gpu = upsample(coarse, 10, "neural", model="ethanol-bilstm", device=device, precision="float64")
    np.testing.assert_allclose(gpu.positions, cpu.positions, atol=1e-8)


def test_packaged_models_are_found_from_an_installed_wheel(tmp_path):
    """Build a wheel, install it into an empty folder, and list the registry from there."""
    import os
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(root)], check=True)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    shipped = json.loads((root / "models/manifest.json").read_text())["models"]
    names = zipfile.ZipFile(wheel).namelist()
    assert "mdsr_plugin/_models/manifest.json" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # a wheel is installed by unpacking it
    script = ("import mdsr_plugin, json; from mdsr_plugin.neural.registry import list_models, registry_dirs; "
              "print(json.dumps([mdsr_plugin.__file__, str(registry_dirs()[0]), [e.id for e in list_models()]]))")
    env = {**os.environ, "PYTHONPATH": str(site), "MDSR_MODELS_PATH": ""}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    module, directory, ids = json.loads(result.stdout)
    assert module.startswith(str(site)) and directory.startswith(str(site))
    assert ids == [record["id"] for record in shipped]


def test_models_show_says_what_a_user_learned_card_was_learned_from_and_held_out():
    """Cards of mdsr-train and --from-coarse said 'held out: not measured' and named no data."""
    import copy

    from mdsr_plugin.neural.cli import describe_card
    from mdsr_plugin.neural.registry import get_model_entry

    shipped = get_model_entry("ethanol-bilstm-f20-1fs").card
    learned = copy.deepcopy(shipped)
    learned["training"] = {"files": ["aimd.xyz"], "from_coarse": True, "warm_start": "ethanol-bilstm-f20-1fs",
                           "complete": True}
    learned["validation"] = {"held_out_gaps": {"gap_end_position_mae": 2.96e-2, "force_relative_mae": 0.084}}
    text = describe_card(learned, "mine/eth.json")
    assert "trained on    1 file(s): aimd.xyz (its own coarse frames; started from ethanol-bilstm-f20-1fs)" in text
    assert "gap-end position MAE 2.96e-02 Å, forces 8% off the stored ones" in text
    trained = copy.deepcopy(shipped)
    trained["training"] = {"files": ["ref.h5md"], "provenance": {}}
    trained["validation"] = {"neural": {"position_mae": 6.42e-3}, "hermite": {"position_mae": 2.12e-2}}
    text = describe_card(trained, "mine/eth-a.json")
    assert "1 file(s): ref.h5md" in text and "position MAE 6.42e-03 Å, cubic Hermite 2.12e-02 Å (3.3x)" in text
