"""Quantum ESPRESSO pw.x MD logs and CPMD TRAJECTORY/FTRAJECTORY, read from real files.

Files: ``tests/data/real/qe`` and ``tests/data/real/cpmd`` (origins in that folder's
README).  The FTRAJECTORY test file is written here by hand in CPMD's own layout
(``'(I7,9(2X,F22.14))'``, from CPMD's ``printp_utils.mod.F90``): no real one was found.
Every number is checked against the file's own text converted by hand.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from mdsr_plugin.cli import main
from mdsr_plugin.io import FormatError, get_format, open_reader, read_trajectory
from mdsr_plugin.io.companions import WithCompanions
from mdsr_plugin.io.cpmd import CPMDQuantityFile

REAL = Path(__file__).parent / "data" / "real"
SI_MD = REAL / "qe" / "si_md_qe53" / "out.out"
AS_VCMD = REAL / "qe" / "as_vcmd_qe" / "vc-md1.out"
SI_RESTART = REAL / "qe" / "si_md_restart" / "md_restart_verlet.out"
H2_DIR = REAL / "cpmd" / "h2_md"

# By hand (CODATA 2018), not the package's table (ase.units is CODATA 2014: 1e-8 apart).
BOHR_A = 0.529177210903
HARTREE_EV = 27.211386245988
AU_TIME_FS = 0.0241888432658
RY_TIME_FS = 2 * AU_TIME_FS
RY_PER_BOHR = HARTREE_EV / 2 / BOHR_A  # Ry/bohr in eV/Å (25.711)
K_B_HARTREE = 3.166811563e-6  # Boltzmann constant, Ha/K


# --------------------------------------------------------------------------- pw.x md
def test_pwscf_md_numbers_are_the_logs_converted_by_hand():
    traj = read_trajectory(SI_MD)
    assert get_format(SI_MD).name == "pwscf"
    # 50 "Entering Dynamics" steps: the start and iterations 1-49 have forces after them;
    # iteration 50's positions have none (the run stops) and are left out.
    assert (traj.n_frames, traj.n_atoms) == (50, 2)
    np.testing.assert_array_equal(traj.steps, np.arange(50))
    # "Time step = 20.00 a.u., 0.9676 femto-seconds": Rydberg atomic units.
    np.testing.assert_allclose(traj.times, np.arange(50) * 20 * RY_TIME_FS, rtol=1e-8)
    assert traj.dt == pytest.approx(0.96755373, rel=1e-7)
    # Frame 0: the header's "tau( 1) = ( -0.1230000 ...)" (alat units, alat = 10.18 bohr)
    # with the first "Forces acting on atoms (Ry/au)": -0.02329815 -0.02329818 -0.02329844.
    alat = 10.18 * BOHR_A
    np.testing.assert_allclose(traj.positions[0, 0], np.full(3, -0.1230000) * alat, rtol=1e-8)
    np.testing.assert_allclose(traj.forces[0, 0], np.array([-0.02329815, -0.02329818, -0.02329844]) * RY_PER_BOHR,
                               rtol=1e-7)
    # Frame 1: iteration 1's "ATOMIC_POSITIONS (alat)" with the forces printed after it.
    np.testing.assert_allclose(traj.positions[1, 0], np.full(3, -0.123017881) * alat, rtol=1e-8)
    np.testing.assert_allclose(traj.forces[1, 1], np.array([0.02308264, 0.02308255, 0.02308267]) * RY_PER_BOHR,
                               rtol=1e-7)
    # fcc cell, "a(1) = ( -0.500000 0.000000 0.500000 )" in alat.
    np.testing.assert_allclose(traj.cell[0], np.array([[-0.5, 0, 0.5], [0, 0.5, 0.5], [-0.5, 0.5, 0]]) * alat,
                               rtol=1e-8)
    assert traj.pbc.all() and traj.velocities is None
    assert list(traj.numbers) == [14, 14] and list(traj.masses) == [28.086, 28.086]


def test_pwscf_reader_agrees_with_ase_where_ase_is_right():
    ase_io = pytest.importorskip("ase.io")
    for path in (SI_MD, AS_VCMD):
        ours = read_trajectory(path)
        images = ase_io.read(path, ":", format="espresso-out")
        assert len(images) == ours.n_frames
        for k, atoms in enumerate(images):  # ASE converts with CODATA 2006: 1e-8 Å, 3e-7 eV/Å apart
            np.testing.assert_allclose(atoms.positions, ours.positions[k], atol=1e-7)
            np.testing.assert_allclose(atoms.get_forces(), ours.forces[k], atol=3e-7)
            np.testing.assert_allclose(atoms.cell[:], ours.cell[k], atol=1e-7)


def test_pwscf_vc_md_reads_each_steps_cell_and_the_input_time_step():
    traj = read_trajectory(AS_VCMD)
    assert (traj.n_frames, traj.n_atoms) == (10, 2)
    # vc-md prints no "Time step" line: dt = 150 (Ry a.u.) from vc-md1.in, which the log names.
    np.testing.assert_allclose(traj.times, np.arange(10) * 150 * RY_TIME_FS, rtol=1e-8)
    alat = 7.01033620 * BOHR_A  # "CELL_PARAMETERS (alat=  7.01033620)"
    cell1 = np.array([[1.011830279, -0.002727642, -0.001933118],
                      [0.498662997, 0.880422136, -0.001933332],
                      [0.498663232, 0.289755456, 0.831377484]]) * alat
    np.testing.assert_allclose(traj.cell[1], cell1, rtol=1e-8)
    # "ATOMIC_POSITIONS (crystal)": fractional × that step's cell.
    np.testing.assert_allclose(traj.positions[1, 0], np.array([0.2883845894, 0.2883845573, 0.2883844348]) @ cell1,
                               rtol=1e-8)
    # Frame 0: the header's cell (celldm(1) = 7.010336, a(1) = (1, 0, 0)) and first forces.
    np.testing.assert_allclose(traj.cell[0, 0], [7.010336 * BOHR_A, 0, 0], rtol=1e-8)
    np.testing.assert_allclose(traj.forces[0, 0], np.array([-0.10322011, -0.05997817, -0.04251607]) * RY_PER_BOHR,
                               rtol=1e-7)
    assert not np.allclose(traj.cell[-1], traj.cell[0])  # the cell moves
    assert list(traj.numbers) == [33, 33] and traj.masses[0] == 74.9


def test_pwscf_time_step_from_printed_times_when_no_input_is_beside(tmp_path):
    alone = tmp_path / "vc.out"
    shutil.copy(AS_VCMD, alone)
    with open_reader(alone) as reader:
        traj = reader.read()
        assert any("printed times" in note for note in reader.notes)
    # "it = 10 time = 0.06531 pico-seconds" over 9 steps: 7.2567 fs, the exact 7.25665 within 1e-3.
    assert traj.dt == pytest.approx(150 * RY_TIME_FS, rel=1e-3)


def test_pwscf_restarted_run_starts_at_its_first_iteration(tmp_path):
    traj = read_trajectory(SI_RESTART)
    # Restarted at step 50: the first forces are of the restart geometry, which is not printed.
    assert traj.n_frames == 49
    np.testing.assert_array_equal(traj.steps[:2], [51, 52])
    np.testing.assert_allclose(traj.times[0], 51 * 20 * RY_TIME_FS, rtol=1e-8)
    first = np.array([float(x) for x in _after(SI_RESTART, "ATOMIC_POSITIONS (alat)", 1)[1:4]])
    np.testing.assert_allclose(traj.positions[0, 0], first * 10.18 * BOHR_A, rtol=1e-8)
    # Without the input beside it, the F8.4 ps times are too coarse (0.2 %) for dt: refused.
    alone = tmp_path / "restart.out"
    shutil.copy(SI_RESTART, alone)
    with pytest.raises(FormatError, match="--dt") as err:
        read_trajectory(alone)
    assert "\n" not in str(err.value)
    assert read_trajectory(alone, dt=2.0).dt == pytest.approx(2.0)


def _after(path: Path, marker: str, k: int) -> list[str]:
    lines = path.read_text().splitlines()
    return lines[lines.index(marker) + k].split()


def test_pwscf_log_is_recognised_by_content_under_any_name(tmp_path):
    renamed = tmp_path / "silicon.log"
    shutil.copy(SI_MD, renamed)
    assert get_format(renamed).name == "pwscf"
    assert read_trajectory(renamed).n_frames == 50


@pytest.mark.parametrize("cut, message", [
    (lambda text: text.replace("Entering Dynamics", "Entering nothing"), "no MD step"),
    (lambda text: text[: text.index("atom    2 type  1   force", 20000)], "atom lines|cut short"),
    (lambda text: text.replace("ATOMIC_POSITIONS (alat)", "ATOMIC_POSITIONS (furlong)", 1), "furlong"),
    (lambda text: text.replace("lattice parameter (alat)", "lattice constant"), "lacks the lattice parameter"),
])
def test_broken_pwscf_logs_are_refused_in_one_line(tmp_path, cut, message):
    broken = tmp_path / "broken.out"
    broken.write_text(cut(SI_MD.read_text()))
    with pytest.raises(FormatError, match=message) as err:
        read_trajectory(broken)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- CPMD
def test_cpmd_trajectory_numbers_are_the_files_converted_by_hand():
    path = H2_DIR / "TRAJECTORY"
    assert get_format(path).name == "cpmd"
    with open_reader(path) as reader:
        traj = reader.read()
        notes = " ".join(reader.notes)
    assert "TRAJEC.xyz" in notes and "output.out" in notes
    assert (traj.n_frames, traj.n_atoms) == (50, 2)
    assert list(traj.numbers) == [1, 1]  # from TRAJEC.xyz
    # "      1        0.70201340784773        0.00096620207776 ... 0.00039772295627 ..."
    np.testing.assert_allclose(traj.positions[0, 0], np.array([0.70201340784773, 0.00096620207776,
                                                               0.00104702184853]) * BOHR_A, rtol=1e-8)
    np.testing.assert_allclose(traj.velocities[0, 0], np.array([0.00039772295627, 0.00024115257177,
                                                                0.00026132422738]) * BOHR_A / AU_TIME_FS, rtol=1e-8)
    assert traj.forces is None
    # "TIME STEP FOR IONS: 4.0000" (Hartree a.u.) × the step numbers 1..50.
    np.testing.assert_array_equal(traj.steps, np.arange(1, 51))
    np.testing.assert_allclose(traj.times, np.arange(1, 51) * 4 * AU_TIME_FS, rtol=1e-8)
    # TRAJEC.xyz holds the same positions in Å with 6 decimals.
    xyz = [line.split() for line in (H2_DIR / "TRAJEC.xyz").read_text().splitlines() if line.startswith(" H")]
    np.testing.assert_allclose(traj.positions.reshape(-1, 3), np.array(xyz)[:, 1:].astype(float), atol=6e-7)


def test_cpmd_velocities_reproduce_the_temperature_cpmd_printed():
    traj = read_trajectory(H2_DIR / "TRAJECTORY")
    # ENERGIES column 3 is TEMPP (K) = 2 E_kin / ((3N - 3) k_B); CPMD's H mass is 1.00797 u
    # (printed 1.0080 in output.out).  Velocities in bohr/a.u. reproduce it to its printed 1e-3 K.
    v_au = traj.velocities * AU_TIME_FS / BOHR_A
    kinetic = 0.5 * 1.00797 * 1822.888486209 * np.einsum("fni,fni->f", v_au, v_au)
    tempp = np.loadtxt(H2_DIR / "ENERGIES")[:, 2]
    np.testing.assert_allclose(2 * kinetic / (3 * traj.n_atoms - 3) / K_B_HARTREE, tempp, rtol=0, atol=1e-3)


def test_cpmd_time_step_from_the_input_elements_from_geometry(tmp_path):
    shutil.copy(H2_DIR / "TRAJECTORY", tmp_path / "TRAJECTORY")
    shutil.copy(H2_DIR / "GEOMETRY.xyz", tmp_path / "GEOMETRY.xyz")
    shutil.copy(H2_DIR / "input.inp", tmp_path / "input.inp")  # "TIMESTEP\n  4.0"
    traj = read_trajectory(tmp_path / "TRAJECTORY")
    assert list(traj.numbers) == [1, 1]
    np.testing.assert_allclose(traj.times[0], 4 * AU_TIME_FS, rtol=1e-8)
    (tmp_path / "input.inp").unlink()
    with pytest.raises(FormatError, match="--dt"):
        read_trajectory(tmp_path / "TRAJECTORY")
    assert read_trajectory(tmp_path / "TRAJECTORY", dt=0.5).dt == pytest.approx(0.5)
    (tmp_path / "GEOMETRY.xyz").unlink()
    with pytest.raises(FormatError, match="--top") as err:
        read_trajectory(tmp_path / "TRAJECTORY", dt=0.5)
    assert "\n" not in str(err.value)


def test_cpmd_logs_of_runs_with_other_time_steps_are_not_read_as_one(tmp_path):
    """The first log in name order gave the step, also where a restart's log beside it says
    another."""
    for name in ("TRAJECTORY", "TRAJEC.xyz", "output.out"):
        shutil.copy(H2_DIR / name, tmp_path / name)
    assert read_trajectory(tmp_path / "TRAJECTORY").dt == pytest.approx(4 * AU_TIME_FS, rel=1e-8)
    text = (H2_DIR / "output.out").read_text()
    assert "TIME STEP FOR IONS:" in text
    shutil.copy(H2_DIR / "output.out", tmp_path / "restart.out")  # the same step: one run's logs
    assert read_trajectory(tmp_path / "TRAJECTORY").dt == pytest.approx(4 * AU_TIME_FS, rel=1e-8)
    (tmp_path / "restart.out").write_text(text.replace("TIME STEP FOR IONS:", "TIME STEP FOR IONS:  8.0  was", 1))
    with pytest.raises(FormatError, match=r"different TIME STEP FOR IONS \(output.out: 4, restart.out: 8 a.u.\).*"
                                          r"pass --dt") as err:
        read_trajectory(tmp_path / "TRAJECTORY")
    assert "\n" not in str(err.value)
    assert read_trajectory(tmp_path / "TRAJECTORY", dt=0.5).dt == pytest.approx(0.5)


def _ftrajectory(steps, rows, mark=True) -> str:
    """CPMD's FTRAJECTORY layout, '(I7,9(2X,F22.14))', one line per atom and step."""
    lines = ["   <<<<<<  NEW DATA  >>>>>>"] if mark else []
    for step in steps:
        for row in rows:
            values = np.asarray(row) * (1 + 0.01 * step)
            lines.append(f"{step:7d}" + "".join(f"  {x:22.14f}" for x in values))
    return "\n".join(lines) + "\n"


