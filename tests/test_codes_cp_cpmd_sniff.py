"""Quantum ESPRESSO cp.x sets, CPMD's TRAJECTORY as a companion, and how formats are chosen.

Files: ``tests/data/real/qe/cp_h2o_qeheat`` (cp.x 6.7MaX, from q-e's QEHeat example, with
its input ``input_cp`` and log ``out_cp``; the trajectory files in ``traj/``, as
``outdir='./traj'`` put them), ``tests/data/real/qe/cp_si_dpdata`` (cp.x with forces, from
dpdata's tests) and ``tests/data/real/cpmd/h2_md`` (origins in that folder's README).
Every number is the file's own text converted by hand with the CODATA 2018 constants
below; hand-written variants (a triclinic ``.cel``, reordered inputs) follow cp.x's
``printout_base.f90`` layout.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from mdsr_plugin.cli import main
from mdsr_plugin.io import (FormatError, choose_format, companion_inputs, get_format, is_companion_file,
                            open_reader, read_trajectory)

REAL = Path(__file__).parent / "data" / "real"
QEHEAT = REAL / "qe" / "cp_h2o_qeheat"
SI = REAL / "qe" / "cp_si_dpdata"
H2_DIR = REAL / "cpmd" / "h2_md"

# By hand (CODATA 2018), not the package's table.
BOHR_A = 0.529177210903
HARTREE_EV = 27.211386245988
AU_TIME_FS = 0.0241888432658
AMU_ME = 1822.888486209  # electron masses per u
K_B_HARTREE = 3.166811563e-6  # Ha/K


def _copy_set(tmp_path: Path, with_input=True, with_log=True) -> Path:
    """The QEHeat run laid out as cp.x left it: input and log in the run folder, files in traj/."""
    shutil.copytree(QEHEAT / "traj", tmp_path / "traj")
    if with_input:
        shutil.copy(QEHEAT / "input_cp", tmp_path / "input_cp")
    if with_log:
        shutil.copy(QEHEAT / "out_cp", tmp_path / "out_cp")
    return tmp_path / "traj" / "cp.pos"


def _frames(path: Path) -> list[tuple[int, float, np.ndarray]]:
    """cp.x's blocks read by hand: (step, time ps, rows)."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    out, i = [], 0
    while i < len(lines):
        step, time = lines[i].split()
        j = i + 1
        while j < len(lines) and len(lines[j].split()) == 3:
            j += 1
        out.append((int(step), float(time), np.array([[float(x) for x in r.split()] for r in lines[i + 1:j]])))
        i = j
    return out


# --------------------------------------------------------------------------- cp.x: numbers
def test_cp_set_numbers_are_the_files_converted_by_hand():
    pos = QEHEAT / "traj" / "cp.pos"
    assert get_format(pos).name == "qe-cp"
    with open_reader(pos) as reader:
        traj = reader.read()
        notes = " ".join(reader.notes)
    assert "cp.vel" in notes and "cp.cel" in notes and "cp.for is empty" in notes
    assert (traj.n_frames, traj.n_atoms) == (64, 3)
    # Elements: the labels of out_cp's ATOMIC_POSITIONS (H, H, O); masses from input_cp's ATOMIC_SPECIES.
    assert list(traj.numbers) == [1, 1, 8] and list(traj.masses) == [1.0, 1.0, 16.0]
    # "     111    0.00805488": steps 111, 114, ... 300 (iprint 3); dt = 3. (Hartree a.u.) in input_cp.
    np.testing.assert_array_equal(traj.steps, np.arange(111, 301, 3))
    np.testing.assert_allclose(traj.times, np.arange(111, 301, 3) * 3 * AU_TIME_FS, rtol=1e-9)
    assert abs(traj.times[0] - 0.00805488e3) < 5e-6  # the printed ps, 8 decimals
    assert traj.dt == pytest.approx(9 * AU_TIME_FS, rel=1e-9)
    # First rows of cp.pos (bohr) and cp.vel (bohr / Hartree a.u. of time).
    np.testing.assert_allclose(traj.positions[0, 0], np.array([0.59548776498259, 0.95550498235504,
                                                               1.1267841731987]) * BOHR_A, rtol=1e-8)
    np.testing.assert_allclose(traj.velocities[0, 0], np.array([0.41843512498361e-03, 0.95270880018224e-03,
                                                                -0.45226553860687e-03]) * BOHR_A / AU_TIME_FS,
                               rtol=1e-9)
    np.testing.assert_allclose(traj.cell[0], np.eye(3) * 10 * BOHR_A, rtol=1e-9)  # "10.00000000" bohr
    assert traj.forces is None and traj.pbc.all()


