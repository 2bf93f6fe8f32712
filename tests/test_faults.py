"""The fault suite: bad input and interrupted runs never lose data, overwrite an input,
write a non-finite number or end in a traceback.

Every case is one that a sweep of bad inputs found (issue #26).  A refusal is one line
on stderr, a non-zero exit, no output and no leftover temporary file; an input's
checksum never changes.  The property test at the end checks the streaming driver's
frame bookkeeping for every classical method over random sizes.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import edited_example
from mdsr_plugin import upsample
from mdsr_plugin.cli import main
from mdsr_plugin.io import read_trajectory, write_trajectory
from mdsr_plugin.resolve import resolve_method
from mdsr_plugin.pipeline import stream_method
from mdsr_plugin.settings import UpsampleSettings
from mdsr_plugin.trajectory import Trajectory, TrajectoryError, concatenate

EXAMPLE = Path(__file__).parents[1] / "mdsr_plugin" / "data" / "examples" / "ethanol_coarse.xyz"
CLASSICAL = ("linear", "spline", "hermite", "quintic")


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_refusal(code, err, expected, *, exit_code=None):
    assert code != 0 if exit_code is None else code == exit_code, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert expected in lines[0], err


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name)


def oscillators(n_frames: int, n_atoms: int, dt: float = 10.0, seed: int = 0, forces: bool = True) -> Trajectory:
    """Independent harmonic oscillators sampled every ``dt`` fs, periods 120–400 fs:
    positions (Å), velocities (Å/fs) and forces (eV/Å) of one consistent motion."""
    rng = np.random.default_rng(seed)
    numbers = rng.choice([1, 6, 8], n_atoms)
    masses = np.array([1.008, 12.011, 15.999])[np.searchsorted([1, 6, 8], numbers)]
    omega = 2 * np.pi / rng.uniform(120.0, 400.0, (n_atoms, 3))  # rad/fs
    amplitude, phase = rng.uniform(0.05, 0.2, (n_atoms, 3)), rng.uniform(0, 2 * np.pi, (n_atoms, 3))
    centre = rng.uniform(-3.0, 3.0, (n_atoms, 3))
    t = dt * np.arange(n_frames)[:, None, None]
    positions = centre + amplitude * np.sin(omega * t + phase)
    velocities = amplitude * omega * np.cos(omega * t + phase)
    # F = m a; a in Å/fs² -> eV/Å through the internal unit factor.
    from mdsr_plugin.units import ACCEL_PER_FORCE_OVER_MASS

    acceleration = -(omega**2) * (positions - centre)
    return Trajectory(numbers=numbers, masses=masses, positions=positions, velocities=velocities,
                      forces=masses[:, None] * acceleration / ACCEL_PER_FORCE_OVER_MASS if forces else None,
                      times=t[:, 0, 0])


# ----------------------------------------------------------------------------- frames lost
@pytest.mark.parametrize("method", ["linear", "hermite", "quintic", "spline"])
def test_last_frame_kept_when_the_gaps_fill_whole_blocks(method):
    """4 097 frames at factor 2: 4 096 gaps, exactly one block of 4 096 (the dropped-frame case)."""
    coarse = oscillators(4097, 3)
    fine = upsample(coarse, 2, method, self_validate=False)
    assert fine.n_frames == 8193
    np.testing.assert_array_equal(fine.positions[-1], coarse.positions[-1])


# ------------------------------------------------------------------------ inputs overwritten
def test_output_velocity_companion_never_overwrites_the_input_velocity_file(tmp_path, capsys):
    """``--velocities out.vel.dcd -o out.dcd``: the DCD writer's companion is out.vel.dcd."""
    topology = tmp_path / "in.pdb"
    coarse = oscillators(5, 3)
    import ase.io

    ase.io.write(topology, ase.Atoms(numbers=coarse.numbers, positions=coarse.positions[0]))
    write_trajectory(tmp_path / "in.dcd", coarse)
    (tmp_path / "in.vel.dcd").rename(tmp_path / "out.vel.dcd")
    before = sha256(tmp_path / "out.vel.dcd")
    code, _, err = run([tmp_path / "in.dcd", "--top", topology, "--velocities", tmp_path / "out.vel.dcd",
                        "--factor", "10", "-o", tmp_path / "out.dcd"], capsys)
    assert_one_line_refusal(code, err, "would overwrite the input", exit_code=2)
    assert sha256(tmp_path / "out.vel.dcd") == before
    assert not (tmp_path / "out.dcd").exists() and not leftovers(tmp_path)