ROWS = [[0.0, 0.0, 0.2214, 1e-4, 2e-4, -3e-4, 0.01, -0.02, 0.03],
        [0.0, 1.4309, -0.8857, -5e-4, 0.0, 1e-4, -0.004, 0.005, -0.006],
        [0.0, -1.4309, -0.8857, 6e-4, -1e-4, 2e-4, -0.006, 0.015, -0.024]]
GEOMETRY = "       3\nGEOMETRY FILE / created by CPMD\n  O 0 0 0.117\n  H 0 0.757 -0.468\n  H 0 -0.757 -0.468\n"


def test_cpmd_ftrajectory_hand_written_in_cpmds_layout(tmp_path):
    path = tmp_path / "FTRAJECTORY"
    path.write_text(_ftrajectory([20, 22, 24], ROWS))  # TRAJECTORY SAMPLE 2, appended run
    (tmp_path / "GEOMETRY.xyz").write_text(GEOMETRY)
    (tmp_path / "run.inp").write_text("&CPMD\n MOLECULAR DYNAMICS BO\n TIMESTEP\n  10.0\n&END\n")
    assert get_format(path).name == "cpmd"
    traj = read_trajectory(path)
    assert list(traj.numbers) == [8, 1, 1] and traj.n_frames == 3
    np.testing.assert_allclose(traj.times, np.array([20, 22, 24]) * 10 * AU_TIME_FS, rtol=1e-8)
    row = np.asarray(ROWS[0]) * 1.2  # step 20
    np.testing.assert_allclose(traj.positions[0, 0], row[:3] * BOHR_A, rtol=1e-8)
    np.testing.assert_allclose(traj.velocities[0, 0], row[3:6] * BOHR_A / AU_TIME_FS, rtol=1e-8)
    np.testing.assert_allclose(traj.forces[0, 0], row[6:] * HARTREE_EV / BOHR_A, rtol=1e-8)
    out = tmp_path / "fine.xyz"
    assert main([str(path), "--factor", "2", "-o", str(out)]) == 0
    assert out.is_file()


