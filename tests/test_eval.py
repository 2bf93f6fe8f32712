"""mdsr-eval: streamed metrics equal direct numpy, every plot and the HTML report are produced."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser

import numpy as np
import pytest
from ase import units as ase_units

from mdsr_plugin.evaluation import evaluate
from mdsr_plugin.evaluation.cli import main as eval_main
from mdsr_plugin.evaluation.coordinates import choose_coordinates, dihedrals, main_torsions
from mdsr_plugin.io import read_trajectory, write_trajectory
from mdsr_plugin.metrics import distance_mae, spectral_overlap
from mdsr_plugin.molecule import infer_bonds
from mdsr_plugin.pipeline import upsample, upsample_file

PNG = b"\x89PNG\r\n\x1a\n"
FACTOR = 20


@pytest.fixture(scope="module")
def reference_1fs(xtb_fine, tmp_path_factory):
    """GFN2-xTB ethanol at 1 fs (601 frames): the step the shipped ethanol checkpoint serves."""
    path = tmp_path_factory.mktemp("eval") / "ethanol_1fs.h5md"
    write_trajectory(path, xtb_fine[::2])
    return path


@pytest.mark.parametrize("method", ["hermite", "spline", "ml"])
def test_streamed_metrics_equal_a_direct_numpy_computation(reference_1fs, method):
    ref = read_trajectory(reference_1fs)
    evaluation = evaluate(reference_1fs, FACTOR, [method], chunk_size=97)  # chunks cut gaps anywhere
    m = evaluation.metrics[method]

    fine = upsample(ref[::FACTOR], FACTOR, "neural" if method == "ml" else method)
    mask = np.arange(ref.n_frames) % FACTOR != 0
    dx = np.abs(fine.positions - ref.positions)[mask]
    dv = np.abs(fine.velocities - ref.velocities)[mask]
    assert m["reconstructed_frames"] == mask.sum() == 600 - 30
    assert m["position_mae"] == pytest.approx(dx.mean(), rel=1e-12)
    assert m["position_rmse"] == pytest.approx(np.sqrt((dx**2).mean()), rel=1e-12)
    assert m["velocity_mae"] == pytest.approx(dv.mean(), rel=1e-12)
    assert m["velocity_rmse"] == pytest.approx(np.sqrt((dv**2).mean()), rel=1e-12)
    assert m["distance_mae"] == pytest.approx(distance_mae(fine.positions, ref.positions, mask), rel=1e-12)
    # Error by position in the gap (τ = 1..19 fs) and per atom.
    s = np.arange(ref.n_frames) % FACTOR
    by_gap = [np.abs(fine.positions - ref.positions)[s == k].mean() for k in range(1, FACTOR)]
    np.testing.assert_allclose(m["position_mae_by_gap_position"], by_gap, rtol=1e-12)
    np.testing.assert_allclose(m["position_mae_by_atom"], dx.mean(axis=(0, 2)), rtol=1e-12)
    # Shorter than one spectrum segment: the spectrum is the whole-trajectory periodogram.
    assert m["spectral_overlap"] == pytest.approx(
        spectral_overlap(fine.velocities, ref.velocities, ref.dt, ref.masses), rel=1e-9)
    if method == "ml":
        u = m["uncertainty"]
        disagreement = fine.frame_data["disagreement"][mask]
        per_frame = dx.mean(axis=(1, 2))
        assert u["pearson"] == pytest.approx(np.corrcoef(disagreement, per_frame)[0, 1], rel=1e-9)
        assert u["mean_disagreement"] == pytest.approx(disagreement.mean(), rel=1e-12)
        assert m["position_mae"] < evaluate(reference_1fs, FACTOR, ["hermite"]).metrics["hermite"]["position_mae"] / 5


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources, self.tables = [], 0

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])
        self.tables += tag == "table"


def test_cli_writes_json_every_plot_and_a_self_contained_html(reference_1fs, tmp_path, capsys):
    out = tmp_path / "report"
    assert eval_main([str(reference_1fs), "--factor", "20", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "hermite" in printed and "ml" in printed and "report.html" in printed
    expected = {"error_in_gap.png", "error_by_atom.png", "coordinates.png", "distributions.png", "vdos.png",
                "free_energy.png", "uncertainty.png"}  # ethanol has two torsions; ml has an uncertainty
    for name in expected:
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"ml", "hermite", "quintic", "quintic-spline", "spline", "linear"}
    assert not metrics["skipped"]
    assert [t["label"].split()[0] for t in metrics["torsions"]] == ["dihedral", "dihedral"]
    page = _Images()
    page.feed((out / "report.html").read_text())
    assert page.tables == 1 and len(page.sources) == len(expected)
    for src in page.sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    assert not list(out.glob(".*partial*"))
    # the folder again, without the neural method: its uncertainty plot is not left behind
    assert eval_main([str(reference_1fs), "--factor", "20", "-o", str(out), "--methods", "hermite", "-q"]) == 0
    assert not (out / "uncertainty.png").exists() and (out / "vdos.png").exists()


def test_stride_evaluates_a_finer_reference_like_its_subsampled_copy(xtb_fine, reference_1fs, tmp_path, capsys):
    half_step = tmp_path / "ethanol_0.5fs.h5md"
    write_trajectory(half_step, xtb_fine)  # 0.5 fs: the shipped checkpoints output 1 fs
    strided = evaluate(half_step, FACTOR, ["hermite", "ml"], chunk_size=97, stride=2)  # odd chunks
    direct = evaluate(reference_1fs, FACTOR, ["hermite", "ml"], chunk_size=101)
    assert strided.dt == direct.dt == pytest.approx(1.0)
    for method in ("hermite", "ml"):
        for key in ("position_mae", "velocity_mae", "distance_mae", "spectral_overlap"):
            assert strided.metrics[method][key] == pytest.approx(direct.metrics[method][key], rel=1e-9)
    assert eval_main([str(half_step), "--factor", "20", "--stride", "2", "--methods", "hermite",
                      "-o", str(tmp_path / "report"), "-q"]) == 0
    assert eval_main([str(half_step), "--factor", "20", "--stride", "0", "-o", str(tmp_path / "bad")]) == 2
    assert "--stride" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_candidate_mode_scores_an_existing_file_like_the_method_itself(reference_1fs, tmp_path):
    coarse = tmp_path / "coarse.xyz"
    write_trajectory(coarse, read_trajectory(reference_1fs)[::FACTOR])
    candidate = tmp_path / "fine.h5md"
    upsample_file(coarse, candidate, FACTOR, method="hermite")
    assert eval_main(["--reference", str(reference_1fs), "--candidate", str(candidate), "--factor", "20",
                      "-o", str(tmp_path / "report"), "-q"]) == 0
    scored = json.loads((tmp_path / "report/metrics.json").read_text())["methods"]["candidate"]
    direct = evaluate(reference_1fs, FACTOR, ["hermite"]).metrics["hermite"]
    # The XYZ file rounds the coarse input to 1e-8 Å: equal to that precision.
    assert scored["position_mae"] == pytest.approx(direct["position_mae"], rel=1e-5)
    assert scored["velocity_mae"] == pytest.approx(direct["velocity_mae"], rel=1e-5)


@pytest.mark.parametrize("extension", [".h5md", ".trr"])
def test_candidate_in_mdanalysis_cell_orientation_is_scored_in_the_reference_s(tmp_path, extension):
    """H5MD, TRR... are written rotated into MDAnalysis' cell orientation where the input's
    cell is not in it (ASE's primitive fcc cell): the same frames, other coordinates.  Scored
    in the reference's orientation, not refused as 3 Å off."""
    import ase.io
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.md.verlet import VelocityVerlet

    atoms = bulk("Cu", "fcc", a=3.6).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=1)
    atoms.calc = EMT()
    frames = []
    dynamics = VelocityVerlet(atoms, timestep=1.0 * ase_units.fs)
    for i in range(41):
        frame = atoms.copy()
        frame.info["time"] = float(i)
        frame.set_velocities(atoms.get_velocities())
        frames.append(frame)
        dynamics.run(1)
    reference = tmp_path / "cu.xyz"
    ase.io.write(reference, frames, format="extxyz")
    coarse = tmp_path / "coarse.xyz"
    write_trajectory(coarse, read_trajectory(reference)[::4])
    candidate = tmp_path / f"fine{extension}"
    with pytest.warns(UserWarning, match="orientation MDAnalysis reads"):
        upsample_file(coarse, candidate, 4, method="hermite")
    options = [] if extension == ".h5md" else ["--top", str(tmp_path / "cu.pdb")]
    ase.io.write(tmp_path / "cu.pdb", frames[0])
    assert eval_main([str(reference), "--candidate", str(candidate), "--factor", "4", *options,
                      "-o", str(tmp_path / "report"), "-q"]) == 0
    scored = json.loads((tmp_path / "report/metrics.json").read_text())["methods"]["candidate"]
    direct = evaluate(reference, 4, ["hermite"]).metrics["hermite"]
    tolerance = 1e-12 if extension == ".h5md" else 1e-6  # TRR: float32
    assert scored["position_mae"] == pytest.approx(direct["position_mae"], abs=tolerance)
    assert scored["velocity_mae"] == pytest.approx(direct["velocity_mae"], abs=tolerance)


