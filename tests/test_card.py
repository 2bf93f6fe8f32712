"""The model card schema: the shipped cards pass it as they are, broken cards are refused in one line."""

import copy
import json
from pathlib import Path

import pytest

from mdsr_plugin.neural import card as schema
from mdsr_plugin.neural.checkpoint import CheckpointError, read_card

MODELS = Path(__file__).resolve().parents[1] / "models"
SHIPPED = sorted(p for p in MODELS.glob("*.json") if p.name != "manifest.json")


def minimal_card():
    return {"id": "tiny", "card_version": schema.CARD_VERSION, "weights": "tiny.safetensors",
            "weights_sha256": "0" * 64, "fine_dt_fs": 1.0, "factors": [10],
            "config": {"arch": "lstm", "bidirectional": True, "numbers": [8, 1, 1], "masses": [16.0, 1.0, 1.0]}}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_cards_pass_the_schema_as_they_are(path):
    card = json.loads(path.read_text())
    assert schema.validate_card(card, path) is card
    assert read_card(path) == card
    assert card[schema.CARD_VERSION_KEY] == schema.CARD_VERSION
    assert set(schema.REQUIRED) <= set(card)


def test_a_minimal_card_passes():
    card = minimal_card()
    assert schema.validate_card(card, "tiny.json") is card


@pytest.mark.parametrize("key", schema.REQUIRED)
def test_a_card_without_a_required_key_is_refused(key):
    card = minimal_card()
    del card[key]
    with pytest.raises(CheckpointError, match=f"^tiny.json: model card lacks '{key}'$"):
        schema.validate_card(card, "tiny.json")


@pytest.mark.parametrize("key, value", [
    ("factors", 10), ("factors", [10.0]), ("fine_dt_fs", "1"), ("fine_dt_fs", True), ("id", 3),
    ("bonds", [[0, 1, 2]]), ("input_modes", ["forces"]), ("validation", []), ("card_version", "1"),
])
def test_a_key_of_the_wrong_type_is_refused(key, value):
    card = minimal_card()
    card[key] = value
    with pytest.raises(CheckpointError, match=f"^tiny.json: model card: '{key}' is not ") as info:
        schema.validate_card(card, "tiny.json")
    assert "\n" not in str(info.value)


def test_config_and_held_out_rows_are_checked():
    card = minimal_card()
    del card["config"]["numbers"]
    with pytest.raises(CheckpointError, match="'config' lacks 'numbers'"):
        schema.validate_card(card, "tiny.json")
    card = minimal_card()
    card["validation"] = {"held_out": {"rows": [{"factor": 10, "mode": "velocities", "method": "neural"}]}}
    with pytest.raises(CheckpointError, match="held-out row 0 lacks 'position_mae'"):
        schema.validate_card(card, "tiny.json")


@pytest.mark.parametrize("version", [0, schema.CARD_VERSION + 1])
def test_an_unsupported_card_version_is_refused(version):
    card = minimal_card()
    card["card_version"] = version
    with pytest.raises(CheckpointError, match=f"version {version}, which this mdsr_plugin does not read"):
        schema.validate_card(card, "tiny.json")


def test_read_card_refuses_a_broken_card(tmp_path):
    card = minimal_card()
    card["factors"] = "10"
    (tmp_path / "tiny.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="'factors' is not a list of integers"):
        read_card(tmp_path / "tiny")
    (tmp_path / "tiny.json").write_text("[]")
    with pytest.raises(CheckpointError, match="is a JSON list, not an object"):
        read_card(tmp_path / "tiny.json")


def test_held_out_rows_written_by_the_package_are_read_by_it():
    card = minimal_card()
    metrics = {"position_mae": 1e-3, "velocity_mae": 1e-4}
    rows = [schema.held_out_row("eth_400K_langevin_s99", mode, 10, method, 99, {**metrics, "position_mae": mae})
            for mode in ("velocities", "positions")
            for method, mae in (("neural", 1e-3), ("hermite", 5e-3), ("spline", 2e-4))]
    schema.record_held_out(card, rows, "held out for the test")
    assert schema.validate_card(copy.deepcopy(card), "tiny.json") == card
    assert schema.held_out_rows(card) == rows
    assert card["validation"]["held_out"]["note"] == "held out for the test"
    assert list(rows[0]) == ["file", "mode", "factor", "method", "gaps", "position_mae", "velocity_mae"]
    assert schema.classical_is_better(card, 10, False, "spline")
    assert not schema.classical_is_better(card, 10, True, "hermite")
    assert not schema.classical_is_better(card, 20, True, "spline")  # no rows at this factor
    assert not schema.classical_is_better(card, 10, True, "quintic")  # no rows for this method
    assert schema.held_out_means(card, 10, True) == {"neural": 1e-3, "hermite": 5e-3, "spline": 2e-4}
    grouped = schema.held_out_position_mae(rows[::-1])
    assert list(grouped) == [("eth_400K_langevin_s99", "velocities", 10), ("eth_400K_langevin_s99", "positions", 10)]
    assert grouped["eth_400K_langevin_s99", "positions", 10]["hermite"] == 5e-3
    assert [schema.baseline_method(m) for m in ("velocities", "positions")] == ["hermite", "spline"]


def test_registry_keeps_its_public_names():
    from mdsr_plugin.neural import registry

    for name in ("find_matching", "serves", "classical_is_better", "get_model_entry", "list_models",
                 "held_out_position_mae", "baseline_method"):
        assert callable(getattr(registry, name)), name
    assert registry.classical_is_better is schema.classical_is_better
