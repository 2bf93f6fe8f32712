"""Faults of the tools around the data path, each through the real command's ``main``:
``mdsr-models``, ``mdsr-upsample --model``, ``mdsr-generate``, ``mdsr-eval --candidate``,
``mdsr-train``.

Every refusal is one line on stderr starting with ``PROG: error:``, exit 2 for a usage
error and 1 for bad input, no traceback, and nothing half-written left behind.  A broken
third-party registry folder is a one-line warning and is skipped: the shipped checkpoints
go on working.  Checkpoints are data: a pickle under a ``.safetensors`` name is refused
without being unpickled (the payload here would create a file if it ever were).
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from mdsr_plugin.cli import main as upsample_main
from mdsr_plugin.evaluation.cli import main as eval_main
from mdsr_plugin.io import read_trajectory, write_trajectory
from mdsr_plugin.neural.cli import models_main, train_main
from mdsr_plugin.neural.registry import registry_dirs, write_manifest

EXAMPLE = resources.files("mdsr_plugin") / "data/examples/ethanol_coarse.xyz"  # 20 fs, with velocities
SHIPPED_ETHANOL = "ethanol-bilstm-f20-1fs"  # serves factor 20 at 1 fs: the example's molecule and step


def one_line_error(err: str, prog: str) -> str:
    """The single stderr line of a refusal (asserted to be one, of ``prog``, traceback-free)."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error:"), err
    return lines[0]


def registry_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "mdsr_plugin.neural.registry" and r.levelno == logging.WARNING]


@pytest.fixture
def coarse(tmp_path) -> Path:
    """Twelve coarse frames of the bundled ethanol example (20 fs, velocities and forces)."""
    path = tmp_path / "coarse.xyz"
    write_trajectory(path, read_trajectory(EXAMPLE)[:12])
    return path


def copy_shipped(folder: Path, new_id: str | None = None) -> Path:
    """A copy of the shipped ethanol checkpoint in ``folder`` (its card, renamed ``new_id``);
    returns the card's path."""
    folder.mkdir(exist_ok=True)
    for suffix in (".json", ".safetensors"):
        shutil.copy(registry_dirs()[0] / f"{SHIPPED_ETHANOL}{suffix}", folder / f"{new_id or SHIPPED_ETHANOL}{suffix}")
    card_file = folder / f"{new_id or SHIPPED_ETHANOL}.json"
    card = json.loads(card_file.read_text())
    card.update(id=new_id or SHIPPED_ETHANOL, weights=f"{new_id or SHIPPED_ETHANOL}.safetensors")
    card_file.write_text(json.dumps(card))
    return card_file


# ----------------------------------------------------------------------------- 1. a manifest entry without "card"
@pytest.fixture
def broken_folder(tmp_path, monkeypatch) -> Path:
    """A third-party registry folder on MDSR_MODELS_PATH whose manifest entry has no ``card``."""
    folder = tmp_path / "third-party"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"models": [{"id": "no-card", "sha256": "0" * 64}]}))
    monkeypatch.setenv("MDSR_MODELS_PATH", str(folder))
    return folder


def test_an_entry_without_card_is_skipped_with_a_warning_and_the_shipped_checkpoints_still_serve(
        broken_folder, coarse, tmp_path, capsys, caplog):
    output = tmp_path / "fine.xyz"
    code = upsample_main([str(coarse), "--factor", "20", "-o", str(output)])
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err, err
    assert f"neural {SHIPPED_ETHANOL}" in out and output.is_file()
    warned = registry_warnings(caplog)
    assert len(warned) == 1  # once per process, though the registry is listed several times
    assert str(broken_folder / "manifest.json") in warned[0] and "'no-card'" in warned[0]
    assert "has no 'card'" in warned[0] and warned[0].endswith("skipping it")

    assert models_main(["list"]) == 0
    out, err = capsys.readouterr()
    assert SHIPPED_ETHANOL in out and "no-card" not in out and "Traceback" not in err


def test_a_user_checkpoint_with_a_shipped_id_is_named_where_the_shipped_one_is_used(tmp_path, monkeypatch, capsys,
                                                                                      caplog):
    """The first directory's entry of an id is used (shipped first); a user's of the same id
    disappeared without a word."""
    from mdsr_plugin.neural.registry import write_manifest

    folder = tmp_path / "mine"
    card_file = copy_shipped(folder)  # the same id as the shipped checkpoint
    write_manifest(folder)
    monkeypatch.setenv("MDSR_MODELS_PATH", str(folder))
    assert models_main(["list"]) == 0
    warned = [w for w in registry_warnings(caplog) if str(card_file) in w]
    assert len(warned) == 1 and f"its id {SHIPPED_ETHANOL!r} is also" in warned[0] and "--model" in warned[0]
    assert models_main(["show", str(card_file)]) == 0  # by its path it is the user's


