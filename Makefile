# Two commands do all the set-up (see README.md):
#   make demo   install, then upsample the bundled coarse example to ethanol_fine.xyz
#   make test   install with the test extras, then run the whole test suite
#
# torch is installed first, on its own, so that pip does not resolve the bare
# "torch" requirement to the registry's CUDA build (several GB) on a CPU-only
# machine.  Override TORCH for another build, e.g.
#   make test TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"

PYTHON ?= python3
TORCH ?= torch==2.13.0
PIP = $(PYTHON) -m pip install --quiet --disable-pip-version-check

.PHONY: install install-test demo test bench

install:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) $(TORCH)
	$(PIP) -e .

install-test:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) $(TORCH)
	$(PIP) -e ".[test]"

demo: install
	mdsr-upsample mdsr_plugin/data/examples/ethanol_coarse.xyz --factor 20 -o ethanol_fine.xyz

test: install-test
	$(PYTHON) -m pytest -q

bench:
	bash bench/generate_reference_data.sh ethanol benzene
	$(PYTHON) bench/classical_accuracy.py