def test_an_interrupted_report_leaves_the_folder_as_it_was(reference_1fs, tmp_path, monkeypatch, capsys):
    """A rerun stopped after its first plot left that plot beside the earlier run's metrics and
    page (of other methods); the report is now published whole or not at all."""
    from mdsr_plugin.evaluation import report

    folder = tmp_path / "report"
    assert eval_main([str(reference_1fs), "--factor", "20", "--methods", "hermite,linear", "-o", str(folder),
                      "-q"]) == 0
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def stopped(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "_html", stopped)  # after every plot is rendered
    assert eval_main([str(reference_1fs), "--factor", "20", "--methods", "linear", "-o", str(folder), "-q"]) == 130
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert "mdsr-eval: interrupted (Ctrl-C); no report written" in capsys.readouterr().err


def test_a_report_folder_that_cannot_be_made_is_refused_before_the_evaluation(reference_1fs, tmp_path, capsys,
                                                                             monkeypatch):
    import mdsr_plugin.evaluation as evaluation_module

    def must_not_run(*args, **kwargs):
        raise AssertionError("evaluated before the report folder was checked")

    monkeypatch.setattr(evaluation_module, "evaluate", must_not_run)
    (tmp_path / "file").write_text("not a folder")
    assert eval_main([str(reference_1fs), "--factor", "20", "-o", str(tmp_path / "file" / "report"), "-q"]) == 1
    assert "file: is a file, not a folder" in capsys.readouterr().err


