"""xtb's molecular-dynamics trajectory ``xtb.trj`` (``xtb --md`` / ``--omd``).

Every ``dump`` fs of simulated time, ``dynamic.f90`` appends an XYZ frame (Å) whose
comment line reads ``energy: E gnorm: G xtb: VERSION``; with ``velo=true`` in the
``$md`` block, the frame is followed by one ``vx vy vz`` line per atom (``3f20.14``,
bohr per atomic unit of time: the integrator's own units).  Element symbols are
written in lower case (``c``, ``h``).

The velocities are those of xtb's leap-frog integrator at the time the frame is
written, half a step before the positions (``velocities are at t-1/2dt`` in
``dynamic.f90``); the reader keeps them as written and says so in its notes.

The time between frames is ``int(dump / step)`` MD steps of ``step`` fs (xtb rounds the
dump interval down to whole steps), taken from, in order: the log of the run beside
the file (``dt /fs :`` and ``dumpstep(trj) /fs : 50.00  50``), a ``$md`` block in an
input beside it (``step=``, ``dump=``; xtb's defaults 4 fs and 50 fs fill in a missing
one), else ``--dt``.  The first frame is written at step 0.

xtb's optimisation log ``xtbopt.log`` has the same comment lines; it is read too, but
has no time step (``--dt`` is then needed, and an optimisation is no trajectory).
"""

from __future__ import annotations

import re
from typing import Iterator

import numpy as np

from ..elements import numbers_from_symbols
from ..trajectory import Trajectory
from ..units import NATIVE_UNITS
from .base import FormatError, TrajectoryReader
from .plain_xyz import columns, fixed_frames

__all__ = ["XtbTrajectoryReader", "is_xtb_trj"]

_UNITS = NATIVE_UNITS["xtb"]
_COMMENT = re.compile(r"^\s*energy:\s*\S+\s+gnorm:\s*\S+\s+xtb:\s*\S+")
_LOG_DT = re.compile(r"^\s*dt /fs\s*:\s*([-+0-9.eE]+)")
_LOG_DUMP = re.compile(r"^\s*dumpstep\(trj\) /fs\s*:\s*([-+0-9.eE]+)\s+(\d+)")
_MD_KEY = re.compile(r"^\s*(step|dump|dumpxyz|dumptrj)\s*=\s*([-+0-9.eEdD]+)", re.I)
#: xtb's defaults (setparam.f90): ``tstep_md = 4 fs``, ``dump_md2 = 50 fs``.
_DEFAULT_STEP_FS, _DEFAULT_DUMP_FS = 4.0, 50.0
_SCAN_LINES = 5000  # the MD header and input blocks come first; logs can be long


def is_xtb_trj(name: str, head: bytes) -> bool:
    """Whether ``head`` starts an XYZ frame with xtb's ``energy: … gnorm: … xtb: …`` comment,
    in a file not named as xtb names its optimisation and scan paths (``xtbopt.log``,
    ``xtbscan.log``, ``xtbpath*.xyz``), which it writes in the same layout."""
    if name.startswith(("xtbopt", "xtbscan", "xtbpath")):
        return False
    lines = head.decode("ascii", errors="replace").splitlines()[:2]
    return len(lines) == 2 and lines[0].strip().isdigit() and _COMMENT.match(lines[1]) is not None


