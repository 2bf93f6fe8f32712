"""Tinker archives, xtb.trj, DFTB+ geo_end.xyz and SIESTA .ANI, read from real files where
one was found (``tests/data/real/{tinker,xtb,siesta}``, origins in that folder's README).

No redistributable real DFTB+ MD ``geo_end.xyz``, Tinker ``.vel``/``.frc``, xtb ``velo=true``
trajectory nor SIESTA MD ``.ANI`` was found: those files are written here in the codes'
own Fortran layouts (cited at each writer) and are marked *constructed*.  Every number
is checked against the file's own text converted by hand.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from mdsr_plugin.cli import main
from mdsr_plugin.io import FormatError, get_format, open_reader, read_trajectory

REAL = Path(__file__).parent / "data" / "real"
ICE = REAL / "tinker" / "ice_npt" / "ice.arc"
XTB = REAL / "xtb" / "ethane_md" / "xtb.trj"
ANI = REAL / "siesta" / "h2o_relax" / "h2o.ANI"
MD_CAR = REAL / "siesta" / "mgco3_md_nose" / "md_nose.MD_CAR"
BOHR_A = 0.529177210903  # CODATA 2018, by hand

# By hand (CODATA 2018), not the package's table.
BOHR_A = 0.529177210903
AU_TIME_FS = 0.0241888432658
KCALMOL_EV = 4184.0 / 96485.33212  # kcal/mol in eV (J/mol ÷ F)


# --------------------------------------------------------------------------- Tinker
def test_tinker_ice_archive_numbers_are_the_files():
    assert get_format(ICE).name == "tinker-arc"
    with open_reader(ICE) as reader:
        traj = reader.read()
        notes = " ".join(reader.notes)
    assert "ice.log" in notes
    assert (traj.n_frames, traj.n_atoms) == (2, 3024)
    # "     1  O      5.716540    6.401166   -9.373461     1     2     3"
    np.testing.assert_array_equal(traj.positions[0, 0], [5.716540, 6.401166, -9.373461])
    np.testing.assert_array_equal(traj.positions[1, 0], [6.025228, 6.330611, -9.577538])
    assert list(traj.numbers[:3]) == [8, 1, 1] and traj.velocities is None
    # ice.log: "Current Time 0.1000 Picosecond" … "Coordinate File ice.arc", then 0.2000.
    np.testing.assert_allclose(traj.times, [100.0, 200.0])
    # Box "27.313500 22.671947 42.944453 90 109.299537 90" (frame 2; the MC barostat moves it):
    # a along x, c in the xz plane at beta from a.
    a, b, c, beta = 27.313500, 22.671947, 42.944453, np.radians(109.299537)
    np.testing.assert_allclose(traj.cell[1], [[a, 0, 0], [0, b, 0], [c * np.cos(beta), 0, c * np.sin(beta)]],
                               atol=1e-9)
    # The log's "Lattice Lengths 27.276763 22.655617 42.910612" of frame 1 = the arc's box line.
    np.testing.assert_allclose(np.linalg.norm(traj.cell[0], axis=1), [27.276763, 22.655617, 42.910612], rtol=1e-12)
    assert traj.pbc.all()


def test_tinker_archive_without_box_and_united_atom_names():
    mda = pytest.importorskip("MDAnalysisTests.datafiles")
    traj = read_trajectory(mda.ARC, dt=2.0)  # no box line, names C H O
    assert traj.cell is None and list(traj.numbers) == [6, 1, 1, 8, 1, 6, 1, 1, 1]
    np.testing.assert_array_equal(traj.positions[1, 2], [0.868228, -0.551628, 2.114423])
    hexane = read_trajectory(mda.ARC_PBC, dt=2.0)  # CH3/CH2 united atoms, a box per frame
    assert list(hexane.numbers) == [6] * 6 and hexane.cell[2, 0, 0] == pytest.approx(40.860761)
    with pytest.raises(FormatError, match="--dt") as err:  # no log beside it
        read_trajectory(mda.ARC)
    assert "\n" not in str(err.value)


def _tinker_frame(title, box, rows, names=("O", "H", "H"), types=(1, 2, 2)):
    """Tinker's prtxyz/prtvec3 layout: '(i6,2x,a)', '(1x,6f12.6)', '(i6,2x,a3,3f12.6,i6,8i6)'."""
    bonds = [(2, 3), (1,), (1,)]
    lines = [f"{len(rows):6d}  {title}"]
    if box is not None:
        lines.append(" " + "".join(f"{x:12.6f}" for x in box))
    for i, (row, name, kind) in enumerate(zip(rows, names, types)):
        lines.append(f"{i + 1:6d}  {name:3s}" + "".join(f"{x:12.6f}" for x in row) + f"{kind:6d}"
                     + "".join(f"{j:6d}" for j in bonds[i]))
    return "\n".join(lines) + "\n"


