"""Periodic boxes learned from their own coarse frames: the local integrator, its
neighbour lists, learning, and its use through the pipeline.

The data are real dynamics: a 32-atom copper box on ASE's EMT potential (periodic,
with forces; milliseconds per step), NVE at 800 K, written wrapped like AIMD output;
and, for the prior's forces, two waters in a 3.9 Å cell on GFN1-xTB (tblite).
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from mdsr_plugin.trajectory import Trajectory

FACTOR = 5  # coarse 5 fs -> fine 1 fs: cheap gaps for learning in tests


def _emt_box(n_steps: int, seed: int = 3) -> Trajectory:
    """Copper fcc 2x2x2 (32 atoms, 7.22 Å cube, smaller than two cutoffs), 1 fs frames, wrapped."""
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from ase.md.verlet import VelocityVerlet
    from ase import units

    from mdsr_plugin.units import ASE_TIME_PER_FS

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=seed)
    atoms.calc = EMT()
    MaxwellBoltzmannDistribution(atoms, temperature_K=800, rng=np.random.default_rng(seed))
    Stationary(atoms)
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    dyn.run(50)
    x, v, f = [], [], []
    for _ in range(n_steps + 1):
        x.append(atoms.get_positions(wrap=True))
        v.append(atoms.get_velocities() * ASE_TIME_PER_FS)
        f.append(atoms.get_forces())
        dyn.run(1)
    return Trajectory(numbers=atoms.numbers, masses=atoms.get_masses(), positions=np.array(x),
                      velocities=np.array(v), forces=np.array(f), times=np.arange(n_steps + 1) * 1.0,
                      cell=atoms.cell.array, pbc=np.ones(3, bool))


@pytest.fixture(scope="module")
def copper_fine() -> Trajectory:
    """330 fs of the copper box at 1 fs."""
    return _emt_box(330)


@pytest.fixture(scope="module")
def copper_model(copper_fine, tmp_path_factory):
    """A box integrator learned (briefly) from the copper box's 5 fs coarse frames."""
    from mdsr_plugin.neural.adapt import adapt
    from mdsr_plugin.neural.adapt_box import BoxAdaptSettings

    settings = BoxAdaptSettings(fine_dt=1.0, force_epochs=4, gap_epochs=2, gaps_per_epoch=4, seed=1)
    return adapt([copper_fine[::FACTOR]], tmp_path_factory.mktemp("box") / "cu", settings, progress=False,
                 manifest=False)


def _model(elements=(1, 8), **options):
    from mdsr_plugin.neural.local import LocalIntegrator, default_local_config

    model = LocalIntegrator(default_local_config(elements, **options)).double().eval()
    torch.manual_seed(0)
    for p in model.parameters():  # weights of order one: every feature matters
        torch.nn.init.normal_(p, std=0.3)
    return model


# ----------------------------------------------------------------------------- neighbour lists
@pytest.mark.parametrize("cutoff", [2.5, 4.0, 7.5])
def test_neighbour_list_equals_ase_in_a_triclinic_cell_also_smaller_than_two_cutoffs(cutoff):
    import ase
    from ase.neighborlist import neighbor_list

    from mdsr_plugin.neural.local import neighbour_list

    rng = np.random.default_rng(0)
    cell = np.array([[6.0, 0.0, 0.0], [1.5, 5.5, 0.0], [0.7, -0.9, 5.0]])
    x = rng.random((20, 3)) @ cell + rng.normal(0, 3, (20, 3))  # unwrapped: atoms outside the cell
    ours = neighbour_list(torch.tensor(x)[None], torch.tensor(cell)[None], [True] * 3, cutoff)
    i, j, shifts = neighbor_list("ijS", ase.Atoms("H20", positions=x, cell=cell, pbc=True), cutoff)
    expected = set(zip(i.tolist(), j.tolist(), map(tuple, shifts.tolist())))
    found = set(zip(ours.first.tolist(), ours.second.tolist(),
                    (tuple(int(round(s)) for s in image) for image in ours.images.tolist())))
    assert found == expected
    assert len(ours.first) == len(i)  # and no pair twice


def test_neighbour_list_of_a_batch_is_each_frames_list():
    from mdsr_plugin.neural.local import neighbour_list

    rng = np.random.default_rng(1)
    cells = torch.tensor(np.stack([np.eye(3) * 7.0, np.diag([6.0, 8.0, 7.5])]))
    x = torch.tensor(rng.random((2, 10, 3)) * 7)
    batch = neighbour_list(x, cells, [True] * 3, 3.5)
    for b in range(2):
        alone = neighbour_list(x[b:b + 1], cells[b:b + 1], [True] * 3, 3.5)
        mine = batch.frame == b
        assert sorted(zip((batch.first[mine] - 10 * b).tolist(), (batch.second[mine] - 10 * b).tolist())) == \
            sorted(zip(alone.first.tolist(), alone.second.tolist()))


def test_neighbour_list_is_the_same_whatever_frames_and_images_are_done_at_once():
    from mdsr_plugin.neural.local import neighbour_list

    rng = np.random.default_rng(6)
    cells = torch.tensor(np.stack([np.eye(3) * 5.0, np.diag([4.5, 6.0, 5.5]), np.eye(3) * 6.0]))
    x = torch.tensor(rng.random((3, 9, 3)) * 5)

    def pairs(nl):
        images = (tuple(int(round(c)) for c in image) for image in nl.images.tolist())
        return sorted(zip(nl.frame.tolist(), nl.first.tolist(), nl.second.tolist(), images))

    everything = neighbour_list(x, cells, [True] * 3, 5.5)  # 27 images, all frames in one pass
    assert len(everything.first) > 9 * 3 * 8  # farther images are in it
    for work in (9 * 9, 9 * 9 * 5, 9 * 9 * 27 * 2):  # one image at a time, a few, two frames at once
        assert pairs(neighbour_list(x, cells, [True] * 3, 5.5, work_elements=work)) == pairs(everything)


