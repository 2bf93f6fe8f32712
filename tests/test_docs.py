"""The Python examples in the docs run as written (so they cannot rot)."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ["user-guide.md", "integrations.md", "batch.md"]


def python_blocks(page):
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)


@pytest.mark.parametrize("page", PAGES)
def test_python_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(page)
    assert blocks, f"{page} has no python examples"
    namespace = {}
    for block in blocks:  # blocks of one page share a namespace, as in a notebook
        exec(compile(block, f"{page}", "exec"), namespace)
    if page == "user-guide.md":
        assert (tmp_path / "ethanol_fine.h5md").exists()
        assert (tmp_path / "ethanol_fine.vel.dcd").exists()
    elif page == "batch.md":
        assert (tmp_path / "fine/run1/copy.h5md").exists() and len(namespace["result"].done) == 2
    else:
        assert len(namespace["fine"].trajectory) == 4001 and len(namespace["images"]) == 4001


REAL = Path(__file__).resolve().parent / "data" / "real"
#: The files each recipe of the user guide's "From the files MD codes write" names, from
#: the real outputs in tests/data/real (copied under the recipe's names).
RECIPE_FILES = {
    "From CP2K": {**{f.name: f for f in (REAL / "cp2k" / "h2o_nvt").glob("H2O_restart*")},
                  "run.xyz": REAL / "cp2k/h2o_nvt/H2O_restart-pos-1.xyz",
                  "v.xyz": REAL / "cp2k/h2o_nvt/H2O_restart-vel-1.xyz",
                  "f.xyz": REAL / "cp2k/h2o_nvt/H2O_restart-frc-1.xyz",
                  "box.cell": REAL / "cp2k/h2o_nvt/H2O_restart-1.cell"},
    "From i-PI": {f.name: f for f in (REAL / "ipi" / "driven_zundel").iterdir()},
    "From VASP": {"vasprun.xml": REAL / "vasp/ti_aimd_vasp6/vasprun.xml",
                  "XDATCAR": REAL / "vasp/xdatcar_vasp5_nblock50/XDATCAR"},
    "From Quantum ESPRESSO": {**{f.name: f for f in (REAL / "qe" / "cp_h2o_qeheat" / "traj").iterdir()},
                              "input_cp": REAL / "qe/cp_h2o_qeheat/input_cp",
                              "out_cp": REAL / "qe/cp_h2o_qeheat/out_cp",
                              "si_md.out": REAL / "qe/si_md_qe53/out.out"},
    "From CASTEP, FHI-aims and DL_POLY": {"PBAnew.md": REAL / "castep/pbanew/PBAnew.md",
                                          "H2O_periodic_MD.out": REAL / "aims/h2o_periodic_md/H2O_periodic_MD.out"},
    "From CPMD": {f.name: f for f in (REAL / "cpmd" / "h2_md").iterdir()},
    "From Tinker and xtb": {**{f.name: f for f in (REAL / "tinker" / "ice_npt").iterdir()},
                            **{f.name: f for f in (REAL / "xtb" / "ethane_md").iterdir()}},
}


def recipe_commands(heading):
    text = (DOCS / "user-guide.md").read_text()
    section = text.split(f"### {heading}\n", 1)[1].split("\n#", 1)[0]
    blocks = re.findall(r"```console\n(.*?)```", section, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.startswith("mdsr-upsample ")]


@pytest.mark.parametrize("heading", sorted(RECIPE_FILES))
def test_recipes_for_real_md_codes_run_on_their_files(heading, tmp_path, monkeypatch):
    import shlex
    import shutil

    from mdsr_plugin.cli import main
    from mdsr_plugin.io import read_trajectory

    monkeypatch.chdir(tmp_path)
    for name, source in RECIPE_FILES[heading].items():
        shutil.copy(source, tmp_path / name)
    if heading == "From VASP":  # the XDATCAR's own run: POTIM in its INCAR
        (tmp_path / "INCAR").write_text("IBRION = 0\nPOTIM = 0.5\n")
    commands = recipe_commands(heading)
    assert commands, heading
    for command in commands:
        argv = shlex.split(command)[1:]
        assert main(argv) == 0, command
        output = argv[argv.index("-o") + 1]
        assert read_trajectory(output).n_frames > 1
