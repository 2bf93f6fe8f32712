"""Learned integrators: the architectures of the bi-directional neural upsampler.

Every architecture is an integrator of Newton's equations whose acceleration is
learned.  It maps a state — positions ``x`` (B, N, 3) Å and velocities ``v``
(B, N, 3) Å/fs in the molecule's canonical frame — to the next fine frame with
velocity-Verlet sub-steps, and differs only in where the acceleration comes from:

==========  ===================================================================
``hnn``     Hamiltonian network: a = −∇E(x)/m with E an MLP (SiLU, twice
            differentiable) of standardised inverse interatomic distances;
            conservative, rotation and translation invariant by construction.
``node``    Neural ODE: an MLP maps the canonical-frame coordinates straight to
            accelerations; integrated with torchdiffeq's RK4 solver.
``rnn``     The Hamiltonian force plus a correction read out of an Elman RNN that
``lstm``    (or an LSTM) carries memory along the trajectory; its state is
            initialised from ``context`` coarse frames before the gap, so it can
            infer what a memoryless force cannot (a thermostat's friction, the
            force field's own error along this path).
==========  ===================================================================

Bi-directional use (:meth:`LearnedIntegrator.interpolate`): the integrator runs
forward from the gap's first coarse frame and backward (velocities reversed)
from its last, and the two paths are blended with the smooth weight
λ(s) = 3s² − 2s³ (s ∈ [0, 1] across the gap), so each end is reproduced exactly
and each solution is trusted most near its own start.  A uni-directional model
uses the forward path alone.

Example
-------
>>> import torch
>>> config = default_config("lstm", numbers=[6, 6, 8, 1, 1, 1, 1, 1, 1])
>>> model = build_model(config)
>>> x0 = torch.zeros(4, 9, 3)  # doctest: +SKIP
"""

from __future__ import annotations

import torch
from torch import nn

from .. import units
from .integrator import Memory, blend, forces_from_energy, mlp, run_both_ways, velocity_verlet

__all__ = ["ARCHITECTURES", "LearnedIntegrator", "build_model", "default_config"]

ARCHITECTURES = ("lstm", "rnn", "node", "hnn")
"""Architecture names; each exists bi-directional (``bi<name>``) and uni-directional (``uni<name>``)."""


