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