def test_a_repeated_neighbour_list_gives_each_displaced_copy_its_own_lists_forces():
    from mdsr_plugin.neural.local import repeated_neighbour_list

    rng = np.random.default_rng(7)
    model = _model(skin=1.0)
    x, cell, numbers, masses = _water_like(rng)
    model.set_atoms(numbers, masses)
    copies = 4
    displaced = x.repeat_interleave(copies, 0) + 1e-3 * torch.tensor(rng.normal(size=(2 * copies, *x.shape[1:])))
    cells = cell.repeat_interleave(copies, 0)
    shared = repeated_neighbour_list(model.neighbours(x, cell), copies, displaced)
    assert shared.frame.max().item() == 2 * copies - 1
    torch.testing.assert_close(model.forces(displaced, cells, shared), model.forces(displaced, cells),
                               rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- the energy
def _water_like(rng, n=12, box=7.0):
    x = torch.tensor(rng.random((2, n, 3)) * box)
    cell = torch.tensor(np.array([[box, 0, 0], [0.8, box, 0], [0.3, -0.5, box]]))[None].repeat(2, 1, 1)
    return x, cell, [8, 1, 1] * (n // 3), [16.0, 1.0, 1.0] * (n // 3)


def test_energy_is_invariant_to_lattice_translations_permutations_and_rotations():
    rng = np.random.default_rng(2)
    model = _model()
    x, cell, numbers, masses = _water_like(rng)
    model.set_atoms(numbers, masses)

    def energy(x, cell):
        return model.energy(x, cell, model.neighbours(x, cell))

    reference = energy(x, cell)
    shifted = x.clone()
    shifted[:, 4] += cell[:, 1] - 2 * cell[:, 2]  # one atom by a lattice vector
    perm = torch.tensor([3, 4, 5, 0, 1, 2, 6, 8, 7, 9, 10, 11])  # molecules and like atoms swapped
    rotation = torch.tensor(np.linalg.qr(rng.normal(size=(3, 3)))[0])
    assert torch.allclose(energy(shifted, cell), reference, atol=1e-12)
    assert torch.allclose(energy(x[:, perm], cell), reference, atol=1e-12)
    assert torch.allclose(energy(x @ rotation, cell @ rotation), reference, atol=1e-12)
    assert (reference[0] - reference[1]).abs() > 1e-3  # the two frames differ: the test can fail


def test_forces_are_minus_the_energy_gradient_and_continuous_at_the_cutoff():
    rng = np.random.default_rng(3)
    model = _model()
    x, cell, numbers, masses = _water_like(rng)
    model.set_atoms(numbers, masses)
    nl = model.neighbours(x, cell)
    forces = model.forces(x, cell, nl)
    eps = 1e-6
    for atom, axis in [(0, 0), (5, 2), (10, 1)]:
        plus, minus = x.clone(), x.clone()
        plus[0, atom, axis] += eps
        minus[0, atom, axis] -= eps
        numeric = -(model.energy(plus, cell, nl) - model.energy(minus, cell, nl))[0].detach() / (2 * eps)
        assert numeric.item() == pytest.approx(forces[0, atom, axis].item(), rel=1e-6, abs=1e-9)
    # two atoms alone, moved across the cutoff: the force goes to zero smoothly
    model.set_atoms([8, 8], [16.0, 16.0])
    cutoff = model.cutoff
    big = torch.eye(3, dtype=torch.float64)[None] * 30

    def pair_force(d):
        pair = torch.tensor([[[0.0, 0, 0], [d, 0, 0]]], dtype=torch.float64)
        return float(model.forces(pair, big)[0, 1, 0])

    inside = abs(pair_force(cutoff - 0.5))
    assert inside > 1e-3
    # the cosine envelope's slope vanishes linearly at the cutoff: so does the force
    assert abs(pair_force(cutoff - 1e-4)) < 1e-2 * inside
    assert pair_force(cutoff - 2e-5) == pytest.approx(pair_force(cutoff - 1e-5) * 2, rel=1e-3)
    assert pair_force(cutoff + 1e-4) == 0.0


def test_the_verlet_list_gives_the_forces_of_a_fresh_list_until_it_is_rebuilt():
    rng = np.random.default_rng(4)
    model = _model(skin=1.0)
    x, cell, numbers, masses = _water_like(rng)
    model.set_atoms(numbers, masses)
    nl = model.neighbours(x, cell)
    step = torch.tensor(rng.normal(size=x.shape))
    moved = x + 0.49 * step / step.norm(dim=-1, keepdim=True)  # every atom by just under skin / 2
    assert torch.allclose(model.forces(moved, cell, nl), model.forces(moved, cell), atol=1e-12)


def test_interpolation_reproduces_both_coarse_frames_and_batched_equals_one_by_one():
    rng = np.random.default_rng(5)
    model = _model()
    x, cell, numbers, masses = _water_like(rng)
    model.set_atoms(numbers, masses)
    v0, v1 = (torch.tensor(rng.normal(0, 0.005, x.shape)) for _ in range(2))
    x1 = x + 5 * v0
    fx, fv, _ = model.interpolate((x, v0), (x1, v1), 5, 1.0, (cell, cell))
    assert fx.shape == (2, 6, 12, 3)
    assert torch.equal(fx[:, 0], x) and torch.allclose(fx[:, -1], x1, atol=1e-14)
    assert torch.equal(fv[:, 0], v0) and torch.allclose(fv[:, -1], v1, atol=1e-14)
    one, _, _ = model.interpolate((x[1:], v0[1:]), (x1[1:], v1[1:]), 5, 1.0, (cell[1:], cell[1:]))
    assert torch.allclose(one[0], fx[1], atol=1e-12)


def test_unknown_elements_are_refused_in_one_line():
    model = _model(elements=(1, 8))
    with pytest.raises(ValueError, match=r"knows elements \[1, 8\], not \[6\]"):
        model.set_atoms([8, 1, 6], [16.0, 1.0, 12.0])


# ----------------------------------------------------------------------------- learning
def test_learning_a_box_writes_a_verified_local_checkpoint_with_its_held_out_frames(copper_model, copper_fine):
    from mdsr_plugin.neural.checkpoint import load_checkpoint

    card = json.loads(copper_model.read_text())
    assert card["config"]["arch"] == "local" and card["config"]["elements"] == [29]
    assert card["factors"] == [FACTOR] and card["fine_dt_fs"] == 1.0
    training = card["training"]
    assert training["from_coarse"] and training["epochs"] == {"forces": 4, "gaps": 2}
    n_coarse = copper_fine[::FACTOR].n_frames
    held = training["held_out_frames"]
    assert held["stop"] == n_coarse and n_coarse - held["start"] == training["gaps"]["held_out"] + 1
    assert training["gaps"]["held_out"] >= 16
    held_out = card["validation"]["held_out_gaps"]
    # learned: its forces are those of EMT to within a fraction
    assert held_out["force_relative_mae"] < 0.5
    model, _ = load_checkpoint(copper_model)
    assert model.arch == "local"
    assert not (copper_model.parent / "manifest.json").exists()


def test_learning_a_box_resumes_and_a_finished_run_is_reused(copper_fine, tmp_path):
    from mdsr_plugin.neural.adapt import adapt
    from mdsr_plugin.neural.adapt_box import BoxAdaptSettings

    settings = BoxAdaptSettings(fine_dt=1.0, force_epochs=3, gap_epochs=1, gaps_per_epoch=2, max_minutes=1e-6)
    coarse = copper_fine[::FACTOR]
    stem = tmp_path / "cu"
    card = adapt([coarse], stem, settings, progress=False, manifest=False)
    first = json.loads(card.read_text())["training"]
    assert not first["complete"] and first["epochs"] == {"forces": 1, "gaps": 0}
    while not json.loads(card.read_text())["training"]["complete"]:
        card = adapt([coarse], stem, settings, progress=False, manifest=False)
    done = json.loads(card.read_text())["training"]
    assert done["epochs"] == {"forces": 3, "gaps": 1}
    assert len((tmp_path / "cu.log.jsonl").read_text().splitlines()) == 4
    stamp = card.stat().st_mtime_ns
    (tmp_path / "cu.train.pt").unlink()
    assert adapt([coarse], stem, settings, progress=False, manifest=False) == card
    assert card.stat().st_mtime_ns == stamp  # reused, not learned again


def test_a_resumed_box_run_without_velocities_keeps_the_velocities_it_fitted(copper_fine, tmp_path, monkeypatch):
    """Refitting on resume would cost minutes and use a model part-way through its gap stage."""
    from mdsr_plugin.neural import adapt_box
    from mdsr_plugin.neural.adapt import adapt
    from mdsr_plugin.neural.adapt_box import BoxAdaptSettings

    fits = []
    real_fit = adapt_box._fitted_velocities
    monkeypatch.setattr(adapt_box, "_fitted_velocities", lambda *a: fits.append(1) or real_fit(*a))
    coarse = copper_fine[:201:FACTOR].without("velocities")
    settings = BoxAdaptSettings(fine_dt=1.0, force_epochs=1, gap_epochs=2, gaps_per_epoch=2, max_minutes=1e-6)
    stem = tmp_path / "cu"
    for _ in range(3):  # forces; first gap epoch (the fit); second gap epoch, resumed
        card = adapt([coarse], stem, settings, progress=False, manifest=False)
    assert json.loads(card.read_text())["training"]["epochs"] == {"forces": 1, "gaps": 2}
    assert len(fits) == 1
    with np.load(tmp_path / "cu.train-velocities.npz", allow_pickle=False) as kept:
        assert kept["file_0"].shape == coarse.positions.shape
    # another run (other settings) in the same place fits its own
    adapt([coarse], stem, BoxAdaptSettings(**{**vars(settings), "seed": 9, "max_minutes": None}), progress=False,
          manifest=False)
    assert len(fits) == 2


@pytest.mark.parametrize("case", ["too few frames", "positions only", "velocities in one file only",
                                  "box and molecule"])
def test_a_box_that_cannot_be_learned_from_is_one_line_and_writes_nothing(case, copper_fine, gfn1_fine, tmp_path):
    from mdsr_plugin.neural.adapt import AdaptError, adapt
    from mdsr_plugin.neural.adapt_box import BoxAdaptSettings

    coarse = copper_fine[::FACTOR]
    inputs = {"too few frames": [coarse[:15]], "positions only": [coarse.without("velocities").without("forces")],
              "velocities in one file only": [coarse, coarse.without("velocities")],
              "box and molecule": [coarse, gfn1_fine[::5]]}[case]
    message = {"too few frames": r"^14 usable gaps; learning from coarse frames needs at least 20 \(21 coarse frames "
                                 r"of one run\)$",
               "positions only": r"positions only: learning a periodic box from coarse frames needs their velocities "
                                 r"or their forces, or a prior's forces \(--adapt-prior gfn2-xtb; automatic where "
                                 r"tblite is installed\)$",
               "velocities in one file only": "has no velocities and .* has: learn from files that store the same",
               "box and molecule": "learn a box and a molecule separately"}[case]
    with pytest.raises(AdaptError, match=message) as err:
        # positions only: refused without a prior (with the automatic one, tblite's forces are computed)
        adapt(inputs, tmp_path / "m", BoxAdaptSettings(fine_dt=1.0, prior="none"), progress=False)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_a_box_gets_a_prior_only_for_frames_without_forces_and_automatically_only_without_velocities(copper_fine,
                                                                                                      caplog):
    from mdsr_plugin.neural.adapt_box import _resolved_box_prior

    coarse = copper_fine[::FACTOR]
    with_forces, velocities_only = coarse.without("velocities"), coarse.without("forces")
    positions_only = velocities_only.without("velocities")
    assert _resolved_box_prior("gfn1-xtb", [with_forces]) is None  # stored forces need no stand-in
    assert _resolved_box_prior("gfn1-xtb", [velocities_only]) == "gfn1-xtb"  # asked for
    assert _resolved_box_prior("auto", [velocities_only]) is None  # learnable without: as before
    assert _resolved_box_prior("none", [positions_only]) is None
    assert _resolved_box_prior(None, [positions_only]) is None
    if importlib.util.find_spec("tblite") is not None:
        assert _resolved_box_prior("auto", [positions_only]) == "gfn2-xtb"
        assert _resolved_box_prior("auto", [coarse, positions_only]) == "gfn2-xtb"
    # files with their own forces beside files that get the prior's: said, as two Hamiltonians
    caplog.clear()
    assert _resolved_box_prior("gfn1-xtb", [with_forces, positions_only, positions_only]) == "gfn1-xtb"
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == ["1 of 3 files store forces and the others get gfn1-xtb's: the forces stage learns from both "
                      "Hamiltonians (give files of one kind for one)"]


@pytest.fixture(scope="module")
def water_fine(tmp_path_factory) -> Trajectory:
    """Two waters in a 3.9 Å cell (liquid density) on GFN1-xTB, NVE 300 K, 1 fs frames, 300 fs."""
    pytest.importorskip("tblite")
    from mdsr_plugin.io import read_trajectory
    from mdsr_plugin.reference import generate_reference

    path = tmp_path_factory.mktemp("water") / "water2.h5md"
    generate_reference("water-box:2", path, hamiltonian="gfn1-xtb", thermostat="nve", temperature=300, steps=600,
                       equilibration=40, seed=2)
    return read_trajectory(path)[::2]


def test_a_box_with_positions_alone_learns_on_a_prior_s_forces_at_its_frames(water_fine, tmp_path):
    """XDATCAR's case: positions and the cell only.  The box is learned on GFN2-xTB's forces
    at its own coarse frames (the run is GFN1-xTB), its velocities fitted, and upsampled
    from positions alone better than the cubic spline."""
    from ase import Atoms

    from mdsr_plugin.hamiltonians import make_calculator
    from mdsr_plugin.io import read_trajectory
    from mdsr_plugin.metrics import position_mae, reconstructed_mask
    from mdsr_plugin.neural.adapt import adapt
    from mdsr_plugin.neural.adapt_box import BoxAdaptSettings
    from mdsr_plugin.neural.checkpoint import read_card
    from mdsr_plugin.periodic import Unwrapper
    from mdsr_plugin.pipeline import upsample

    coarse = water_fine[::FACTOR].without("velocities").without("forces")
    learn = coarse[:41]
    settings = BoxAdaptSettings(fine_dt=1.0, force_epochs=40, gap_epochs=3, gaps_per_epoch=8, seed=1, prior="auto")
    card_path = adapt([learn], tmp_path / "w", settings, progress=False, manifest=False)
    training = read_card(card_path)["training"]
    assert training["forces_from_prior"] == "gfn2-xtb" and training["velocities_fitted"] is True
    assert training["settings"]["prior"] == "gfn2-xtb"

    # the prior file holds the learning frames with GFN2-xTB's forces, checked against tblite
    prior = read_trajectory(tmp_path / "w.prior.h5md")
    np.testing.assert_array_equal(prior.positions, learn.positions)
    atoms = Atoms(numbers=learn.numbers, positions=learn.positions[7], cell=learn.cell[7], pbc=True)
    atoms.calc = make_calculator("gfn2-xtb")
    # (to the SCF's convergence)
    np.testing.assert_allclose(prior.forces[7], atoms.get_forces(), atol=1e-3)
    stored = water_fine[::FACTOR][:41].forces  # GFN1-xTB's: another Hamiltonian, close but not equal
    assert 0.02 < np.abs(prior.forces - stored).mean() / np.abs(stored).mean() < 0.5

    # a second call reuses the finished run and the prior file
    stamp = (tmp_path / "w.prior.h5md").stat().st_mtime_ns
    assert adapt([learn], tmp_path / "w", settings, progress=False, manifest=False) == card_path
    assert (tmp_path / "w.prior.h5md").stat().st_mtime_ns == stamp

    held = water_fine[200:]
    held_coarse = held[::FACTOR].without("velocities").without("forces")
    fine = upsample(held_coarse, FACTOR, "neural", model=str(card_path), self_validate=False)
    n = fine.n_frames
    assert n == (held_coarse.n_frames - 1) * FACTOR + 1
    np.testing.assert_array_equal(fine.positions[::FACTOR], held_coarse.positions)
    unwrap = Unwrapper(held.pbc)
    truth, mask = unwrap(held.positions[:n], held.cell[:n]), reconstructed_mask(n, FACTOR)
    spline = upsample(held_coarse, FACTOR, "spline", self_validate=False)
    # (1.28x better at this step after these few epochs; the learned figures at 10 and 20 fs are
    # in docs/benchmarks.md)
    assert position_mae(unwrap(fine.positions, fine.cell), truth, mask) < \
        0.85 * position_mae(unwrap(spline.positions, spline.cell), truth, mask)
    # the fitted coarse velocities are closer to the box's than the spline's derivative
    def velocity_error(result):
        return np.abs(result.velocities[::FACTOR] - held.velocities[:n:FACTOR]).mean()

    assert velocity_error(fine) < 0.8 * velocity_error(spline)


# ----------------------------------------------------------------------------- upsampling
def test_upsampling_a_wrapped_box_with_its_model_keeps_it_wrapped_and_close_to_the_truth(
        copper_model, copper_fine):
    from mdsr_plugin.metrics import position_mae, reconstructed_mask
    from mdsr_plugin.periodic import Unwrapper, is_wrapped
    from mdsr_plugin.pipeline import upsample

    held = copper_fine[250:]  # the last part, whose gaps the learning held out
    coarse = held[::FACTOR]
    fine = upsample(coarse, FACTOR, "neural", model=str(copper_model), self_validate=False)
    n = (coarse.n_frames - 1) * FACTOR + 1
    assert fine.n_frames == n
    assert is_wrapped(fine.positions, fine.cell, fine.pbc).all()  # as the input was
    np.testing.assert_array_equal(fine.positions[::FACTOR], coarse.positions)
    unwrap = Unwrapper(held.pbc)
    truth = unwrap(held.positions[:n], held.cell[:n])
    mine = Unwrapper(held.pbc)(fine.positions, fine.cell)
    mask = reconstructed_mask(n, FACTOR)
    error = position_mae(mine, truth, mask)
    linear = upsample(coarse, FACTOR, "linear", self_validate=False)
    assert error < 0.2 * position_mae(Unwrapper(held.pbc)(linear.positions, linear.cell), truth, mask)

def test_a_long_box_gets_the_prior_s_forces_at_every_k_th_frame_and_learns_its_forces_from_those(water_fine,
                                                                                                   tmp_path):
    from mdsr_plugin.neural.adapt import AdaptError, adapt
    from dataclasses import replace

    from mdsr_plugin.neural.adapt_box import BoxAdaptSettings, _BoxData, _prior_forces
    from mdsr_plugin.neural.checkpoint import read_card

    coarse = water_fine[::FACTOR].without("velocities").without("forces")[:41]
    forces, _, missing = _prior_forces([coarse], tmp_path / "w", "gfn1-xtb", 16, progress=False)
    assert missing == 0
    computed = np.isfinite(forces[0]).all(axis=(1, 2))
    np.testing.assert_array_equal(np.flatnonzero(computed), np.arange(0, 41, 3))  # 14 frames, every 3rd
    stored = water_fine[::FACTOR][:41].forces  # the run's own Hamiltonian: equal to the SCF's convergence
    np.testing.assert_allclose(forces[0][computed], stored[computed], atol=1e-3)
    data = _BoxData([replace(coarse, velocities=np.zeros_like(coarse.positions))], forces)  # as adapt first-guesses them
    (_, _), (train, held) = data.split(0.1)
    assert computed[train].all() and computed[held].all() and len(held) >= 1
    assert train.max() < held.min()  # no training force frame in the held-out part

    settings = BoxAdaptSettings(fine_dt=1.0, force_epochs=2, gap_epochs=1, gaps_per_epoch=2, seed=1,
                                prior="gfn1-xtb", prior_frames=16)
    card = read_card(adapt([coarse], tmp_path / "m", settings, progress=False, manifest=False))
    assert card["training"]["forces_from_prior"] == "gfn1-xtb" and card["training"]["settings"]["prior_frames"] == 16
    with pytest.raises(AdaptError, match="prior_frames must be at least 16, got 4"):
        adapt([coarse], tmp_path / "n", BoxAdaptSettings(**{**vars(settings), "prior_frames": 4}), progress=False)
    assert not list(tmp_path.glob("n*"))


def test_a_prior_cut_short_by_its_deadline_keeps_frames_spread_over_the_file_and_the_next_call_adds_the_rest(
        water_fine, tmp_path, monkeypatch):
    """A large box's single points take minutes each: past the deadline the work stops (after
    ``min_frames``), what was done is kept, and the next call computes only the rest, to the
    same forces as one uninterrupted call."""
    from mdsr_plugin.neural import prior
    from mdsr_plugin.neural.prior import prior_forces, spread_order

    coarse = water_fine[::FACTOR].without("velocities").without("forces")[:21]
    whole = prior_forces(coarse, tmp_path / "whole.h5md", hamiltonian="gfn1-xtb")
    calls = []
    real = prior._calculator
    monkeypatch.setattr(prior, "_calculator", lambda name: calls.append(name) or real(name))

    path = tmp_path / "w.prior.h5md"
    first = prior_forces(coarse, path, hamiltonian="gfn1-xtb", deadline=0.0, min_frames=5)
    have = np.isfinite(first).all(axis=(1, 2))
    np.testing.assert_array_equal(np.flatnonzero(have), [0, 4, 8, 16, 20])  # 0, 16, 8, 4, 20: the whole file
    assert np.isnan(first[~have]).all()
    # a fresh calculator per frame: the order does not matter (to the SCF's convergence)
    np.testing.assert_allclose(first[have], whole[have], rtol=0, atol=1e-6)
    assert not path.exists() and (tmp_path / "w.prior.h5md.partial.npz").is_file()

    calls.clear()
    second = prior_forces(coarse, path, hamiltonian="gfn1-xtb")
    assert len(calls) == 1 + 16  # the check that tblite is there, and the 16 frames left
    np.testing.assert_allclose(second, whole, rtol=0, atol=1e-6)
    assert path.is_file() and not (tmp_path / "w.prior.h5md.partial.npz").exists()
    # another box's partial file is not taken for this one's
    prior_forces(coarse[1:], tmp_path / "v.prior.h5md", hamiltonian="gfn1-xtb", deadline=0.0, min_frames=2)
    (tmp_path / "v.prior.h5md.partial.npz").rename(tmp_path / "u.prior.h5md.partial.npz")
    calls.clear()
    np.testing.assert_allclose(prior_forces(coarse, tmp_path / "u.prior.h5md", hamiltonian="gfn1-xtb"), whole,
                               rtol=0, atol=1e-6)
    assert len(calls) == 1 + 21
    assert sorted(spread_order(6).tolist()) == list(range(6)) and spread_order(1).tolist() == [0]


def test_a_box_whose_prior_outlasts_its_budget_is_learned_unfinished_and_afresh_once_the_prior_is_done(
        water_fine, tmp_path):
    from mdsr_plugin.io import read_trajectory
    from mdsr_plugin.neural.adapt import adapt
    from mdsr_plugin.neural.adapt_box import MIN_PRIOR_FRAMES, BoxAdaptSettings
    from mdsr_plugin.neural.checkpoint import read_card

    coarse = water_fine[::FACTOR].without("velocities").without("forces")[:41]
    settings = BoxAdaptSettings(fine_dt=1.0, force_epochs=2, gap_epochs=1, gaps_per_epoch=2, seed=1,
                                prior="gfn1-xtb")
    hurried = read_card(adapt([coarse], tmp_path / "w", BoxAdaptSettings(**{**vars(settings), "max_minutes": 0.0}),
                              progress=False, manifest=False))
    assert hurried["training"]["complete"] is False and hurried["training"]["forces_from_prior"] == "gfn1-xtb"
    with np.load(tmp_path / "w.prior.h5md.partial.npz", allow_pickle=False) as kept:
        assert np.isfinite(kept["forces"]).all(axis=(1, 2)).sum() == MIN_PRIOR_FRAMES
    assert not (tmp_path / "w.prior.h5md").exists()

    card = read_card(adapt([coarse], tmp_path / "w", settings, progress=False, manifest=False))
    assert card["training"]["complete"] is True
    assert read_trajectory(tmp_path / "w.prior.h5md").n_frames == 41
    assert not (tmp_path / "w.prior.h5md.partial.npz").exists()
    # the prior changed, so the learning started again rather than continuing the hurried run
    assert card["training"]["fingerprint"] != hurried["training"]["fingerprint"]
    records = [json.loads(line) for line in open(tmp_path / "w.log.jsonl")]
    assert [(r["stage"], r["epoch"]) for r in records] == [("forces", 1), ("forces", 1), ("forces", 2), ("gaps", 1)]


def test_streaming_a_box_in_chunks_equals_upsampling_it_whole(copper_model, copper_fine):
    from mdsr_plugin.pipeline import upsample, upsample_stream
    from mdsr_plugin.trajectory import concatenate

    coarse = copper_fine[::FACTOR][:40]
    whole = upsample(coarse, FACTOR, "neural", model=str(copper_model), self_validate=False)
    chunks = [coarse[k:k + 7] for k in range(0, coarse.n_frames, 7)]
    streamed = concatenate(list(upsample_stream(chunks, FACTOR, "neural", model=str(copper_model))))
    np.testing.assert_allclose(streamed.positions, whole.positions, atol=1e-9)
    np.testing.assert_allclose(streamed.velocities, whole.velocities, atol=1e-9)


def test_upsample_adapt_learns_the_box_and_auto_measures_it_on_the_frames_it_held_out(
        copper_fine, tmp_path, capsys):
    import h5py

    from mdsr_plugin.cli import main
    from mdsr_plugin.io import read_trajectory
    from mdsr_plugin.io.h5md import H5MDWriter
    from mdsr_plugin.periodic import is_wrapped

    coarse_file, out = tmp_path / "cu_5fs.h5md", tmp_path / "out" / "fine.h5md"
    with H5MDWriter(coarse_file) as writer:
        writer.write(copper_fine[::FACTOR])
    out.parent.mkdir()
    assert main([str(coarse_file), "--factor", str(FACTOR), "-o", str(out), "--adapt", "--adapt-minutes", "0.05"]) == 0
    printed = capsys.readouterr().out
    assert "learned from the input in" in printed and "fine.adapted.json" in printed
    card = json.loads((out.parent / "fine.adapted.json").read_text())
    assert card["config"]["arch"] == "local"
    held = card["training"]["held_out_frames"]
    with h5py.File(out) as f:
        parameters = json.loads(f["parameters"].attrs["mdsr_plugin"])
    validation = parameters["self_validation"]
    assert {s["method"] for s in validation["scores"]} == {"adapted", "quintic"}
    assert {s["method"]: s["estimator"] for s in validation["scores"]} == {
        "adapted": "disagreement", "quintic": "extrapolation"}  # the box integrator runs both ways too
    assert validation["held_back"] == (held["stop"] - held["start"]) // 2
    assert parameters["method"] == validation["chosen"]
    fine = read_trajectory(out)
    assert fine.n_frames == (copper_fine[::FACTOR].n_frames - 1) * FACTOR + 1
    assert is_wrapped(fine.positions, fine.cell, fine.pbc).all()


def test_upsample_adapt_on_a_box_s_positions_alone_says_the_forces_came_from_the_prior_and_what_is_left(
        water_fine, tmp_path, capsys):
    """An XDATCAR-like file (positions and the cell) through the command line, with a budget
    too short for the prior: the summary says where the forces came from and that the
    learning is unfinished; the output has every frame, its coarse frames exact."""
    from mdsr_plugin.cli import main
    from mdsr_plugin.io import read_trajectory
    from mdsr_plugin.io.h5md import H5MDWriter

    coarse = water_fine[::FACTOR].without("velocities").without("forces")[:41]
    coarse_file, out = tmp_path / "water_5fs.h5md", tmp_path / "fine.h5md"
    with H5MDWriter(coarse_file) as writer:
        writer.write(coarse)
    assert main([str(coarse_file), "--factor", str(FACTOR), "-o", str(out), "--adapt", "--adapt-minutes", "0.001",
                 "--adapt-prior", "gfn1-xtb"]) == 0
    printed = capsys.readouterr().out
    assert "(from scratch, on gfn1-xtb forces at its coarse frames;" in printed
    assert "time budget reached, run again to continue)" in printed
    assert (tmp_path / "fine.adapted.prior.h5md.partial.npz").is_file()
    fine = read_trajectory(out)
    assert fine.n_frames == (coarse.n_frames - 1) * FACTOR + 1
    np.testing.assert_array_equal(fine.positions[::FACTOR], read_trajectory(coarse_file).positions)


def test_a_box_checkpoint_refuses_a_molecule_and_the_registry_never_offers_it(
        copper_model, copper_fine, gfn1_fine, monkeypatch):
    from mdsr_plugin.methods import MethodError
    from mdsr_plugin.neural.registry import match_checkpoint
    from mdsr_plugin.neural.registry import find_matching

    with pytest.raises(MethodError, match="periodic box's integrator; this input has no cell"):
        match_checkpoint(gfn1_fine[::FACTOR], FACTOR, str(copper_model))
    # in a registry folder it is listed, but matched to no input by itself: a box has no graph
    from mdsr_plugin.neural.registry import write_manifest

    write_manifest(copper_model.parent)
    monkeypatch.setenv("MDSR_MODELS_PATH", str(copper_model.parent))
    box = copper_fine[::FACTOR]
    matches, reasons = find_matching(box.numbers, box.positions[0], 1.0, FACTOR, True)
    assert matches == [] and "cu: a periodic box's integrator (name it with --model)" in reasons


def test_a_local_card_without_its_cutoff_is_refused(copper_model, tmp_path):
    from mdsr_plugin.neural.card import CheckpointError, validate_card

    card = json.loads(copper_model.read_text())
    del card["config"]["cutoff"]
    with pytest.raises(CheckpointError, match="lacks 'cutoff'"):
        validate_card(card, tmp_path / "x.json")


# ----------------------------------------------------------------------------- without velocities
def _own_motion(model_path, start, n_gaps: int):
    """Coarse frames (positions, velocities, forces) of the box moved by the learned
    integrator itself from ``start`` (a Trajectory frame): a motion it reproduces exactly."""
    from mdsr_plugin.neural.checkpoint import load_checkpoint

    model, _ = load_checkpoint(model_path, dtype="float64")
    model.set_atoms(start.numbers, start.masses)
    cell = torch.tensor(np.reshape(start.cell, (-1, 3, 3))[:1], dtype=torch.float64)
    with torch.no_grad():
        xs, vs = model.rollout(torch.as_tensor(start.positions[:1]), torch.as_tensor(start.velocities[:1]), cell,
                               n_gaps * FACTOR, 1.0)
        x, v = xs[0, ::FACTOR].numpy(), vs[0, ::FACTOR].numpy()
        f = model.forces(torch.as_tensor(x), cell.expand(len(x), 3, 3).contiguous()).numpy()
    return model, x, v, f


@pytest.mark.parametrize("segment_gaps", [None, 8])
def test_box_velocities_of_the_model_s_own_motion_are_recovered_from_positions(copper_model, copper_fine,
                                                                               segment_gaps):
    from mdsr_plugin.neural.shooting import estimate_box_velocities, first_guess

    model, x, v, f = _own_motion(copper_model, copper_fine[40], n_gaps=10)
    cells = np.broadcast_to(np.reshape(copper_fine.cell, (-1, 3, 3))[0], (len(x), 3, 3))
    for forces in (None, f):  # positions alone (cubic spline start), positions + forces (quintic)
        start = first_guess(x, forces, copper_fine.masses, float(FACTOR))
        fitted = estimate_box_velocities(model, x, cells, copper_fine.masses, float(FACTOR), FACTOR, initial=start,
                                         segment_gaps=segment_gaps)
        assert fitted.shape == v.shape
        assert np.abs(fitted - v).max() < 1e-5  # Å/fs
        assert np.abs(fitted - v).mean() < 1e-3 * np.abs(start - v).mean()


@pytest.mark.parametrize("segment_gaps", [None, 8])
def test_of_several_starts_the_box_fit_starts_each_segment_from_the_one_that_lands_closer(copper_model, copper_fine,
                                                                                        segment_gaps):
    from mdsr_plugin.neural.shooting import estimate_box_velocities, first_guesses

    model, x, v, f = _own_motion(copper_model, copper_fine[40], n_gaps=20)
    cells = np.broadcast_to(np.reshape(copper_fine.cell, (-1, 3, 3))[0], (len(x), 3, 3))
    close = v + 1e-4 * np.random.default_rng(0).normal(size=v.shape)
    far = v + 3e-3 * np.random.default_rng(1).normal(size=v.shape)
    for starts in ([far, close], [close, far]):
        # no Gauss-Newton step: what comes back is the start each segment picked
        picked = estimate_box_velocities(model, x, cells, copper_fine.masses, float(FACTOR), FACTOR, initial=starts,
                                         max_iterations=0, segment_gaps=segment_gaps)
        np.testing.assert_array_equal(picked, close)
    assert len(first_guesses(x, None, copper_fine.masses, float(FACTOR))) == 1  # the cubic spline alone
    quintic, cubic = first_guesses(x, f, copper_fine.masses, float(FACTOR))
    assert np.abs(quintic - cubic).max() > 0


def test_a_large_box_s_hessian_from_each_atom_s_neighbourhood_equals_the_whole_box_s():
    """A box fit's Hessians are its cost on a VASP-sized box.  Displacing atom j changes only
    the energies of the atoms within the cutoff of j, so each column is formed from those
    atoms' energies alone: the same Hessian (to rounding), for about a third of the force
    evaluations on 96 water atoms (docs/benchmarks.md).  Also: the energy of some atoms
    (``centres``) sums to the whole box's over all of them."""
    import ase
    from ase.build import molecule

    from mdsr_plugin.neural.local import neighbour_list
    from mdsr_plugin.neural.shooting import _BoxShooter, _hessian

    rng = np.random.default_rng(3)
    waters = []
    for k in range(4 * 4 * 4):  # 64 waters on a 3.1 Å grid, turned at random: 192 atoms
        w = molecule("H2O")
        w.rotate(rng.uniform(0, 360), rng.normal(size=3))
        w.translate(3.1 * np.array([k % 4, (k // 4) % 4, k // 16]) + rng.normal(0, 0.1, 3))
        waters.append(w)
    box = sum(waters[1:], waters[0])
    box.set_cell(np.eye(3) * 12.4)
    box.pbc = True
    model = _model(cutoff=3.5, skin=0.5)
    model.set_atoms(box.numbers, box.get_masses())
    x, cell = box.positions, np.array(box.cell)

    xb, cb = torch.as_tensor(np.stack([x, x + 0.01])), torch.as_tensor(np.stack([cell, cell]))
    nl = neighbour_list(xb, cb, [True] * 3, 4.0)
    some = torch.tensor([3, 50, 100, 192 + 7])
    split = model.energy(xb, cb, nl, torch.arange(2 * 192)).detach()
    np.testing.assert_allclose(split, model.energy(xb, cb, nl).detach(), rtol=1e-12)
    assert model.energy(xb, cb, nl, some)[1] != 0 and torch.isfinite(model.energy(xb, cb, nl, some)).all()

    shooter = _BoxShooter(model, x[None], cell[None], box.get_masses(), (True,) * 3, 10, 10.0,
                          torch.device("cpu"), torch.float64, 16, 1e-4, 5.0)
    whole = _hessian(lambda y: shooter.displaced_forces(y, cell), x, 1e-4)
    picked = shooter.hessian(x, cell)
    np.testing.assert_allclose(picked, whole, rtol=0, atol=1e-9 * np.abs(whole).max())
    assert np.abs(whole).max() > 1.0
    calls = {"n": 0}
    original = model.forces

    def counting(*args, **kwargs):
        calls["n"] += 1
        assert kwargs.get("centres") is not None  # the neighbourhood path, not the whole box's
        return original(*args, **kwargs)

    model.forces = counting
    shooter.hessian(x, cell)
    assert calls["n"] >= 1


def test_a_long_box_fit_is_cut_in_overlapping_segments_that_cover_every_frame_once():
    from mdsr_plugin.neural.shooting import SEGMENT_OVERLAP, _segments

    for n, size in ((2, 8), (9, 8), (10, 8), (37, 8), (100, 9), (30, 1)):
        segments = _segments(n, size)
        size = max(size, 2 * SEGMENT_OVERLAP + 2)
        kept = np.concatenate([np.arange(a, b) for _, _, a, b in segments])
        np.testing.assert_array_equal(kept, np.arange(n))
        for lo, hi, keep_lo, keep_hi in segments:
            assert hi - lo - 1 <= size
            assert lo <= keep_lo < keep_hi <= hi
            # an inner kept frame has its neighbours' gaps in the fit
            assert keep_lo == 0 or keep_lo - lo >= SEGMENT_OVERLAP
            assert keep_hi == n or hi - keep_hi >= SEGMENT_OVERLAP


def test_a_box_is_learned_from_positions_and_forces_and_upsampled_from_positions(copper_fine, tmp_path):
    """VASP's case: positions, forces and the cell, no velocities."""
    from mdsr_plugin.metrics import position_mae, reconstructed_mask
    from mdsr_plugin.neural.adapt import adapt
    from mdsr_plugin.neural.adapt_box import BoxAdaptSettings
    from mdsr_plugin.neural.checkpoint import read_card
    from mdsr_plugin.periodic import Unwrapper
    from mdsr_plugin.pipeline import upsample

    coarse = copper_fine[::FACTOR].without("velocities")
    settings = BoxAdaptSettings(fine_dt=1.0, force_epochs=4, gap_epochs=2, gaps_per_epoch=4, seed=1)
    card_path = adapt([coarse[:50]], tmp_path / "cu_pf", settings, progress=False, manifest=False)
    card = read_card(card_path)
    assert card["training"]["velocities_fitted"] is True
    assert "positions" in card["input_modes"]

    held = copper_fine[250:]
    held_coarse = held[::FACTOR].without("velocities")
    fine = upsample(held_coarse, FACTOR, "neural", model=str(card_path), self_validate=False)
    n = fine.n_frames
    assert n == (held_coarse.n_frames - 1) * FACTOR + 1
    np.testing.assert_array_equal(fine.positions[::FACTOR], held_coarse.positions)
    assert fine.velocities is not None and np.isfinite(fine.velocities).all()
    unwrap = Unwrapper(held.pbc)
    truth = unwrap(held.positions[:n], held.cell[:n])
    mask = reconstructed_mask(n, FACTOR)
    error = position_mae(unwrap(fine.positions, fine.cell), truth, mask)
    linear = upsample(held_coarse, FACTOR, "linear", self_validate=False)
    assert error < 0.2 * position_mae(unwrap(linear.positions, linear.cell), truth, mask)
    # the fitted coarse velocities are the box's, not noise
    assert np.abs(fine.velocities[::FACTOR] - held.velocities[:n:FACTOR]).mean() < 0.2 * np.abs(held.velocities).mean()


def test_a_prior_single_point_that_fails_is_one_line_and_writes_nothing(tmp_path):
    pytest.importorskip("tblite")
    from mdsr_plugin.neural.adapt import AdaptError, adapt
    from mdsr_plugin.neural.adapt_box import BoxAdaptSettings

    rng = np.random.default_rng(0)
    x = np.array([[0.0, 0, 0], [0, 0, 0], [1, 0, 0]]) + rng.normal(0, 1e-3, (25, 3, 3))
    x[:, 1] = x[:, 0]  # an H on the O: tblite refuses the geometry
    box = Trajectory(numbers=[8, 1, 1], positions=x, times=np.arange(25) * 5.0, cell=np.eye(3) * 5.0, pbc=True)
    with pytest.raises(AdaptError, match=r"^the gfn1-xtb prior failed at frame 0: ") as err:
        adapt([box], tmp_path / "m", BoxAdaptSettings(fine_dt=1.0, prior="gfn1-xtb"), progress=False)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []
