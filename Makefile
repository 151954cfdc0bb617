# repro: set-up, tests and the reproduction jobs. `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
VENV_PY := $(VENV)/bin/python
PYTHON ?= $(VENV_PY)
STAMP := $(VENV)/.installed
# torch for .venv: PyPI's wheel (a CUDA build on Linux x86, which GPU workstations want); for the CPU
# build there, pass TORCH_INDEX=https://download.pytorch.org/whl/cpu. Conda users: environment.yml.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
PIP_TORCH_FLAGS := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple,)

.PHONY: help setup test lint smoke bench data model gpu-check reproduce-l1 reproduce-solopo reproduce-cprs clean

help:
	@echo "make setup         create .venv and install the kit with its dev extra (PyPI's torch: a CUDA build on Linux x86; TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU build)"
	@echo "make test          set up if needed, then run the tests"
	@echo "make lint          ruff check"
	@echo "make smoke         every stage end to end, a few steps each, on the tiny random model (~2 min)"
	@echo "make data          Loong-mini train (2000) and test (200) splits under data/loong-mini"
	@echo "make model         the embedded default model (SmolLM2-135M-Instruct) under artifacts/"
	@echo "make bench         SFT tokens/s and memory, chunked vs full log-probs, SoLoPO vs long PO, CPRS compression -> bench/*.json"
	@echo "make gpu-check     on a CUDA machine: load/train a small model each way the kit does (PYTHON=python3 to skip the venv)"
	@echo "make reproduce-l1  QwenLong-L1 end to end: SFT, phased RL, eval, runs/reproduce-l1/report.md (PROFILE=cpu|cpu-long|gpu|workstation)"
	@echo "make reproduce-solopo  SoLoPO end to end: pairs, DPO/SimPO/ORPO per mode, eval, runs/reproduce-solopo/report.md"
	@echo "make reproduce-cprs    QwenLong-CPRS end to end: compressor, reader on each context, runs/reproduce-cprs/report.md"

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(VENV_PY) || python3 -m venv $(VENV)
	@if ! $(VENV_PY) -c "import torch" 2>/dev/null; then \
	  if command -v nvidia-smi >/dev/null 2>&1; then \
	    echo "A CUDA machine: installing $(TORCH) from PyPI (a CUDA build on Linux); then run make gpu-check."; fi; \
	  $(VENV_PY) -m pip install -q $(PIP_TORCH_FLAGS) "$(TORCH)"; fi
	$(VENV_PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

test: setup
	$(VENV_PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check repro tests data_scripts

smoke: setup
	$(VENV_PY) -m repro.smoke

data: setup
	$(VENV_PY) -m repro data loong-mini --out data/loong-mini --n 2000
	$(VENV_PY) -m repro data loong-mini --out data/loong-mini --n 200 --split test --seed 1

model: setup
	$(VENV_PY) -m repro init-model recipes/tiny/base.yaml

bench: model
	$(VENV_PY) -m repro.bench
	$(VENV_PY) -m repro.bench solopo --cap-mib 6144 --out bench/solopo.json
	$(VENV_PY) -m repro.bench cprs --out bench/cprs.json

gpu-check:
	@if [ "$(PYTHON)" = "$(VENV_PY)" ]; then $(MAKE) --no-print-directory setup; fi
	$(PYTHON) -m repro.gpu_check

reproduce-l1: setup
	$(VENV_PY) -m repro l1 reproduce $(if $(PROFILE),--profile $(PROFILE),)

reproduce-solopo: setup
	$(VENV_PY) -m repro solopo reproduce $(if $(PROFILE),--profile $(PROFILE),)

reproduce-cprs: setup
	$(VENV_PY) -m repro cprs reproduce $(if $(PROFILE),--profile $(PROFILE),)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
