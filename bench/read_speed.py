"""Time and memory to read long text trajectories: is reading linear in the file's length?

For each text format mdsr_plugin reads from an MD code, files of 10³, 10⁴ and 10⁵ frames are
built in a temporary folder under /tmp (never in the repository) by repeating the frames of
a real fixture (``tests/data/real/<code>/...``; DL_POLY: MDAnalysisTests' ``DLP_HISTORY``),
with the step and time labels continued as the code would write them, and the companion
files the reader needs (logs, inputs, velocity/force/cell files) beside them.  Each file is
then read in a fresh ``nice``-d subprocess through :func:`mdsr_plugin.io.open_reader`,
iterating ``reader.chunks(1000)`` without keeping the chunks, twice:

* once for the wall time and the process's peak resident memory above what it held once
  its modules were imported and a 2-frame file of the same format had been read
  (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, so the delta is the read's own);
* once under ``tracemalloc`` for the peak of Python's own allocations (numpy arrays
  included); tracemalloc slows the read, so that pass is not timed.

Formats whose 10⁵-frame file would pass ~300 MB are cut to fewer atoms (whole atoms, the
same in every frame) or, for logs that print kilobytes per step whatever the atom count
(FHI-aims), stop at the largest size that fits; ``atoms`` and ``MB`` in the table say what
was read.  Reproduce (about 15 minutes on 2 busy cores)::

    nice python bench/read_speed.py            # all formats, 10³, 10⁴, 10⁵ frames
    python bench/read_speed.py --formats castep lammps-dump --sizes 1000 10000

Results go to ``bench/results/read_speed.json`` (appended to run by run); a Markdown table
is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_file import append_rows

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "tests" / "data" / "real"
RESULTS = ROOT / "bench" / "results" / "read_speed.json"
AU_TIME_FS = 0.0241888432658
AU_TIME_PER_FS = 1.0 / AU_TIME_FS
#: Largest file (bytes) built for one format; larger sizes are skipped and said so.
MAX_BYTES = 330_000_000


# --------------------------------------------------------------------------- builders
# Each builder writes the n-frame file (and its companions) into ``folder`` and returns
# (path to give open_reader, options for open_reader, atoms, what was changed from the fixture).


def _cycle(blocks, n):
    for k in range(n):
        yield k, blocks[k % len(blocks)]


def _xyz_frames(path):
    """[(comment, [atom lines])] of an XYZ file."""
    lines = Path(path).read_text().splitlines()
    frames, i = [], 0
    while i < len(lines) and lines[i].strip():
        count = int(lines[i])
        frames.append((lines[i + 1], lines[i + 2:i + 2 + count]))
        i += 2 + count
    return frames


def build_extxyz(folder, n):
    pos = _xyz_frames(REAL / "cp2k/h2o_nvt/H2O_restart-pos-1.xyz")
    vel = _xyz_frames(REAL / "cp2k/h2o_nvt/H2O_restart-vel-1.xyz")
    v_factor = 0.529177210903 / AU_TIME_FS  # bohr/a.u. → Å/fs
    path = folder / "water.extxyz"
    with open(path, "w") as out:
        for k, j in _cycle(range(len(pos)), n):
            out.write(f"{len(pos[j][1])}\nLattice=\"12.6 0.0 0.0 0.0 12.6 0.0 0.0 0.0 12.6\" "
                      f"Properties=species:S:1:pos:R:3:vel:R:3 time={20.0 + k:.3f} pbc=\"T T T\"\n")
            for p, v in zip(pos[j][1], vel[j][1]):
                s, *x = p.split()
                vv = [float(c) * v_factor for c in v.split()[1:4]]
                out.write(f"{s:2s} {x[0]:>16s} {x[1]:>16s} {x[2]:>16s} {vv[0]:16.10f} {vv[1]:16.10f} {vv[2]:16.10f}\n")
    return path, {}, 12, "CP2K h2o_nvt frames as extended XYZ (Lattice, pos, vel in Å/fs, time= fs)"


def build_plain_xyz(folder, n):
    pos = _xyz_frames(REAL / "cp2k/h2o_nvt/H2O_restart-pos-1.xyz")
    path = folder / "water.xyz"
    with open(path, "w") as out:
        for k, j in _cycle(range(len(pos)), n):
            out.write(f"{len(pos[j][1])}\nframe {k}\n" + "\n".join(pos[j][1]) + "\n")
    return path, {"dt": 1.0}, 12, "CP2K h2o_nvt positions with a plain comment; dt=1 fs given"


def _relabel_cp2k(frames, n, out, step0=20):
    for k, j in _cycle(range(len(frames)), n):
        comment = re.sub(r"^\s*i\s*=\s*-?\d+\s*,\s*time\s*=\s*[-+0-9.eE]+",
                         f" i = {step0 + k:8d}, time = {float(step0 + k):12.3f}", frames[j][0])
        out.write(f"{len(frames[j][1]):8d}\n{comment}\n" + "\n".join(frames[j][1]) + "\n")


def build_cp2k(folder, n):
    src = REAL / "cp2k/h2o_nvt"
    for kind in ("pos", "vel", "frc"):
        with open(folder / f"H2O_restart-{kind}-1.xyz", "w") as out:
            _relabel_cp2k(_xyz_frames(src / f"H2O_restart-{kind}-1.xyz"), n, out)
    cell = (src / "H2O_restart-1.cell").read_text().splitlines()
    with open(folder / "H2O_restart-1.cell", "w") as out:
        out.write(cell[0] + "\n")
        rest = cell[1].split()[2:]
        for k in range(n):
            out.write(f"{20 + k:8d}{20.0 + k:12.3f}" + "".join(f"{float(v):20.10f}" for v in rest) + "\n")
    shutil.copy(src / "output", folder / "output")
    return folder / "H2O_restart-pos-1.xyz", {}, 12, "steps/times continued in pos, vel, frc and .cell"


def build_ipi(folder, n):
    src = REAL / "ipi/edanve_water"
    for kind in ("positions", "velocities", "forces"):
        frames = _xyz_frames(src / f"ref_simulation.{kind}_0.xyz")
        with open(folder / f"ref_simulation.{kind}_0.xyz", "w") as out:
            for k, j in _cycle(range(len(frames)), n):
                comment = re.sub(r"Step:\s*\d+", f"Step: {k:11d}", frames[j][0])
                out.write(f"{len(frames[j][1])}\n{comment}\n" + "\n".join(frames[j][1]) + "\n")
    for name in ("input.xml", "start.xyz"):
        shutil.copy(src / name, folder / name)
    return folder / "ref_simulation.positions_0.xyz", {}, 3, "Step: continued in positions, velocities, forces"


def build_castep(folder, n):
    text = (REAL / "castep/pbanew/PBAnew.md").read_text().splitlines(keepends=True)
    end = next(i for i, line in enumerate(text) if "END header" in line) + 1
    header, blocks, block = text[:end], [], []
    for line in text[end:]:
        if line.strip():
            block.append(line)
        elif block:
            blocks.append(block)
            block = []
    # One atom of each species (index 1): H, C, N, O, Fe.
    keep = [[line for line in b if "<--" not in line or line.split("<--")[1].strip() not in "RVF"
             or line.split()[1] == "1"] for b in blocks]
    path = folder / "PBAnew.md"
    with open(path, "w") as out:
        out.writelines(header)
        out.write("  \n")
        for k, j in _cycle(range(len(keep)), n):
            out.write(f"{k * AU_TIME_PER_FS:48.16E}\n")
            out.writelines(keep[j][1:])
            out.write("  \n")
    return path, {}, 5, "cut to one atom per species (H, C, N, O, Fe: index 1); time lines continued (a.u.)"


def build_aims(folder, n):
    lines = (REAL / "aims/h2o_periodic_md/H2O_periodic_MD.out").read_text().splitlines(keepends=True)
    marks = [i for i, line in enumerate(lines) if "Complete information for previous time-step" in line]
    prefix, segments = lines[:marks[0]], [lines[a:b] for a, b in zip(marks, marks[1:])]
    path = folder / "H2O_periodic_MD.out"
    with open(path, "w") as out:
        out.writelines(prefix)
        for k, j in _cycle(range(len(segments)), n):
            for line in segments[j]:
                if "| Time step number" in line:
                    line = f"  | Time step number          :  {k:7d}\n"
                elif "| Simulation time" in line:
                    line = f"  | Simulation time           :           {k * 0.001:.15E} ps\n"
                out.write(line)
    return path, {}, 3, "MD step segments of the log (SCF, forces, structure) repeated; step/time lines continued"


def build_pwscf(folder, n):
    lines = (REAL / "qe/si_md_qe53/out.out").read_text().splitlines(keepends=True)
    marks = [i for i, line in enumerate(lines) if "Entering Dynamics" in line]
    prefix, segments = lines[:marks[0]], [lines[a:b] for a, b in zip(marks, marks[1:])]  # 49 full iterations
    path = folder / "out.out"
    dt_ps = 20 * 2 * AU_TIME_FS / 1000
    with open(path, "w") as out:
        out.writelines(prefix)
        for k, j in _cycle(range(len(segments)), n - 1):
            for i, line in enumerate(segments[j]):
                if i == 0:
                    line = f"     Entering Dynamics:    iteration = {k + 1:5d}\n"
                elif i == 1 and "time" in line:
                    line = f"                           time      = {(k + 1) * dt_ps:8.4f} pico-seconds\n"
                out.write(line)
    return path, {}, 2, "iterations (SCF, forces, positions) repeated; iteration and time lines continued"


def _cp_blocks(path, rows):
    lines = Path(path).read_text().splitlines()
    return [lines[i + 1:i + 1 + rows] for i in range(0, len(lines), rows + 1)]


def build_qe_cp(folder, n):
    src = REAL / "qe/cp_h2o_qeheat"
    traj = folder / "traj"
    traj.mkdir()
    dt_ps = 3 * AU_TIME_FS / 1000
    for suffix, rows in (("pos", 3), ("vel", 3), ("cel", 3)):
        blocks = _cp_blocks(src / "traj" / f"cp.{suffix}", rows)
        with open(traj / f"cp.{suffix}", "w") as out:
            for k, j in _cycle(range(len(blocks)), n):
                step = 111 + 3 * k
                out.write(f"{step:8d} {step * dt_ps:13.8f}\n" + "\n".join(blocks[j]) + "\n")
    evp = (src / "traj/cp.evp").read_text().splitlines()
    with open(traj / "cp.evp", "w") as out:
        for k, j in _cycle(range(len(evp)), n):
            step = 111 + 3 * k
            out.write(f"{step:10d}{step * dt_ps * 1000 / 1000:14.6E}" + evp[j][24:] + "\n")
    (traj / "cp.for").write_text("")
    for name in ("input_cp", "out_cp"):
        shutil.copy(src / name, folder / name)
    return traj / "cp.pos", {}, 3, "NFI/TIME headers continued in .pos, .vel, .cel, .evp; input and log beside"


def build_cpmd(folder, n, *, main="TRAJECTORY"):
    src = REAL / "cpmd/h2_md"
    rows = (src / "TRAJECTORY").read_text().splitlines()
    steps = sorted({int(r.split()[0]) for r in rows})
    by_step = {s: [r.split(None, 1)[1] for r in rows if int(r.split()[0]) == s] for s in steps}
    xyz = _xyz_frames(src / "TRAJEC.xyz")
    with open(folder / "TRAJECTORY", "w") as out, open(folder / "TRAJEC.xyz", "w") as out_xyz:
        for k, j in _cycle(range(len(steps)), n):
            for rest in by_step[steps[j]]:
                out.write(f"{k + 1:7d}  {rest}\n")
            out_xyz.write(f"{len(xyz[j][1]):12d}\n STEP: {k + 1:12d}\n" + "\n".join(xyz[j][1]) + "\n")
    for name in ("GEOMETRY.xyz", "input.inp", "output.out", "ENERGIES"):
        if name != "ENERGIES":
            shutil.copy(src / name, folder / name)
    if main == "TRAJECTORY":
        return folder / "TRAJECTORY", {}, 2, "steps continued in TRAJECTORY and TRAJEC.xyz"
    return (folder / "TRAJEC.xyz", {"velocities": "TRAJECTORY", "dt": 4 * AU_TIME_FS}, 2,
            "TRAJEC.xyz with TRAJECTORY as its velocity companion, dt = 4 a.u. given")


def build_cpmd_xyz(folder, n):
    return build_cpmd(folder, n, main="TRAJEC.xyz")


def build_dlpoly(folder, n, keep=4):
    import MDAnalysisTests.datafiles as d

    lines = Path(d.DLP_HISTORY).read_text().splitlines()
    title, header = lines[0], lines[1].split()
    marks = [i for i, line in enumerate(lines) if line.startswith("timestep")]
    frames = [lines[a:b] for a, b in zip(marks, marks[1:] + [len(lines)])]
    per_atom = 1 + 1 + int(header[0])  # name line + keytrj + 1 rows
    path = folder / "HISTORY"
    with open(path, "w") as out:
        out.write(title + "\n" + f"{int(header[0]):10d}{int(header[1]):10d}{keep:10d}{n:21d}{0:21d}\n")
        for k, j in _cycle(range(len(frames)), n):
            f = frames[j]
            step = 1 + 10 * k
            out.write(f"timestep{step:10d}{keep:10d} 2 3{0.005:20.6f}{step * 0.005:20.6f}\n")
            out.write("\n".join(f[1:4] + f[4:4 + keep * per_atom]) + "\n")
    return path, {}, keep, f"cut to the first {keep} of 216 atoms (K+/Cl-); timestep lines continued"


def build_tinker(folder, n, molecules=4):
    src = REAL / "tinker/ice_npt"
    lines = (src / "ice.arc").read_text().splitlines()
    n_atoms, per = int(lines[0].split()[0]), 2 + int(lines[0].split()[0])
    keep = 3 * molecules
    frames = [lines[i:i + per] for i in range(0, len(lines), per)]
    path = folder / "ice.arc"
    with open(path, "w") as out:
        for k, j in _cycle(range(len(frames)), n):
            f = frames[j]
            out.write(f"{keep:6d}" + f[0][6:] + "\n" + "\n".join(f[1:2 + keep]) + "\n")
    log = (src / "ice.log").read_text().splitlines(keepends=True)
    first = next(i for i, line in enumerate(log) if "Instantaneous Values for Frame Saved" in line)
    block = log[first:first + 10]  # through 'Coordinate File'
    with open(folder / "ice.log", "w") as out:
        out.writelines(log[:first])
        for k in range(n):
            out.write("\n")
            for line in block:
                if "Frame Saved" in line:
                    line = f" Instantaneous Values for Frame Saved at {100 * (k + 1):9d} Dynamics Steps\n"
                elif "Current Time" in line:
                    line = f" Current Time            {0.1 * (k + 1):11.4f} Picosecond\n"
                elif "Frame Number" in line:
                    line = f" Frame Number            {k + 1:11d}\n"
                out.write(line)
    shutil.copy(src / "ice.key", folder / "ice.key")
    return path, {}, keep, (f"cut to the first {molecules} waters ({keep} of {n_atoms} atoms); the log keeps its "
                            "header and, per frame, only its 'Frame Saved' block (time continued)")


def build_xtb(folder, n):
    src = REAL / "xtb/ethane_md"
    frames = _xyz_frames(src / "xtb.trj")
    with open(folder / "xtb.trj", "w") as out:
        for _, (comment, atoms) in _cycle(frames, n):
            out.write(f"{len(atoms)}\n{comment}\n" + "\n".join(atoms) + "\n")
    for name in ("md.inp", "out"):
        shutil.copy(src / name, folder / name)
    return folder / "xtb.trj", {}, 8, "frames repeated (xtb labels none); md.inp and out beside"


def build_dftb(folder, n):
    # Constructed (no redistributable DFTB+ MD geo_end.xyz): DFTB+'s writeXYZFormat layout
    # '(I5)', 'MD iter: k', '(A5,7F16.8)' (Å, charge, Å/ps) filled with CP2K h2o_nvt frames.
    pos = _xyz_frames(REAL / "cp2k/h2o_nvt/H2O_restart-pos-1.xyz")
    vel = _xyz_frames(REAL / "cp2k/h2o_nvt/H2O_restart-vel-1.xyz")
    v_factor = 0.529177210903 / AU_TIME_FS * 1000  # Å/ps
    path = folder / "geo_end.xyz"
    with open(path, "w") as out:
        for k, j in _cycle(range(len(pos)), n):
            out.write(f"{len(pos[j][1]):5d}\nMD iter: {10 * k}\n")
            for p, v in zip(pos[j][1], vel[j][1]):
                s, *x = p.split()
                vv = [float(c) * v_factor for c in v.split()[1:4]]
                out.write(f"{s:>5s}" + "".join(f"{float(c):16.8f}" for c in x) + f"{0.0:16.8f}"
                          + "".join(f"{c:16.8f}" for c in vv) + "\n")
    (folder / "dftb_in.hsd").write_text("Driver = VelocityVerlet {\n  Steps = 100\n  TimeStep [fs] = 0.5\n"
                                        "  MDRestartFrequency = 10\n}\n")
    return path, {}, 12, "constructed in DFTB+'s layout (no real MD file found) from CP2K h2o_nvt frames"


def build_siesta(folder, n):
    src = REAL / "siesta/h2o_relax/h2o.ANI"
    frames = _xyz_frames_keep_blank(src)
    path = folder / "h2o.ANI"
    with open(path, "w") as out:
        for _, (count, comment, atoms) in _cycle(frames, n):
            out.write(count + "\n" + comment + "\n" + "\n".join(atoms) + "\n")
    (folder / "h2o.fdf").write_text("SystemLabel h2o\nMD.TypeOfRun Verlet\nMD.LengthTimeStep 0.5 fs\n")
    return path, {}, 3, "frames of a CG run repeated; a constructed h2o.fdf (Verlet, 0.5 fs) beside"


def _xyz_frames_keep_blank(path):
    lines = Path(path).read_text().splitlines()
    frames, i = [], 0
    while i < len(lines) and lines[i].strip():
        count = int(lines[i])
        frames.append((lines[i], lines[i + 1], lines[i + 2:i + 2 + count]))
        i += 2 + count
    return frames


def build_lammps(folder, n, keep=8):
    src = REAL / "lammps/alm_npt_metal"
    lines = (src / "dump.out").read_text().splitlines()
    marks = [i for i, line in enumerate(lines) if line.startswith("ITEM: TIMESTEP")]
    frames = [lines[a:b] for a, b in zip(marks, marks[1:] + [len(lines)])]
    path = folder / "dump.out"
    with open(path, "w") as out:
        for k, j in _cycle(range(len(frames)), n):
            f = frames[j]
            out.write(f"ITEM: TIMESTEP\n{100 * k}\nITEM: NUMBER OF ATOMS\n{keep}\n" + "\n".join(f[4:9 + keep]) + "\n")
    shutil.copy(src / "log.lammps", folder / "log.lammps")
    return path, {"type_map": "1:Al"}, keep, f"cut to atoms 1–{keep} of 32; TIMESTEP continued; log.lammps beside"


def build_xdatcar(folder, n, per_species=2):
    lines = (REAL / "vasp/xdatcar_vasp5_nblock50/XDATCAR").read_text().splitlines()
    species, counts = lines[5].split(), [int(c) for c in lines[6].split()]
    marks = [i for i, line in enumerate(lines) if "configuration" in line.lower()]
    keep_rows = [sum(counts[:s]) + a for s in range(len(counts)) for a in range(per_species)]
    frames = [[lines[m + 1 + r] for r in keep_rows] for m in marks]
    path = folder / "XDATCAR"
    with open(path, "w") as out:
        out.write("\n".join(lines[:5]) + "\n" + lines[5] + "\n"
                  + "".join(f"{per_species:6d}" for _ in species) + "\n")
        for k, j in _cycle(range(len(frames)), n):
            out.write(f"Direct configuration= {50 * (k + 1):7d}\n" + "\n".join(frames[j]) + "\n")
    (folder / "INCAR").write_text("IBRION = 0\nPOTIM = 1.0\nNBLOCK = 50\n")
    return path, {}, per_species * len(species), (f"constructed small header: {per_species} atoms of each of "
                                                   f"{' '.join(species)} (of 166); a constructed INCAR (POTIM = 1) beside")


BUILDERS = {
    "extxyz": ("extended XYZ (ASE)", build_extxyz),
    "plain-xyz": ("plain XYZ (ASE, dt given)", build_plain_xyz),
    "cp2k": ("CP2K pos+vel+frc+cell", build_cp2k),
    "ipi": ("i-PI positions+velocities+forces", build_ipi),
    "castep": ("CASTEP .md", build_castep),
    "aims": ("FHI-aims MD log", build_aims),
    "pwscf": ("QE pw.x MD log", build_pwscf),
    "qe-cp": ("QE cp.x .pos+.vel+.cel", build_qe_cp),
    "cpmd": ("CPMD TRAJECTORY", build_cpmd),
    "cpmd-trajec-xyz": ("CPMD TRAJEC.xyz + TRAJECTORY", build_cpmd_xyz),
    "dlpoly": ("DL_POLY HISTORY", build_dlpoly),
    "tinker": ("Tinker .arc + log", build_tinker),
    "xtb": ("xtb.trj", build_xtb),
    "dftb": ("DFTB+ geo_end.xyz", build_dftb),
    "siesta": ("SIESTA .ANI", build_siesta),
    "lammps-dump": ("LAMMPS text dump + log", build_lammps),
    "xdatcar": ("VASP XDATCAR", build_xdatcar),
}


# --------------------------------------------------------------------------- measuring
def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _read_all(path, options) -> tuple[int, int]:
    from mdsr_plugin.io import open_reader

    frames = atoms = 0
    # Companion files are named relative to the file's folder (the warm-up file has its own).
    options = {k: str(Path(path).parent / v) if k in ("velocities", "forces", "cell") else v
               for k, v in options.items()}
    with open_reader(path, **options) as reader:
        for chunk in reader.chunks(1000):
            frames += chunk.n_frames
            atoms = chunk.n_atoms
            del chunk
    return frames, atoms


def measure(path, options, warmup, trace: bool) -> dict:
    """Read ``path`` once (in this process); the warm-up file is read first so that every
    module and cache the reader uses is loaded before the baseline."""
    import numpy  # noqa: F401

    _read_all(warmup, options)
    if trace:
        import tracemalloc

        tracemalloc.start()
        frames, atoms = _read_all(path, options)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return {"frames": frames, "tracemalloc_peak_mb": peak / 2**20}
    before = _max_rss_mb()
    start = time.perf_counter()
    frames, atoms = _read_all(path, options)
    seconds = time.perf_counter() - start
    return {"frames": frames, "atoms": atoms, "seconds": seconds, "max_rss_delta_mb": _max_rss_mb() - before,
            "max_rss_mb": _max_rss_mb()}


def _child(path, options, warmup, trace) -> dict:
    command = ["nice", "-n", "10", sys.executable, __file__, "--measure", str(path), "--options", json.dumps(options),
               "--warmup", str(warmup)] + (["--trace"] if trace else [])
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT / "bench")
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"rc {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_format(name, sizes, workdir) -> list[dict]:
    label, build = BUILDERS[name]
    warm_dir = workdir / f"{name}-warmup"
    warm_dir.mkdir()
    warmup, *_ = build(warm_dir, 2)
    rows, per_frame = [], None
    for n in sizes:
        if per_frame is not None and n * per_frame > MAX_BYTES:
            fits = int(MAX_BYTES / per_frame) // 10_000 * 10_000
            print(f"  {name} {n}: would be {n * per_frame / 1e6:.0f} MB; reading {fits} frames instead", flush=True)
            if fits <= rows[-1]["frames_built"]:
                break
            n = fits
        folder = workdir / f"{name}-{n}"
        folder.mkdir()
        t0 = time.perf_counter()
        path, options, atoms, note = build(folder, n)
        built = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        per_frame = size / n
        row = {"format": name, "label": label, "frames_built": n, "atoms": atoms, "bytes": size, "note": note,
               "file": path.name, "options": options, "build_seconds": round(built, 2)}
        row.update(_child(path, options, warmup, trace=False))
        traced = _child(path, options, warmup, trace=True)
        row["tracemalloc_peak_mb"] = traced.get("tracemalloc_peak_mb")
        if "error" in traced and "error" not in row:
            row["error"] = traced["error"]
        rows.append(row)
        shutil.rmtree(folder)
        print(f"  {name} {n}: {json.dumps({k: row.get(k) for k in ('frames', 'seconds', 'max_rss_delta_mb', 'tracemalloc_peak_mb', 'error')})}",
              flush=True)
    shutil.rmtree(warm_dir)
    return rows


def _fmt(x, spec):
    return "—" if x is None else format(x, spec)


def table(rows) -> str:
    by_format: dict[str, dict[int, dict]] = {}
    for row in rows:
        by_format.setdefault(row["format"], {})[row["frames_built"]] = row
    sizes = sorted({r["frames_built"] for r in rows})
    head = ["format", "atoms", "MB at largest"] + [f"frames/s ({n:.0e})".replace("e+0", "e") for n in sizes] + \
        ["time ratio (largest / 10⁴), linear ="] + [f"RSS Δ / tracemalloc MB ({n:.0e})".replace("e+0", "e") for n in sizes]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, got in by_format.items():
        measured = [got[n] for n in sizes if n in got and "seconds" in got[n]]
        largest = measured[-1] if measured else None
        cells = [BUILDERS[name][0], str(next(iter(got.values()))["atoms"]),
                 _fmt(largest["bytes"] / 1e6 if largest else None, ".0f")]
        for n in sizes:
            r = got.get(n)
            if r is None or "seconds" not in r:
                cells.append("skipped" if r and "skipped" in r else ("error" if r else "—"))
            else:
                cells.append(f"{r['frames'] / r['seconds']:,.0f}")
        base = got.get(10_000)
        if base and largest and "seconds" in base and largest is not base:
            ratio = largest["seconds"] / base["seconds"]
            cells.append(f"{ratio:.1f} ({largest['frames'] // base['frames']})")
        else:
            cells.append("—")
        for n in sizes:
            r = got.get(n)
            if r is None or "seconds" not in r:
                cells.append("—")
            else:
                cells.append(f"{r['max_rss_delta_mb']:.0f} / {_fmt(r.get('tracemalloc_peak_mb'), '.1f')}")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", nargs="+", choices=sorted(BUILDERS), default=list(BUILDERS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[1_000, 10_000, 100_000])
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--warmup", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, json.loads(args.options), args.warmup, args.trace)))
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="mdsr_read_speed_", dir="/tmp"))
    load = os.getloadavg()
    print(f"building in {workdir}; {os.cpu_count()} cores, load average {load[0]:.1f} (other jobs share the "
          "cores: times are indicative, ratios are what matter)", flush=True)
    rows = []
    try:
        for name in args.formats:  # each format's rows are saved as soon as it is done
            done = run_format(name, sorted(args.sizes), workdir)
            machine = {"cpus": os.cpu_count(), "load_average_1min_at_start": round(load[0], 2),
                       "load_average_1min_now": round(os.getloadavg()[0], 2), "python": platform.python_version(),
                       "note": "cores shared with other jobs; run under nice: times indicative, ratios matter"}
            append_rows(args.output, [{**r, "machine": machine} for r in done])
            rows += done
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