@pytest.mark.parametrize("text, message", [
    (_ftrajectory([1, 2], ROWS)[:-60], "cut short|numbers"),
    (_ftrajectory([1, 2], ROWS) + "      3  1.0  2.0  3.0  4.0  5.0  6.0  7.0  8.0\n", "has 9 numbers"),
    (_ftrajectory([4, 5], ROWS) + _ftrajectory([3, 4], ROWS), "step 3 after step 5"),
    (_ftrajectory([1, 2], ROWS).replace("      2        0.0", "      2        x.0", 1), "not CPMD's"),
])
def test_broken_cpmd_trajectories_are_refused_in_one_line(tmp_path, text, message):
    path = tmp_path / "FTRAJECTORY"
    path.write_text(text)
    (tmp_path / "GEOMETRY.xyz").write_text(GEOMETRY)
    with pytest.raises(FormatError, match=message) as err:
        read_trajectory(path, dt=1.0)
    assert "\n" not in str(err.value)


def test_cpmd_is_recognised_by_name_and_layout_only(tmp_path):
    other = tmp_path / "trajectory_notes.txt"
    other.write_text("a trajectory, in words\n")
    with pytest.raises(FormatError, match="cannot tell the format"):
        get_format(other)
    renamed = tmp_path / "h2.dat"
    shutil.copy(H2_DIR / "TRAJECTORY", renamed)
    with pytest.raises(FormatError, match="cannot tell the format"):
        get_format(renamed)