def default_config(arch: str, numbers, masses=None, *, bidirectional: bool = True) -> dict:
    """Hyper-parameters of an architecture, as stored in a model card.

    Parameters
    ----------
    arch : {"lstm", "rnn", "node", "hnn"}
    numbers : sequence of int, length N
    masses : sequence of float, length N, u, optional
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")
    from ..elements import standard_masses

    numbers = [int(z) for z in numbers]
    masses = [float(m) for m in (standard_masses(numbers) if masses is None else masses)]
    return {
        "arch": arch,
        "bidirectional": bool(bidirectional),
        "numbers": numbers,
        "masses": masses,
        "width": 256,
        "depth": 3,
        "hidden": 128 if arch in ("lstm", "rnn") else 0,
        "context": 2 if arch in ("lstm", "rnn") else 1,
        "substeps": 2,
    }


class LearnedIntegrator(nn.Module):
    """One learned integrator (see the module docstring).

    Parameters
    ----------
    config : dict
        From :func:`default_config` (stored in the model card).

    Buffers (saved with the weights, set by training from the data):
    ``inverse_distance_mean``, ``inverse_distance_std`` (P,) 1/Å; ``position_std`` (scalar, Å);
    ``velocity_std`` (scalar, Å/fs); ``acceleration_std`` (scalar, Å/fs²);
    ``reference`` (N, 3) Å, the canonical geometry that windows are aligned to.
    """

    def __init__(self, config: dict):
        super().__init__()
        self.config = dict(config)
        self.arch = config["arch"]
        self.bidirectional = config["bidirectional"]
        self.context = int(config["context"])
        self.substeps = int(config["substeps"])
        n = len(config["numbers"])
        self.n_atoms = n
        pairs = torch.triu_indices(n, n, 1)
        # Pair differences x_i − x_j as one matrix product with a (N, P) matrix of ±1
        # rather than a gather: a dense GEMM (and its transpose in the force's backward
        # pass) is several times faster than indexing and scatter-adding, and exact.
        difference = torch.zeros(n, pairs.shape[1], dtype=torch.float64)
        difference[pairs[0], torch.arange(pairs.shape[1])] = 1.0
        difference[pairs[1], torch.arange(pairs.shape[1])] = -1.0
        self.register_buffer("pair_difference", difference, persistent=False)
        masses = torch.tensor(config["masses"], dtype=torch.float64)
        self.register_buffer("accel_per_force", (units.ACCEL_PER_FORCE_OVER_MASS / masses)[:, None])
        n_pairs = pairs.shape[1]
        self.register_buffer("inverse_distance_mean", torch.zeros(n_pairs, dtype=torch.float64))
        self.register_buffer("inverse_distance_std", torch.ones(n_pairs, dtype=torch.float64))
        self.register_buffer("position_std", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("velocity_std", torch.tensor(0.01, dtype=torch.float64))
        self.register_buffer("acceleration_std", torch.tensor(0.01, dtype=torch.float64))
        self.register_buffer("reference", torch.zeros(n, 3, dtype=torch.float64))
        width, depth = int(config["width"]), int(config["depth"])
        if self.arch == "node":
            self.field = mlp(3 * n, width, depth, 3 * n)
        else:
            self.energy = mlp(n_pairs, width, depth, 1)
        if self.arch in ("lstm", "rnn"):
            hidden = int(config["hidden"])
            n_in = n_pairs + 3 * n
            self.cell = nn.LSTMCell(n_in, hidden) if self.arch == "lstm" else nn.RNNCell(n_in, hidden, nonlinearity="tanh")
            self.readout = nn.Linear(hidden, 3 * n)
            # Start as the pure Hamiltonian integrator: the correction is learned in rollouts.
            nn.init.zeros_(self.readout.weight)
            nn.init.zeros_(self.readout.bias)

    # ------------------------------------------------------------------ features
    def inverse_distances(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised inverse distances, shape (B, P), of positions (B, N, 3) Å."""
        # (3, B, N) → (3, B, P): the sum over Cartesian components then runs over
        # whole contiguous (B, P) planes.
        components = x.permute(2, 0, 1) @ self.pair_difference
        d = (components * components).sum(0).sqrt()
        return (1.0 / d - self.inverse_distance_mean) / self.inverse_distance_std

    # ------------------------------------------------------------------ forces
    def energy_forces(self, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        """Forces −∇E, shape (B, N, 3), in the units of the training forces (eV/Å)."""
        return forces_from_energy(lambda y: self.energy(self.inverse_distances(y)), x, self.training, create_graph)

    def forces(self, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        """Memoryless forces (eV/Å) of the architecture at positions (B, N, 3) Å."""
        if self.arch == "node":
            centred = (x - self.reference).reshape(len(x), -1) / self.position_std
            accel = self.field(centred).reshape(x.shape) * self.acceleration_std
            return accel / self.accel_per_force
        return self.energy_forces(x, create_graph)

    # ------------------------------------------------------------------ rollout
    def rollout(self, x0, v0, n_steps: int, dt: float, history=None):
        """Integrate ``n_steps`` fine steps of ``dt`` fs from (x0, v0).

        Parameters
        ----------
        x0, v0 : Tensor, shape (B, N, 3), Å and Å/fs
        n_steps : int
        dt : float
            Fine time step in fs (positive; run backward by reversing velocities).
        history : tuple of Tensor, shape (B, K, N, 3), optional
            Positions and velocities of the ``context`` coarse frames ending with
            (x0, v0), oldest first, in this rollout's direction of time.

        Returns
        -------
        x, v : Tensor, shape (B, n_steps + 1, N, 3)
        """
        if self.arch == "node":
            return self._rollout_ode(x0, v0, n_steps, dt)
        memory = None
        if self.arch in ("lstm", "rnn"):
            memory = _Recurrent(self, *(history if history is not None else (x0[:, None], v0[:, None])))
        return velocity_verlet(x0, v0, n_steps, dt, self.substeps, lambda x: self.forces(x) * self.accel_per_force,
                               memory)

    def _rollout_ode(self, x0, v0, n_steps, dt):
        from torchdiffeq import odeint

        shape = x0.shape

        def field(t, state):
            x, v = state[:, : shape[1]], state[:, shape[1] :]
            return torch.cat([v, self.forces(x) * self.accel_per_force], dim=1)

        times = torch.arange(n_steps + 1, dtype=x0.dtype, device=x0.device) * dt
        states = odeint(field, torch.cat([x0, v0], dim=1), times, method="rk4",
                        options={"step_size": dt / self.substeps})
        states = states.transpose(0, 1)  # (B, T, 2N, 3)
        return states[:, :, : shape[1]], states[:, :, shape[1] :]

    # ------------------------------------------------------------------ gap
    def interpolate(self, start, end, factor: int, dt: float):
        """Fine frames across gaps, bi-directionally when the model is.

        Parameters
        ----------
        start, end : tuple of Tensor (positions, velocities), each shape (B, K, N, 3)
            The ``context`` coarse frames ending at the gap's first frame (oldest
            first), and those starting at its last frame (in forward time order).
        factor : int
            Fine steps across the gap.
        dt : float
            Fine step, fs.

        Returns
        -------
        x, v : Tensor, shape (B, factor + 1, N, 3)
            Blended positions (Å) and velocities (Å/fs); frame 0 and ``factor`` are the
            gap's coarse frames.
        disagreement : Tensor, shape (B, factor + 1)
            RMS distance (Å) between the forward and backward positions.
        """
        sx, sv = start
        if not self.bidirectional:
            xf, vf = self.rollout(sx[:, -1], sv[:, -1], factor, dt, history=(sx, sv))
            return xf, vf, torch.zeros(xf.shape[:2], dtype=xf.dtype, device=xf.device)
        forward, backward = run_both_ways(
            lambda hx, hv: self.rollout(hx[:, -1], hv[:, -1], factor, dt, history=(hx, hv)), start, end)
        return blend(forward, backward, factor)


class _Recurrent(Memory):
    """The LSTM/RNN correction: the cell's state is initialised from the history of coarse
    frames before the path and advanced once per fine frame; its read-out, an acceleration,
    is held over the frame."""

    def __init__(self, model: LearnedIntegrator, history_x, history_v):
        self.model, self.state = model, None
        for k in range(history_x.shape[1]):
            self.advance(history_x[:, k], history_v[:, k])

    def advance(self, x, v):
        model = self.model
        features = torch.cat([model.inverse_distances(x), (v / model.velocity_std).reshape(len(x), -1)], dim=1)
        self.state = model.cell(features, self.state)

    def correction(self):
        hidden = self.state[0] if isinstance(self.state, tuple) else self.state
        return self.model.readout(hidden).reshape(len(hidden), self.model.n_atoms, 3) * self.model.acceleration_std


def build_model(config: dict, dtype=torch.float64) -> LearnedIntegrator:
    """A fresh molecular model from a configuration (:func:`default_config` or a model card's).

    Inference runs in float64 (coarse frames are reproduced to the last digit);
    training may use float32, which is twice as fast on a CPU.  A periodic box's
    configuration is built by :func:`mdsr_plugin.neural.local.LocalIntegrator`;
    :func:`mdsr_plugin.neural.checkpoint.load_checkpoint` picks by the card.
    """
    return LearnedIntegrator(config).to(dtype)
