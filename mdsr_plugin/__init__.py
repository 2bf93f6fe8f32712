"""mdsr_plugin: reconstruct the missing frames of coarse molecular-dynamics trajectories.

Positions **and** velocities between stored frames are rebuilt by classical
interpolators (linear, cubic spline, cubic and quintic Hermite) or by learned
bi-directional integrators (Winkler, Müller, Sauceda, Mach. Learn.: Sci. Technol.
3 (2022) 025011).

The data path is one line: :func:`open_reader` → :class:`Trajectory` chunks →
:func:`upsample_stream` → :func:`open_writer`.  ``mdsr-upsample`` on the command
line and the Python functions below only orchestrate that path.

Internal units: Å, fs, Å/fs, eV/Å, u (see :mod:`mdsr_plugin.units`).
Heavy libraries (MDAnalysis, ASE's I/O, h5py, torch) are imported when used.
"""

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "Trajectory": "mdsr_plugin.trajectory",
    "TrajectoryError": "mdsr_plugin.trajectory",
    "open_reader": "mdsr_plugin.io",
    "open_writer": "mdsr_plugin.io",
    "read_trajectory": "mdsr_plugin.io",
    "write_trajectory": "mdsr_plugin.io",
    "FormatError": "mdsr_plugin.io",
    "get_method": "mdsr_plugin.methods",
    "available_methods": "mdsr_plugin.methods",
    "UpsampleSettings": "mdsr_plugin.settings",
    "upsample": "mdsr_plugin.pipeline",
    "upsample_stream": "mdsr_plugin.pipeline",
    "upsample_file": "mdsr_plugin.pipeline",
    "upsample_universe": "mdsr_plugin.integrations.mdanalysis",
    "upsample_atoms": "mdsr_plugin.integrations.ase",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    # Lazy attribute access keeps `import mdsr_plugin` cheap (PEP 562).
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mdsr_plugin' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)


def _register_mdanalysis_reader():
    # MDAnalysis has no plugin discovery: its "MDSR" reader format exists once the
    # reader class is defined, so importing mdsr_plugin defines it (this imports
    # MDAnalysis, about half a second).
    try:
        import_module("mdsr_plugin.integrations.mdanalysis")
    except ImportError:  # MDAnalysis not installed: nothing to register
        pass


_register_mdanalysis_reader()