WATER = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])
BOX = [18.643, 18.643, 18.643, 90.0, 90.0, 90.0]


def _tinker_run(folder: Path, n: int = 3, log: bool = True) -> Path:
    """A constructed water run: .arc, .vel (Å/ps), .frc (kcal/mol/Å) and a dynamic log."""
    arc = "".join(_tinker_frame("Water", BOX, WATER + 0.01 * k) for k in range(n))
    vel = "".join(_tinker_frame("Water", BOX, np.full((3, 3), 1.5) * (k + 1)) for k in range(n))
    frc = "".join(_tinker_frame("Water", BOX, np.full((3, 3), -20.0) + k) for k in range(n))
    (folder / "water.arc").write_text(arc)
    (folder / "water.vel").write_text(vel)
    (folder / "water.frc").write_text(frc)
    if log:
        (folder / "water.log").write_text("".join(
            f" Current Time                 {0.002 * (k + 1):.4f} Picosecond\n Frame Number {k + 1:17d}\n"
            f" Coordinate File            water.arc\n" for k in range(n)))
    return folder / "water.arc"


def test_tinker_velocities_and_forces_beside_the_archive_constructed(tmp_path):
    path = _tinker_run(tmp_path)
    traj = read_trajectory(path)
    np.testing.assert_allclose(traj.velocities[1, 0], np.full(3, 3.0) / 1000.0, rtol=1e-12)  # Å/ps → Å/fs
    np.testing.assert_allclose(traj.forces[2, 1], np.full(3, -18.0) * KCALMOL_EV, rtol=1e-8)
    np.testing.assert_allclose(traj.times, [2.0, 4.0, 6.0])
    np.testing.assert_allclose(traj.cell[0], np.eye(3) * 18.643, atol=1e-12)


def _tinker_log(step_fs: float, every: int, n: int, decimals: int = 4, steps: bool = True) -> str:
    """mdsave.f's lines for ``n`` saved frames, 'Current Time' printed to ``decimals`` (f15.4 ps
    by default: Tinker's 'digits' below 6)."""
    return "".join((f"\n Instantaneous Values for Frame Saved at{(k + 1) * every:10d} Dynamics Steps\n\n" if steps else "")
                   + f" Current Time{(k + 1) * every * step_fs * 1e-3:19.{decimals}f} Picosecond\n"
                   f" Frame Number{k + 1:23d}\n Coordinate File            water.arc\n" for k in range(n))


@pytest.mark.parametrize("n, steps, expected", [
    (3, True, None),         # 0.25 fs printed to 0.1 fs: 0.3, 0.5, 0.8 read before; refused
    (3, False, None),
    (4001, True, "exact"),   # 1 ps of them: the step numbers give the time per step to 5e-5
    (4001, False, None),
])
def test_tinker_times_printed_coarser_than_their_spacing_come_from_the_steps_or_are_refused(tmp_path, n, steps,
                                                                                            expected):
    arc = _tinker_frame("Water", BOX, WATER)
    (tmp_path / "water.arc").write_text(arc * n)
    (tmp_path / "water.log").write_text(_tinker_log(0.25, 1, n, steps=steps))
    if expected is None:
        with pytest.raises(FormatError, match="prints the frames' times to 0.1 fs.*pass --dt") as err:
            read_trajectory(tmp_path / "water.arc")
        assert "\n" not in str(err.value)
        np.testing.assert_allclose(read_trajectory(tmp_path / "water.arc", dt=0.25).times[:3], [0.0, 0.25, 0.5])
    else:
        times = read_trajectory(tmp_path / "water.arc").times
        np.testing.assert_allclose(times, 0.25 * np.arange(1, n + 1), rtol=1e-6)
    # printed to enough digits ('digits 8': f15.6), the times are read as they are
    (tmp_path / "water.log").write_text(_tinker_log(0.25, 1, n, decimals=6, steps=steps))
    np.testing.assert_allclose(read_trajectory(tmp_path / "water.arc").times, 0.25 * np.arange(1, n + 1), rtol=1e-9)


def test_tinker_elements_and_masses_from_the_key_and_parameter_file(tmp_path):
    path = _tinker_run(tmp_path)
    # Names that guess wrong on purpose; the force field's atom lines decide.
    path.write_text("".join(_tinker_frame("Water", BOX, WATER, names=("OW", "HW", "HW"), types=(36, 37, 37))
                            for _ in range(3)))
    (tmp_path / "water.key").write_text("parameters  water03\n")
    (tmp_path / "water03.prm").write_text('atom     36   36    O     "AMOEBA Water O"     8    15.995    2\n'
                                          'atom     37   37    H     "AMOEBA Water H"     1     1.008    1\n')
    traj = read_trajectory(path)
    assert list(traj.numbers) == [8, 1, 1] and list(traj.masses) == [15.995, 1.008, 1.008]