def test_models_show_of_an_entry_without_card_refuses_it_in_one_line(broken_folder, capsys, caplog):
    assert models_main(["show", "no-card"]) == 1
    line = one_line_error(capsys.readouterr().err, "mdsr-models")
    assert str(broken_folder / "manifest.json") in line and "'no-card'" in line and "has no 'card'" in line
    assert not registry_warnings(caplog)  # the refusal says it; no second line about skipping it


def test_models_list_reports_the_broken_entry_in_one_line_as_a_subprocess(broken_folder):
    result = subprocess.run([sys.executable, "-c", "import sys; from mdsr_plugin.neural.cli import models_main; "
                             "sys.exit(models_main(['list']))"], capture_output=True, text=True)
    assert result.returncode == 0 and SHIPPED_ETHANOL in result.stdout
    assert result.stderr.strip() == (f"mdsr-models: {broken_folder / 'manifest.json'}: entry 'no-card' has no "
                                     "'card'; skipping it")


def _not_a_folder(folder):
    folder.write_text("a file")


def _manifest_is_a_folder(folder):
    folder.mkdir()
    (folder / "manifest.json").mkdir()


def _manifest_not_json(folder):
    folder.mkdir()
    (folder / "manifest.json").write_bytes(b"\xff\xfe not json")


def _models_not_a_list(folder):
    folder.mkdir()
    (folder / "manifest.json").write_text('{"models": {"id": "x"}}')


def _card_outside_the_folder(folder):
    copy_shipped(folder.parent / "elsewhere", "outside")
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(
        {"models": [{"id": "outside", "card": "../elsewhere/outside.json", "sha256": "0" * 64}]}))


def _card_not_json(folder):
    folder.mkdir()
    (folder / "broken.json").write_text("{")
    (folder / "manifest.json").write_text(json.dumps(
        {"models": [{"id": "broken", "card": "broken.json", "sha256": "0" * 64}]}))


@pytest.mark.parametrize("make, says", [
    (lambda folder: None, "no such models folder"),
    (_not_a_folder, "a file, not a models folder"),
    (_manifest_is_a_folder, "cannot be read"),
    (_manifest_not_json, "not a valid manifest"),
    (_models_not_a_list, "'models' is not a list"),
    (_card_outside_the_folder, "is not the name of a model card in this folder"),
    (_card_not_json, "not a valid model card"),
], ids=["missing", "file", "manifest-folder", "not-json", "not-a-list", "card-outside", "card-not-json"])
def test_an_unusable_models_path_entry_is_one_warning_and_list_goes_on(tmp_path, monkeypatch, capsys, caplog,
                                                                       make, says):
    folder = tmp_path / "entry"
    make(folder)
    monkeypatch.setenv("MDSR_MODELS_PATH", str(folder))
    assert models_main(["list"]) == 0
    out, err = capsys.readouterr()
    assert SHIPPED_ETHANOL in out and "Traceback" not in err
    warned = registry_warnings(caplog)
    assert len(warned) == 1 and str(folder) in warned[0] and says in warned[0], warned


