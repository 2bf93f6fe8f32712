"""CASTEP ``.md``, FHI-aims MD logs and DL_POLY ``HISTORY``, read from real files.

Files: ``tests/data/real/castep`` and ``tests/data/real/aims`` (origins in that folder's
README) and MDAnalysisTests' DL_POLY HISTORY files, used where they are installed.
Every number is checked against the file's own text converted by hand, and the
velocities through the kinetic energy each code printed beside them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from mdsr_plugin.cli import main
from mdsr_plugin.io import FormatError, get_format, open_reader, read_trajectory
from mdsr_plugin.units import ACCEL_PER_FORCE_OVER_MASS

REAL = Path(__file__).parent / "data" / "real"
CASTEP = REAL / "castep" / "pbanew" / "PBAnew.md"
AIMS = REAL / "aims" / "h2o_periodic_md" / "H2O_periodic_MD.out"

# By hand (CODATA 2018), not the package's table (ase.units is CODATA 2014: 1e-8 apart).
HARTREE_EV = 27.211386245988
BOHR_A = 0.529177210903
AU_TIME_FS = 0.0241888432658
EV_PER_DLPOLY_FORCE = 10.0 / 96485.33212  # 10 J/mol per Å in eV/Å (J/mol → eV: ÷ e·N_A)

datafiles = pytest.importorskip("MDAnalysisTests.datafiles")
HISTORY = Path(datafiles.DLP_HISTORY)  # DL_POLY 4, KCl, keytrj 2, imcon 3
HISTORY_CLASSIC = Path(datafiles.DLP_HISTORY_classic)
HISTORY_ORDER = Path(datafiles.DLP_HISTORY_order)


def kinetic_ev(traj) -> np.ndarray:
    """½ Σ m v² per frame in eV (v in Å/fs, m in u)."""
    return 0.5 * np.einsum("n,fni->f", traj.masses, traj.velocities**2) / ACCEL_PER_FORCE_OVER_MASS


# --------------------------------------------------------------------------- DL_POLY
def test_dlpoly4_history_numbers_are_the_files_converted_by_hand():
    traj = read_trajectory(HISTORY)
    assert (traj.n_frames, traj.n_atoms) == (3, 216)
    # "timestep 1 216 2 3 0.005000 0.005000": time 0.005 ps; frames at steps 1, 11, 21.
    np.testing.assert_allclose(traj.times, [5.0, 55.0, 105.0])
    np.testing.assert_array_equal(traj.steps, [1, 11, 21])
    # "K+ 1 39.098300 0.994000 ..." then positions (Å), velocities (Å/ps), forces (10 J/mol/Å).
    np.testing.assert_allclose(traj.positions[0, 0], [-7.595541651, -7.898808509, -7.861763110])
    np.testing.assert_allclose(traj.velocities[0, 0], np.array([1.109901682, -1.500264697, 4.752251711]) / 1000)
    np.testing.assert_allclose(traj.forces[0, 0],
                               np.array([-2621.386432, 1579.334443, 1041.103241]) * EV_PER_DLPOLY_FORCE, rtol=1e-7)
    np.testing.assert_allclose(traj.cell[0, 0], [18.6796195135, 0.0000058913, -0.0000139999])
    assert traj.pbc.all()
    assert np.all(traj.masses[traj.numbers == 19] == 39.0983)
    assert sorted(set(traj.names)) == ["Cl-", "K+"]
    assert {19: 108, 17: 108} == {z: int((traj.numbers == z).sum()) for z in (19, 17)}
    # The velocities are Å/ps: ½Σmv²/(3/2 N k_B) is a temperature near 290 K, not 0.3 or 3e5.
    temperature = kinetic_ev(traj) / (1.5 * traj.n_atoms * 8.617333262e-5)
    assert 250 < temperature[0] < 330


def test_dlpoly_atoms_written_out_of_order_are_put_back_by_index():
    traj = read_trajectory(HISTORY_ORDER)  # the file lists atom 3 first, then 1 and 2
    np.testing.assert_allclose(traj.positions[0, 0], [-7.595541651, -7.898808509, -7.861763110])
    assert traj.names == ["C", "B", "A"]


def test_dlpoly_classic_history_times_from_nstep_times_tstep_and_masses_from_the_file():
    with open_reader(HISTORY_CLASSIC) as reader:
        traj = reader.read()
        notes = " ".join(reader.notes)
    # Classic writes no time: "timestep 1 3 0 1 0.000500" → 1 × 0.0005 ps; then 2001 and 4001.
    np.testing.assert_allclose(traj.times, [0.5, 1000.5, 2000.5])
    assert traj.velocities is None and traj.forces is None
    np.testing.assert_allclose(traj.positions[0, 0], [-13.006, 11.459, -16.983])
    # Names C, B, A with a potassium mass: not carbon or boron, so the element is unknown.
    np.testing.assert_array_equal(traj.numbers, [0, 0, 0])
    np.testing.assert_allclose(traj.masses, 39.0983)
    assert "element unknown" in notes


def test_dlpoly_history_is_recognised_by_content_under_any_name(tmp_path):
    renamed = tmp_path / "kcl_run.txt"
    shutil.copy(HISTORY, renamed)
    assert get_format(renamed).name == "dlpoly-history"
    assert get_format(HISTORY_CLASSIC).name == "dlpoly-history"


@pytest.mark.parametrize("cut, message", [
    (lambda lines: lines[:200], "cut short"),
    (lambda lines: lines[:1] + ["         2         3       999\n"] + lines[2:], "header has 999"),
    (lambda lines: lines[:1] + ["         1         3       216\n"] + lines[2:], "expected 'name index mass charge'"),
    (lambda lines: lines[:2], "no frames"),
])
def test_broken_histories_are_refused_in_one_line(tmp_path, cut, message):
    broken = tmp_path / "HISTORY"
    broken.write_text("".join(cut(HISTORY.read_text().splitlines(keepends=True))))
    with pytest.raises(FormatError, match=message) as err:
        read_trajectory(broken)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- CASTEP
def test_castep_md_numbers_are_the_files_converted_by_hand():
    traj = read_trajectory(CASTEP)
    assert (traj.n_frames, traj.n_atoms) == (4, 97)
    # Time lines 0, 41.341373466675108, ... a.u. = 0, 1, 2, 3 fs.
    np.testing.assert_allclose(traj.times, np.arange(4) * 41.341373466675108 * AU_TIME_FS, rtol=1e-7)
    np.testing.assert_allclose(traj.times, [0, 1, 2, 3], atol=1e-6)
    # " H  1  5.1997681642487326E+000 1.0272881213779273E+001 1.0587024278618182E+001  <-- R" (bohr)
    np.testing.assert_allclose(traj.positions[0, 0],
                               np.array([5.1997681642487326, 10.272881213779273, 10.587024278618182]) * BOHR_A)
    np.testing.assert_allclose(traj.velocities[0, 0], np.array(
        [-2.6619548127898015e-4, 1.5102712370173858e-4, -1.1005548466635367e-3]) * BOHR_A / AU_TIME_FS, rtol=1e-7)
    force_line = next(line for line in CASTEP.read_text().splitlines() if line.endswith("<-- F"))
    np.testing.assert_allclose(traj.forces[0, 0], np.array(force_line.split()[2:5], dtype=float) * HARTREE_EV / BOHR_A,
                               rtol=1e-7)
    np.testing.assert_allclose(traj.cell[0], np.eye(3) * 19.190168896695944 * BOHR_A, atol=1e-12)
    counts = {z: int((traj.numbers == z).sum()) for z in (1, 6, 7, 8, 26)}
    assert counts == {1: 36, 6: 18, 7: 18, 8: 18, 26: 7}


def test_castep_velocities_reproduce_the_kinetic_energy_column():
    traj = read_trajectory(CASTEP)
    kinetic = [float(line.split()[2]) for line in CASTEP.read_text().splitlines() if line.endswith("<-- E")]
    np.testing.assert_allclose(kinetic_ev(traj) / HARTREE_EV, kinetic, rtol=1e-5)


def test_castep_md_is_recognised_by_its_header_not_its_extension(tmp_path):
    renamed = tmp_path / "seed_md.txt"
    shutil.copy(CASTEP, renamed)
    assert get_format(renamed).name == "castep-md"
    markdown = tmp_path / "notes.md"
    markdown.write_text("# notes\n")
    with pytest.raises(FormatError, match="cannot tell the format"):
        get_format(markdown)


def test_castep_md_without_a_final_blank_line_keeps_its_last_step(tmp_path):
    trimmed = tmp_path / "run.md"
    trimmed.write_text(CASTEP.read_text().rstrip() + "\n")
    assert read_trajectory(trimmed).n_frames == 4


@pytest.mark.parametrize("edit, message", [
    (lambda text: text[: len(text) * 3 // 5], "cut short"),
    (lambda text: text.replace(" BEGIN header", " BEGIN hat", 1), "not a CASTEP .md"),
    (lambda text: text.replace("<-- h", "<-- x", 1), "cell lines"),
])
def test_broken_castep_files_are_refused_in_one_line(tmp_path, edit, message):
    broken = tmp_path / "broken.md"
    broken.write_text(edit(CASTEP.read_text()))
    with pytest.raises(FormatError, match=message) as err:
        read_trajectory(broken, format="castep-md")
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- FHI-aims
def test_aims_md_numbers_are_the_files_converted_by_hand():
    with open_reader(AIMS) as reader:
        traj = reader.read()
        notes = " ".join(reader.notes)
    assert (traj.n_frames, traj.n_atoms) == (5, 3)
    np.testing.assert_array_equal(traj.steps, [0, 1, 2, 3, 4])
    np.testing.assert_allclose(traj.times, [0.0, 1.0, 2.0, 3.0, 4.0])  # Simulation time 0.001 ps apart
    assert "MD time step 1 fs" in notes  # "Molecular dynamics time step = 0.001000 ps"
    np.testing.assert_array_equal(traj.numbers, [1, 1, 8])
    np.testing.assert_allclose(traj.masses, [1.00794, 1.00794, 15.9994])  # "Found atomic mass"
    np.testing.assert_allclose(traj.positions[0, 0], [2.8, 2.6, 2.0])
    np.testing.assert_allclose(traj.velocities[0, 0], np.array([-16.66642905, 25.51588094, -13.68976284]) / 1000)
    np.testing.assert_allclose(traj.forces[0, 0], [-0.138268558388624e1, -0.503728797971614, -0.891209922261007e-11])
    np.testing.assert_allclose(traj.cell[0], np.eye(3) * 4.0)
    # The last ("Final atomic structure") step is step 4's, not the starting geometry.
    np.testing.assert_allclose(traj.positions[-1, 0], [2.68018038, 2.66402050, 1.94637928])
    np.testing.assert_allclose(traj.velocities[-1, 2], np.array([-0.18777088, -0.82245910, 1.51204451]) / 1000)


def test_aims_velocities_reproduce_the_nuclear_kinetic_energy_lines():
    traj = read_trajectory(AIMS)
    printed = [float(line.split(":")[1].split()[0]) for line in AIMS.read_text().splitlines()
               if "Nuclear kinetic energy" in line]
    np.testing.assert_allclose(kinetic_ev(traj), printed, rtol=1e-6)


def test_an_aims_log_without_md_steps_is_refused_in_one_line(tmp_path):
    lines = AIMS.read_text().splitlines(keepends=True)
    single_point = tmp_path / "aims.out"
    single_point.write_text("".join(lines[:745]))  # up to the first forces, before any MD step
    assert get_format(single_point).name == "aims-md"
    with pytest.raises(FormatError, match="not an FHI-aims molecular dynamics run") as err:
        read_trajectory(single_point)
    assert "\n" not in str(err.value)


def test_an_aims_log_cut_inside_a_structure_block_says_so(tmp_path):
    """It said 'MD step 4: the atoms differ from the first step'."""
    lines = AIMS.read_text().splitlines(keepends=True)
    last_atom = max(i for i, line in enumerate(lines) if line.split()[:1] == ["atom"])
    cut = tmp_path / "aims.out"
    cut.write_text("".join(lines[:last_atom]))  # the last step's block loses its last atom
    with pytest.raises(FormatError, match="MD step 4: the log ends inside its structure block") as err:
        read_trajectory(cut)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("path", [CASTEP, AIMS, HISTORY, HISTORY_CLASSIC], ids=lambda p: p.name)
def test_real_files_upsample_end_to_end(tmp_path, capsys, path):
    fmt = get_format(path)
    assert fmt.name in ("castep-md", "aims-md", "dlpoly-history")
    out = tmp_path / "fine.xyz"
    assert main([str(path), "--factor", "2", "-o", str(out)]) == 0
    coarse = read_trajectory(path)
    fine = read_trajectory(out)
    assert fine.n_frames == 2 * coarse.n_frames - 1
    np.testing.assert_allclose(fine.positions[::2], coarse.positions, atol=1e-5)
    captured = capsys.readouterr()
    assert f"read {coarse.n_frames} frames" in captured.out + captured.err


# --------------------------------------------------------------------------- batch
def test_a_batch_finds_trajectories_in_logs_and_upper_case_names_by_default(tmp_path):
    """mdsr-batch skipped, silently, every AIMD trajectory whose name carries no trajectory
    extension (pw.x's and FHI-aims' ``.out`` logs, CASTEP's ``SEED.md``, a LAMMPS dump named
    ``dump.out``) and the upper-case ``HISTORY``/``.ANI`` (the patterns were matched with
    the case).  Without ``--include`` it now selects by content too; a log of another program
    is still no job, and an explicit ``--include`` keeps its shell-like meaning."""
    from mdsr_plugin.batch import process_archive
    from mdsr_plugin.batch.archive import BatchSettings, plan_jobs
    from mdsr_plugin.settings import UpsampleSettings

    archive = tmp_path / "archive"
    for folder, source in [("castep", CASTEP), ("aims", AIMS), ("dlpoly", HISTORY),
                           ("qe", REAL / "qe" / "si_md_qe53" / "out.out"),
                           ("lammps", REAL / "lammps" / "water_real_forces" / "dump.out"),
                           ("siesta", REAL / "siesta" / "h2o_relax" / "h2o.ANI")]:
        (archive / folder).mkdir(parents=True)
        shutil.copy(source, archive / folder / source.name)
    (archive / "lammps" / "log.out").write_text("LAMMPS (2 Aug 2023)\nunits real\nrun 100\n")  # no trajectory
    shutil.copy(REAL / "siesta" / "h2o_relax" / "h2o.fdf", archive / "siesta")
    shutil.copytree(REAL / "xtb" / "ethane_md", archive / "xtb")
    settings = BatchSettings(UpsampleSettings(factor=2, method="linear", output_format="h5md"))
    jobs = plan_jobs(archive, tmp_path / "plan", settings)
    assert sorted(job.relative for job in jobs) == [
        "aims/H2O_periodic_MD.out", "castep/PBAnew.md", "dlpoly/HISTORY", "lammps/dump.out", "qe/out.out",
        "siesta/h2o.ANI", "xtb/xtb.trj"]
    # a fixed name keeps its name (the output of HISTORY was ".h5md", a hidden file); a file
    # recognised by its content keeps its whole name (dump.0 and dump.200 must not meet)
    assert {Path(job.output).name for job in jobs} >= {"HISTORY.h5md", "xtb.h5md", "out.out.h5md", "PBAnew.md.h5md",
                                                        "dump.out.h5md"}
    assert plan_jobs(archive, tmp_path / "plan", settings, include=["*history"]) == []  # as a shell would
    result = process_archive(archive, tmp_path / "out", settings)
    failed = {Path(record["file"]).name: record["error"] for record in result.failed}
    # the dump cannot be read as it stands and says what to give, as mdsr-upsample does; the
    # SIESTA relaxation is no MD run: listed apart, not a failure
    assert set(failed) == {"dump.out"} and "--lammps-units" in failed["dump.out"]
    assert [(Path(r["file"]).name, "relaxation" in r["error"]) for r in result.no_md_run] == [("h2o.ANI", True)]
    for name, source in [("aims/H2O_periodic_MD.out.h5md", AIMS), ("dlpoly/HISTORY.h5md", HISTORY)]:
        coarse, fine = read_trajectory(source), read_trajectory(tmp_path / "out" / name)
        assert fine.n_frames == 2 * coarse.n_frames - 1
        np.testing.assert_allclose(fine.positions[::2], coarse.positions, atol=1e-6)


def test_a_batch_lists_logs_of_no_md_run_apart_and_keeps_content_named_outputs_apart(tmp_path, capsys):
    """A QE project folder holds scf and relax logs beside the MD one: they are no failures
    (exit 0), listed apart and not read again while unchanged.  LAMMPS' one-file-per-frame
    dumps, xtb's optimisation log and CASTEP's .geom are no trouble either."""
    from mdsr_plugin.batch.archive import BatchSettings, plan_jobs
    from mdsr_plugin.batch.cli import main as batch_main
    from mdsr_plugin.settings import UpsampleSettings

    md_log = REAL / "qe" / "si_md_qe53" / "out.out"
    archive = tmp_path / "archive"
    (archive / "qe").mkdir(parents=True)
    shutil.copy(md_log, archive / "qe" / "md.out")
    text = md_log.read_text()
    (archive / "qe" / "scf.out").write_text(text[:text.index("Entering Dynamics")])  # the same run's SCF part
    (archive / "lammps").mkdir()
    dump = (REAL / "lammps" / "water_real_forces" / "dump.out").read_text()
    for step in (0, 200):
        (archive / "lammps" / f"dump.{step}").write_text(dump)
    (archive / "xtb").mkdir()
    trj = (REAL / "xtb" / "ethane_md" / "xtb.trj").read_text()
    (archive / "xtb" / "xtbopt.log").write_text(trj)  # xtb writes its optimisation path in the same layout
    (archive / "castep").mkdir()
    (archive / "castep" / "relax.geom").write_text(CASTEP.read_text())  # CASTEP's .geom shares the header
    settings = BatchSettings(UpsampleSettings(factor=2, method="linear"))
    jobs = plan_jobs(archive, tmp_path / "plan", settings)
    assert sorted(job.relative for job in jobs) == ["lammps/dump.0", "lammps/dump.200", "qe/md.out", "qe/scf.out"]
    assert sorted(Path(job.output).name for job in jobs) == ["dump.0.h5md", "dump.200.h5md", "md.out.h5md",
                                                               "scf.out.h5md"]

    out = tmp_path / "out"
    args = [str(archive), "-o", str(out), "--factor", "2", "--method", "linear", "--exclude", "lammps/*"]
    assert batch_main(args) == 0
    printed = capsys.readouterr().out
    assert "no MD run" in printed and "qe/scf.out" in printed and "no MD step" in printed
    assert (out / "qe" / "md.out.h5md").is_file() and not (out / "qe" / "scf.out.h5md").exists()
    assert batch_main(args) == 0  # the second run reads neither again, and lists the scf log apart again
    printed = capsys.readouterr().out
    assert "already done        1" in printed and "no MD run           1" in printed and "qe/scf.out" in printed
    assert "not started         0" in printed