def test_cp_velocities_reproduce_the_ionic_temperature_cp_printed():
    # cp.evp column 5 is Tion (K) = 2 E_kin / (n_dof k_B), "the temperature is computed for 9
    # degrees of freedom" (out_cp), with input_cp's masses 1 and 16 u.  Only Hartree atomic
    # units of time reproduce it (Rydberg ones would give a quarter).
    traj = read_trajectory(QEHEAT / "traj" / "cp.pos")
    v_au = traj.velocities * AU_TIME_FS / BOHR_A
    kinetic = 0.5 * np.einsum("n,fni->f", np.array([1.0, 1.0, 16.0]) * AMU_ME, v_au**2)
    evp = np.loadtxt(QEHEAT / "traj" / "cp.evp")
    np.testing.assert_array_equal(evp[:, 0], traj.steps)
    np.testing.assert_allclose(2 * kinetic / (9 * K_B_HARTREE), evp[:, 4], rtol=1e-6)  # 7 printed digits


def test_cp_last_frame_is_the_logs_final_atomic_positions():
    traj = read_trajectory(QEHEAT / "traj" / "cp.pos")
    text = (QEHEAT / "out_cp").read_text().splitlines()
    at = text.index("   ATOMIC_POSITIONS")
    rows = np.array([[float(x) for x in line.split()[1:]] for line in text[at + 1:at + 4]])
    assert [line.split()[0] for line in text[at + 1:at + 4]] == ["H", "H", "O"]
    np.testing.assert_allclose(traj.positions[-1], rows * BOHR_A, rtol=1e-8)
    assert traj.steps[-1] == 300


def test_cp_forces_and_cell_from_dpdata_si():
    traj = read_trajectory(SI / "si.pos")
    assert (traj.n_frames, traj.n_atoms) == (2, 8) and list(traj.numbers) == [14] * 8
    assert traj.masses[0] == 28.0855  # si.in ATOMIC_SPECIES
    np.testing.assert_array_equal(traj.steps, [20, 30])
    np.testing.assert_allclose(traj.times, np.array([20, 30]) * 5 * AU_TIME_FS, rtol=1e-9)  # dt=5.0
    np.testing.assert_allclose(traj.positions[0, 0], np.array([-0.55955613343180e-03, -0.13280468681160e-01,
                                                               -0.12170559744533e-01]) * BOHR_A, rtol=1e-8)
    np.testing.assert_allclose(traj.forces[0, 0], np.array([0.79213120739417e-03, 0.17846941660539e-02,
                                                            0.25659395900843e-02]) * HARTREE_EV / BOHR_A,
                               rtol=1e-7)
    np.testing.assert_allclose(traj.cell[1], np.eye(3) * 10.64076206 * BOHR_A, rtol=1e-9)
    assert traj.velocities is None


def test_cp_cell_columns_are_the_lattice_vectors(tmp_path):
    # printout_cell writes h(i, 1..3) per row and h = at·alat holds vector j in column j.
    pos = _copy_set(tmp_path)
    h = np.array([[10.0, 1.0, 0.5], [0.0, 9.0, 0.25], [0.0, 0.0, 8.0]])
    blocks = _frames(pos)
    text = "".join(f"{step:8d} {time:13.8f}\n" + "".join("".join(f"{x:14.8f}" for x in row) + "\n" for row in h)
                   for step, time, _ in blocks)
    (tmp_path / "traj" / "cp.cel").write_text(text)
    traj = read_trajectory(pos)
    np.testing.assert_allclose(traj.cell[0], h.T * BOHR_A, rtol=1e-9)  # rows: a1 = (10, 0, 0), ...