def test_output_is_the_input_by_another_name_or_a_hard_link(tmp_path, capsys):
    source = tmp_path / "coarse.xyz"
    source.write_bytes(EXAMPLE.read_bytes())
    (tmp_path / "link.xyz").hardlink_to(source)
    before = sha256(source)
    for output in (tmp_path / "." / "coarse.xyz", tmp_path / "link.xyz"):
        code, _, err = run([source, "--factor", "2", "-o", output], capsys)
        assert_one_line_refusal(code, err, "would overwrite the input", exit_code=2)
    assert sha256(source) == before


@pytest.mark.parametrize("run_folder, positions, companion, options", [
    ("cp2k/h2o_nvt", "H2O_restart-pos-1.xyz", "H2O_restart-vel-1.xyz", []),
    ("cp2k/h2o_nvt", "H2O_restart-pos-1.xyz", "H2O_restart-frc-1.xyz", []),
    ("ipi/driven_zundel", "ref_simulation.pos_0.xyz", "ref_simulation.vel_0.xyz", []),
    ("qe/cp_h2o_qeheat", "traj/cp.pos", "traj/cp.vel", ["--output-format", "xyz"]),
], ids=["cp2k-vel", "cp2k-frc", "ipi-vel", "cp-vel"])
def test_a_companion_the_reader_finds_beside_the_input_is_never_overwritten(tmp_path, capsys, run_folder, positions,
                                                                             companion, options):
    """Only companions named with --velocities/--forces/--cell were protected: those found
    beside the positions were replaced by the output (command line and Python alike)."""
    import shutil

    from mdsr_plugin import upsample_file
    from mdsr_plugin.io import FormatError

    run_copy = tmp_path / "run"
    shutil.copytree(Path(__file__).parent / "data" / "real" / run_folder, run_copy)
    before = {path: sha256(path) for path in run_copy.rglob("*") if path.is_file()}
    code, _, err = run([run_copy / positions, "--factor", "2", "--method", "linear", *options,
                        "-o", run_copy / companion], capsys)
    assert_one_line_refusal(code, err, "would overwrite the input", exit_code=2)
    output_format = options[1] if options else None
    with pytest.raises(FormatError, match="would overwrite the input"):
        upsample_file(run_copy / positions, run_copy / companion, 2, method="linear", output_format=output_format)
    assert {path: sha256(path) for path in run_copy.rglob("*") if path.is_file()} == before


@pytest.mark.parametrize("name", ["run.json", "run.prior.h5md", "run.prior.json"])
def test_adapt_checkpoint_never_overwrites_an_input(tmp_path, capsys, name):
    source = tmp_path / name  # an input named like the checkpoint's card, or a prior's file
    source.write_bytes(EXAMPLE.read_bytes())
    code, _, err = run([source, "--format", "xyz", "--factor", "2", "-o", tmp_path / "fine.xyz",
                        "--adapt", tmp_path / "run"], capsys)
    assert_one_line_refusal(code, err, "would overwrite the input", exit_code=2)
    assert sha256(source) == sha256(EXAMPLE)


@pytest.mark.parametrize("folder", ["out.xyz", "results", "."])
def test_output_naming_a_folder_is_refused_and_leaves_nothing(tmp_path, capsys, folder):
    # a folder without an extension was refused for that ("cannot tell the format from the extension")
    (tmp_path / folder).mkdir(exist_ok=True)
    code, _, err = run([EXAMPLE, "--factor", "2", "-o", tmp_path / folder], capsys)
    assert_one_line_refusal(code, err, "names a folder", exit_code=2)
    assert not leftovers(tmp_path) and not any((tmp_path / folder).iterdir())


# ---------------------------------------------------------------------- non-finite or absurd
def test_a_position_of_1e308_is_refused_on_reading(tmp_path, capsys):
    source = edited_example(tmp_path / "huge.xyz", [3], 1, "1e308")
    code, _, err = run([source, "--factor", "2", "-o", tmp_path / "fine.xyz"], capsys)
    assert_one_line_refusal(code, err, "frame 3: a position of 1e+308 Å is no coordinate", exit_code=1)
    assert not (tmp_path / "fine.xyz").exists() and not leftovers(tmp_path)


def test_nan_never_passes_upsample_or_the_writer(tmp_path):
    coarse = oscillators(6, 2)
    positions = coarse.positions.copy()
    positions[2, 1, 0] = np.nan
    with pytest.raises(TrajectoryError, match="frame 2: positions contain NaN"):
        upsample(replace(coarse, positions=positions), 4, "hermite")
    with pytest.raises(TrajectoryError, match="not written: output frame 2: positions contain NaN"):
        write_trajectory(tmp_path / "bad.h5md", replace(coarse, positions=positions))
    assert not list(tmp_path.iterdir())