def test_cpmd_trajectory_gives_velocities_to_trajec_xyz(tmp_path):
    # TRAJEC.xyz (Å, elements) + TRAJECTORY as its velocity companion, matched by step count.
    main_reader = open_reader(H2_DIR / "TRAJEC.xyz", dt=4 * AU_TIME_FS)
    with WithCompanions(main_reader, [CPMDQuantityFile(H2_DIR / "TRAJECTORY", "velocities")]) as reader:
        traj = reader.read()
    direct = read_trajectory(H2_DIR / "TRAJECTORY")
    np.testing.assert_allclose(traj.velocities, direct.velocities, rtol=1e-12)
    with pytest.raises(FormatError, match="FTRAJECTORY has the forces"):
        CPMDQuantityFile(H2_DIR / "TRAJECTORY", "forces")


# --------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("path", [SI_MD, AS_VCMD, SI_RESTART, H2_DIR / "TRAJECTORY"], ids=lambda p: p.parent.name)
def test_real_files_upsample_end_to_end(tmp_path, path):
    out = tmp_path / "fine.xyz"
    assert main([str(path), "--factor", "2", "-o", str(out)]) == 0
    fine = read_trajectory(out)
    coarse = read_trajectory(path)
    assert fine.n_frames == 2 * coarse.n_frames - 1
    np.testing.assert_allclose(fine.positions[::2], coarse.positions, atol=1e-6)