def test_tinker_failures_are_one_line(tmp_path):
    path = _tinker_run(tmp_path)
    text = path.read_text()
    path.write_text(text[: text.rindex("\n", 0, len(text) - 5)] + "\n")  # last atom line lost
    with pytest.raises(FormatError, match="cut short") as err:
        read_trajectory(path)
    assert "\n" not in str(err.value)
    path.write_text(text.replace("  O  ", "  Q  "))
    with pytest.raises(FormatError, match="element") as err:
        read_trajectory(path)
    assert "\n" not in str(err.value)
    path.write_text(text)
    (tmp_path / "water.vel").write_text(_tinker_frame("Water", BOX, np.ones((3, 3))))  # one frame of three
    with pytest.raises(FormatError, match="water.vel has 1 frames") as err:
        read_trajectory(path)
    assert "\n" not in str(err.value)


def test_dmol3_arc_is_not_taken_for_tinker(tmp_path):
    dmol = tmp_path / "run.arc"
    # a BIOSYM/Materials Studio .car record: "XXXX" and "xx" are that format's own residue and type fields
    dmol.write_text("!BIOSYM archive 3\nPBC=OFF\nMaterials Studio Generated CAR File\n!DATE Jan 1 2020\n"
                    "O1       0.000000000    0.000000000    0.117300000 XXXX 1      xx      O   0.000\nend\nend\n")
    with pytest.raises(FormatError, match="not a Tinker archive") as err:
        read_trajectory(dmol, dt=1.0)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- xtb
def test_xtb_trj_numbers_are_the_files():
    assert get_format(XTB).name == "xtb-trj"
    with open_reader(XTB) as reader:
        traj = reader.read()
        notes = " ".join(reader.notes)
    assert "out" in notes
    assert (traj.n_frames, traj.n_atoms) == (20, 8)
    assert list(traj.numbers) == [6, 6, 1, 1, 1, 1, 1, 1]  # written "c", "h"
    np.testing.assert_array_equal(traj.positions[0, 0], [0.96526929377670, -0.01259700122381, 0.09128440886836])
    np.testing.assert_array_equal(traj.positions[1, 0], [0.94293570202999, -0.01510756171615, 0.08175037886980])
    np.testing.assert_array_equal(traj.positions[19, 0], [0.92166553579931, -0.00712928490014, 0.05598358057508])
    # out: "dt /fs : 1.00", "dumpstep(trj) /fs : 50.00 50": 50 fs between frames.
    np.testing.assert_allclose(traj.times, np.arange(20) * 50.0)
    assert traj.velocities is None


def test_xtb_time_step_from_the_md_input_alone(tmp_path):
    shutil.copy(XTB, tmp_path / "xtb.trj")
    shutil.copy(XTB.with_name("md.inp"), tmp_path / "md.inp")  # "$md … step=1 …": dump 50 fs by default
    assert read_trajectory(tmp_path / "xtb.trj").dt == pytest.approx(50.0)
    (tmp_path / "md.inp").write_text("$md\n   step=4.0\n   dump=50.0\n$end\n")
    assert read_trajectory(tmp_path / "xtb.trj").dt == pytest.approx(48.0)  # int(50 / 4) = 12 steps
    (tmp_path / "md.inp").unlink()
    with pytest.raises(FormatError, match="--dt") as err:
        read_trajectory(tmp_path / "xtb.trj")
    assert "\n" not in str(err.value)


def test_xtb_velocity_lines_constructed(tmp_path):
    # dynamic.f90 with velo=true: writeMolecule (XYZ), then write(trj,'(3f20.14)') velo per atom.
    frames = []
    for k in range(3):
        frames.append(f"3\n energy: -5.07{k} gnorm: 0.01 xtb: 6.4.1 (afa7bdf)\n"
                      + "".join(f"{s:2s} " + "".join(f"{x:20.14f}" for x in row + 0.01 * k) + "\n"
                                for s, row in zip(("o", "h", "h"), WATER))
                      + "".join("".join(f"{v:20.14f}" for v in (1e-4 * (k + 1), -2e-4, 3e-4)) + "\n"
                                for _ in range(3)))
    path = tmp_path / "xtb.trj"
    path.write_text("".join(frames))
    traj = read_trajectory(path, dt=2.0)
    np.testing.assert_allclose(traj.velocities[1, 0], np.array([2e-4, -2e-4, 3e-4]) * BOHR_A / AU_TIME_FS, rtol=1e-8)
    assert list(traj.numbers) == [8, 1, 1]


