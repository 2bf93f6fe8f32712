"""mdsr-batch: a mixed-format archive with broken files, 2 workers, resume, kill, Ctrl-C, Dask."""

from __future__ import annotations

import filecmp
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mdsr_plugin.batch import BatchSettings, PlanError, process_archive
from mdsr_plugin.batch.archive import plan_jobs
from mdsr_plugin.batch.cli import main as batch_main
from mdsr_plugin.batch.manifest import MANIFEST_NAME, Manifest
from mdsr_plugin.io import read_trajectory, write_trajectory
from mdsr_plugin.io.ase_backend import trajectory_to_atoms
from mdsr_plugin.pipeline import upsample_file
from mdsr_plugin.settings import UpsampleSettings
from mdsr_plugin.trajectory import Trajectory

GOOD = ["a/ethanol.xyz", "a/ethanol_copy.h5md", "b/run.dcd", "b/deep/md.trr", "c/ethanol.traj"]


def _write_pdb(path, traj):
    import ase.io

    ase.io.write(path, trajectory_to_atoms(traj[:1])[0])


@pytest.fixture
def archive(tmp_path, xtb_fine):
    """Real GFN2-xTB ethanol at a 20 fs coarse step, in five formats and four folders,
    plus a truncated file, a file that is no trajectory, and a text file."""
    coarse = xtb_fine[::40]
    root = tmp_path / "archive"
    for folder in ("a", "b/deep", "c", "broken"):
        (root / folder).mkdir(parents=True)
    write_trajectory(root / "a/ethanol.xyz", coarse)
    write_trajectory(root / "a/ethanol_copy.h5md", coarse)
    write_trajectory(root / "b/run.dcd", coarse)  # and b/run.vel.dcd, NAMD convention
    _write_pdb(root / "b/run.pdb", coarse)
    write_trajectory(root / "b/deep/md.trr", coarse)
    _write_pdb(root / "b/deep/md.pdb", coarse)
    write_trajectory(root / "c/ethanol.traj", coarse)
    text = (root / "a/ethanol.xyz").read_text()
    (root / "broken/truncated.xyz").write_text(text[: len(text) // 2])
    (root / "broken/not_hdf5.h5md").write_bytes(b"\x00garbage" * 64)
    (root / "README.txt").write_text("a folder of AIMD runs")
    return root


def _latest(out_dir):
    return Manifest(out_dir).latest


def _assert_same_trajectory(path, expected_path, **options):
    got, want = read_trajectory(path, **options), read_trajectory(expected_path, **options)
    np.testing.assert_array_equal(got.positions, want.positions)
    np.testing.assert_array_equal(got.velocities, want.velocities)
    np.testing.assert_allclose(got.times, want.times)


def test_archive_with_two_workers_mirrors_folders_and_records_every_file(archive, tmp_path, capsys):
    out = tmp_path / "out"
    code = batch_main([str(archive), "-o", str(out), "--factor", "20", "--method", "hermite",
                       "--workers", "2", "-q"])
    assert code == 1  # two files failed
    records = _latest(out)
    assert sorted(records) == sorted(GOOD + ["broken/not_hdf5.h5md", "broken/truncated.xyz"])
    for name in GOOD:
        record = records[name]
        assert record["status"] == "done", record
        assert record["frames_in"] == 31 and record["frames_out"] == 30 * 20 + 1
        assert record["method"] == "hermite" and record["input_size"] == (archive / name).stat().st_size
        assert record["seconds"] > 0 and record["worker"]
        for relative, size in record["outputs"].items():
            assert (out / relative).stat().st_size == size
    assert set(records["b/run.dcd"]["outputs"]) == {"b/run.dcd", "b/run.vel.dcd"}
    assert "not a readable HDF5 file" in records["broken/not_hdf5.h5md"]["error"]
    assert records["broken/truncated.xyz"]["status"] == "failed"
    assert not (out / "broken").exists()  # every file in it failed: no empty folder is left
    assert "README.txt" not in records
    # -q: no table; each failed file named with its reason, a line on stderr
    printed = capsys.readouterr()
    assert printed.out == "" and "mdsr-batch: failed: broken/truncated.xyz: " in printed.err

    # Each output equals the per-file function run on its own (velocity DCD and topology found).
    reference = tmp_path / "reference"
    reference.mkdir()
    upsample_file(archive / "b/run.dcd", reference / "run.dcd", 20, method="hermite",
                  topology=archive / "b/run.pdb", velocities=archive / "b/run.vel.dcd")
    _assert_same_trajectory(out / "b/run.dcd", reference / "run.dcd", topology=archive / "b/run.pdb",
                            velocities=out / "b/run.vel.dcd")
    upsample_file(archive / "a/ethanol.xyz", reference / "ethanol.xyz", 20, method="hermite")
    _assert_same_trajectory(out / "a/ethanol.xyz", reference / "ethanol.xyz")
    # ...and is readable by the libraries: MDAnalysis for the TRR, ASE for the .traj.
    import ase.io
    import MDAnalysis as mda

    u = mda.Universe(str(archive / "b/deep/md.pdb"), str(out / "b/deep/md.trr"))
    assert len(u.trajectory) == 601 and u.trajectory.dt == pytest.approx(0.001)  # ps
    assert len(ase.io.read(out / "c/ethanol.traj", index=":")) == 601
    assert not list(out.rglob(".*partial*"))


def test_rerun_skips_done_files_retries_failed_and_redoes_changed_inputs(archive, tmp_path):
    out = tmp_path / "out"
    settings = BatchSettings(UpsampleSettings(factor=20, method="hermite"))
    first = process_archive(archive, out, settings, workers=2)
    assert len(first.done) == 5 and len(first.failed) == 2
    before = {name: (out / name).stat().st_mtime_ns for name in GOOD}

    again = process_archive(archive, out, settings, workers=2)
    assert sorted(again.skipped) == sorted(GOOD)
    assert sorted(r["file"] for r in again.records) == ["broken/not_hdf5.h5md", "broken/truncated.xyz"]
    assert before == {name: (out / name).stat().st_mtime_ns for name in GOOD}  # not rewritten

    os.utime(archive / "a/ethanol.xyz")  # the input changed
    (out / "c/ethanol.traj").unlink()  # an output went missing
    third = process_archive(archive, out, settings, exclude=["broken/*"])
    assert sorted(r["file"] for r in third.records) == ["a/ethanol.xyz", "c/ethanol.traj"]

    other = process_archive(archive, out, BatchSettings(UpsampleSettings(factor=10, method="hermite")), exclude=["broken/*"])
    assert len(other.records) == 5 and other.records[0]["frames_out"] == 301  # new settings: all redone
    forced = process_archive(archive, out, BatchSettings(UpsampleSettings(factor=10, method="hermite")), exclude=["broken/*"],
                             force=True)
    assert len(forced.records) == 5


def _long_archive(root: Path, n_files=4, n_frames=1000):
    """Synthetic 5-atom trajectories, long enough that a batch can be killed mid-way."""
    root.mkdir()
    t = np.arange(n_frames) * 20.0
    for i in range(n_files):
        rng = np.random.default_rng(i)
        omega, amp = rng.uniform(0.02, 0.2, (5, 3)), rng.uniform(0.02, 0.1, (5, 3))
        base = rng.normal(0, 1.5, (5, 3))
        traj = Trajectory(numbers=[6, 6, 8, 1, 1], times=t,
                          positions=base + amp * np.sin(omega * t[:, None, None]),
                          velocities=amp * omega * np.cos(omega * t[:, None, None]))
        folder = root / f"run{i}"
        folder.mkdir()
        write_trajectory(folder / ("traj.xyz" if i < 3 else "traj.h5md"), traj)
    return root


def _start_batch(archive, out, *extra):
    command = [sys.executable, "-m", "mdsr_plugin.batch.cli", str(archive), "-o", str(out), "--factor", "20",
               "--method", "hermite", "--workers", "2", *extra]
    # A new session, like a terminal's foreground job: SIGINT goes to every process of it.
    # SIGINT is reset to its default in case the test runner inherited it ignored (a
    # background job), which the child would inherit too.
    return subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_records(out, n, process, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if (out / MANIFEST_NAME).is_file() and len((out / MANIFEST_NAME).read_text().splitlines()) >= n:
            return
        time.sleep(0.05)


@pytest.mark.slow  # whole batch processes started and killed: 17 s each (make test runs it)
@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT", "SIGTERM"])
def test_killed_run_then_rerun_completes_the_archive_exactly(tmp_path, how):
    archive = _long_archive(tmp_path / "archive")
    clean = tmp_path / "clean"
    assert len(process_archive(archive, clean, BatchSettings(UpsampleSettings(factor=20, method="hermite"))).done) == 4

    out = tmp_path / "out"
    process = _start_batch(archive, out)
    _wait_for_records(out, 1, process)
    if how == "SIGKILL":
        process.kill()  # the scheduler only: its workers must not live on as orphans
    elif how == "SIGTERM":
        process.terminate()  # what timeout and SLURM send, to the scheduler alone
    else:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal
    stdout, stderr = process.communicate(timeout=60)
    if how != "SIGKILL":
        assert process.returncode == 128 + getattr(signal, how), stderr
        assert f"interrupted ({how})" in stderr and "not started" in stdout
    else:
        assert process.returncode == -signal.SIGKILL
    finished_before = len(_latest(out))
    assert finished_before < 4, "the run finished before it could be interrupted"

    process = _start_batch(archive, out, "-q")
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    records = _latest(out)
    assert len(records) == 4 and all(r["status"] == "done" for r in records.values())
    # Every output is there once, nothing partial, and equal to the clean run's.
    produced = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    expected = sorted(p.relative_to(clean).as_posix() for p in clean.rglob("*") if p.is_file())
    assert produced == expected
    for relative in records:
        for output in records[relative]["outputs"]:
            if output.endswith(".h5md"):  # HDF5 stores creation times: compare the data
                _assert_same_trajectory(out / output, clean / output)
            else:
                assert filecmp.cmp(out / output, clean / output, shallow=False), output


def test_dask_local_cluster_runs_the_same_jobs(archive, tmp_path):
    distributed = pytest.importorskip("distributed")
    local = process_archive(archive, tmp_path / "local", BatchSettings(UpsampleSettings(factor=20, method="hermite")))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        code = batch_main([str(archive), "-o", str(tmp_path / "dask"), "--factor", "20", "--method", "hermite",
                           "--scheduler", cluster.scheduler_address, "-q"])
    assert code == 1
    by_dask = _latest(tmp_path / "dask")
    by_local = {r["file"]: r for r in local.records}
    assert {k: v["status"] for k, v in by_dask.items()} == {k: v["status"] for k, v in by_local.items()}
    for name in GOOD:
        assert by_dask[name]["outputs"].keys() == by_local[name]["outputs"].keys()
        for output in by_dask[name]["outputs"]:
            if output.endswith((".xyz", ".h5md", ".traj")):
                _assert_same_trajectory(tmp_path / "dask" / output, tmp_path / "local" / output)


def test_neural_model_is_recorded_and_fallback_covers_unknown_molecules(archive, tmp_path, capsys):
    water = Trajectory(numbers=[8, 1, 1], times=np.arange(5) * 20.0,
                       positions=np.array([[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]) + np.zeros((5, 1, 1)),
                       velocities=np.zeros((5, 3, 3)))
    write_trajectory(archive / "c/water.xyz", water)
    options = [str(archive), "--factor", "20", "--method", "neural", "--include", "a/ethanol.xyz",
               "--include", "c/water.xyz", "-q"]
    capsys.readouterr()
    assert batch_main(options + ["-o", str(tmp_path / "strict")]) == 1
    # -q: no summary table, only the failed file, one line on stderr
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("mdsr-batch: failed: c/water.xyz: no checkpoint")
    strict = _latest(tmp_path / "strict")
    assert strict["a/ethanol.xyz"]["model"] == "ethanol-bilstm-f20-1fs"
    assert len(strict["a/ethanol.xyz"]["model_sha256"]) == 64
    assert strict["a/ethanol.xyz"]["disagreement"]["mean"] > 0
    assert "no checkpoint fits H2O" in strict["c/water.xyz"]["error"]

    assert batch_main(options + ["-o", str(tmp_path / "fallback"), "--fallback", "classical"]) == 0
    water_record = _latest(tmp_path / "fallback")["c/water.xyz"]
    assert water_record["method"] == "hermite" and "no checkpoint fits" in water_record["fallback"]


def test_topology_and_format_problems_are_recorded_not_fatal(archive, tmp_path):
    (archive / "b/run.pdb").rename(archive / "b/system.psf.bak")  # the DCD loses its topology
    (archive / "d").mkdir()
    (archive / "d/data.trj").write_text("no known format")
    settings = BatchSettings(UpsampleSettings(factor=20, method="hermite"))
    result = process_archive(archive, tmp_path / "out", settings, include=["b/*.dcd", "*.trj"])
    errors = {r["file"]: r.get("error") for r in result.failed}
    assert "needs a topology" in errors["b/run.dcd"]
    assert "unknown format" in errors["d/data.trj"]
    # The only topology file in a folder serves every trajectory in it.
    (archive / "b/system.psf.bak").rename(archive / "b/system.pdb")
    [job] = plan_jobs(archive, tmp_path / "out", settings, include=["b/*.dcd"])
    assert job.topology.endswith("system.pdb") and job.velocities.endswith("run.vel.dcd")


def test_usage_errors_exit_2_and_write_nothing(archive, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["--factor", "20", "-q"]
    assert batch_main([str(tmp_path / "missing"), "-o", str(out), *base]) == 2
    assert batch_main([str(archive), "-o", str(archive), *base]) == 2
    assert batch_main([str(archive), "-o", str(out), *base, "--fallback", "neural"]) == 2
    assert batch_main([str(archive), "-o", str(out), *base, "--method", "magic"]) == 2
    assert batch_main([str(archive), "-o", str(out), *base, "--top", str(tmp_path / "none.psf")]) == 2
    assert batch_main([str(archive), "-o", str(out), *base, "--output-format", "lammpsdump"]) == 2
    assert not out.exists()
    # Two inputs that would be written to the same output are refused before any work.
    write_trajectory(archive / "a/ethanol.extxyz", read_trajectory(archive / "a/ethanol.xyz"))
    assert batch_main([str(archive), "-o", str(out), *base, "--output-format", "h5md"]) == 2
    assert "would both be written to a/ethanol.h5md" in capsys.readouterr().err
    assert not (out / MANIFEST_NAME).exists()


def test_a_second_batch_on_the_same_output_folder_is_refused(archive, tmp_path):
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".mdsr-batch.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(PlanError, match="another mdsr-batch"):
            process_archive(archive, out, BatchSettings(UpsampleSettings(factor=20)))


def test_manifest_survives_a_torn_last_line(tmp_path):
    manifest = Manifest(tmp_path)
    manifest.append({"file": "a.xyz", "status": "done"})
    with open(tmp_path / MANIFEST_NAME, "a") as handle:
        handle.write('{"file": "b.xyz", "sta')  # killed mid-write
    reread = Manifest(tmp_path)
    assert list(reread.latest) == ["a.xyz"]
    reread.append({"file": "b.xyz", "status": "failed"})
    lines = (tmp_path / MANIFEST_NAME).read_text().splitlines()
    assert json.loads(lines[-1]) == {"file": "b.xyz", "status": "failed"}
    assert set(Manifest(tmp_path).latest) == {"a.xyz", "b.xyz"}


def test_a_worker_loads_each_checkpoint_once():
    from mdsr_plugin.neural.checkpoint import load_checkpoint
    from mdsr_plugin.neural.registry import get_model_entry

    entry = get_model_entry("ethanol-bilstm-f20-1fs")
    first, card = load_checkpoint(entry.card_path, expected_card_sha256=entry.card_sha256)
    second, card_again = load_checkpoint(entry.card_path, expected_card_sha256=entry.card_sha256)
    assert first is second and card == card_again and card is not card_again


# ------------------------------------------------------------------ what a plan may write (issue #26)
def _oscillators(n_frames=12, seed=0):
    """Five atoms on sine motions with exact velocities (Å, Å/fs), 20 fs apart."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) * 20.0
    omega, amplitude = rng.uniform(0.02, 0.2, (5, 3)), rng.uniform(0.02, 0.1, (5, 3))
    base = rng.normal(0, 1.5, (5, 3))
    return Trajectory(numbers=[6, 6, 8, 1, 1], times=t,
                      positions=base + amplitude * np.sin(omega * t[:, None, None]),
                      velocities=amplitude * omega * np.cos(omega * t[:, None, None]))


def _write_runs(root: Path, *names):
    for seed, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        write_trajectory(root / name, _oscillators(seed=seed))


def _checksums(root: Path) -> dict:
    """sha256 of every file under ``root`` (hidden ones too), by relative path; folders as None."""
    import hashlib

    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
            for p in sorted(root.rglob("*"))}


def _refused(capsys, argv) -> str:
    """Run mdsr-batch; assert a usage refusal: exit 2 and one line on stderr, no traceback."""
    code = batch_main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("mdsr-batch: error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err


FAST = ["--factor", "2", "--method", "hermite", "-q"]


def test_an_output_folder_inside_the_archive_that_holds_its_files_is_refused(tmp_path, capsys):
    archive = tmp_path / "arch"
    _write_runs(archive, "run1.xyz", "a/run1.xyz", "a/other.xyz")
    before = _checksums(archive)
    # run1.xyz would be written over a/run1.xyz, and a/other.xyz silently skipped.
    err = _refused(capsys, [str(archive), "-o", str(archive / "a"), *FAST])
    assert "inside the archive" in err and "a/other.xyz" in err
    assert _checksums(archive) == before  # nothing written, not even a lock file


def test_a_new_output_folder_inside_the_archive_is_never_scanned(tmp_path, capsys):
    archive = tmp_path / "arch"
    _write_runs(archive, "run1.xyz", "b/run2.xyz")
    out = archive / "fine"
    (archive / "link.xyz").symlink_to(out / "run1.xyz")  # resolves into the output folder
    before = {k: v for k, v in _checksums(archive).items() if k != "link.xyz"}
    assert batch_main([str(archive), "-o", str(out), *FAST]) == 0, capsys.readouterr().err
    assert sorted(_latest(out)) == ["b/run2.xyz", "run1.xyz"]
    assert (out / "b/run2.xyz").is_file() and not (out / "fine").exists()
    # Run again: the outputs (and the link to one) are not taken for inputs, nothing is redone.
    settings = BatchSettings(UpsampleSettings(factor=2, method="hermite"))
    assert sorted(job.relative for job in plan_jobs(archive, out, settings)) == ["b/run2.xyz", "run1.xyz"]
    again = process_archive(archive, out, settings)
    assert sorted(again.skipped) == ["b/run2.xyz", "run1.xyz"] and not again.records
    after = _checksums(archive)
    assert {k: v for k, v in after.items() if k in before} == before


def test_an_archive_inside_the_output_folder_never_receives_an_output(tmp_path, capsys):
    from mdsr_plugin.io.atomic import temporary_name

    x = tmp_path / "x"
    _write_runs(x, "A/f.xyz", "A/A/f.xyz")
    before = _checksums(x)
    # A/A/f.xyz mirrors onto x/A/f.xyz, an input.
    err = _refused(capsys, [str(x / "A"), "-o", str(x), *FAST])
    assert "A/f.xyz: the output of A/f.xyz would overwrite the input" in err
    (x / "A/f.xyz").unlink()
    before.pop("A/f.xyz")
    # Without the input there, the output would still land in the archive: an input of the next run.
    err = _refused(capsys, [str(x / "A"), "-o", str(x), *FAST])
    assert "inside the archive" in err
    assert _checksums(x) == before

    # An archive inside the output folder that does not mirror onto itself works, and
    # the batch's clean-ups (empty folders, temporary files) leave the archive alone.
    y = tmp_path / "y"
    _write_runs(y, "A/B/g.xyz")
    (y / "A/empty").mkdir()
    temporary_name(y / "A/B/g.xyz").write_text("someone else's file")
    before = _checksums(y)
    assert batch_main([str(y / "A"), "-o", str(y), *FAST]) == 0, capsys.readouterr().err
    assert (y / "B/g.xyz").is_file()
    assert {k: v for k, v in _checksums(y).items() if k.startswith("A")} == before


def test_outputs_and_companions_that_would_meet_are_refused_before_writing(tmp_path, capsys):
    archive = tmp_path / "c"
    _write_runs(archive, "a.xyz", "a.vel.xyz")
    before = _checksums(archive)
    out = tmp_path / "out"
    # a.xyz -> a.dcd plus its velocity DCD a.vel.dcd; a.vel.xyz -> a.vel.dcd.
    err = _refused(capsys, [str(archive), "-o", str(out), *FAST, "--output-format", "dcd"])
    assert "would both be written to a.vel.dcd" in err and "a.xyz" in err and "a.vel.xyz" in err
    assert not out.exists() and _checksums(archive) == before
    # Each job lists what it reads and writes, companions included.
    settings = BatchSettings(UpsampleSettings(factor=2, method="hermite", output_format="dcd"))
    [job] = plan_jobs(archive, out, settings, include=["a.xyz"])
    assert job.reads == (str(archive / "a.xyz"),)
    assert job.writes == (str(out.resolve() / "a.dcd"), str(out.resolve() / "a.vel.dcd"))
    # The default output names are unchanged (resumed archives still match their manifests).
    [job] = plan_jobs(archive, out, BatchSettings(UpsampleSettings(factor=2)), include=["a.xyz"])
    assert job.writes == (str(out.resolve() / "a.xyz"),)


@pytest.mark.parametrize("link", ["symlink", "hardlink", "manifest folder"])
def test_an_output_that_is_an_input_by_another_name_is_refused(tmp_path, capsys, link):
    archive = tmp_path / "arch"
    _write_runs(archive, "run1.xyz")
    out = tmp_path / "out"
    out.mkdir()
    if link == "symlink":
        (out / "run1.xyz").symlink_to(archive / "run1.xyz")
    elif link == "hardlink":
        os.link(archive / "run1.xyz", out / "run1.xyz")
    else:
        (out / MANIFEST_NAME).mkdir()
    before = _checksums(archive)
    err = _refused(capsys, [str(archive), "-o", str(out), *FAST])
    assert ("names a folder" if link == "manifest folder" else "would overwrite the input") in err
    assert _checksums(archive) == before


def _without_root_override():
    """In the child: drop CAP_DAC_OVERRIDE from the bounding set, so that root, too, is
    refused by a folder's permission bits (as every other user is)."""
    import ctypes

    if os.geteuid() == 0 and ctypes.CDLL(None, use_errno=True).prctl(24, 1, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
        os._exit(99)


@pytest.mark.parametrize("where", ["read-only folder", "folder under a read-only parent"])
def test_an_output_folder_that_cannot_be_written_is_one_line(tmp_path, where):
    archive = tmp_path / "arch"
    _write_runs(archive, "run1.xyz", "b/run2.xyz")
    before = _checksums(archive)
    locked = tmp_path / "locked"
    locked.mkdir()
    out = locked if where == "read-only folder" else locked / "new"
    locked.chmod(0o555)
    try:
        process = subprocess.run(
            [sys.executable, "-m", "mdsr_plugin.batch.cli", str(archive), "-o", str(out), *FAST],
            capture_output=True, text=True, timeout=120, preexec_fn=_without_root_override)
    finally:
        locked.chmod(0o755)
    if process.returncode == 99:
        pytest.skip("cannot drop root's permission override here")
    assert process.returncode == 2, process.stderr
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mdsr-batch: error: "), process.stderr
    assert "cannot write to the output folder (Permission denied)" in lines[0]
    assert "Traceback" not in process.stderr
    assert list(locked.iterdir()) == [] and _checksums(archive) == before


def test_a_manifest_that_cannot_be_written_mid_run_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    archive = tmp_path / "arch"
    _write_runs(archive, "run1.xyz")

    def disk_full(self, record):
        raise OSError(28, "No space left on device", str(self.path))

    monkeypatch.setattr(Manifest, "append", disk_full)
    assert batch_main([str(archive), "-o", str(tmp_path / "out"), *FAST]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mdsr-batch: error: ") and len(err.strip().splitlines()) == 1, err
    assert "No space left on device" in err and "Traceback" not in err