class XtbTrajectoryReader(TrajectoryReader):
    """``xtb.trj``: positions (Å) and, with ``velo=true``, velocities (bohr/a.u. time → Å/fs)."""

    def __init__(self, path, *, dt=None, topology=None):
        super().__init__(path, dt=dt)
        with open(self.path, "r", errors="replace") as handle:
            count, comment = handle.readline(), handle.readline()
            if not is_xtb_trj(self.path.name.lower(), (count + comment).encode()):
                raise FormatError(f"{self.path.name}: not an xtb trajectory (no 'energy: … gnorm: … xtb: …' "
                                  "comment line after the atom count)")
            self.n_atoms = int(count)
            atoms = [handle.readline() for _ in range(self.n_atoms)]
            after = handle.readline().split()
        self.has_velocities = len(after) == 3 and not after[0][0].isalpha() and len(atoms[-1].split()) == 4
        self.notes = [f"positions from {self.path.name} (xtb, Å)"]
        if self.has_velocities:
            self.notes.append("velocities from its velo=true lines (bohr/a.u. time); xtb writes the leap-frog "
                              "velocities, half an MD step before the positions")
        self.spacing_fs = None if dt is not None else self._spacing()

    def _spacing(self) -> float | None:
        """Time between frames (fs) from the run's log or its ``$md`` input beside the file."""
        candidates = [p for p in sorted(self.path.parent.iterdir())
                      if p.is_file() and p != self.path and p.stat().st_size < 50_000_000]
        inputs = []
        for candidate in candidates:
            step = dump_steps = None
            md_block, md_values = False, {}
            with open(candidate, "r", errors="replace") as handle:
                for _, line in zip(range(_SCAN_LINES), handle):
                    if m := _LOG_DT.match(line):
                        step = float(m[1])
                    elif m := _LOG_DUMP.match(line):
                        dump_steps = int(m[2])
                    elif line.strip().lower().startswith("$md"):
                        md_block = True
                    elif md_block and line.strip().startswith("$"):
                        md_block = False
                    elif md_block and (m := _MD_KEY.match(line)):
                        md_values["step" if m[1].lower() == "step" else "dump"] = float(m[2].lower().replace("d", "e"))
                    if step is not None and dump_steps is not None:
                        self.notes.append(f"frames {dump_steps} × {step:g} fs apart ({candidate.name}: 'dt /fs', "
                                          "'dumpstep(trj)')")
                        return dump_steps * step
            if md_values or md_block:
                inputs.append((candidate, md_values))
        if inputs:
            candidate, values = inputs[0]
            step = values.get("step", _DEFAULT_STEP_FS)
            dump = values.get("dump", _DEFAULT_DUMP_FS)
            if step <= 0:
                raise FormatError(f"{candidate.name}: $md step={step:g} is not a time step; pass --dt")
            steps = int(dump / step)
            self.notes.append(f"frames {steps} × {step:g} fs apart (the $md block of {candidate.name}: step = "
                              f"{step:g} fs, dump = {dump:g} fs, xtb's defaults where not given)")
            return steps * step
        return None

    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        n = self.n_atoms
        per_atom = 2 if self.has_velocities else 1
        source = self.path.name
        numbers = symbols = None
        start = 0
        with open(self.path, "r", errors="replace") as handle:
            frames = fixed_frames(handle, source, 2, per_atom * n)
            while batch := [frame for _, frame in zip(range(chunk_size), frames)]:
                for k, (header, body) in enumerate(batch):
                    if header[0].split() != [str(n)] or _COMMENT.match(header[1]) is None:
                        raise FormatError(f"{source}: frame {start + k} does not start with '{n}' and xtb's "
                                          f"comment line (got {header[0].strip()[:20]!r}); the file is damaged")
                atom_lines = [line for _, body in batch for line in body[:n]]
                positions = columns(atom_lines, 1, 3, source).reshape(len(batch), n, 3)
                if symbols is None:
                    symbols = [line.split()[0] for line in atom_lines[:n]]
                    numbers = numbers_from_symbols(symbols)
                    if not numbers.all():
                        i = int(np.argmin(numbers))
                        raise FormatError(f"{source}: unknown element {symbols[i]!r} (atom {i + 1})")
                elif [line.split()[0] for line in atom_lines[-n:]] != symbols:
                    raise FormatError(f"{source}: frame {start + len(batch) - 1}: the atoms differ from frame 0")
                velocities = None
                if self.has_velocities:
                    velocity_lines = [line for _, body in batch for line in body[n:]]
                    velocities = columns(velocity_lines, 0, 3, source).reshape(len(batch), n, 3) * _UNITS.velocity
                file_times = None if self.spacing_fs is None else \
                    (start + np.arange(len(batch))) * self.spacing_fs
                yield Trajectory(numbers=numbers, positions=positions * _UNITS.length, velocities=velocities,
                                 times=self._times(start, len(batch), file_times))
                start += len(batch)
        if start == 0:
            raise FormatError(f"{source}: no frames")


def _open_trj(path, **options):
    return XtbTrajectoryReader(path, **options)


def _register() -> None:
    from . import Format, register_format

    register_format(Format("xtb-trj", ("xtb.trj",), "xtb MD trajectory xtb.trj (recognised by its 'energy: … "
                           "gnorm: … xtb:' comments)", _open_trj, None, "velo=true lines (bohr/a.u. time)",
                           sniff=is_xtb_trj, signature="'energy: … gnorm: … xtb: …' comment lines"))


_register()