def test_xtb_failures_are_one_line(tmp_path):
    text = XTB.read_text()
    path = tmp_path / "xtb.trj"
    path.write_text(text[:-60])
    with pytest.raises(FormatError, match="cut short") as err:
        read_trajectory(path, dt=1.0)
    assert "\n" not in str(err.value)
    path.write_text(text.replace("\nc ", "\nq ", 1))
    with pytest.raises(FormatError, match="unknown element 'q'") as err:
        read_trajectory(path, dt=1.0)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- DFTB+
def _geo_end(iters, charges=True, velocities=True) -> str:
    """DFTB+ writeXYZFormat: '(I5)', 'MD iter: k', '(A5,7F16.8)' (Å, e, Å/ps)."""
    out = []
    for k in iters:
        out.append(f"{3:5d}\nMD iter: {k}\n")
        for s, row in zip(("O", "H", "H"), WATER + 0.001 * k):
            values = list(row) + ([0.5 - 0.1 * k] if charges else []) + ([3.0, -1.5, 0.25 * k] if velocities else [])
            out.append(f"{s:>5s}" + "".join(f"{x:16.8f}" for x in values) + "\n")
    return "".join(out)


HSD = "Driver = VelocityVerlet {\n  Steps = 100\n  TimeStep [fs] = 0.5\n  MDRestartFrequency = 10\n}\n"


def test_dftb_geo_end_constructed(tmp_path):
    path = tmp_path / "geo_end.xyz"
    path.write_text(_geo_end([0, 10, 20]))
    (tmp_path / "dftb_in.hsd").write_text(HSD)
    assert get_format(path).name == "dftbplus-md"
    traj = read_trajectory(path)
    np.testing.assert_array_equal(traj.steps, [0, 10, 20])
    np.testing.assert_allclose(traj.times, [0.0, 5.0, 10.0])  # MD iter × 0.5 fs
    np.testing.assert_allclose(traj.velocities[2, 0], np.array([3.0, -1.5, 5.0]) / 1000.0, rtol=1e-12)
    np.testing.assert_allclose(traj.frame_data["charges"][1], [-0.5] * 3)  # 0.5 - 0.1 × 10
    np.testing.assert_allclose(traj.positions[1, 0], [0.01, 0.01, 0.1273], atol=1e-12)
    # No unit in brackets: DFTB+ reads atomic units.
    (tmp_path / "dftb_in.hsd").write_text(HSD.replace("TimeStep [fs] = 0.5", "TimeStep = 20.0"))
    np.testing.assert_allclose(read_trajectory(path).times[1], 10 * 20.0 * AU_TIME_FS, rtol=1e-8)
    (tmp_path / "dftb_in.hsd").unlink()
    with pytest.raises(FormatError, match="--dt") as err:
        read_trajectory(path)
    assert "\n" not in str(err.value)


def test_dftb_columns_without_charges_and_failures(tmp_path):
    path = tmp_path / "geo_end.xyz"
    path.write_text(_geo_end([0, 1], charges=False))
    traj = read_trajectory(path, dt=1.0)
    np.testing.assert_allclose(traj.velocities[1, 0, 2], 0.25 / 1000.0)
    assert "charges" not in traj.frame_data
    path.write_text(_geo_end([0, 1])[:-40])
    with pytest.raises(FormatError, match="cut short") as err:
        read_trajectory(path, dt=1.0)
    assert "\n" not in str(err.value)
    path.write_text(_geo_end([0, 1]).replace("    O", "   Qq"))
    with pytest.raises(FormatError, match="unknown element") as err:
        read_trajectory(path, dt=1.0)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- SIESTA
def test_siesta_ani_of_a_relaxation_is_refused_without_dt():
    assert get_format(ANI).name == "siesta-ani"
    with pytest.raises(FormatError, match="relaxation") as err:  # h2o.fdf names no MD.TypeOfRun: CG
        read_trajectory(ANI)
    assert "\n" not in str(err.value)
    traj = read_trajectory(ANI, dt=1.0)
    assert (traj.n_frames, traj.n_atoms) == (12, 3) and list(traj.numbers) == [8, 1, 1]
    np.testing.assert_array_equal(traj.positions[0, 1], [0.823127, 0.623360, -0.0])
    np.testing.assert_array_equal(traj.positions[-1, 2], [-0.769409, 0.599762, -0.0])


