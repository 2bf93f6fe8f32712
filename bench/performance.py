"""Throughput and memory of the neural upsampler, next to cubic Hermite and GFN2-xTB.

For a 9-atom (ethanol) and a 21-atom (aspirin) molecule at factor 20 (20 fs coarse,
1 fs fine) it measures, in one run:

* the network alone: batched windows already in the canonical frame, through the
  learned integrator (float32, the default, and float64), its arithmetic per fine
  frame (counted by ``torch.utils.flop_counter``) and the fraction of the measured
  matrix-multiply peak that reaches;
* in memory (``mdsr_plugin.upsample``, with alignment and atom mapping) and file to
  file (coarse H5MD → DCD + velocity DCD, H5MD, extended XYZ), neural and Hermite,
  and each writer alone on the same fine frames;
* re-running GFN2-xTB (tblite) over the gaps from both ends, per fine frame;
* smaller networks of the same architecture (speed only), to say what size would
  reach a throughput target;
* peak resident memory of ``mdsr-upsample`` (neural, to DCD) on synthesised
  trajectories of 10^4 … 10^6 coarse frames of the 21-atom molecule.

The shipped checkpoint is used where the registry has one for the molecule; otherwise
a checkpoint of the default architecture with untrained weights is written to a
temporary folder (a fixed-step integrator's speed does not depend on its weights).
Coarse frames are synthesised (RDKit geometry, thermal noise, random orientation), so
no reference data are needed; tblite and rdkit are (``pip install -e .[reference]``).

    python bench/performance.py                         # everything, ~20 min on 2 cores
    python bench/performance.py --memory-frames 10000   # quicker memory check
    python bench/performance.py --device cuda --skip-memory
    python bench/performance.py --molecules --skip-sizes       # only the memory runs

Writes bench/results/performance_<device>.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mdsr_plugin import units
from mdsr_plugin.io import open_writer
from mdsr_plugin.pipeline import upsample, upsample_file
from mdsr_plugin.trajectory import Trajectory

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
FACTOR = 20
COARSE_DT = 20.0  # fs
OUTPUTS = ("dcd", "h5md", "xyz")


# --------------------------------------------------------------------------- set-up
def machine(device: str) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "torch_threads": torch.get_num_threads(), "cpu_cores": len(os.sched_getaffinity(0))}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                           if line.startswith("Model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    info["memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def synchronize(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))


def best_seconds(function, device, repeats=3):
    """The fastest of ``repeats`` timed calls, after one warm-up call."""
    function()
    synchronize(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        synchronize(device)
        times.append(time.perf_counter() - started)
    return min(times)


def gemm_peak(device: str, dtype) -> float:
    """Measured matrix-multiply rate, FLOP/s, of square products on ``device``."""
    n = 4096 if device.startswith("cuda") else 2048
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    return 2 * n**3 / best_seconds(lambda: a @ b, device, repeats=5)


def synthesise(geometry, masses, n_frames, seed=0, temperature=300.0):
    """Coarse frames (positions Å, velocities Å/fs) around ``geometry`` (N, 3): thermal
    displacements of 0.05 Å, Maxwell–Boltzmann velocities, a random orientation per frame."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    n_atoms = len(geometry)
    rotations = Rotation.random(n_frames, random_state=seed).as_matrix()
    centred = geometry - geometry.mean(0)
    positions = np.einsum("fni,fji->fnj", centred + rng.normal(0, 0.05, (n_frames, n_atoms, 3)), rotations)
    from ase.units import kB

    sigma = np.sqrt(kB * temperature / masses * units.ACCEL_PER_FORCE_OVER_MASS)  # Å/fs
    velocities = np.einsum("fni,fji->fnj", rng.normal(size=(n_frames, n_atoms, 3)) * sigma[:, None], rotations)
    return positions, velocities