@pytest.mark.parametrize("command", [["list"], ["show", "ethanol-bilstm-f20-1fs", "--json"]])
def test_output_into_a_closed_pipe_ends_without_a_traceback(command):
    """``mdsr-models show ID --json | head``: the reader stops early; the shell's status for
    SIGPIPE (141), nothing on stderr."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)
    code = "import sys; from mdsr_plugin.neural.cli import models_main; sys.exit(models_main(sys.argv[1:]))"
    try:
        done = subprocess.run([sys.executable, "-c", code, *command], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 141 and done.stderr == ""


def test_output_to_a_full_disk_on_stdout_is_one_line():
    """``mdsr-models list > /dev/full``: a traceback; now one line, exit 1."""
    code = "import sys; from mdsr_plugin.neural.cli import models_main; sys.exit(models_main(['list']))"
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-c", code], stdout=full, stderr=subprocess.PIPE, text=True,
                              timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().endswith("error: cannot write to stdout (No space left on device)")
    assert len(done.stderr.strip().splitlines()) == 1


def test_models_show_of_an_unknown_id_is_one_line_listing_the_registered(capsys):
    assert models_main(["show", "NONEXISTENT"]) == 1
    line = one_line_error(capsys.readouterr().err, "mdsr-models")
    assert "no checkpoint 'NONEXISTENT'; registered:" in line and SHIPPED_ETHANOL in line


# ----------------------------------------------------------------------------- 2. hostile checkpoints
class _Payload:
    """Unpickling this creates ``marker``: proof, if it exists, that a checkpoint was unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _rehash(card_file: Path, **changes) -> None:
    """Change the card and record the weights' real sha256 in it, then the card's in the
    folder's manifest: an attacker who updates every hash."""
    card = json.loads(card_file.read_text())
    card.update(changes)
    weights = card_file.parent / card["weights"]
    if weights.is_file():
        card["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    card_file.write_text(json.dumps(card))
    digest = hashlib.sha256(card_file.read_bytes()).hexdigest()
    (card_file.parent / "manifest.json").write_text(json.dumps(
        {"models": [{"id": card["id"], "card": card_file.name, "sha256": digest}]}))


def _pickle_weights(card_file, marker):
    card_file.with_suffix(".safetensors").write_bytes(pickle.dumps(_Payload(marker)))
    _rehash(card_file)


def _huge_header(card_file, marker):
    weights = card_file.with_suffix(".safetensors")
    data = weights.read_bytes()
    weights.write_bytes((2**40).to_bytes(8, "little") + data[8:])
    _rehash(card_file)


def _tensor_outside_the_file(card_file, marker):
    weights = card_file.with_suffix(".safetensors")
    header = json.dumps({"w": {"dtype": "F64", "shape": [1000], "data_offsets": [0, 8000]}}).encode()
    weights.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 8)
    _rehash(card_file)


def _weights_up_a_folder(card_file, marker):
    shutil.copy(card_file.with_suffix(".safetensors"), card_file.parent.parent / "stolen.safetensors")
    _rehash(card_file, weights="../stolen.safetensors")


def _weights_absolute(card_file, marker):
    _rehash(card_file, weights=str(card_file.with_suffix(".safetensors").resolve()))


HOSTILE = pytest.mark.parametrize("spoil, says", [
    (_pickle_weights, "not a safetensors weights file ("),
    (_huge_header, "give a header of 1099511627776 bytes"),
    (_tensor_outside_the_file, "does not lie inside the file"),
    (_weights_up_a_folder, "not the name of a .safetensors file beside the card"),
    (_weights_absolute, "not the name of a .safetensors file beside the card"),
], ids=["pickle", "huge-header", "tensor-outside", "dot-dot", "absolute"])


@HOSTILE
def test_a_hostile_checkpoint_given_by_path_is_refused_in_one_line(tmp_path, coarse, capsys, spoil, says):
    card_file = copy_shipped(tmp_path / "hostile")
    marker = tmp_path / "unpickled"
    spoil(card_file, marker)
    before = sorted(tmp_path.rglob("*"))
    output = tmp_path / "fine.xyz"
    code = upsample_main([str(coarse), "--factor", "20", "-o", str(output), "--model", str(card_file)])
    line = one_line_error(capsys.readouterr().err, "mdsr-upsample")
    assert code == 1 and says in line
    assert models_main(["show", str(card_file)]) == 1
    assert says in one_line_error(capsys.readouterr().err, "mdsr-models")
    assert not marker.exists() and not output.exists()
    assert sorted(tmp_path.rglob("*")) == before  # no temporary left either


@HOSTILE
def test_a_registered_hostile_checkpoint_is_refused_by_id_and_skipped_by_auto(tmp_path, coarse, monkeypatch,
                                                                              capsys, caplog, spoil, says):
    card_file = copy_shipped(tmp_path / "hostile", "ethanol-better")
    _rehash(card_file, validation={"position_mae": 1e-9})  # ranked before the shipped one
    marker = tmp_path / "unpickled"
    spoil(card_file, marker)
    monkeypatch.setenv("MDSR_MODELS_PATH", str(card_file.parent))
    assert models_main(["show", "ethanol-better"]) == 1
    assert says in one_line_error(capsys.readouterr().err, "mdsr-models")
    output = tmp_path / "fine.xyz"
    code = upsample_main([str(coarse), "--factor", "20", "-o", str(output), "--model", "ethanol-better"])
    assert code == 1 and says in one_line_error(capsys.readouterr().err, "mdsr-upsample")
    assert not output.exists()
    # auto: the hostile checkpoint would rank first; it is left out with a warning
    code = upsample_main([str(coarse), "--factor", "20", "-o", str(output)])
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err and f"neural {SHIPPED_ETHANOL}" in out
    assert any("ethanol-better" in w and says in w for w in registry_warnings(caplog))
    assert not marker.exists()


