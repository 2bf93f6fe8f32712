"""``mdsr-upsample``: success on the bundled example, usage errors (exit 2), bad input (exit 1,
one line, no output left behind)."""

import subprocess
import sys
from importlib import resources
from pathlib import Path

import ase.io
import numpy as np
import pytest
from conftest import edited_example
from MDAnalysisTests import datafiles as data

from mdsr_plugin.cli import main
from mdsr_plugin.io import read_trajectory

EXAMPLE = resources.files("mdsr_plugin") / "data/examples/ethanol_coarse.xyz"


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_bundled_example_is_upsampled(tmp_path, capsys):
    output = tmp_path / "fine.xyz"
    code, out, err = run([EXAMPLE, "--factor", 20, "-o", output, "-q"], capsys)
    assert code == 0 and err == ""
    coarse = read_trajectory(EXAMPLE)
    fine = ase.io.read(output, ":")
    assert len(fine) == (coarse.n_frames - 1) * 20 + 1
    assert fine[20].info["time"] == pytest.approx(coarse.times[1])
    np.testing.assert_allclose(fine[40].positions, coarse.positions[2], atol=1e-8)


@pytest.mark.parametrize("method", ["linear", "spline", "hermite", "quintic", "auto"])
@pytest.mark.parametrize("suffix", [".h5md", ".dcd"])
def test_each_method_and_output_format(tmp_path, capsys, method, suffix):
    output = tmp_path / f"fine{suffix}"
    code, out, _ = run([EXAMPLE, "--factor", 5, "-o", output, "--method", method], capsys)
    assert code == 0
    expected = {"auto": "quintic"}.get(method, method)
    assert f"({expected}, factor 5)" in out
    assert output.exists()


def test_console_script_runs_as_a_subprocess(tmp_path):
    output = tmp_path / "fine.traj"
    result = subprocess.run(
        [sys.executable, "-m", "mdsr_plugin.cli", str(EXAMPLE), "--factor", "4", "-o", str(output), "-q"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert len(ase.io.read(output, ":")) == (201 - 1) * 4 + 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--factor", "20"], "required: -o/--output"),
        (["--factor", "1", "-o", "out.xyz"], "must be an integer >= 2"),
        (["--factor", "x", "-o", "out.xyz"], "invalid"),
        (["--factor", "5", "-o", "out.xyz", "--method", "magic"], "unknown method 'magic'; choose from auto, classical,"),
        (["--factor", "5", "-o", "out.abc"], "cannot tell the format"),
        (["--factor", "5", "-o", "out.xyz", "--dt", "-1"], "must be > 0 and finite"),
            (["--factor", "5", "-o", "out.xyz", "--dt", "inf"], "must be > 0 and finite"),
            (["--factor", "5", "-o", "out.pdb"], "it writes .dcd"),
        (["--factor", "5", "-o", "out.xyz", "--device", "tpu"], "--device must be cpu or cuda"),
    ],
)
def test_usage_errors_exit_2(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run([EXAMPLE, *argv], capsys)
    assert code == 2
    assert message in err
    assert list(tmp_path.iterdir()) == []


def _write(path, text):
    path.write_text(text)
    return path


BAD_INPUTS = {
    "missing file": (lambda d: d / "nope.xyz", [], "no such file"),
    "nan frame": (lambda d: _write(d / "nan.xyz", "1\ntime=0\nH 0 0 0\n1\ntime=5\nH nan 0 0\n"), [],
                  "frame 1: positions contain NaN"),
    "non-uniform": (lambda d: _write(d / "jump.xyz", "1\ntime=0\nH 0 0 0\n1\ntime=5\nH 0 0 0\n1\ntime=12\nH 0 0 0\n"),
                    [], "frame 2: non-uniform time step"),
    "atom count": (lambda d: _write(d / "grow.xyz", "1\ntime=0\nH 0 0 0\n2\ntime=5\nH 0 0 0\nH 1 1 1\n"), [],
                   "frame 1: 2 atoms where frame 0 has 1"),
    "no time step": (lambda d: _write(d / "plain.xyz", "1\nx\nH 0 0 0\n1\nx\nH 0 0 1\n"), [], "pass --dt"),
    "no velocities for hermite": (lambda d: _write(d / "pos.xyz", "1\ntime=0\nH 0 0 0\n1\ntime=5\nH 0 0 1\n"),
                                  ["--method", "hermite"], "needs velocities"),
    "dcd without topology": (lambda d: Path(data.DCD), [], "pass --top"),
    "one frame": (lambda d: _write(d / "one.xyz", "1\ntime=0\nH 0 0 0\n"), [], "at least two frames"),
    "garbage": (lambda d: _write(d / "junk.h5md", "not hdf5"), [], "not a readable HDF5 file"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_1_with_one_line_and_no_output(tmp_path, capsys, case):
    make, extra, message = BAD_INPUTS[case]
    inputs = tmp_path / "in"
    inputs.mkdir()
    source = make(inputs)
    outputs = tmp_path / "out"
    outputs.mkdir()
    code, out, err = run([source, "--factor", 4, "-o", outputs / "fine.dcd", *extra], capsys)
    assert code == 1
    assert message in err
    assert err.count("\n") == 1 and err.startswith("mdsr-upsample: error:")
    assert list(outputs.iterdir()) == []


def test_error_late_in_a_long_file_leaves_no_partial_output(tmp_path, capsys):
    """The failure comes after many frames were already written to the temporary file."""
    # Edited in the text: the writer itself refuses to write an inf.
    source = edited_example(tmp_path / "late.xyz", [150], 1, "inf")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = run([source, "--factor", 20, "-o", out_dir / "fine.h5md", "--chunk-size", 16], capsys)
    assert code == 1 and "frame 150" in err
    assert list(out_dir.iterdir()) == []


def test_existing_output_is_replaced_only_on_success(tmp_path, capsys):
    output = tmp_path / "fine.xyz"
    output.write_text("previous result\n")
    bad = _write(tmp_path / "nan.xyz", "1\ntime=0\nH 0 0 0\n1\ntime=5\nH nan 0 0\n")
    assert run([bad, "--factor", 4, "-o", output], capsys)[0] == 1
    assert output.read_text() == "previous result\n"


def test_dt_overrides_and_topology_input(tmp_path, capsys):
    output = tmp_path / "fine.h5md"
    code, out, err = run([data.DCD, "--top", data.PSF, "--factor", 2, "--dt", 10, "-o", output, "-q"], capsys)
    assert code == 0, err
    traj = read_trajectory(output)
    assert traj.dt == pytest.approx(5.0)
    assert traj.n_frames == (98 - 1) * 2 + 1


def test_the_same_input_and_options_give_the_same_bytes(tmp_path):
    """The provenance header held each self-validation candidate's run time, so two runs of the
    same command differed, and a batch output was not the file upsampled alone, byte for byte."""
    for name in ("first.xyz", "second.xyz"):
        assert main([str(EXAMPLE), "--factor", "4", "-o", str(tmp_path / name), "-q"]) == 0
    assert (tmp_path / "first.xyz").read_bytes() == (tmp_path / "second.xyz").read_bytes()