def write_coarse(path, numbers, masses, geometry, n_frames, chunk=50_000):
    """A synthesised coarse H5MD trajectory, written in chunks (float32, as MD codes store)."""
    with open_writer(path, dtype=np.float32, compression=None) as writer:
        for start in range(0, n_frames, chunk):
            n = min(chunk, n_frames - start)
            positions, velocities = synthesise(geometry, masses, n, seed=start)
            writer.write(Trajectory(numbers=numbers, masses=masses, positions=positions, velocities=velocities,
                                    times=(start + np.arange(n)) * COARSE_DT))


def checkpoint_for(molecule, numbers, geometry, folder, width=None, hidden=None):
    """A registered checkpoint id for ``molecule`` at factor 20, or the path of a checkpoint of
    the default architecture (optionally narrower) with untrained weights; and whether it is trained."""
    from mdsr_plugin.neural.registry import find_matching

    if width is None:
        matches, _ = find_matching(numbers, geometry, COARSE_DT / FACTOR, FACTOR, True)
        if matches:
            return matches[0][0].id, True
    from mdsr_plugin.molecule import infer_bonds
    from mdsr_plugin.neural.checkpoint import save_checkpoint
    from mdsr_plugin.neural.models import build_model, default_config

    config = default_config("lstm", numbers)
    if width is not None:
        config.update(width=width, hidden=hidden)
    torch.manual_seed(0)
    model = build_model(config)
    masses = np.asarray(config["masses"])
    reference = geometry - masses @ geometry / masses.sum()
    pairs = np.triu_indices(len(numbers), 1)
    inverse = 1.0 / np.linalg.norm(reference[pairs[0]] - reference[pairs[1]], axis=-1)
    with torch.no_grad():
        model.reference.copy_(torch.as_tensor(reference))
        model.inverse_distance_mean.copy_(torch.as_tensor(inverse))
        model.inverse_distance_std.fill_(0.1 * float(inverse.mean()))
        model.energy[-1].weight.mul_(1e-3)  # keep the untrained forces small: atoms stay put
    name = f"{molecule}-untrained-w{config['width']}-h{config['hidden']}"
    card = {"id": name, "molecule": molecule, "numbers": list(map(int, numbers)),
            "bonds": [list(map(int, b)) for b in infer_bonds(np.asarray(numbers), geometry)],
            "fine_dt_fs": COARSE_DT / FACTOR, "coarse_dt_fs": COARSE_DT, "factors": [FACTOR],
            "input_modes": ["velocities", "positions"], "note": "untrained weights: for speed measurements only"}
    return str(save_checkpoint(model, card, Path(folder) / name)), False


