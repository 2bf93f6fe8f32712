"""Issue #28: a periodic box's learned integrator, once ``auto`` chooses it, records its
provenance exactly as the molecular learned method does.

``mdsr-upsample box.xyz --adapt`` died after learning (``'BoxUpsampler' object has no
attribute 'provenance'``) whenever self-validation chose the learned box model: ``auto``
prepares every candidate, then asks the chosen one for its ``provenance``.  The
end-to-end test in ``tests/test_box.py`` learns for seconds, so quintic wins there and
never reaches that path; here the learned candidate is made to win (its measured
estimate is replaced by a tiny one) while everything else runs for real: learning,
preparing, measuring, upsampling, writing H5MD.

The data are those of ``tests/test_box.py``: a 32-atom copper box on EMT, 5 fs frames.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from test_box import FACTOR, _emt_box  # the copper box's dynamics (one definition of the data)


def _learned_box_wins(monkeypatch) -> list:
    """Make self-validation choose the learned box candidate: its measured estimate is
    replaced by a tiny one (the measurement itself still runs).  Returns the names of the
    box candidates measured."""
    from mdsr_plugin import selection
    from mdsr_plugin.neural.upsampler import BoxFrame, LearnedUpsampler

    measure, boxes = selection.measure_method, []

    def measured(method, *args, **kwargs):
        score = measure(method, *args, **kwargs)
        if isinstance(method, LearnedUpsampler) and isinstance(method.frame, BoxFrame):
            boxes.append(method.name)
            # below any classical estimate: quintic's is ~2e-8 Å on this copper box at 5 fs
            score = dataclasses.replace(score, position_estimate=1e-15, position_range=(1e-15, 1e-15))
        return score

    monkeypatch.setattr(selection, "measure_method", measured)
    return boxes


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def coarse_file(tmp_path_factory) -> Path:
    """330 fs of the copper box, written at 5 fs (67 frames, with velocities, forces, cell)."""
    from mdsr_plugin.io.h5md import H5MDWriter

    path = tmp_path_factory.mktemp("cu") / "cu_5fs.h5md"
    with H5MDWriter(path) as writer:
        writer.write(_emt_box(330)[::FACTOR])
    return path


@pytest.fixture(scope="module")
def adapt_run(coarse_file, tmp_path_factory) -> dict:
    """``mdsr-upsample cu_5fs.h5md --factor 5 -o fine.h5md --adapt`` (learning for 3 s),
    with self-validation choosing the learned box model: the run of issue #28."""
    from mdsr_plugin.cli import main

    out = tmp_path_factory.mktemp("adapt") / "fine.h5md"
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as monkeypatch, contextlib.redirect_stdout(printed):
        measured = _learned_box_wins(monkeypatch)
        code = main([str(coarse_file), "--factor", str(FACTOR), "-o", str(out), "--adapt",
                     "--adapt-minutes", "0.05"])
    card_path = out.parent / "fine.adapted.json"
    return {"code": code, "out": out, "printed": printed.getvalue(), "measured": measured,
            "card_path": card_path, "card": json.loads(card_path.read_text()) if card_path.exists() else None}


def _parameters(path: Path) -> dict:
    import h5py

    with h5py.File(path) as f:
        return json.loads(f["parameters"].attrs["mdsr_plugin"])


def test_adapt_on_a_box_records_the_learned_box_model_when_auto_chooses_it(adapt_run):
    assert adapt_run["code"] == 0, adapt_run["printed"]
    assert adapt_run["measured"] == ["adapted"]  # the learned box candidate was measured, and won
    card, out = adapt_run["card"], adapt_run["out"]
    assert card["config"]["arch"] == "local"
    weights_sha256 = _sha256(adapt_run["card_path"].parent / card["weights"])
    assert card["weights_sha256"] == weights_sha256
    parameters = _parameters(out)
    assert parameters["method"] == "adapted" == parameters["self_validation"]["chosen"]
    assert parameters["model"] == card["id"] == "fine.adapted"
    assert parameters["model_sha256"] == weights_sha256
    assert "velocities_fitted" not in parameters  # the input's own velocities were used
    assert parameters["factor"] == FACTOR
    assert parameters["force_check"]["frames"] > 0  # the box's check of its forces, recorded too
    printed = adapt_run["printed"]
    assert f"(adapted {card['id']}, factor {FACTOR})" in printed
    assert "learned from the input in" in printed and "fine.adapted.json" in printed
    assert "chosen by measuring on the input" in printed
    from mdsr_plugin.io import read_trajectory

    assert read_trajectory(out).n_frames == (67 - 1) * FACTOR + 1


