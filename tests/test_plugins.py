"""Method plugins: discovered from entry points, chosen by ``auto`` through ``suits``,
recorded through their provenance; a broken plugin disables only itself."""

from __future__ import annotations

import importlib
import sys
import textwrap

import numpy as np
import pytest

import mdsr_plugin.methods as registry
from mdsr_plugin.methods import MethodPlugin, Suitability, available_methods
from mdsr_plugin.resolve import resolve_method
from mdsr_plugin.pipeline import upsample, upsample_file
from mdsr_plugin.settings import SettingsError, UpsampleSettings

PLUGIN_SOURCE = '''
import numpy as np
from mdsr_plugin.methods import FineFrames, Method, MethodPlugin, Suitability


class Hold(Method):
    """Every fine frame repeats the previous coarse frame."""

    name, requires, context, block_gaps = "hold", (), 0, 7

    def interpolate(self, coarse, factor):
        x = np.concatenate([np.repeat(coarse.positions[:-1], factor, axis=0), coarse.positions[-1:]])
        return FineFrames(x, np.zeros_like(x))


def suits(coarse, factor, settings):
    return Suitability(coarse.n_atoms < 100, "hold is for small systems", evidence={})


PLUGIN = MethodPlugin(name="hold", description="previous coarse frame", factory=lambda settings: Hold(),
                      suits=suits, priority=1000)
BROKEN = "not a plugin"
'''


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A distribution on sys.path declaring two entry points of group mdsr_plugin.methods:
    a working plugin ``hold`` and a broken one; the registry is reloaded around the test."""
    (tmp_path / "hold_plugin.py").write_text(PLUGIN_SOURCE)
    info = tmp_path / "hold_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hold-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [mdsr_plugin.methods]
        hold = hold_plugin:PLUGIN
        broken = hold_plugin:BROKEN
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    saved = dict(registry._PLUGINS)
    registry._PLUGINS.clear()
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    yield
    registry._PLUGINS.clear()
    registry._PLUGINS.update(saved)
    sys.modules.pop("hold_plugin", None)


def test_an_installed_plugin_is_found_chosen_by_auto_and_recorded(installed_plugin, small_traj, tmp_path):
    with pytest.warns(UserWarning, match="plugin 'broken'.*not loaded"):
        methods = available_methods()
    assert {"hold", "linear", "spline", "hermite", "quintic", "neural"} <= set(methods)
    assert "broken" not in methods
    coarse = small_traj.without("velocities", "forces")
    fine = upsample(coarse, 3, "auto")  # priority 1000: above every built-in
    np.testing.assert_allclose(fine.positions[1], coarse.positions[0], atol=1e-12)  # periodic: re-wrapped
    source = tmp_path / "coarse.xyz"
    from mdsr_plugin.io import read_trajectory, write_trajectory

    write_trajectory(source, coarse)
    summary = upsample_file(source, tmp_path / "fine.h5md", 3)
    assert summary["method"] == "hold" and summary["model"] is None
    import h5py, json

    with h5py.File(tmp_path / "fine.h5md") as f:
        assert json.loads(f["parameters"].attrs["mdsr_plugin"])["method"] == "hold"
    assert read_trajectory(tmp_path / "fine.h5md").n_frames == (coarse.n_frames - 1) * 3 + 1


def test_the_registry_imports_no_plugin_module():
    import subprocess

    code = ("import sys, mdsr_plugin.methods as m; m.available_methods(); "
            "print('mdsr_plugin.neural.upsampler' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_a_run_time_plugin_registers_once_and_unregisters(small_traj):
    plugin = MethodPlugin("constant", "", lambda s: None, lambda c, f, s: Suitability(False, "never"), priority=-5)
    registry.register_method(plugin)
    try:
        with pytest.raises(ValueError, match="already registered"):
            registry.register_method(plugin)
        with pytest.raises(registry.MethodError, match="never"):
            resolve_method("constant", small_traj, 4, UpsampleSettings(factor=4))
    finally:
        registry.unregister_method("constant")
    assert "constant" not in available_methods()


@pytest.mark.parametrize("options, message", [
    ({"factor": 1}, "factor must be an integer >= 2"),
    ({"factor": 2.5}, "factor must be an integer >= 2"),
    ({"factor": 4, "method": "hermite", "model": "ethanol-bilstm-f20-1fs"}, "goes with the neural method"),
    ({"factor": 4, "precision": "float16"}, "precision must be float32 or float64"),
    ({"factor": 4, "chunk_size": 1}, "chunk_size must be >= 2"),
    ({"factor": 4, "dt": 0}, "dt must be > 0"),
])
def test_settings_refuse_contradictions_in_one_line(options, message):
    with pytest.raises(SettingsError, match=message):
        UpsampleSettings(**options).checked()


def test_settings_from_python_options_reject_unknown_names_and_model_implies_neural(small_traj):
    with pytest.raises(SettingsError, match="unknown option.*colour"):
        upsample(small_traj, 4, "hermite", colour="red")
    assert UpsampleSettings(factor=np.int64(4), model="x").checked() == UpsampleSettings(
        factor=4, method="neural", model="x")


def test_an_unknown_method_is_refused_by_the_registry_in_one_line():
    """Settings sit below the method registry (no import cycle): the registry checks names."""
    from mdsr_plugin.methods import checked_settings

    with pytest.raises(SettingsError, match="unknown method 'magic'; choose from auto, classical, "):
        checked_settings(UpsampleSettings(factor=4, method="magic"))
    assert UpsampleSettings(factor=4, method="magic").checked().method == "magic"  # names are not its job


def test_a_plugin_whose_factory_builds_no_method_is_refused_in_one_line(small_traj):
    from mdsr_plugin.methods import MethodError, register_method, unregister_method

    register_method(MethodPlugin(name="duck", description="not a Method subclass",
                                 factory=lambda settings: object(), suits=lambda *a: Suitability(True)))
    try:
        with pytest.raises(MethodError, match="method plugin 'duck' built a object, not a subclass of "
                                              "mdsr_plugin.methods.Method"):
            upsample(small_traj, 4, "duck")
    finally:
        unregister_method("duck")