def test_a_rotated_candidate_of_a_breathing_cell_is_turned_back_frame_by_frame():
    """NPT: the candidate's filled frames carry cells interpolated between the coarse ones and
    were rotated by those; the rotations back come from the reference's own cells."""
    from scipy.spatial.transform import Rotation

    from mdsr_plugin.evaluation import _in_orientation_of
    from mdsr_plugin.io.mdanalysis import rotations_to_mda_frame
    from mdsr_plugin.trajectory import Trajectory

    turn = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix()
    times = np.arange(9.0)
    scale = 1.0 + 0.01 * (times / 8.0) ** 2  # a breathing box; interpolating it is not exact
    cells = scale[:, None, None] * (np.array([[10.0, 0, 0], [1.0, 11.0, 0], [0.5, 0.3, 12.0]]) @ turn.T)
    rng = np.random.default_rng(1)
    positions = rng.uniform(0, 1, (9, 5, 3)) @ cells
    reference = Trajectory(numbers=[8, 1, 1, 6, 1], positions=positions, times=times, cell=cells, pbc=True)
    interpolated = cells.copy()
    interpolated[1::2] = 0.5 * (cells[:-1:2] + cells[2::2])  # the candidate's filled frames
    rotations = rotations_to_mda_frame(interpolated)
    candidate = Trajectory(numbers=reference.numbers, positions=np.einsum("fni,fij->fnj", positions, rotations),
                           times=times, cell=np.einsum("fni,fij->fnj", interpolated, rotations), pbc=True)
    back = _in_orientation_of(candidate, reference)
    np.testing.assert_allclose(back.positions[::2], positions[::2], atol=1e-9)  # the coarse frames: exact
    np.testing.assert_allclose(back.positions, positions, atol=1e-3)
    # an H5MD candidate keeps the reference's orientation: its interpolated cells differ from the
    # reference's, but it is not turned (it was, by a rotation the small tilt let pass)
    unturned = Trajectory(numbers=reference.numbers, positions=positions, times=times, cell=interpolated, pbc=True)
    assert _in_orientation_of(unturned, reference) is unturned