def test_a_diverging_method_is_stopped_before_the_writer():
    from mdsr_plugin.methods import Method

    class Diverging(Method):
        name, requires, context, block_gaps = "diverging", (), 0, 4096

        def interpolate(self, coarse, factor):
            from mdsr_plugin.methods.base import FineFrames

            n = (coarse.n_frames - 1) * factor + 1
            return FineFrames(np.full((n, coarse.n_atoms, 3), np.inf), np.zeros((n, coarse.n_atoms, 3)))

    with pytest.raises(TrajectoryError, match="method 'diverging' produced no usable output"):
        concatenate(list(stream_method([oscillators(4, 2)], 3, Diverging())))


@pytest.mark.parametrize("masses, message", [([1.0, 0.0], "atom 1: mass 0 u"), ([1.0, -12.0], "atom 1: mass -12 u")])
def test_masses_must_be_positive(masses, message):
    with pytest.raises(TrajectoryError, match=message):
        Trajectory(numbers=[1, 6], masses=masses, positions=np.zeros((2, 2, 3)), times=[0.0, 1.0])


def test_zero_mass_in_a_file_is_blamed_on_the_mass_not_the_velocities(tmp_path, capsys):
    source = edited_example(tmp_path / "massless.xyz", None, 4, "0.0")
    code, _, err = run([source, "--factor", "2", "-o", tmp_path / "fine.xyz"], capsys)
    assert_one_line_refusal(code, err, "atom 0: mass 0 u", exit_code=1)
    assert "Warning" not in err


@pytest.mark.parametrize("number", [-6, 119])
def test_atomic_numbers_outside_the_periodic_table_are_refused(number):
    with pytest.raises(TrajectoryError, match=f"atomic number {number} is no element"):
        Trajectory(numbers=[number], positions=np.zeros((2, 1, 3)), times=[0.0, 1.0])


def test_unknown_element_symbol_is_named(tmp_path, capsys):
    source = edited_example(tmp_path / "xx.xyz", [0], 0, "Xx")
    code, _, err = run([source, "--factor", "2", "-o", tmp_path / "fine.xyz"], capsys)
    assert_one_line_refusal(code, err, "unknown element symbol 'Xx'", exit_code=1)


@pytest.mark.parametrize("dt", ["1e30", "1e-30"])
def test_dt_contradicting_the_file_and_its_velocities_is_refused(tmp_path, capsys, dt):
    code, _, err = run([EXAMPLE, "--factor", "2", "-o", tmp_path / "fine.xyz", "--dt", dt], capsys)
    assert_one_line_refusal(code, err, "contradicts the file's own step of 20 fs", exit_code=1)
    assert not (tmp_path / "fine.xyz").exists()


def test_dt_the_velocities_allow_overrides_the_file_with_a_warning(tmp_path, capsys, caplog):
    code, _, err = run([EXAMPLE, "--factor", "2", "-o", tmp_path / "fine.xyz", "--dt", "25", "-q",
                        "--method", "hermite"], capsys)
    assert code == 0
    assert "--dt 25 fs overrides the file's own step of 20 fs" in caplog.text
    assert read_trajectory(tmp_path / "fine.xyz").dt == pytest.approx(12.5)


def test_velocities_in_the_wrong_units_are_caught_by_the_step_check():
    coarse = oscillators(8, 3)
    with pytest.raises(TrajectoryError, match="stored velocities disagree"):
        upsample(replace(coarse, velocities=coarse.velocities / 1000.0), 4, "hermite")
    with pytest.raises(TrajectoryError, match="stored velocities disagree"):
        upsample(replace(coarse, velocities=coarse.velocities * 1000.0), 4, "hermite")


def test_an_atom_crossing_more_than_half_the_box_against_its_velocity_is_refused():
    """The minimum image would run the atom backwards across the box."""
    dt, n = 10.0, 6
    t = dt * np.arange(n)[:, None, None]
    # Atom 0 flies at 0.6 Å/fs (6 Å per frame in a 10 Å box), the others drift slowly.
    velocities = np.broadcast_to([[0.6, 0, 0], [0.01, 0, 0], [0, 0.02, 0], [0, 0, -0.01]], (n, 4, 3)).copy()
    start = np.array([[1.0, 5, 5], [3, 3, 3], [6, 6, 6], [8, 2, 4]])

    def box(v):
        return replace(oscillators(n, 4), positions=(start + v * t) % 10.0, velocities=v, forces=None,
                       times=t[:, 0, 0], cell=np.eye(3) * 10.0, pbc=True)

    with pytest.raises(TrajectoryError, match="frame 1: atom 0 moves 6 Å by its stored velocity, more than half"):
        upsample(box(velocities), 4, "hermite")
    # The same motion at a quarter of the speed is unambiguous, and upsampled.
    assert upsample(box(velocities / 4), 4, "hermite").n_frames == 21