def test_siesta_md_time_step_and_labels_from_the_fdf(tmp_path):
    # The real .ANI beside a constructed MD input (labels that are not element symbols).
    ani = tmp_path / "h2o.ANI"
    ani.write_text(ANI.read_text().replace("O ", "Qx").replace("H ", "Hy"))
    (tmp_path / "h2o.fdf").write_text("SystemLabel h2o\nMD.TypeOfRun Verlet\nMD.Length-Time_Step 0.5 fs\n"
                                      "%block ChemicalSpeciesLabel\n 1 8 Qx\n 2 1 Hy\n%endblock ChemicalSpeciesLabel\n")
    traj = read_trajectory(ani)
    assert list(traj.numbers) == [8, 1, 1] and traj.names == ["Qx", "Hy", "Hy"]
    np.testing.assert_allclose(traj.times[:3], [0.0, 0.5, 1.0])
    (tmp_path / "h2o.fdf").write_text("SystemLabel h2o\nMD.TypeOfRun Nose\nMD.LengthTimeStep 0.002 ps\n")
    with pytest.raises(FormatError, match="unknown element 'Qx'") as err:
        read_trajectory(ani)
    assert "\n" not in str(err.value)
    ani.write_text(ANI.read_text().replace("\n \n", "\n\n"))  # empty comments, as in real MD .ANI files
    assert read_trajectory(ani).n_frames == 12
    np.testing.assert_allclose(read_trajectory(ani).dt, 2.0)
    ani.write_text(ANI.read_text()[:-30])
    with pytest.raises(FormatError, match="cut short") as err:
        read_trajectory(ani)
    assert "\n" not in str(err.value)


def test_siesta_binary_md_and_mde_are_refused_naming_the_ani(tmp_path):
    md = tmp_path / "md_nose.MD"
    md.write_bytes(b"\x04\x00\x00\x00\x05\x00\x00\x00\x04\x00\x00\x00" + bytes(200))
    mde = tmp_path / "md_nose.MDE"
    mde.write_text("# Step     T (K)     E_KS (eV)    E_tot (eV)   Vol (A^3)    P (kBar)\n"
                   "     1    600.00   -6215.45626   -6214.75826      93.166     238.781\n")
    for path in (md, mde):
        with pytest.raises(FormatError, match="md_nose.ANI or md_nose.MD_CAR") as err:
            read_trajectory(path)
        assert "\n" not in str(err.value)


def _outcoor(log: Path, step: int) -> np.ndarray:
    """The fractional coordinates SIESTA printed after ``Begin MD step = step`` in its log."""
    lines = log.read_text().splitlines()
    begin = next(k for k, line in enumerate(lines) if line.split() == ["Begin", "MD", "step", "=", str(step)])
    start = next(k for k in range(begin, len(lines)) if lines[k].startswith("outcoor: Atomic coordinates (fractional)"))
    return np.array([row.split()[:3] for row in lines[start + 1:start + 11]], dtype=float)


def test_siesta_md_car_numbers_are_the_files_converted_by_hand():
    """A real SIESTA 5.1 Nosé run's .MD_CAR: no element in it, so the species come from the
    .fdf's coordinate block; block k is the positions after step k (the log prints block 1's
    coordinates where step 2 begins), 1 fs apart."""
    assert get_format(MD_CAR).name == "siesta-md-car"
    traj = read_trajectory(MD_CAR)
    assert (traj.n_frames, traj.n_atoms) == (5, 10)
    assert list(traj.numbers) == [12, 12, 6, 6, 8, 8, 8, 8, 8, 8]
    np.testing.assert_array_equal(traj.steps, [1, 2, 3, 4, 5])
    np.testing.assert_allclose(traj.times, [1.0, 2.0, 3.0, 4.0, 5.0])  # MD.LengthTimeStep 1 fs
    cell = np.array([[5.677830000, 0, 0], [3.786009162, 4.231298635, 0], [3.786009162, 1.692731155, 3.877956855]])
    np.testing.assert_array_equal(traj.cell[0], cell)
    assert traj.pbc.all()
    np.testing.assert_allclose(traj.positions[0, 0], np.array([0.002029621, -0.002203747, 0.000377242]) @ cell,
                               rtol=1e-12)
    log = MD_CAR.parent / "RUN.out"
    for k in range(4):  # block k + 1 = the coordinates SIESTA printed as step k + 2 began
        np.testing.assert_allclose(np.linalg.solve(cell.T, traj.positions[k].T).T, _outcoor(log, k + 2), atol=6e-9)
    # the .XV, written after the last step in bohr, holds the last block's positions
    xv = np.loadtxt(MD_CAR.parent / "md_nose.XV", skiprows=4)
    np.testing.assert_allclose(traj.positions[-1], xv[:, 2:5] * BOHR_A, atol=1e-8)


