# Two commands on a fresh machine:  `make run` (install + pipeline)  and  `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
# dvc.yaml runs `python stages/...`: that must be the environment's python.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test check setup corpus lint bench clean pipeline-ci same-outputs serve

run: setup corpus
	$(BIN)/dvc repro

# One worker per core; a module's tests stay on one worker (see tests/conftest.py).
PYTEST := $(BIN)/python -m pytest -n auto --dist loadgroup

test: setup
	$(PYTEST)

# The inner loop: lint, then every test not marked slow (pipeline runs, worker processes, whole
# training runs traced anew; see pyproject.toml).
check: lint
	$(PYTEST) -m "not slow" -q

setup: $(VENV)/.installed .dvc/plots/offline.html

# The lock pins every package for a repeatable install; pyproject.toml pins the direct ones.
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "error: Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev,serve]'
	@touch $@

# `dvc plots show` with Vega inline (.dvc/config plots.html_template): charts draw offline.
.dvc/plots/offline.html: $(VENV)/.installed
	$(BIN)/python -m textgen plots-template --out $@

# The page (serve/): try the models, read any revision; loopback only unless HOST says otherwise.
PORT ?= 8000
HOST ?= 127.0.0.1
serve: setup
	$(BIN)/python -m serve --host $(HOST) --port $(PORT)

corpus: setup
	$(BIN)/python -m textgen fetch-corpus

# Pipeline CI (see .github/workflows/pipeline.yml): pull, reproduce, verify, push, report.
BASE ?= origin/main
pipeline-ci: setup corpus
	bash scripts/pipeline_ci.sh $(BASE)

# A refactor keeps every number: tiny pipelines at BASE and here, every output hash compared.
same-outputs: setup
	$(BIN)/python scripts/same_outputs.py $(BASE)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BIN)/python bench/sampler.py
	$(BIN)/python bench/gan_step.py
	$(BIN)/python bench/bleu.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/gpu.py
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/export.py

clean:
	rm -rf $(VENV)