def test_a_singular_periodic_cell_is_one_line(tmp_path):
    coarse = replace(oscillators(4, 2), cell=np.zeros((3, 3)), pbc=True)
    with pytest.raises(TrajectoryError, match="frame 0: the periodic cell has volume 0"):
        upsample(coarse, 2, "hermite")


# ----------------------------------------------------------------------------- messages
def test_quintic_without_forces_names_the_method_that_fits(tmp_path):
    coarse = oscillators(6, 2, forces=False)
    from mdsr_plugin.methods import MethodError

    with pytest.raises(MethodError, match=r"needs forces.*use --method hermite \(positions \+ velocities\)"):
        upsample(coarse, 2, "quintic")


def test_a_folder_as_input_is_called_a_folder(tmp_path, capsys):
    (tmp_path / "archive").mkdir()
    code, _, err = run([tmp_path / "archive", "--format", "xyz", "--factor", "2", "-o", tmp_path / "f.xyz"], capsys)
    assert_one_line_refusal(code, err, "is a folder, not a file")


@pytest.mark.parametrize("argv, message", [
    (["--dt", "inf"], "must be > 0 and finite"),
    (["--dt", "nan"], "must be > 0 and finite"),
    (["-o", "fine.pdb"], "it writes .dcd"),
    (["-o", "fine.lammpstrj"], "cannot write lammpsdump files"),
])
def test_usage_errors_are_exit_2_and_one_line(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    arguments = [EXAMPLE, "--factor", "2", *argv]
    if "-o" not in argv:
        arguments += ["-o", "fine.xyz"]
    code, _, err = run(arguments, capsys)
    assert_one_line_refusal(code, err, message, exit_code=2)


def test_python_api_wrong_types_are_type_errors():
    with pytest.raises(TypeError, match="upsample\\(\\) takes a Trajectory"):
        upsample(str(EXAMPLE), 2)
    with pytest.raises(TypeError, match="a writer takes a Trajectory, not ndarray"):
        write_trajectory("never.xyz", np.zeros((2, 3, 3)))
    from mdsr_plugin.pipeline import upsample_stream

    with pytest.raises(TypeError, match="takes Trajectory chunks, not ndarray"):
        list(upsample_stream([np.zeros((2, 3, 3))], 2))
    with pytest.raises(Exception, match="dt must be > 0 fs and finite"):
        UpsampleSettings(factor=2, dt=float("inf")).checked()


# ------------------------------------------------------------------------ garbage files
@pytest.mark.parametrize("extension", [".dcd", ".trr", ".xtc", ".nc"])
def test_garbage_binary_files_give_one_line_without_a_library_traceback(tmp_path, extension):
    from MDAnalysisTests.datafiles import PSF

    garbage = tmp_path / f"garbage{extension}"
    garbage.write_bytes(np.random.default_rng(0).bytes(3000))
    result = subprocess.run([sys.executable, "-m", "mdsr_plugin.cli", str(garbage), "--top", PSF,
                             "--factor", "2", "-o", str(tmp_path / "fine.h5md")], capture_output=True, text=True)
    assert_one_line_refusal(result.returncode, result.stderr, "cannot be read as", exit_code=1)
    assert not (tmp_path / "fine.h5md").exists()


# ---------------------------------------------------------------------------- signals
@pytest.fixture(scope="module")
def long_input(tmp_path_factory) -> Path:
    """A coarse file that takes a few seconds to upsample at factor 20 into XYZ."""
    path = tmp_path_factory.mktemp("long") / "long.xyz"
    write_trajectory(path, oscillators(1500, 20))
    return path


def _start(long_input, output, factor=20):
    return subprocess.Popen([sys.executable, "-m", "mdsr_plugin.cli", str(long_input), "--factor", str(factor),
                             "-o", str(output), "--method", "hermite", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_temporary(folder: Path, process, timeout=60.0):
    start = time.monotonic()
    while not leftovers(folder):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() - start < timeout
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("extension", [".xyz", ".h5md"])
def test_sigterm_and_sigint_remove_the_temporary_output_and_exit_128_plus_signal(tmp_path, long_input,
                                                                                signum, extension):
    output = tmp_path / f"fine{extension}"
    process = _start(long_input, output)
    _wait_for_temporary(tmp_path, process)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    if process.returncode == 0:  # the run had finished writing: then the output is whole
        assert read_trajectory(output).n_frames == 1499 * 20 + 1
    else:
        assert process.returncode == 128 + signum, err
        assert "Traceback" not in err and "Exception ignored" not in err, err
        assert f"stopped by {signal.Signals(signum).name}; no output written" in err
        assert not output.exists()
    assert not leftovers(tmp_path)


def test_a_killed_runs_leftover_is_removed_by_the_next_run_of_the_same_output(tmp_path, long_input):
    output = tmp_path / "fine.xyz"
    process = _start(long_input, output)
    _wait_for_temporary(tmp_path, process)
    process.kill()
    process.wait()
    assert leftovers(tmp_path)  # SIGKILL cannot be cleaned up after
    finished = subprocess.run([sys.executable, "-m", "mdsr_plugin.cli", str(long_input), "--factor", "2",
                               "-o", str(output), "--method", "hermite", "-q"], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert not leftovers(tmp_path)
    assert read_trajectory(output).n_frames == 1499 * 2 + 1


def test_a_live_runs_temporary_is_left_alone(tmp_path):
    from mdsr_plugin.io.atomic import AtomicFiles, remove_stale_temporaries

    target = tmp_path / "fine.xyz"
    with AtomicFiles(target) as (temporary,):
        temporary.write_text("being written")
        assert remove_stale_temporaries(target) == []  # this process is alive and still holds it
        assert temporary.exists()
    assert target.read_text() == "being written"


def test_a_group_of_files_is_published_whole_or_not_at_all(tmp_path, monkeypatch):
    """A DCD and its velocity DCD: the second rename failing (an immutable old file, a full
    quota) left a new DCD beside the old velocities.  Now both old files stay, no temporary."""
    import os

    from mdsr_plugin.io.atomic import AtomicFiles

    positions, velocities = tmp_path / "fine.dcd", tmp_path / "fine.vel.dcd"
    positions.write_text("old positions")
    velocities.write_text("old velocities")
    real_replace = os.replace

    def failing_second(source, target):
        if Path(target) == velocities and ".partial-" in Path(source).name:
            raise PermissionError(1, "Operation not permitted")
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", failing_second)
    with pytest.raises(PermissionError, match=r"fine\.vel\.dcd cannot be written \(Operation not permitted\)"):
        with AtomicFiles(positions, velocities) as temporaries:
            for temporary in temporaries:
                temporary.write_text("new")
    assert positions.read_text() == "old positions" and velocities.read_text() == "old velocities"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fine.dcd", "fine.vel.dcd"]
    # new files: neither appears
    monkeypatch.setattr(os, "replace", failing_second)
    positions.unlink()
    velocities.unlink()
    with pytest.raises(PermissionError):
        with AtomicFiles(positions, velocities) as temporaries:
            for temporary in temporaries:
                temporary.write_text("new")
    assert list(tmp_path.iterdir()) == []


def test_a_stop_signal_during_a_group_s_renames_waits_until_both_are_published(tmp_path, monkeypatch):
    """SIGTERM between the renames of a DCD and its velocity DCD (from any thread of the
    process) left the new DCD beside the old velocities; it now acts once both are in place."""
    import os
    import signal as signals
    import threading

    from mdsr_plugin.io.atomic import AtomicFiles, Interrupted, published_while_stopping, stop_on_signals

    positions, velocities = tmp_path / "fine.dcd", tmp_path / "fine.vel.dcd"
    for path in (positions, velocities):
        path.write_text("old")
    real_replace, sent = os.replace, []

    def signalled_after_first(source, target):
        real_replace(source, target)
        if not sent:  # SIGTERM from outside, while another thread runs (PyTorch's pool)
            sent.append(True)
            os.kill(os.getpid(), signals.SIGTERM)

    monkeypatch.setattr(os, "replace", signalled_after_first)
    sleeper = threading.Thread(target=lambda: threading.Event().wait(2), daemon=True)
    sleeper.start()
    with pytest.raises(Interrupted):
        with stop_on_signals():
            with AtomicFiles(positions, velocities) as temporaries:
                for temporary in temporaries:
                    temporary.write_text("new")
            raise AssertionError("the signal did not act once the group was published")
    assert positions.read_text() == velocities.read_text() == "new"
    # what the command's interrupt message names ("after writing ..."), and nothing left aside
    assert published_while_stopping() == [positions, velocities]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([positions.name, velocities.name])


def test_two_runs_joined_in_one_file_are_refused_at_the_join():
    """A restart appended with another origin (every atom 50 Å away from one frame on) passed
    the median step check of the whole trajectory and was interpolated across at 650 km/s."""
    coarse = read_trajectory(EXAMPLE)
    positions = coarse.positions.copy()
    positions[100:] += 50.0
    with pytest.raises(TrajectoryError, match=r"frame 100: the atoms move .* farther than their stored "
                                              r"velocities carry them: two runs joined here"):
        upsample(replace(coarse, positions=positions), 4, method="hermite")
    # across a chunk boundary too
    with pytest.raises(TrajectoryError, match="frame 100: the atoms move"):
        list(stream_method([replace(coarse, positions=positions)[:100], replace(coarse, positions=positions)[100:]],
                           4, resolve_method("hermite", coarse, 4, UpsampleSettings(factor=4).checked())[0]))


def test_a_deferred_stop_left_behind_does_not_stop_a_later_run(tmp_path):
    """A second signal acting at once, just after a group was published, left the first one's
    deferred action behind: the next write in the process (a notebook, a test) raised."""
    from mdsr_plugin.io import atomic

    with atomic.stop_on_signals():
        atomic._AFTER_PUBLISHING.append(lambda: (_ for _ in ()).throw(AssertionError("a stale stop acted")))
    atomic.write_text_atomically(tmp_path / "later.txt", "written")
    assert (tmp_path / "later.txt").read_text() == "written" and atomic._AFTER_PUBLISHING == []


def test_a_group_without_hard_links_keeps_the_old_files_by_copy(tmp_path, monkeypatch):
    """Where a hard link cannot be made, rolling back removed the old DCD for good."""
    import os

    from mdsr_plugin.io.atomic import AtomicFiles

    positions, velocities = tmp_path / "fine.dcd", tmp_path / "fine.vel.dcd"
    positions.write_text("old positions")
    velocities.write_text("old velocities")
    real_replace = os.replace

    def no_links(*args):
        raise PermissionError(1, "Operation not permitted")

    def failing_second(source, target):
        if Path(target) == velocities and ".partial-" in Path(source).name:
            raise OSError(28, "No space left on device")
        return real_replace(source, target)

    monkeypatch.setattr(os, "link", no_links)
    monkeypatch.setattr(os, "replace", failing_second)
    with pytest.raises(OSError, match="No space left"):
        with AtomicFiles(positions, velocities) as temporaries:
            for temporary in temporaries:
                temporary.write_text("new")
    assert positions.read_text() == "old positions" and velocities.read_text() == "old velocities"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fine.dcd", "fine.vel.dcd"]


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_an_output_that_is_no_regular_file_is_refused_not_replaced(tmp_path, kind, capsys):
    """``-o /dev/null`` (or a FIFO) was replaced by a plain file holding the output."""
    import os

    from mdsr_plugin.cli import main

    if kind == "fifo":
        target = tmp_path / "out.xyz"
        os.mkfifo(target)
    else:
        target = Path("/dev/null")
    before = os.stat(target)
    assert main([str(EXAMPLE), "--factor", "2", "-o", str(target), "--output-format", "xyz", "-q"]) == 2
    assert f"the output names {'a FIFO' if kind == 'fifo' else 'a device'}, not a file" in capsys.readouterr().err
    after = os.stat(target)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)


def test_an_input_that_is_a_fifo_or_device_is_refused_at_once(tmp_path, capsys):
    """A FIFO (or /dev/stdin in a pipe) hung for ever in the format sniffing; /dev/zero ran out of memory."""
    import os

    from mdsr_plugin.batch import BatchSettings, process_archive
    from mdsr_plugin.cli import main

    fifo = tmp_path / "stream.xyz"
    os.mkfifo(fifo)
    for source in (fifo, Path("/dev/zero")):
        assert main([str(source), "--format", "xyz", "--factor", "2", "-o", str(tmp_path / "out.xyz"), "-q"]) == 2
        assert "not a file; mdsr_plugin reads its input more than once" in capsys.readouterr().err
    # an archive holding a FIFO: the batch skips it (reading it would wait for a writer)
    (tmp_path / "archive").mkdir()
    os.mkfifo(tmp_path / "archive" / "live.xyz")
    write_trajectory(tmp_path / "archive" / "run.xyz", read_trajectory(EXAMPLE)[:5])
    result = process_archive(tmp_path / "archive", tmp_path / "out",
                             BatchSettings(UpsampleSettings(factor=2, method="hermite")))
    assert [r["file"] for r in result.done] == ["run.xyz"] and not result.failed


def test_long_output_names_within_the_system_s_limit_are_written_and_longer_ones_refused(tmp_path, capsys):
    """A 240-byte name is valid, but its temporary name (35 bytes longer) was not: refused with
    the temporary's name.  A 300-byte name gave a traceback."""
    valid = tmp_path / ("b" * 240 + ".xyz")
    assert main([str(EXAMPLE), "--factor", "2", "-o", str(valid), "--method", "hermite", "-q"]) == 0
    assert valid.is_file() and [p.name for p in tmp_path.iterdir()] == [valid.name]
    too_long = tmp_path / ("a" * 300 + ".xyz")
    assert main([str(EXAMPLE), "--factor", "2", "-o", str(too_long), "-q"]) == 2
    err = capsys.readouterr().err
    assert "the output's name is 304 bytes, more than the 255" in err and len(err.splitlines()) == 1


def test_a_library_failing_to_write_is_one_os_error_and_leaves_nothing(tmp_path, monkeypatch):
    """h5py on a full disk raised OSError while writing, then RuntimeError while closing (a
    41-line traceback): the first error is the one reported, as an OSError, nothing is left."""
    from mdsr_plugin.io.h5md import H5MDWriter

    def full_disk(self, traj):
        raise OSError(28, "Can't synchronously write data")

    def close_fails(self):
        raise RuntimeError("Disable slist on flush dest failure failed")

    monkeypatch.setattr(H5MDWriter, "_write", full_disk)
    monkeypatch.setattr(H5MDWriter, "_close", close_fails)
    coarse = read_trajectory(EXAMPLE)[:3]
    with pytest.raises(OSError, match="synchronously"):
        write_trajectory(tmp_path / "out.h5md", coarse)
    monkeypatch.setattr(H5MDWriter, "_write", lambda self, traj: None)
    with pytest.raises(OSError, match=r"out\.h5md: could not be finished \(Disable slist"):
        write_trajectory(tmp_path / "out.h5md", coarse)
    monkeypatch.setattr(H5MDWriter, "_write", lambda self, traj: close_fails(self))
    with pytest.raises(OSError, match=r"out\.h5md: cannot be written \(Disable slist"):
        write_trajectory(tmp_path / "out.h5md", coarse)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------- property test
@st.composite
def stream_cases(draw):
    n_frames = draw(st.integers(2, 40))
    return {
        "n_frames": n_frames,
        "n_atoms": draw(st.integers(1, 4)),
        "factor": draw(st.integers(2, 7)),
        "chunk": draw(st.integers(1, n_frames)),
        "block_gaps": draw(st.integers(1, 12)),
        "method": draw(st.sampled_from(CLASSICAL)),
        "seed": draw(st.integers(0, 2**16)),
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream_cases())
def test_every_method_streams_exactly_n_minus_1_times_factor_plus_1_frames(case):
    """Whatever the frame count, factor, atom count, chunking and block size: the frame
    count is exact, coarse frames come out bit for bit, every value is finite, and the
    streamed output equals the one computed in a single chunk."""
    coarse = oscillators(case["n_frames"], case["n_atoms"], seed=case["seed"])
    factor = case["factor"]
    settings_ = UpsampleSettings(factor=factor, method=case["method"], self_validate=False).checked()
    method, _ = resolve_method(case["method"], coarse, factor, settings_)
    method.block_gaps = case["block_gaps"]
    chunks = [coarse[i:i + case["chunk"]] for i in range(0, coarse.n_frames, case["chunk"])]
    streamed = concatenate(list(stream_method(chunks, factor, method)))
    whole = concatenate(list(stream_method([coarse], factor, method)))

    assert streamed.n_frames == (coarse.n_frames - 1) * factor + 1
    np.testing.assert_array_equal(streamed.positions[::factor], coarse.positions)
    np.testing.assert_array_equal(streamed.velocities[::factor], coarse.velocities)
    np.testing.assert_allclose(streamed.times, coarse.times[0] + np.arange(streamed.n_frames) * coarse.dt / factor)
    assert np.isfinite(streamed.positions).all() and np.isfinite(streamed.velocities).all()
    np.testing.assert_array_equal(streamed.positions, whole.positions)
    np.testing.assert_array_equal(streamed.velocities, whole.velocities)


def test_a_companion_one_frame_off_late_in_a_long_run_is_refused(tmp_path):
    """Frames matched by their times (where either file has no step numbers): the tolerance
    was 1e-3 of the time, which at 100 ps is 100 fs, ten frames of 10 fs; now it is also at
    most a quarter of the spacing, so a companion one frame off is refused there too."""
    from mdsr_plugin.io.base import FormatError
    from mdsr_plugin.io.companions import QuantityChunk, QuantitySource, _check_frames_match
    from mdsr_plugin.trajectory import Trajectory

    times = 100_000.0 + 10.0 * np.arange(4)  # fs: frames 10 fs apart, 100 ps into the run
    chunk = Trajectory(numbers=[1], positions=np.zeros((4, 1, 3)), times=times)
    source = QuantitySource(tmp_path / "run-vel-1.xyz", "velocities", "CP2K")
    printed = np.round(times, 3)  # CP2K prints the time to 1e-3 fs: that rounding passes
    _check_frames_match(chunk, QuantityChunk(np.zeros((4, 1, 3)), None, printed), source, 0, "run-pos-1.xyz")
    with pytest.raises(FormatError, match="frame 0: run-pos-1.xyz is at 100000 fs, run-vel-1.xyz at 100010 fs"):
        _check_frames_match(chunk, QuantityChunk(np.zeros((4, 1, 3)), None, times + 10.0), source, 0,
                            "run-pos-1.xyz")
    # a chunk of one frame (the last of a read): the spacing of the chunks before it
    last = chunk[3:]
    with pytest.raises(FormatError, match="frame 3: run-pos-1.xyz is at 100030 fs"):
        _check_frames_match(last, QuantityChunk(np.zeros((1, 1, 3)), None, last.times + 10.0), source, 3,
                            "run-pos-1.xyz", spacing=10.0)


def test_a_warning_on_the_command_line_is_one_line_of_the_command_s(tmp_path):
    """Python's own format printed the source file and line of the warning call after it."""
    import bz2

    from MDAnalysisTests import datafiles as data

    dump = tmp_path / "wat.lammpstrj"  # atom types with no element: a warning, then a result
    dump.write_bytes(bz2.open(Path(data.PSF).parent / "lammps" / "wat.lammpstrj.bz2").read())
    result = subprocess.run([sys.executable, "-m", "mdsr_plugin.cli", str(dump), "--factor", "2", "--dt", "10",
                             "--method", "linear", "-o", str(tmp_path / "out.xyz")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    warning = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warning) == 1 and warning[0].startswith("mdsr-upsample: warning: wat.lammpstrj: atom types 1, 2")
    assert ".py:" not in result.stderr and "reader = " not in result.stderr


def test_every_command_prints_a_warning_as_one_line_of_its_own():
    import warnings

    from mdsr_plugin.console import one_line_warnings

    saved = warnings.formatwarning
    try:
        one_line_warnings("mdsr-generate")
        assert warnings.formatwarning("two\n  lines", UserWarning, "/x/reference.py", 446) == \
            "mdsr-generate: warning: two lines\n"
    finally:
        warnings.formatwarning = saved


@pytest.mark.parametrize("suffix", [".trr", ".xtc"])
def test_reading_a_gromacs_trajectory_leaves_nothing_beside_it(tmp_path, suffix):
    """MDAnalysis caches an XTC's or TRR's frame offsets as hidden files beside it: inside the
    user's archive, which the tool never writes to (mdsr-batch left two in every such folder)."""
    import ase.io

    from mdsr_plugin.io import read_trajectory, write_trajectory

    archive = tmp_path / "archive"
    archive.mkdir()
    coarse = read_trajectory(EXAMPLE)
    ase.io.write(archive / "top.pdb", ase.Atoms(numbers=coarse.numbers, positions=coarse.positions[0]))
    write_trajectory(archive / f"md{suffix}", coarse)
    before = sorted(p.name for p in archive.iterdir())
    assert read_trajectory(archive / f"md{suffix}", topology=archive / "top.pdb").n_frames == coarse.n_frames
    code = subprocess.run([sys.executable, "-m", "mdsr_plugin.cli", str(archive / f"md{suffix}"), "--top",
                           str(archive / "top.pdb"), "--factor", "2", "--method", "linear", "-o",
                           str(tmp_path / "fine.xyz")], capture_output=True, text=True, timeout=120).returncode
    assert code == 0 and sorted(p.name for p in archive.iterdir()) == before


def test_an_extended_xyz_cut_inside_a_frame_is_refused_naming_it(tmp_path, capsys):
    lines = EXAMPLE.read_text().splitlines(keepends=True)
    per_frame = int(lines[0]) + 2
    cut = tmp_path / "cut.xyz"
    cut.write_text("".join(lines[:5 * per_frame + 4]))  # 5 frames and 2 atoms of the sixth
    code, _, err = run([cut, "--factor", "2", "-o", tmp_path / "fine.xyz"], capsys)
    assert_one_line_refusal(code, err, "cut.xyz: frame 5 cannot be read as extxyz", exit_code=1)
    assert "cut short" in err and not (tmp_path / "fine.xyz").exists() and not leftovers(tmp_path)