def test_a_box_checkpoint_named_with_model_records_the_same_provenance(adapt_run, coarse_file, tmp_path):
    """``--model BOX`` names the ``neural`` method (no measuring: ``prepare`` gives the
    provenance): the same checkpoint id and weights sha256 as when ``auto`` chose it."""
    from mdsr_plugin.pipeline import upsample_file

    assert adapt_run["code"] == 0, adapt_run["printed"]
    out = tmp_path / "fine.h5md"
    summary = upsample_file(coarse_file, out, FACTOR, method="auto", model=str(adapt_run["card_path"]))
    card = adapt_run["card"]
    expected = {"method": "neural", "model": card["id"], "model_sha256": card["weights_sha256"],
                "velocities_fitted": False, "self_validation": None}
    assert {k: summary[k] for k in expected} == expected
    assert summary["frames_in"] == 67 and summary["frames_out"] == (67 - 1) * FACTOR + 1
    assert summary["disagreement"]["max"] >= summary["disagreement"]["mean"] > 0  # the box model ran
    parameters, chosen = _parameters(out), _parameters(adapt_run["out"])
    assert {k: parameters[k] for k in ("model", "model_sha256")} == {k: chosen[k] for k in ("model", "model_sha256")}
    assert parameters["method"] == "neural" and "self_validation" not in parameters


def test_the_box_and_the_molecular_checkpoint_are_one_method(adapt_run, coarse_file):
    """One code path (issue #28): one learned method runs a box's checkpoint and a
    molecule's, differing only in the frame adapter the card asks for; a prepared box method
    answers ``provenance`` as it answered ``prepare``, and fits the coarse velocities where
    none are stored, as a molecule's does (issue #29)."""
    from mdsr_plugin.io import read_trajectory
    from mdsr_plugin.methods import Method
    from mdsr_plugin.neural.upsampler import BoxFrame, LearnedUpsampler

    box = LearnedUpsampler(model=str(adapt_run["card_path"]), name="adapted")
    with pytest.raises(RuntimeError, match="before prepare"):
        box.provenance(fitted_velocities=False)
    coarse = read_trajectory(coarse_file)[:12]
    prepared = box.prepare(coarse, FACTOR)
    card = adapt_run["card"]
    assert isinstance(box.frame, BoxFrame) and box.requires == () and box.context == 0
    assert (box.batch_gaps, box.block_gaps) == (16, 256)  # a whole box per gap
    assert (prepared.method, prepared.model, prepared.model_sha256, prepared.velocities_fitted) == (
        "adapted", card["id"], card["weights_sha256"], False)
    assert box.provenance(fitted_velocities=False) == prepared
    assert isinstance(box, Method) and type(box).prepare is not Method.prepare
    # without stored velocities a box's are fitted, and that is recorded
    assert box.provenance(fitted_velocities=True).velocities_fitted
    fine = box.interpolate(coarse.without("velocities"), FACTOR)
    assert len(fine.positions) == (coarse.n_frames - 1) * FACTOR + 1 and np.isfinite(fine.velocities).all()
    np.testing.assert_allclose(fine.positions[::FACTOR], coarse.positions, atol=1e-5)  # float32 model
    with pytest.raises(Exception, match="no cell"):
        LearnedUpsampler(model=str(adapt_run["card_path"])).prepare(
            dataclasses.replace(coarse, cell=None, pbc=[False] * 3), FACTOR)