def test_a_card_edited_after_the_manifest_is_refused_by_models_show(tmp_path, monkeypatch, capsys):
    card_file = copy_shipped(tmp_path / "edited", "ethanol-edited")
    write_manifest(card_file.parent)
    card = json.loads(card_file.read_text())
    card["factors"] = [5, 10, 20, 40]
    card_file.write_text(json.dumps(card))
    monkeypatch.setenv("MDSR_MODELS_PATH", str(card_file.parent))
    assert models_main(["show", "ethanol-edited"]) == 1
    assert "registry manifest" in one_line_error(capsys.readouterr().err, "mdsr-models")


# ----------------------------------------------------------------------------- 3. mdsr-generate numbers
@pytest.mark.parametrize("option, value", [
    ("--timestep", "0"), ("--timestep", "-0.5"), ("--timestep", "inf"), ("--timestep", "nan"), ("--timestep", "x"),
    ("--steps", "0"), ("--steps", "1.5"), ("--temperature", "0"), ("--friction", "-0.01"), ("--tdamp", "0"),
    ("--equilibration", "-1"), ("--seed", "-1"), ("--checkpoint-every", "0"),
])
def test_generate_refuses_a_bad_number_when_parsing_and_writes_nothing(tmp_path, capsys, option, value):
    from mdsr_plugin.reference import main as generate_main

    code = generate_main(["ethanol", "-o", str(tmp_path / "ref.h5md"), option, value])
    line = one_line_error(capsys.readouterr().err, "mdsr-generate")
    assert code == 2 and option in line
    assert list(tmp_path.iterdir()) == []  # no output, no resume file


@pytest.mark.parametrize("name, value", [("timestep", 0.0), ("timestep", float("inf")), ("temperature", -1.0),
                                         ("steps", 0), ("seed", -1), ("equilibration", 1.5)])
def test_generate_reference_refuses_a_bad_number_before_touching_a_file(tmp_path, name, value):
    from mdsr_plugin.reference import generate_reference

    with pytest.raises(ValueError, match=name):
        generate_reference("ethanol", tmp_path / "ref.h5md", **{name: value})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("output", ["missing/ref.h5md", "folder"])
def test_generate_refuses_an_output_in_no_folder_or_naming_one_in_one_line(tmp_path, capsys, output):
    """A missing folder gave h5py's own message ("Unable to synchronously create file ...")."""
    from mdsr_plugin.reference import main as generate_main

    (tmp_path / "folder").mkdir()
    code = generate_main(["ethanol", "-o", str(tmp_path / output), "--steps", "2"])
    line = one_line_error(capsys.readouterr().err, "mdsr-generate")
    assert code == 1 and ("output folder does not exist" in line or "names a folder" in line)
    assert [p.name for p in tmp_path.iterdir()] == ["folder"] and not any((tmp_path / "folder").iterdir())


def test_a_run_failing_before_its_first_save_is_one_line_and_leaves_no_resume_file(tmp_path, capsys, monkeypatch):
    pytest.importorskip("tblite")
    pytest.importorskip("rdkit")
    from ase.calculators.calculator import CalculationFailed

    from mdsr_plugin import reference

    def fails(self, steps, on_step=None):
        raise CalculationFailed("(sygvd) failed to solve eigenvalue problem. info=1")

    monkeypatch.setattr(reference.MDRun, "equilibrate", fails)
    code = reference.main(["ethanol", "-o", str(tmp_path / "ref.h5md"), "--hamiltonian", "gfn1-xtb",
                           "--steps", "2", "--equilibration", "1"])
    assert code == 1 and "eigenvalue" in one_line_error(capsys.readouterr().err, "mdsr-generate")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- 4. mdsr-eval --candidate
@pytest.fixture(scope="module")
def eval_files(tmp_path_factory):
    """A 41-frame reference (the example's first 41 frames, as if fine), the Hermite
    reconstruction of its every 4th frame (41 frames), that candidate cut short, and the
    reference cut to 21 frames (shorter than the candidate)."""
    from mdsr_plugin.pipeline import upsample

    folder = tmp_path_factory.mktemp("eval")
    reference = read_trajectory(EXAMPLE)[:41]
    candidate = upsample(reference[::4], 4, "hermite")
    files = {"reference": reference, "candidate": candidate, "one": candidate[:1], "nine": candidate[:9],
             "reference21": reference[:21]}
    for name, trajectory in files.items():
        write_trajectory(folder / f"{name}.xyz", trajectory)
    return folder


