"""The method protocol: what an upsampling method is, what it answers, what it records.

Every layer above the methods (the streaming driver, the command lines, batch
processing, evaluation, the MDAnalysis reader) talks to a method only through the
types defined here, so a new method plugs in without any of them changing.

A method is registered as a :class:`MethodPlugin`: its name, a factory building
the method from :class:`~mdsr_plugin.settings.UpsampleSettings`, and ``suits``,
which answers whether it can upsample a given input (a :class:`Suitability`).
The factory returns an instance of a :class:`Method` subclass.

Worked example (a method that repeats the previous coarse frame)::

    import numpy as np
    from mdsr_plugin.methods import FineFrames, Method, MethodPlugin, Suitability, register_method

    class Hold(Method):
        name, requires, context, block_gaps = "hold", (), 0, 4096

        def interpolate(self, coarse, factor):       # coarse: (F, N, 3) Å positions
            x = np.repeat(coarse.positions[:-1], factor, axis=0)
            x = np.concatenate([x, coarse.positions[-1:]])   # ((F - 1) * factor + 1, N, 3)
            return FineFrames(x, np.zeros_like(x))

    register_method(MethodPlugin(
        name="hold", description="previous coarse frame", factory=lambda settings: Hold(),
        suits=lambda coarse, factor, settings: Suitability(True), priority=-1))

A method that must see the input before it runs (the neural method chooses and
loads its checkpoint) overrides ``prepare(first, factor, found) -> Provenance``.

Packages register plugins without being imported by mdsr_plugin: an entry point in
the group ``mdsr_plugin.methods`` naming a :class:`MethodPlugin` object::

    [project.entry-points."mdsr_plugin.methods"]
    hold = "my_package.hold:PLUGIN"
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Callable, NamedTuple

import numpy as np

from ..errors import MethodError

if TYPE_CHECKING:
    from ..settings import UpsampleSettings
    from ..trajectory import Trajectory

__all__ = ["FineFrames", "Method", "MethodError", "MethodPlugin", "Provenance", "Suitability"]


class FineFrames(NamedTuple):
    """What a method returns for a run of coarse frames.

    Attributes
    ----------
    positions : ndarray, shape (n_fine, n_atoms, 3), Å
    velocities : ndarray, shape (n_fine, n_atoms, 3), Å/fs
    frame_data : dict of str to ndarray, shape (n_fine, ...)
        Extra per-frame values written alongside (e.g. ``"disagreement"``, Å).
    """

    positions: np.ndarray
    velocities: np.ndarray
    frame_data: dict = {}


@dataclass(frozen=True)
class Provenance:
    """What produced a fine trajectory: written to H5MD ``parameters``, summaries and manifests.

    Attributes
    ----------
    method : str
        The registered method name.
    model, model_sha256 : str or None
        A learned method's checkpoint id and the sha256 of its weights.
    velocities_fitted : bool
        The input had no velocities and the method fitted them (neural shooting).
    self_validation : dict or None
        What ``auto`` measured on the input's own coarse frames to choose the method
        (:meth:`mdsr_plugin.selection.Selection.as_dict`).
    estimate : str or None
        That measurement in one line, for the user.
    force_check : dict or None
        A learned method's force error on the input's stored forces, and whether it
        points to another Hamiltonian than its checkpoint's
        (:meth:`mdsr_plugin.neural.upsampler.LearnedUpsampler.check_forces`).
    """

    method: str
    model: str | None = None
    model_sha256: str | None = None
    velocities_fitted: bool = False
    self_validation: dict | None = None
    estimate: str | None = None
    force_check: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Suitability:
    """A plugin's answer to "can you upsample this input at this factor?".

    Attributes
    ----------
    usable : bool
    reason : str
        Why not (one line), or what it would use (e.g. the checkpoint id).
    evidence : dict of str to float
        Position MAE (Å) that the plugin knows for itself and for other methods on
        data like this input (a checkpoint's held-out validation); ``auto`` uses it
        to pass over the plugin when another usable method is known to be better.
    found : object
        What the plugin found while answering (a matched checkpoint and atom order),
        handed to the method's ``prepare`` so that nothing is searched twice.
    """

    usable: bool
    reason: str = ""
    evidence: dict = field(default_factory=dict)
    found: object = None


class Method(ABC):
    """An upsampling method, as the streaming driver uses it: subclass this.

    A subclass sets the attributes and implements :meth:`interpolate`; one that must see
    the input before it runs (the learned methods choose and load their checkpoint)
    overrides :meth:`prepare`, whose :class:`Provenance` is what the output records.

    Attributes
    ----------
    name : str
    requires : tuple of str
        Coarse quantities it needs besides positions (``"velocities"``, ``"forces"``).
    context : int
        Coarse frames it reads on each side of a gap beyond the gap's two ends
        (0 for Hermite interpolation, more for splines and recurrent models).
    block_gaps : int
        How many gaps the streaming driver hands it at once (its batch size).
    envelope_margin : float
        Å: how far outside the box of its gap's two coarse positions the driver lets a
        fine position lie (beyond it the run is refused,
        :func:`mdsr_plugin.checks.check_fine_envelope`).
    """

    name: str = ""
    requires: tuple[str, ...] = ()
    context: int = 0
    block_gaps: int = 4096
    envelope_margin: float = 5.0  # Å; mdsr_plugin.checks.ENVELOPE_MARGIN

    def prepare(self, first: "Trajectory", factor: int, found=None) -> Provenance:
        """Get ready for an input, once, with its first chunk (before any :meth:`interpolate`).

        Parameters
        ----------
        first : Trajectory
            The input's first chunk.
        factor : int
        found : object, optional
            What the plugin's ``suits`` found for this input (``Suitability.found``: a
            learned method's checkpoint match), so that it is not searched twice.

        Returns
        -------
        Provenance
            What the output records about the method; here its name alone.
        """
        return Provenance(method=self.name)

    @abstractmethod
    def interpolate(self, coarse: "Trajectory", factor: int) -> FineFrames:
        """Fine frames of ``coarse`` (unwrapped, uniform step).

        Returns positions and velocities of shape ``((n_coarse - 1) * factor + 1,
        n_atoms, 3)`` in Å and Å/fs, plus optional per-fine-frame values.
        """


@dataclass(frozen=True)
class MethodPlugin:
    """A registered method.

    Attributes
    ----------
    name : str
    description : str
        One line for ``--help`` and listings.
    factory : callable
        ``factory(settings: UpsampleSettings) -> Method``.
    suits : callable
        ``suits(coarse: Trajectory, factor: int | None, settings: UpsampleSettings)
        -> Suitability``; ``coarse`` is the first chunk of the input, ``factor`` None
        asks about the input alone.  A reason for not suiting is a whole sentence
        the user reads.
    priority : int
        ``auto``'s preference among usable methods when nothing tells them apart
        (higher first): quintic Hermite 30, cubic Hermite 20, spline 10, linear 0,
        learned methods above.
    learned : bool
        Whether it is a learned model (``classical`` picks among the others).
    """

    name: str
    description: str
    factory: Callable[["UpsampleSettings"], Method]
    suits: Callable[["Trajectory", "int | None"], Suitability]
    priority: int = 0
    learned: bool = False