def test_candidate_upsampled_with_another_factor_is_refused(reference_1fs, tmp_path, capsys):
    """A factor-20 candidate scored at --factor 10 has as many frames as asked for when the
    reference's length is a multiple of 20 frames, but its frames 10, 30... are filled ones:
    they were left out of the errors as coarse, and the scores were wrong without a word."""
    whole = read_trajectory(reference_1fs)
    reference = tmp_path / "reference.h5md"
    write_trajectory(reference, whole[: (whole.n_frames - 1) // FACTOR * FACTOR + 1])
    coarse = tmp_path / "coarse.xyz"
    write_trajectory(coarse, read_trajectory(reference)[::FACTOR])
    candidate = tmp_path / "fine.h5md"
    upsample_file(coarse, candidate, FACTOR, method="hermite")
    code = eval_main(["--reference", str(reference), "--candidate", str(candidate), "--factor", str(FACTOR // 2),
                      "-o", str(tmp_path / "report")])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert f"frame {FACTOR // 2} is" in err and "off the reference's coarse frame 1" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "report" / "report.html").exists()


def test_candidate_at_other_times_is_refused(reference_1fs, tmp_path, capsys):
    shifted = read_trajectory(reference_1fs)[3:]
    write_trajectory(tmp_path / "shifted.h5md", shifted)
    code = eval_main(["--reference", str(reference_1fs), "--candidate", str(tmp_path / "shifted.h5md"),
                      "--factor", "20", "-o", str(tmp_path / "report")])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert "not at the reference's times" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "report" / "report.html").exists()


def test_method_choice_positions_only_and_usage_errors(reference_1fs, tmp_path, capsys):
    out = str(tmp_path / "r")
    no_forces = tmp_path / "no_forces.h5md"
    write_trajectory(no_forces, read_trajectory(reference_1fs).without("forces"))
    # Asking explicitly for a method the data cannot support is an error, not a silent skip.
    assert eval_main([str(no_forces), "--factor", "20", "-o", out, "--methods", "quintic"]) == 1
    assert "needs" in capsys.readouterr().err
    assert eval_main([str(reference_1fs), "--factor", "20", "-o", out, "--methods", "magic"]) == 2
    assert eval_main(["--factor", "20", "-o", out]) == 2
    assert eval_main([str(reference_1fs), "--factor", "20", "-o", out, "--methods", "hermite",
                      "--positions-only"]) == 1  # Hermite needs velocities
    assert eval_main([str(reference_1fs), "--factor", "20", "-o", out, "--methods", "spline,linear",
                      "--positions-only", "-q"]) == 0
    metrics = json.loads((tmp_path / "r/metrics.json").read_text())
    assert metrics["positions_only_input"] and set(metrics["methods"]) == {"spline", "linear"}
    # By default a method the data cannot support is skipped, and the report says why.
    assert eval_main([str(no_forces), "--factor", "20", "-o", out, "-q"]) == 0
    metrics = json.loads((tmp_path / "r/metrics.json").read_text())
    assert "quintic" not in metrics["methods"] and "forces" in metrics["skipped"]["quintic"]
    assert "quintic" in (tmp_path / "r/report.html").read_text()


def test_representative_coordinates_of_ethanol_and_benzene(xtb_fine):
    from ase import Atoms

    x = xtb_fine.positions[0]
    bonds = infer_bonds(xtb_fine.numbers, x)
    chosen = choose_coordinates(xtb_fine.numbers, x, bonds)
    assert [c.kind for c in chosen] == ["distance", "distance", "distance", "angle", "dihedral"]
    assert 1 in xtb_fine.numbers[list(chosen[0].atoms)]  # a bond with hydrogen
    assert all(xtb_fine.numbers[list(chosen[1].atoms)] > 1)  # a heavy-atom bond
    torsions = main_torsions(xtb_fine.numbers, bonds)
    assert len(torsions) == 2  # about C–C and C–O
    atoms = Atoms(numbers=xtb_fine.numbers, positions=x)
    for torsion in torsions:
        expected = atoms.get_dihedral(*torsion.atoms)  # ASE: [0, 360)
        assert (dihedrals(x[None], torsion.atoms)[0] - expected + 180) % 360 - 180 == pytest.approx(0, abs=1e-8)

    from mdsr_plugin.reference import build_molecule

    benzene = build_molecule("benzene")
    assert main_torsions(benzene.numbers, infer_bonds(benzene.numbers, benzene.positions)) == []  # ring only


def test_model_and_precision_choose_the_checkpoint_and_how_it_runs(reference_1fs, tmp_path):
    out = tmp_path / "report"
    assert eval_main([str(reference_1fs), "--factor", "20", "-o", str(out), "--methods", "ml", "--model",
                      "ethanol-bilstm-f20-1fs", "--precision", "float64", "-q"]) == 0
    assert set(json.loads((out / "metrics.json").read_text())["methods"]) == {"ml"}
    assert eval_main([str(reference_1fs), "--factor", "20", "-o", str(tmp_path / "bad"), "--methods", "ml",
                      "--model", "no-such-checkpoint", "-q"]) == 1
    assert eval_main([str(reference_1fs), "--factor", "20", "-o", str(tmp_path / "bad"), "--precision", "half"]) == 2


def test_the_terminal_table_keeps_its_columns_for_long_method_names():
    from types import SimpleNamespace

    from mdsr_plugin.evaluation.report import format_table

    metrics = {"position_mae": 1e-3, "position_rmse": 2e-3, "velocity_mae": 3e-4, "distance_mae": 4e-4,
               "spectral_overlap": 0.9}
    table = format_table(SimpleNamespace(metrics={"quintic-spline": metrics, "ml": dict(metrics, position_mae=5e-4)},
                                         skipped={"hermite": "needs velocities"}))
    header, _, *rows = table.splitlines()
    ends = {line.index("e-0") for line in rows[:2]}  # each row's first number at the same column
    assert len(ends) == 1 and header.index("pos MAE") < min(ends) + 4