# --------------------------------------------------------------------------- measurements
def network_rate(model_spec, coarse, device, precision, windows):
    """Fine frames per second of the learned integrator alone, and FLOPs per fine frame."""
    from torch.utils.flop_counter import FlopCounterMode

    from mdsr_plugin.neural.upsampler import LearnedUpsampler

    method = LearnedUpsampler(model=model_spec, device=device, precision=precision)
    method.prepare(coarse, FACTOR)
    model, k = method.model, method.model.context
    dtype = getattr(torch, precision)
    # canonical-frame windows, as the upsampler hands them to the network
    x = torch.as_tensor(coarse.positions[:k], dtype=dtype, device=device)
    x = (x - x.mean(1, keepdim=True))[None].expand(windows, -1, -1, -1).contiguous()
    x = x + 0.01 * torch.randn_like(x)
    v = torch.as_tensor(coarse.velocities[:k], dtype=dtype, device=device)[None].expand(windows, -1, -1, -1)
    v = v.contiguous()

    def run():
        with torch.no_grad():
            model.interpolate((x, v), (x, v), FACTOR, COARSE_DT / FACTOR)

    seconds = best_seconds(run, device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        small = 16
        model.interpolate((x[:small], v[:small]), (x[:small], v[:small]), FACTOR, COARSE_DT / FACTOR)
    return windows * FACTOR / seconds, counter.get_total_flops() / (small * FACTOR)


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def xtb_seconds_per_fine_frame(coarse, gaps):
    """GFN2-xTB re-integration of ``gaps`` gaps from both ends (0.5 fs steps), per fine frame."""
    from physics_baseline import reintegrate_gaps

    window = coarse[: gaps + 1]
    _, seconds = timed(lambda: reintegrate_gaps(window, FACTOR, n_gaps=gaps))
    return seconds / (gaps * FACTOR)


# The child reports its own high-water mark: VmHWM belongs to the memory image started
# by exec, unlike ru_maxrss, which for a child forked from this (large) process also
# counts the parent's pages it shared before exec.
_REPORT_PEAK = """
import sys
from mdsr_plugin.cli import main
code = main(sys.argv[2:])
with open("/proc/self/status") as status, open(sys.argv[1], "w") as out:
    out.write(next(line.split()[1] for line in status if line.startswith("VmHWM")))
sys.exit(code)
"""


def peak_rss_mb(cli_args, folder):
    """Run ``mdsr-upsample cli_args`` in a child process; its wall time (s) and peak resident memory (MB)."""
    report = Path(folder) / "peak_kb"
    _, seconds = timed(lambda: subprocess.run([sys.executable, "-c", _REPORT_PEAK, str(report), *cli_args],
                                              check=True))
    return seconds, int(report.read_text()) / 1024


def measure_molecule(molecule, args, folder, results):
    from mdsr_plugin.reference import build_molecule

    atoms = build_molecule(molecule)
    numbers, masses, geometry = atoms.numbers, atoms.get_masses(), atoms.positions
    model_spec, trained = checkpoint_for(molecule, numbers, geometry, folder)
    positions, velocities = synthesise(geometry, masses, args.gaps + 1)
    coarse = Trajectory(numbers=numbers, masses=masses, positions=positions, velocities=velocities,
                        times=np.arange(args.gaps + 1) * COARSE_DT)
    row = {"molecule": molecule, "atoms": len(numbers), "checkpoint": Path(model_spec).stem, "trained": trained,
           "coarse_frames": coarse.n_frames, "fine_frames": args.gaps * FACTOR + 1}
    print(f"{molecule}: {len(numbers)} atoms, checkpoint {row['checkpoint']}", flush=True)

    for precision in ("float32", "float64"):
        rate, flops = network_rate(model_spec, coarse, args.device, precision, args.windows)
        row[f"network_{precision}_fps"] = rate
        row["flops_per_fine_frame"] = flops
    if args.device.startswith("cuda"):
        results["rows"].append(row)
        return

    fine = {}
    for method in ("neural", "hermite"):
        options = {"model": model_spec} if method == "neural" else {}
        fine[method], seconds = timed(lambda: upsample(coarse, FACTOR, method, **options))
        row[f"{method}_memory_fps"] = fine[method].n_frames / seconds
    agreement = upsample(coarse[:50], FACTOR, "neural", model=model_spec, precision="float64")
    row["float32_max_deviation_angstrom"] = float(np.abs(fine["neural"].positions[: agreement.n_frames]
                                                         - agreement.positions).max())

    source = Path(folder) / f"{molecule}_coarse.h5md"
    with open_writer(source) as writer:
        writer.write(coarse)
    for output in OUTPUTS:
        target = Path(folder) / f"{molecule}_fine.{output}"
        for method in ("neural", "hermite"):
            model = model_spec if method == "neural" else None
            summary, seconds = timed(lambda: upsample_file(source, target, FACTOR, method=method, model=model))
            row[f"{method}_file_{output}_fps"] = summary["frames_out"] / seconds
        started = time.perf_counter()
        with open_writer(target) as writer:
            writer.write(fine["hermite"])
        row[f"writer_{output}_fps"] = fine["hermite"].n_frames / (time.perf_counter() - started)
        for leftover in Path(folder).glob(f"*{molecule}_fine*"):
            leftover.unlink()

    if not args.skip_xtb:
        row["xtb_seconds_per_fine_frame"] = xtb_seconds_per_fine_frame(coarse, args.xtb_gaps)
    results["rows"].append(row)


def measure_sizes(args, folder, results):
    """Speed of narrower networks of the same architecture at 21 atoms (untrained weights)."""
    from mdsr_plugin.reference import build_molecule

    atoms = build_molecule("aspirin")
    numbers, masses, geometry = atoms.numbers, atoms.get_masses(), atoms.positions
    positions, velocities = synthesise(geometry, masses, 8)
    coarse = Trajectory(numbers=numbers, masses=masses, positions=positions, velocities=velocities,
                        times=np.arange(8) * COARSE_DT)
    for width, hidden in ((256, 128), (128, 64), (64, 32)):
        spec, _ = checkpoint_for("aspirin", numbers, geometry, folder, width=width, hidden=hidden)
        rate, flops = network_rate(spec, coarse, args.device, "float32", args.windows)
        results["sizes"].append({"atoms": len(numbers), "width": width, "hidden": hidden,
                                 "network_float32_fps": rate, "flops_per_fine_frame": flops})
        print(results["sizes"][-1], flush=True)


def measure_memory(args, folder, results):
    """Peak RSS of mdsr-upsample (neural, to DCD) against the coarse trajectory's length."""
    from mdsr_plugin.reference import build_molecule

    atoms = build_molecule("aspirin")
    numbers, masses, geometry = atoms.numbers, atoms.get_masses(), atoms.positions
    model_spec, _ = checkpoint_for("aspirin", numbers, geometry, folder)
    for n in sorted(args.memory_frames):
        source, target = Path(folder) / f"long{n}.h5md", Path(folder) / f"long{n}.dcd"
        write_coarse(source, numbers, masses, geometry, n)
        seconds, rss = peak_rss_mb([str(source), "--factor", str(FACTOR), "--model", model_spec, "-o", str(target),
                                    "-q", "--device", args.device], folder)
        written = sum(p.stat().st_size for p in Path(folder).glob(f"long{n}*.dcd"))
        results["memory"].append({"atoms": len(numbers), "coarse_frames": n, "fine_frames": (n - 1) * FACTOR + 1,
                                  "seconds": seconds, "fine_fps": (n - 1) * FACTOR / seconds,
                                  "peak_rss_mb": rss, "output_gb": written / 2**30})
        print(results["memory"][-1], flush=True)
        for f in Path(folder).glob(f"long{n}*"):
            f.unlink()


# --------------------------------------------------------------------------- report
def report(results):
    peak = results["gemm_float32_flops"]
    print(f"\nMachine: {results['machine']}")
    print(f"Measured matrix-multiply peak: {peak / 1e9:.0f} GFLOP/s float32, "
          f"{results['gemm_float64_flops'] / 1e9:.0f} GFLOP/s float64\n")
    print("| molecule (atoms) | network f32 | network f64 | MFLOP / fine frame | of f32 peak |"
          " neural in memory | Hermite in memory | neural → DCD | neural → H5MD | neural → XYZ |"
          " Hermite → DCD | Hermite → H5MD | Hermite → XYZ | writer DCD | writer H5MD | writer XYZ |"
          " xTB re-run | neural / Hermite cost | xTB / neural cost |")
    print("|---" * 19 + "|")
    for r in results["rows"]:
        def fps(key):
            return f"{r[key]:,.0f}" if key in r else "–"
        fraction = r["network_float32_fps"] * r["flops_per_fine_frame"] / peak
        xtb = r.get("xtb_seconds_per_fine_frame")
        cells = [f"{r['molecule']} ({r['atoms']})", fps("network_float32_fps"), fps("network_float64_fps"),
                 f"{r['flops_per_fine_frame'] / 1e6:.2f}", f"{fraction:.0%}", fps("neural_memory_fps"),
                 fps("hermite_memory_fps"), *(fps(f"neural_file_{o}_fps") for o in OUTPUTS),
                 *(fps(f"hermite_file_{o}_fps") for o in OUTPUTS), *(fps(f"writer_{o}_fps") for o in OUTPUTS),
                 f"{1 / xtb:,.0f}" if xtb else "–",
                 f"{r['hermite_memory_fps'] / r['neural_memory_fps']:,.0f}×" if "hermite_memory_fps" in r else "–",
                 f"{r['neural_file_dcd_fps'] * xtb:,.0f}×" if xtb else "–"]
        print("| " + " | ".join(cells) + " |")
    markdown_table(["atoms", "width", "LSTM hidden", "MFLOP / fine frame", "network f32 (fine frames/s)"],
                   [[s["atoms"], s["width"], s["hidden"], f"{s['flops_per_fine_frame'] / 1e6:.2f}",
                     f"{s['network_float32_fps']:,.0f}"] for s in results["sizes"]])
    markdown_table(["coarse frames", "fine frames", "wall time (s)", "fine frames/s", "peak RSS (MB)",
                    "DCD written (GB)"],
                   [[f"{m['coarse_frames']:,}", f"{m['fine_frames']:,}", f"{m['seconds']:.0f}", f"{m['fine_fps']:,.0f}",
                     f"{m['peak_rss_mb']:.0f}", f"{m['output_gb']:.2f}"] for m in results["memory"]])


def markdown_table(header, rows):
    """Print a Markdown table (nothing when there are no rows)."""
    if not rows:
        return
    print("\n| " + " | ".join(header) + " |")
    print("|---" * len(header) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--molecules", nargs="*", default=["ethanol", "aspirin"])
    parser.add_argument("--gaps", type=int, default=5000, help="coarse gaps per throughput run")
    parser.add_argument("--windows", type=int, default=None,
                        help="gaps per network call (default 1024 on CPU, 65536 on CUDA)")
    parser.add_argument("--xtb-gaps", type=int, default=2)
    parser.add_argument("--skip-xtb", action="store_true")
    parser.add_argument("--skip-sizes", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-frames", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--output", help="JSON file (default bench/results/performance_<device>.json)")
    args = parser.parse_args(argv)
    if args.windows is None:
        args.windows = 65536 if args.device.startswith("cuda") else 1024
    results = {"machine": machine(args.device), "device": args.device, "factor": FACTOR,
               "command": "python bench/performance.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "gemm_float32_flops": gemm_peak(args.device, torch.float32),
               "gemm_float64_flops": gemm_peak(args.device, torch.float64), "rows": [], "sizes": [], "memory": []}
    out = Path(args.output or ROOT / f"bench/results/performance_{args.device.split(':')[0]}.json")
    out.parent.mkdir(exist_ok=True)
    if out.exists():  # a partial run (--molecules none, --skip-...) updates only what it measures
        earlier = json.loads(out.read_text())
        for section, skipped in (("rows", not args.molecules), ("sizes", args.skip_sizes),
                                 ("memory", args.skip_memory)):
            if skipped:
                results[section] = earlier.get(section, [])
                results.setdefault("commands", {})[section] = earlier.get("command")
        if not args.molecules:  # the throughput rows' fraction of peak refers to their own run's peak
            for key in ("gemm_float32_flops", "gemm_float64_flops"):
                results[key] = earlier[key]
    steps = [lambda folder, m=m: measure_molecule(m, args, folder, results) for m in args.molecules]
    if not args.skip_sizes:
        steps.append(lambda folder: measure_sizes(args, folder, results))
    if not args.skip_memory:
        steps.append(lambda folder: measure_memory(args, folder, results))
    with tempfile.TemporaryDirectory() as folder:
        for step in steps:
            step(folder)
            out.write_text(json.dumps(results, indent=1))  # what is measured so far survives a failure
    report(results)


if __name__ == "__main__":
    main()