def test_siesta_md_car_upsampled_keeps_its_coarse_frames(tmp_path, capsys):
    out = tmp_path / "fine.extxyz"
    assert main([str(MD_CAR), "--factor", "2", "--method", "spline", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "SIESTA .MD_CAR" in captured.out + captured.err
    coarse, fine = read_trajectory(MD_CAR), read_trajectory(out)
    assert fine.n_frames == 9
    np.testing.assert_allclose(fine.positions[::2], coarse.positions, atol=1e-7)
    np.testing.assert_allclose(fine.times, np.arange(9) * 0.5 + 1.0)


@pytest.mark.parametrize("case, message", [
    ("no_fdf", "names no element; put the run's .fdf"),
    ("other_run", "species counts \\[2, 2, 6\\] are not those of the input"),
    ("cut", "cut short|fewer than 10 atoms"),
    ("relaxation", "relaxation"),
    ("force_constants", "not molecular dynamics \\(MD.TypeOfRun fc"),
])
def test_siesta_md_car_without_its_input_or_cut_short_is_refused_in_one_line(tmp_path, case, message):
    shutil.copy(MD_CAR, tmp_path / "md_nose.MD_CAR")
    fdf = (MD_CAR.parent / "md_nose.fdf").read_text()
    if case == "other_run":  # a carbonate of another cation order: 1 1 2 3 3 3 ...
        fdf = fdf.replace(" -0.25       -0.25       -0.25     2", " -0.25       -0.25       -0.25     3")
    if case == "cut":
        (tmp_path / "md_nose.MD_CAR").write_text(MD_CAR.read_text()[:-60])
    if case == "relaxation":
        fdf = fdf.replace("MD.TypeOfRun         Nose", "MD.TypeOfRun         CG")
    if case == "force_constants":  # FC's displaced geometries are no dynamics either
        fdf = fdf.replace("MD.TypeOfRun         Nose", "MD.TypeOfRun         FC")
    if case != "no_fdf":
        (tmp_path / "md_nose.fdf").write_text(fdf)
    with pytest.raises(FormatError, match=message) as err:
        read_trajectory(tmp_path / "md_nose.MD_CAR")
    assert "\n" not in str(err.value)


def test_siesta_md_car_with_blank_lines_at_its_end_reads_every_block(tmp_path):
    shutil.copy(MD_CAR.parent / "md_nose.fdf", tmp_path)
    (tmp_path / "md_nose.MD_CAR").write_text(MD_CAR.read_text() + "\n  \n")
    np.testing.assert_array_equal(read_trajectory(tmp_path / "md_nose.MD_CAR").positions,
                                  read_trajectory(MD_CAR).positions)


def test_siesta_reads_only_its_own_run_s_input(tmp_path):
    """An .fdf of another SystemLabel in the same folder was read for the time step and the
    species: its run's files are others.  It is named in the refusal, and --dt still reads
    an .ANI (its lines name the elements)."""
    ani = tmp_path / "h2o.ANI"
    shutil.copy(ANI, ani)
    (tmp_path / "other.fdf").write_text("SystemLabel other\nMD.TypeOfRun Verlet\nMD.LengthTimeStep 2.0 fs\n")
    with pytest.raises(FormatError, match=r"no input of this run \(SystemLabel h2o\).*other.fdf: SystemLabel "
                                          r"other.*or pass --dt") as err:
        read_trajectory(ani)
    assert "\n" not in str(err.value)
    np.testing.assert_allclose(read_trajectory(ani, dt=0.5).times[:3], [0.0, 0.5, 1.0])
    # an input that sets no SystemLabel may be a part of this run's (or SIESTA's default run's)
    (tmp_path / "other.fdf").write_text("MD.TypeOfRun Verlet\nMD.LengthTimeStep 2.0 fs\n")
    np.testing.assert_allclose(read_trajectory(ani).times[:3], [0.0, 2.0, 4.0])
    # this run's label set in an %include'd file is found there, and that input is read first
    (tmp_path / "h2o.fdf").write_text("%include label.fdf\nMD.TypeOfRun Verlet\nMD.LengthTimeStep 1.0 fs\n")
    (tmp_path / "label.fdf").write_text("SystemLabel h2o\n")
    np.testing.assert_allclose(read_trajectory(ani).times[:3], [0.0, 1.0, 2.0])
    (tmp_path / "other.fdf").unlink()
    # an MD_CAR beside another run's input only: no species, so --dt does not help
    shutil.copy(MD_CAR, tmp_path / "md_nose.MD_CAR")
    with pytest.raises(FormatError, match="put the run's .fdf beside it$"):
        read_trajectory(tmp_path / "md_nose.MD_CAR", dt=1.0)


# --------------------------------------------------------------------------- shared
def test_plain_xyz_is_not_claimed(tmp_path):
    plain = tmp_path / "water.xyz"
    plain.write_text("3\n\nO 0 0 0.1173\nH 0 0.7572 -0.4692\nH 0 -0.7572 -0.4692\n")
    assert get_format(plain).name == "xyz"
    cp2k = tmp_path / "run-pos-1.xyz"
    cp2k.write_text("3\n i =        0, time =        0.000, E =       -17.1\nO 0 0 0\nH 0 1 0\nH 1 0 0\n")
    assert get_format(cp2k).name == "xyz"


def _constructed_runs(folder: Path) -> list[Path]:
    tinker = folder / "tinker"
    tinker.mkdir()
    dftb = folder / "dftb"
    dftb.mkdir()
    (dftb / "geo_end.xyz").write_text(_geo_end(range(0, 50, 10)))
    (dftb / "dftb_in.hsd").write_text(HSD)
    siesta = folder / "siesta"
    siesta.mkdir()
    shutil.copy(ANI, siesta / "h2o.ANI")
    (siesta / "h2o.fdf").write_text("SystemLabel h2o\nMD.TypeOfRun Verlet\nMD.LengthTimeStep 0.5 fs\n")
    return [_tinker_run(tinker, n=4), dftb / "geo_end.xyz", siesta / "h2o.ANI"]


@pytest.mark.parametrize("which", ["ice", "xtb", "tinker", "dftb", "siesta"])
def test_upsample_end_to_end(tmp_path, capsys, which):
    runs = dict(zip(["tinker", "dftb", "siesta"], _constructed_runs(tmp_path)))
    path = {"ice": ICE, "xtb": XTB, **runs}[which]
    coarse = read_trajectory(path)
    out = tmp_path / "fine.h5md"
    assert main([str(path), "--factor", "3", "-o", str(out)]) == 0
    fine = read_trajectory(out)
    assert fine.n_frames == (coarse.n_frames - 1) * 3 + 1
    np.testing.assert_array_equal(fine.positions[::3], coarse.positions)  # coarse frames bit-exact
    np.testing.assert_allclose(fine.times[::3], coarse.times)
    capsys.readouterr()
    auto = tmp_path / "auto.h5md"
    rc = main([str(path), "--factor", "2", "--method", "auto", "-o", str(auto)])
    captured = capsys.readouterr()
    if rc != 0:  # a refusal: one line saying why
        assert len(captured.err.strip().splitlines()) == 1, captured.err
        return
    fine = read_trajectory(auto)
    low = np.minimum(coarse.positions[:-1], coarse.positions[1:]) - 3.0
    high = np.maximum(coarse.positions[:-1], coarse.positions[1:]) + 3.0
    middle = fine.positions[1::2]
    if coarse.pbc.any():  # a periodic atom may be unwrapped across the box: compare displacements
        middle = middle - fine.positions[0:-1:2] + coarse.positions[:-1]
    assert ((middle >= low) & (middle <= high)).all()


def test_a_tinker_run_is_one_batch_job_whose_vel_and_frc_are_its_companions(tmp_path):
    """The .vel/.frc beside an archive are read with it: a batch lists them among the job's
    inputs, so that a changed velocity file redoes the job and no output may overwrite it."""
    from mdsr_plugin.batch.archive import BatchSettings, plan_jobs
    from mdsr_plugin.io import companion_inputs
    from mdsr_plugin.settings import UpsampleSettings

    (tmp_path / "archive").mkdir()
    path = _tinker_run(tmp_path / "archive")
    (path.parent / "water.key").write_text("parameters  water03\n")
    assert {k: p.name for k, p in companion_inputs(path).items()} == {
        "velocities": "water.vel", "forces": "water.frc", "key": "water.key"}
    settings = BatchSettings(UpsampleSettings(factor=2, method="hermite"))
    jobs = plan_jobs(tmp_path / "archive", tmp_path / "out", settings)
    assert [job.relative for job in jobs] == ["water.arc"]
    assert {Path(p).name for p in jobs[0].companions} == {"water.vel", "water.frc", "water.key"}
    before = jobs[0].fingerprint
    velocities = path.with_suffix(".vel")
    velocities.write_text(velocities.read_text().replace("3.0", "3.5", 1))
    assert plan_jobs(tmp_path / "archive", tmp_path / "out", settings)[0].fingerprint != before


def test_a_siesta_run_with_ani_and_md_car_is_one_batch_job_on_the_md_car(tmp_path):
    """Both hold the same steps; the .MD_CAR has the cell too.  Two jobs would write the same
    output name and the whole plan would be refused."""
    from mdsr_plugin.batch.archive import BatchSettings, plan_jobs
    from mdsr_plugin.settings import UpsampleSettings

    run = tmp_path / "archive" / "siesta"
    shutil.copytree(MD_CAR.parent, run)
    traj = read_trajectory(MD_CAR)
    symbols = {12: "Mg", 6: "C", 8: "O"}
    with open(run / "md_nose.ANI", "w") as handle:  # constructed in SIESTA's .ANI layout from the same steps
        for frame in traj.positions:
            handle.write(f"{traj.n_atoms}\n\n")
            handle.writelines(f"{symbols[z]} {x:.6f} {y:.6f} {w:.6f}\n" for z, (x, y, w) in zip(traj.numbers, frame))
    settings = BatchSettings(UpsampleSettings(factor=2, method="spline"))
    jobs = plan_jobs(tmp_path / "archive", tmp_path / "out", settings)
    assert [job.relative for job in jobs] == ["siesta/md_nose.MD_CAR"]
    assert Path(jobs[0].output).name == "md_nose.h5md"


def test_siesta_md_car_species_from_a_log_where_the_fdf_includes_them_and_unused_labels_are_fine(tmp_path):
    """SIESTA counts species 1 to the highest any atom is of, so an unused label after them is
    no contradiction; coordinates given by %include are read from the fdf*.log SIESTA writes
    with every block expanded.  Where the .MD_CAR cannot be read, a batch takes the .ANI."""
    from mdsr_plugin.batch.archive import BatchSettings, plan_jobs
    from mdsr_plugin.settings import UpsampleSettings

    fdf = (MD_CAR.parent / "md_nose.fdf").read_text()
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(MD_CAR, run)
    (run / "md_nose.fdf").write_text(fdf.replace("      3       8     O\n", "      3       8     O\n      4       1     H\n"))
    assert list(read_trajectory(run / "md_nose.MD_CAR").numbers) == [12, 12, 6, 6, 8, 8, 8, 8, 8, 8]

    start = fdf.index("%block AtomicCoordinatesAndAtomicSpecies")
    stop = fdf.index("%endblock AtomicCoordinatesAndAtomicSpecies") + len("%endblock AtomicCoordinatesAndAtomicSpecies")
    (run / "md_nose.fdf").write_text(fdf[:start] + "%include coords.fdf" + fdf[stop:])
    with pytest.raises(FormatError, match="names no element; put the run's .fdf"):
        read_trajectory(run / "md_nose.MD_CAR")
    traj = read_trajectory(MD_CAR)
    with open(run / "md_nose.ANI", "w") as handle:  # constructed in SIESTA's .ANI layout from the same steps
        for frame in traj.positions:
            handle.write("10\n\n")
            handle.writelines(f"{s} {x:.6f} {y:.6f} {z:.6f}\n" for s, (x, y, z) in zip(
                ["Mg", "Mg", "C", "C"] + ["O"] * 6, frame))
    jobs = plan_jobs(run, tmp_path / "out", BatchSettings(UpsampleSettings(factor=2, method="spline")))
    assert [job.relative for job in jobs] == ["md_nose.ANI"]
    (run / "fdf-12345.log").write_text(fdf)  # SIESTA's log of the input, blocks expanded
    assert list(read_trajectory(run / "md_nose.MD_CAR").numbers) == [12, 12, 6, 6, 8, 8, 8, 8, 8, 8]
    (run / "fdf-12345.log").unlink()
    # the included file itself, and a block read from a file ("%block NAME < FILE")
    (run / "coords.fdf").write_text(fdf[start:stop] + "\n")
    assert list(read_trajectory(run / "md_nose.MD_CAR").numbers) == [12, 12, 6, 6, 8, 8, 8, 8, 8, 8]
    rows = fdf[start:stop].splitlines()[1:-1]
    (run / "coords.dat").write_text("\n".join(rows) + "\n")
    (run / "coords.fdf").unlink()
    (run / "md_nose.fdf").write_text(fdf[:start] + "%block AtomicCoordinatesAndAtomicSpecies < coords.dat" + fdf[stop:])
    assert list(read_trajectory(run / "md_nose.MD_CAR").numbers) == [12, 12, 6, 6, 8, 8, 8, 8, 8, 8]

    (run / "md_nose.fdf").write_text(fdf.replace("      1      12     Mg", "      1     -12     Mg"))  # a ghost
    with pytest.raises(FormatError, match="atomic number -12 .*ghost") as err:
        read_trajectory(run / "md_nose.MD_CAR")
    assert "\n" not in str(err.value)
