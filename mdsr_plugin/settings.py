"""One typed set of upsampling options, shared by every entry point.

``mdsr-upsample``, ``mdsr-batch``, ``mdsr-eval``, the MDAnalysis integration and
the Python functions (:func:`mdsr_plugin.upsample`, :func:`mdsr_plugin.upsample_file`)
all build an :class:`UpsampleSettings` and hand it down; a method's factory reads
what it needs from it.  Adding an option means adding a field here (and, for the
command lines, one line in :func:`mdsr_plugin.cli.add_upsample_options`).

Example
-------
>>> from mdsr_plugin.settings import UpsampleSettings
>>> UpsampleSettings(factor=20, method="neural", precision="float64").checked(["neural"]).method
'neural'
"""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass, fields, replace

from .errors import SettingsError

__all__ = ["UpsampleSettings", "SettingsError"]

PRECISIONS = ("float32", "float64")


@dataclass(frozen=True)
class UpsampleSettings:
    """How to upsample.

    Attributes
    ----------
    factor : int
        Fine frames per coarse step (≥ 2); the fine step is the coarse step / ``factor``.
    method : str
        A registered method, ``"auto"`` (the best the input supports) or
        ``"classical"`` (the best classical one).
    model : str, optional
        Checkpoint id or path; goes with ``method`` ``"neural"`` (``"auto"`` then
        means ``"neural"``).
    device : str
        ``"cpu"`` or ``"cuda[:N]"`` (learned methods).
    precision : {"float32", "float64"}
        Arithmetic of learned methods.
    batch_gaps : int, optional
        Gaps a learned method integrates together (its default when None).
    dt : float, optional
        Coarse time step in fs, overriding the file's.
    input_format, output_format : str, optional
        Format names when the extensions do not tell.
    chunk_size : int
        Coarse frames read at a time (bounds memory).
    self_validate : bool
        Whether ``auto``/``classical`` choose by measuring the candidates on the input's
        own coarse frames (:mod:`mdsr_plugin.selection`); otherwise by what the input
        carries and the checkpoints' cards.
    adapt : str, optional
        Checkpoint stem (``STEM.safetensors``, ``STEM.json``...) to learn from the input's
        own coarse frames before upsampling (:mod:`mdsr_plugin.neural.adapt`); the learned
        model is then the ``adapted`` candidate of ``auto``, measured with the others on
        the coarse frames its training held out.  An existing complete checkpoint there
        (of the same input and settings) is reused.
    adapt_minutes : float, optional
        Time budget of that learning, minutes (None: until it converges).
    adapt_prior : str, optional
        ``"gfn1-xtb"`` or ``"gfn2-xtb"``: for a molecule with no registry checkpoint, first
        learn a starting model from a trajectory of it on that Hamiltonian
        (:mod:`mdsr_plugin.neural.prior`; needs tblite).  None (default): GFN2-xTB when
        the input stores no forces and tblite is installed
        (:data:`mdsr_plugin.neural.adapt.AUTO_PRIOR`); ``"none"``: never.
    lammps_units : str, optional
        The LAMMPS ``units`` style of a LAMMPS dump or LAMMPS H5MD input (``real``,
        ``metal``, ``si``, ``cgs``), which the files do not record.
    type_map : str, optional
        LAMMPS atom types to elements, ``"1:O,2:H"``, for a dump without element names.
    """

    factor: int
    method: str = "auto"
    model: str | None = None
    device: str = "cpu"
    precision: str = "float32"
    batch_gaps: int | None = None
    dt: float | None = None
    input_format: str | None = None
    output_format: str | None = None
    chunk_size: int = 2000
    self_validate: bool = True
    adapt: str | None = None
    adapt_minutes: float | None = 10.0
    adapt_prior: str | None = None
    lammps_units: str | None = None
    type_map: str | None = None

    @classmethod
    def from_options(cls, factor, method="auto", **options) -> "UpsampleSettings":
        """Settings from keyword options (the Python API's ``**options``); unknown names are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise SettingsError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(factor=factor, method=method, **options)

    def checked(self, methods=None) -> "UpsampleSettings":
        """These settings, validated, with ``--model`` resolved to the neural method.

        Parameters
        ----------
        methods : collection of str, optional
            The registered method names ``method`` must be one of (besides ``auto`` and
            ``classical``); :func:`mdsr_plugin.methods.checked_settings` passes the
            registry's.  Settings sit below the method registry, so they do not ask it.

        Raises
        ------
        SettingsError
            One line naming the offending option.
        """
        try:
            factor = operator.index(self.factor)  # numpy integers too, not floats or bools
        except TypeError:
            factor = None
        if factor is None or isinstance(self.factor, bool) or factor < 2:
            raise SettingsError(f"factor must be an integer >= 2, got {self.factor!r}")
        if methods is not None and self.method not in ("auto", "classical", *methods):
            raise SettingsError(f"unknown method {self.method!r}; choose from auto, classical, "
                                f"{', '.join(methods)}")
        settings = replace(self, factor=factor)
        if self.model is not None:
            if self.method not in ("auto", "neural"):
                raise SettingsError(f"a model (checkpoint) goes with the neural method, not {self.method!r}")
            settings = replace(settings, method="neural")
        if self.precision not in PRECISIONS:
            raise SettingsError(f"precision must be float32 or float64, got {self.precision!r}")
        if self.batch_gaps is not None and self.batch_gaps < 1:
            raise SettingsError(f"batch_gaps must be >= 1, got {self.batch_gaps}")
        if self.dt is not None and not (isinstance(self.dt, (int, float)) and 0 < self.dt < float("inf")):
            raise SettingsError(f"dt must be > 0 fs and finite, got {self.dt!r}")
        if self.chunk_size < 2:
            raise SettingsError(f"chunk_size must be >= 2 coarse frames, got {self.chunk_size}")
        if self.adapt_minutes is not None and not self.adapt_minutes > 0:
            raise SettingsError(f"adapt_minutes must be > 0, got {self.adapt_minutes}")
        if self.adapt_prior is not None:
            from .hamiltonians import PRIOR_HAMILTONIANS

            if self.adapt is None:
                raise SettingsError("adapt_prior goes with adapt (mdsr-upsample --adapt --adapt-prior ...)")
            if self.adapt_prior not in (*PRIOR_HAMILTONIANS, "none"):
                raise SettingsError(f"adapt_prior must be one of {', '.join(PRIOR_HAMILTONIANS)} or none, "
                                    f"got {self.adapt_prior!r}")
        if self.adapt is not None and self.model is not None:
            raise SettingsError("give a model (checkpoint) or adapt (learn one from the input), not both")
        if self.adapt is not None and self.method not in ("auto", "adapted"):
            raise SettingsError(f"adapting a model goes with the auto or adapted method, not {self.method!r}")
        if self.method == "adapted" and self.adapt is None:
            raise SettingsError("the adapted method needs a checkpoint learned from the input: give adapt "
                                "(mdsr-upsample --adapt)")
        if self.lammps_units is not None:
            from .units import LAMMPS_UNIT_STYLES

            if self.lammps_units not in LAMMPS_UNIT_STYLES:
                raise SettingsError(f"lammps_units must be one of {', '.join(LAMMPS_UNIT_STYLES)} (the run's "
                                    f"`units` style; lj is reduced, without physical units), got {self.lammps_units!r}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise SettingsError(f"device must be cpu or cuda[:N], got {self.device!r}")
        if self.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise SettingsError(f"device {self.device}: CUDA is not available on this machine")
        return settings

    def reader_options(self) -> dict:
        """The options of :func:`mdsr_plugin.io.open_reader` these settings give (format, dt,
        LAMMPS units and type map), without those left unset."""
        options = {"format": self.input_format, "dt": self.dt, "lammps_units": self.lammps_units,
                   "type_map": self.type_map}
        return {k: v for k, v in options.items() if v is not None}

    def with_method(self, method: str, **changes) -> "UpsampleSettings":
        """A copy for another method (a batch's fallback, each method of an evaluation)."""
        return replace(self, method=method, **changes)

    def as_dict(self) -> dict:
        return asdict(self)