# --------------------------------------------------------------------------- cp.x: elements
def test_cp_times_printed_as_asterisks_come_from_the_steps(tmp_path):
    """cp.x before 6.x printed the time as F11.8 ps: from 100 ps on, '***********'.  The
    header was refused as not a frame header; the input's dt gives the times from the steps."""
    import re

    pos = _copy_set(tmp_path)
    whole = read_trajectory(pos)
    for path in pos.parent.iterdir():  # every file of the set, from its 11th frame on
        lines, seen = path.read_text().splitlines(keepends=True), 0
        for i, line in enumerate(lines):
            if re.match(r"^\s*\d+\s+[-+0-9.]+\s*$", line):
                seen += 1
                if seen > 10:
                    lines[i] = f"{line.split()[0]:>7}  ***********\n"
        path.write_text("".join(lines))
    overflowed = read_trajectory(pos)
    np.testing.assert_allclose(overflowed.times, whole.times, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(overflowed.velocities, whole.velocities)
    with pytest.raises(FormatError, match=r"step \d+: cp.x printed the time as \*\*\*\*.*with --top the cp.x "
                                          r"input beside the files is not read.*; pass --dt"):
        read_trajectory(pos, topology=_water_top(tmp_path))
    (tmp_path / "input_cp").unlink()  # the log still names the elements
    with pytest.raises(FormatError, match=r"no cp.x input beside the files gives its dt"):
        read_trajectory(pos)
    assert read_trajectory(pos, topology=_water_top(tmp_path), dt=1.0).n_frames == whole.n_frames


def _water_top(folder: Path) -> Path:
    top = folder / "water.xyz"
    top.write_text("3\nwater\nH 0 0 0\nH 1 0 0\nO 0 1 0\n")
    return top


def test_cp_elements_from_the_folder_above_when_given_from_inside_traj(tmp_path, monkeypatch):
    """``cd traj && mdsr-upsample cp.pos``: the folder above a relative name is its folder's parent."""
    _copy_set(tmp_path)
    monkeypatch.chdir(tmp_path / "traj")
    assert list(read_trajectory("cp.pos").numbers) == [1, 1, 8]


def test_cp_elements_from_the_input_alone_and_from_top(tmp_path):
    pos = _copy_set(tmp_path, with_log=False)
    with open_reader(pos) as reader:
        traj = reader.read()
        assert "elements from input_cp" in " ".join(reader.notes)
    assert list(traj.numbers) == [1, 1, 8]
    (tmp_path / "input_cp").unlink()
    with pytest.raises(FormatError, match="name no elements.*--top") as err:
        read_trajectory(pos)
    assert "\n" not in str(err.value)
    top = tmp_path / "water.xyz"
    top.write_text("3\nwater\nH 0 0 0\nH 1 0 0\nO 0 1 0\n")
    assert list(read_trajectory(pos, topology=top).numbers) == [1, 1, 8]


def test_cp_input_of_another_prefix_is_not_used(tmp_path):
    pos = _copy_set(tmp_path, with_log=False)
    text = (tmp_path / "input_cp").read_text().replace("title=", "prefix='other',\n    title=")
    (tmp_path / "input_cp").write_text(text)
    with pytest.raises(FormatError, match="prefix 'cp'"):
        read_trajectory(pos)


def test_cp_atom_order_of_an_input_not_grouped_by_species(tmp_path):
    # Species H then O, atoms listed O, H, H: cp.x < 6.6 wrote them sorted (H, H, O), 6.6+ as listed.
    pos = _copy_set(tmp_path, with_log=False)
    text = (tmp_path / "input_cp").read_text()
    head, cards = text.split("ATOMIC_POSITIONS {bohr}\n")
    rows = cards.strip().splitlines()
    (tmp_path / "input_cp").write_text(head + "ATOMIC_POSITIONS {bohr}\n" + "\n".join([rows[2], *rows[:2]]) + "\n")
    with pytest.raises(FormatError, match="grouped by species.*output log") as err:
        read_trajectory(pos)
    assert "\n" not in str(err.value)
    log = tmp_path / "old.out"
    log.write_text("\n     Program CP v.6.4.1 starts on  1Jan2019\n")
    assert list(read_trajectory(pos).numbers) == [1, 1, 8]  # sorted by species
    log.write_text("\n     Program CP v.7.2 starts on  1Jan2023\n")
    assert list(read_trajectory(pos).numbers) == [8, 1, 1]  # input order
    # A log that printed ATOMIC_POSITIONS gives the file's own order (H, H, O), whatever the input's.
    shutil.copy(QEHEAT / "out_cp", tmp_path / "old.out")
    traj = read_trajectory(pos)
    assert list(traj.numbers) == [1, 1, 8] and list(traj.masses) == [1.0, 1.0, 16.0]


# --------------------------------------------------------------------------- cp.x: failures
def _edit(path: Path, change) -> None:
    path.write_text(change(path.read_text()))


@pytest.mark.parametrize("name, change, message", [
    ("cp.vel", lambda t: t[: t.index("     297    0.02155226")], r"cp.vel has 62 frames, cp.pos has more"),
    ("cp.vel", lambda t: t.replace("     114    0.00827258", "     115    0.00827258"),
     r"frame 1: cp.pos is MD step 114, cp.vel step 115"),
    ("cp.pos", lambda t: t + t[: t.index("     114")], r"step 111 after step 300.*same prefix"),
    ("cp.pos", lambda t: t[:-80], r"cut short|not 3 numbers"),
    ("cp.cel", lambda t: t.replace("   10.00000000    0.00000000    0.00000000\n", "   10.0 0.0\n", 1),
     r"cp.cel: line 2 is not 3 numbers"),
])
def test_broken_cp_sets_are_refused_in_one_line(tmp_path, name, change, message):
    pos = _copy_set(tmp_path)
    _edit(tmp_path / "traj" / name, change)
    with pytest.raises(FormatError, match=message) as err:
        read_trajectory(pos)
    assert "\n" not in str(err.value)


def test_cp_companion_given_as_input_or_empty_is_refused(tmp_path):
    pos = _copy_set(tmp_path)
    with pytest.raises(FormatError, match="holds cp.x velocities, not positions; give cp.pos"):
        read_trajectory(tmp_path / "traj" / "cp.vel")
    with pytest.raises(FormatError, match="cp.for is empty"):
        read_trajectory(pos, forces=tmp_path / "traj" / "cp.for")
    other = tmp_path / "notes.pos"
    other.write_text("a .pos file of another program\n1 2 3\n")
    with pytest.raises(FormatError, match="not a cp.x .pos file"):
        read_trajectory(other)


def test_cp_set_is_one_batch_job(tmp_path):
    from mdsr_plugin.batch.archive import BatchSettings, plan_jobs
    from mdsr_plugin.settings import UpsampleSettings

    _copy_set(tmp_path / "archive")
    for name in ("cp.vel", "cp.cel", "cp.for", "cp.evp"):
        assert is_companion_file(tmp_path / "archive" / "traj" / name), name
    assert not is_companion_file(tmp_path / "archive" / "traj" / "cp.pos")
    beside = companion_inputs(tmp_path / "archive" / "traj" / "cp.pos")
    assert {k: p.name for k, p in beside.items()} == {"velocities": "cp.vel", "cell": "cp.cel",
                                                      "input": "input_cp", "log": "out_cp"}
    settings = BatchSettings(UpsampleSettings(factor=2, method="hermite"))
    jobs = plan_jobs(tmp_path / "archive", tmp_path / "out", settings, include=["traj/*"])
    assert [job.relative for job in jobs] == ["traj/cp.pos"]
    assert {Path(p).name for p in jobs[0].companions} == {"cp.vel", "cp.cel", "input_cp", "out_cp"}
    assert [job.relative for job in plan_jobs(tmp_path / "archive", tmp_path / "out2", settings)] == ["traj/cp.pos"]


# --------------------------------------------------------------------------- cp.x: end to end
@pytest.mark.parametrize("pos, method", [(QEHEAT / "traj" / "cp.pos", "hermite"), (SI / "si.pos", "spline")],
                         ids=["cp_h2o_qeheat", "cp_si_dpdata"])
def test_cp_sets_upsample_with_coarse_frames_kept(tmp_path, pos, method):
    out = tmp_path / "fine.h5md"
    assert main([str(pos), "--factor", "3", "-o", str(out), "--method", method, "-q"]) == 0
    fine, coarse = read_trajectory(out), read_trajectory(pos)
    assert fine.n_frames == 3 * (coarse.n_frames - 1) + 1
    np.testing.assert_array_equal(fine.positions[::3], coarse.positions)
    np.testing.assert_array_equal(fine.numbers, coarse.numbers)
    np.testing.assert_allclose(fine.times[::3], coarse.times, rtol=1e-12)


def test_cp_auto_stays_in_the_envelope_of_its_coarse_frames(tmp_path, capsys):
    pos = QEHEAT / "traj" / "cp.pos"
    out = tmp_path / "auto.h5md"
    code = main([str(pos), "--factor", "4", "-o", str(out)])
    if code != 0:  # a refusal is one line
        err = capsys.readouterr().err.strip()
        assert code in (1, 2) and len(err.splitlines()) == 1, err
        return
    fine, coarse = read_trajectory(out), read_trajectory(pos)
    assert fine.n_frames == 4 * (coarse.n_frames - 1) + 1
    np.testing.assert_array_equal(fine.positions[::4], coarse.positions)
    for k in range(coarse.n_frames - 1):
        low = np.minimum(coarse.positions[k], coarse.positions[k + 1]) - 2.0
        high = np.maximum(coarse.positions[k], coarse.positions[k + 1]) + 2.0
        gap = fine.positions[4 * k:4 * k + 5]
        assert ((gap >= low) & (gap <= high)).all(), k


def test_verbose_says_which_format_and_why(tmp_path, caplog):
    out = tmp_path / "fine.xyz"
    with caplog.at_level(logging.INFO, logger="mdsr_plugin"):
        assert main([str(QEHEAT / "traj" / "cp.pos"), "--factor", "2", "-o", str(out), "-v", "--method",
                     "hermite"]) == 0
    text = caplog.text
    assert "cp.pos: read as qe-cp (recognised by its content: a .pos/.vel/.for/.cel name" in text
    assert "cp.vel (velocities)" in text and "input_cp (input)" in text and "out_cp (log)" in text
    assert choose_format(SI / "si.pos", "qe-cp")[1] == "named with --format qe-cp"
    assert choose_format(REAL / "qe" / "si_md_qe53" / "out.out")[1].startswith(
        "recognised by its content: a 'Program PWSCF' line")
    assert choose_format(H2_DIR / "TRAJECTORY")[1].startswith("recognised by its content: the fixed name")
    assert choose_format(H2_DIR / "TRAJEC.xyz")[1] == "by its extension .xyz"
    assert choose_format(tmp_path / "XDATCAR")[1] == "by its fixed name (VASP XDATCAR)"


@pytest.mark.parametrize("make", [
    lambda p: (p / "somefile.out").write_text("nothing any MD code writes\n"),
    lambda p: (p / "somefile.out").write_bytes(b""),
    lambda p: (p / "somefile.out").write_bytes(bytes(range(256)) * 8),
    lambda p: (p / "somefile.out").mkdir(),
], ids=["unknown", "empty", "binary", "folder"])
def test_unrecognised_input_is_one_line_naming_the_known_formats(tmp_path, capsys, make, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make(tmp_path)
    assert main(["somefile.out", "--factor", "2", "-o", "x.xyz"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "usage:" not in err
    if (tmp_path / "somefile.out").is_dir():
        assert "is a folder" in err
    else:
        assert "known formats:" in err and "qe-cp (.pos by content)" in err and "pwscf" in err
        assert ("an empty file" in err) == ((tmp_path / "somefile.out").stat().st_size == 0)
    assert not (tmp_path / "x.xyz").exists()


# --------------------------------------------------------------------------- CPMD companion
def test_cpmd_trajectory_gives_velocities_through_the_flag(tmp_path, capsys):
    for f in H2_DIR.iterdir():
        shutil.copy(f, tmp_path / f.name)
    xyz, trajectory = tmp_path / "TRAJEC.xyz", tmp_path / "TRAJECTORY"
    dt = 4 * AU_TIME_FS  # TIME STEP FOR IONS: 4.0000 (Hartree a.u.), every step stored
    traj = read_trajectory(xyz, velocities=trajectory, dt=dt)
    # "      1  0.70201340784773 ... 0.00039772295627 0.00024115257177 0.00026132422738"
    np.testing.assert_allclose(traj.velocities[0, 0], np.array([0.00039772295627, 0.00024115257177,
                                                                0.00026132422738]) * BOHR_A / AU_TIME_FS,
                               rtol=1e-9)
    assert list(traj.numbers) == [1, 1] and traj.n_frames == 50
    with pytest.raises(FormatError, match="FTRAJECTORY has the forces"):
        read_trajectory(xyz, forces=trajectory, dt=dt)
    out = tmp_path / "fine.xyz"
    assert main([str(xyz), "--velocities", str(trajectory), "--dt", f"{dt:.10f}", "--factor", "2", "-o", str(out),
                 "--method", "hermite"]) == 0
    assert read_trajectory(out).n_frames == 99
    assert "velocities from TRAJECTORY (CPMD" in capsys.readouterr().err
    assert main([str(xyz), "--velocities", str(trajectory), "--factor", "2", "-o", str(tmp_path / "f2.xyz")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--dt" in err


def test_cpmd_trajectory_with_fewer_steps_than_the_xyz_is_refused(tmp_path):
    for name in ("TRAJEC.xyz", "TRAJECTORY"):
        shutil.copy(H2_DIR / name, tmp_path / name)
    lines = (tmp_path / "TRAJECTORY").read_text().splitlines(keepends=True)
    (tmp_path / "TRAJECTORY").write_text("".join(lines[:-2]))  # the last step (2 atom lines) gone
    with pytest.raises(FormatError, match="TRAJECTORY has 49 frames, TRAJEC.xyz has") as err:
        read_trajectory(tmp_path / "TRAJEC.xyz", velocities=tmp_path / "TRAJECTORY", dt=0.1)
    assert "\n" not in str(err.value)


def test_a_cpmd_run_folder_is_one_batch_job_on_its_trajectory(tmp_path, capsys):
    """mdsr-batch found only TRAJEC.xyz and GEOMETRY.xyz in a CPMD run (both failed: no time
    step) and never the TRAJECTORY, which has the velocities and whose time step is in the
    output.  Now the TRAJECTORY is the job, read with the files that give its elements and
    time step; with an FTRAJECTORY beside it, that one (it adds the forces)."""
    from mdsr_plugin.batch.archive import BatchSettings, plan_jobs
    from mdsr_plugin.batch.cli import main as batch_main
    from mdsr_plugin.settings import UpsampleSettings

    run = tmp_path / "archive" / "h2"
    shutil.copytree(H2_DIR, run)
    for name in ("TRAJEC.xyz", "GEOMETRY.xyz"):
        assert is_companion_file(run / name), name
    assert not is_companion_file(run / "TRAJECTORY")
    assert {k: p.name for k, p in companion_inputs(run / "TRAJECTORY").items()} == {
        "elements": "TRAJEC.xyz", "timestep": "output.out"}
    settings = BatchSettings(UpsampleSettings(factor=2, method="hermite"))
    jobs = plan_jobs(tmp_path / "archive", tmp_path / "plan", settings)
    assert [job.relative for job in jobs] == ["h2/TRAJECTORY"]
    assert {Path(p).name for p in jobs[0].companions} == {"TRAJEC.xyz", "output.out"}

    assert batch_main([str(tmp_path / "archive"), "-o", str(tmp_path / "out"), "--factor", "2",
                       "--method", "hermite"]) == 0
    fine = read_trajectory(tmp_path / "out" / "h2" / "TRAJECTORY.h5md")
    coarse = read_trajectory(run / "TRAJECTORY")
    assert fine.n_frames == 2 * coarse.n_frames - 1 and list(fine.numbers) == [1, 1]
    np.testing.assert_allclose(fine.positions[::2], coarse.positions, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fine.velocities[::2], coarse.velocities, rtol=1e-9)
    np.testing.assert_allclose(fine.dt, 2 * AU_TIME_FS, rtol=1e-6)  # TIME STEP FOR IONS: 4 a.u., halved

    # an FTRAJECTORY beside it (the same steps with forces) is read instead of the TRAJECTORY
    rows = [line.split() for line in (run / "TRAJECTORY").read_text().splitlines() if line.strip()]
    (run / "FTRAJECTORY").write_text("".join(f"{r[0]:>7}" + "".join(f"  {float(v):22.14f}" for v in r[1:] + ["0"] * 3)
                                             + "\n" for r in rows))
    assert is_companion_file(run / "TRAJECTORY") and not is_companion_file(run / "FTRAJECTORY")
    assert [job.relative for job in plan_jobs(tmp_path / "archive", tmp_path / "plan2", settings)] == [
        "h2/FTRAJECTORY"]
