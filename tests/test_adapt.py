"""Learning from coarse frames alone: with and without forces, resuming, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mdsr_plugin.neural.adapt import MIN_GAPS, AdaptError, AdaptSettings, adapt

TINY = dict(force_epochs=2, gap_epochs=2, width=32, depth=2, hidden=16, warm_start=None, seed=3)


@pytest.fixture
def coarse_file(xtb_fine, tmp_path):
    from mdsr_plugin.io import write_trajectory

    path = tmp_path / "coarse.h5md"
    write_trajectory(path, xtb_fine[::2][::10])  # 61 frames at 10 fs, with forces
    return path


@pytest.mark.slow
@pytest.mark.parametrize("forces", [True, False])
def test_adapting_from_coarse_frames_writes_an_ordinary_checkpoint(coarse_file, tmp_path, forces, monkeypatch):
    from mdsr_plugin.io import read_trajectory, write_trajectory
    from mdsr_plugin.pipeline import upsample

    source = coarse_file
    if not forces:
        source = tmp_path / "no_forces.h5md"
        write_trajectory(source, read_trajectory(coarse_file).without("forces"))
    card_file = adapt([source], tmp_path / "models" / "ethanol-own", AdaptSettings(**TINY), progress=False)
    card = json.loads(card_file.read_text())
    assert card["factors"] == [10] and card["fine_dt_fs"] == 1.0 and card["training"]["from_coarse"]
    assert card["training"]["epochs"] == ({"forces": 2, "gaps": 2} if forces else {"gaps": 2})
    held = card["validation"]["held_out_gaps"]
    assert held["gap_end_position_mae"] > 0 and ("force_mae" in held) == forces
    monkeypatch.setenv("MDSR_MODELS_PATH", str(card_file.parent))
    coarse = read_trajectory(source)
    fine = upsample(coarse, 10, "neural", model=str(card_file))
    np.testing.assert_array_equal(fine.positions[::10], coarse.positions)
    assert np.isfinite(fine.positions).all()


@pytest.mark.slow
def test_adapting_resumes_where_it_stopped(coarse_file, tmp_path):
    stem = tmp_path / "m" / "eth"
    settings = AdaptSettings(**{**TINY, "gap_epochs": 3})
    adapt([coarse_file], stem, AdaptSettings(**{**TINY, "gap_epochs": 3, "max_minutes": 0.0}), progress=False)
    first = [json.loads(line) for line in open(f"{stem}.log.jsonl")]
    assert len(first) == 1  # one epoch, then the (zero) time budget stopped it
    adapt([coarse_file], stem, AdaptSettings(**{**TINY, "gap_epochs": 3, "max_minutes": 0.0}), progress=False)
    assert len(open(f"{stem}.log.jsonl").readlines()) == 2  # continued: epoch 2, not epoch 1 again
    card = adapt([coarse_file], stem, settings, progress=False)
    records = [json.loads(line) for line in open(f"{stem}.log.jsonl")]
    assert [(r["stage"], r["epoch"]) for r in records] == [("forces", 1), ("forces", 2), ("gaps", 1),
                                                           ("gaps", 2), ("gaps", 3)]
    assert json.loads(card.read_text())["training"]["complete"]


def test_too_few_coarse_frames_or_no_velocities_is_one_line_and_writes_nothing(xtb_fine, tmp_path):
    from mdsr_plugin.cli import main as _unused  # noqa: F401  (the package imports cleanly)
    from mdsr_plugin.io import write_trajectory
    from mdsr_plugin.neural.cli import train_main

    short = tmp_path / "short.h5md"
    write_trajectory(short, xtb_fine[::2][::10][:12])
    out = tmp_path / "out"
    with pytest.raises(AdaptError, match=f"needs at least {MIN_GAPS}"):
        adapt([short], out / "m", AdaptSettings(**TINY), progress=False)
    positions_only = tmp_path / "positions.h5md"
    write_trajectory(positions_only, xtb_fine[::2][::10].without("velocities", "forces"))
    assert train_main(["--from-coarse", str(positions_only), "-o", str(out / "m"), "-q",
                       "--warm-start", "none"]) == 1
    assert not out.exists()