@pytest.mark.parametrize("reference, candidate, says", [
    ("reference", "one", "candidate has 1 frame;"),
    ("reference", "nine", "candidate has 9 frames;"),
    ("reference21", "candidate", "candidate has more than 21 frames;"),
])
def test_eval_refuses_a_candidate_whose_frames_are_not_the_references(eval_files, tmp_path, capsys,
                                                                        reference, candidate, says):
    report = tmp_path / "report"
    code = eval_main(["--reference", str(eval_files / f"{reference}.xyz"), "--candidate",
                      str(eval_files / f"{candidate}.xyz"), "--factor", "4", "-o", str(report), "-q"])
    line = one_line_error(capsys.readouterr().err, "mdsr-eval")
    assert code == 1 and says in line and "refusing to score a part of it" in line
    assert not report.exists()


def test_eval_scores_a_candidate_made_from_the_whole_reference(eval_files, tmp_path, capsys):
    report = tmp_path / "report"
    assert eval_main(["--reference", str(eval_files / "reference.xyz"), "--candidate",
                      str(eval_files / "candidate.xyz"), "--factor", "4", "-o", str(report), "-q"]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["frames_compared"] == 41 and metrics["methods"]["candidate"]["position_mae"] > 0


# ----------------------------------------------------------------------------- 5. mdsr-train's output folder
@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if any data are read for training."""
    def must_not_run(*args, **kwargs):
        raise AssertionError("training data were read before the output folder was checked")

    monkeypatch.setattr("mdsr_plugin.neural.data.load_training_data", must_not_run)


@pytest.mark.parametrize("extra", [["--factor", "20"], ["--from-coarse"]], ids=["fine", "from-coarse"])
@pytest.mark.parametrize("where, says", [("missing_dir/model", "missing_dir: output folder does not exist"),
                                         ("coarse.xyz/model", "is a file, not an output folder")])
def test_train_checks_its_output_folder_before_any_training(tmp_path, coarse, capsys, monkeypatch, no_training,
                                                             extra, where, says):
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    code = train_main([str(coarse), "-o", where, "-q", *extra])
    assert code == 1 and says in one_line_error(capsys.readouterr().err, "mdsr-train")
    assert sorted(tmp_path.rglob("*")) == before


def test_train_refuses_to_replace_a_manifest_json_that_is_not_a_registry_s(tmp_path, coarse, capsys, no_training):
    """A dataset's manifest.json in the output folder was replaced by the registry manifest."""
    (tmp_path / "models").mkdir()
    theirs = tmp_path / "models" / "manifest.json"
    theirs.write_text('{"dataset": "ours"}')
    code = train_main([str(coarse), "-o", str(tmp_path / "models" / "model"), "--factor", "20", "-q"])
    assert code == 1 and "not a checkpoint registry's" in one_line_error(capsys.readouterr().err, "mdsr-train")
    assert theirs.read_text() == '{"dataset": "ours"}'


def test_train_function_checks_its_output_folder_before_reading_data(tmp_path, coarse, no_training):
    from mdsr_plugin.neural.train import TrainingSettings, train

    with pytest.raises(FileNotFoundError, match="output folder does not exist"):
        train([coarse], tmp_path / "missing" / "model", TrainingSettings(factor=20), progress=False)


@pytest.mark.parametrize("option, value", [("--factor", "1"), ("--fine-dt", "0"), ("--dt", "-1"), ("--seed", "-1"),
                                           ("--max-hours", "nan"), ("--max-minutes", "0"), ("--force-epochs", "-1"),
                                           ("--factors", "1"), ("--device", "gpu")])
def test_train_refuses_a_bad_option_when_parsing(tmp_path, coarse, capsys, no_training, option, value):
    code = train_main([str(coarse), "-o", str(tmp_path / "model"), "--factor", "20", option, value])
    assert code == 2 and option in one_line_error(capsys.readouterr().err, "mdsr-train")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coarse.xyz"]


def test_train_refuses_a_missing_or_broken_provenance_file_in_one_line(tmp_path, coarse, capsys, no_training):
    (tmp_path / "broken.json").write_text("{")
    for provenance, says in (("missing.json", "No such file"), ("broken.json", "not valid JSON")):
        code = train_main([str(coarse), "-o", str(tmp_path / "model"), "--factor", "20", "--provenance",
                           str(tmp_path / provenance)])
        assert code == 1 and says in one_line_error(capsys.readouterr().err, "mdsr-train")
    assert not list(tmp_path.glob("model*"))
