# Every target that needs Python creates .venv and installs the project on first use.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 5000
ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List every target with what it does
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Create .venv and install the project with its dev tools

# The suite's modules run on one worker a core (pytest-xdist), each module whole on one
# worker, so its module fixtures, servers and cluster stay together; WORKERS=0 runs it here.
WORKERS ?= auto

.PHONY: test
test: $(STAMP) ## Run the whole test suite, its modules spread over the cores (WORKERS=0: in turn)
	$(PY) -m pytest -n $(WORKERS) --dist loadfile $(ARGS)

.PHONY: test-fast
test-fast: $(STAMP) ## Run every test not marked slow (under 2 min on 2 cores): the inner loop
	$(PY) -m pytest -n $(WORKERS) --dist loadfile -m "not slow" $(ARGS)

.PHONY: tutorial
tutorial: $(STAMP) ## Run docs/tutorial.ipynb (needs CIFAR10_ROOT; ~1 min); the executed copy is outputs/tutorial.ipynb
	@test -n "$$CIFAR10_ROOT" || { echo 'usage: CIFAR10_ROOT=<folder with cifar-10-batches-py> make tutorial' >&2; exit 2; }
	@mkdir -p outputs && cp docs/tutorial.ipynb outputs/tutorial.ipynb
	$(VENV)/bin/jupyter-execute --inplace outputs/tutorial.ipynb

.PHONY: docs-images
docs-images: $(STAMP) ## Remake docs/images/*.png from a small real sweep (~4 min; needs CIFAR-10 and chromium), logged to outputs/docs-images/
	@mkdir -p outputs/docs-images
	cd outputs/docs-images && export MLFLOW_TRACKING_URI=sqlite:///$(CURDIR)/outputs/docs-images/mlflow.db && \
	  $(abspath $(PY)) -m experiments.train sweep=convergence data.n_train=1000 trainer.epochs=5 $(ARGS) && \
	  $(abspath $(PY)) $(CURDIR)/docs/make_images.py --tracking-uri $$MLFLOW_TRACKING_URI

.PHONY: diagnose
diagnose: $(STAMP) ## Health report of a configured run before training; same overrides as training, e.g. ARGS="init=unit_normal"
	$(PY) -m experiments.diagnose hydra.run.dir=outputs/diagnose/$$(date +%Y-%m-%d_%H-%M-%S) $(ARGS)

.PHONY: lr-find
lr-find: $(STAMP) ## Learning-rate range test of a configured run, logged to MLflow; same overrides as training, e.g. ARGS="model=vgg"
	$(PY) -m experiments.lr_find hydra.run.dir=outputs/lr_find/$$(date +%Y-%m-%d_%H-%M-%S) $(ARGS)

.PHONY: bench
bench: $(STAMP) ## Time training and inference of seed and vgg (vs PyTorch when installed); ARGS=... for options
	$(PY) -m experiments.bench $(ARGS)

.PHONY: lint
lint: $(STAMP) ## Check style with ruff, and the layout with import-linter (pyproject.toml)
	$(VENV)/bin/ruff check cnn experiments tests
	$(VENV)/bin/lint-imports

.PHONY: train
train: $(STAMP) ## Train one network and log it to MLflow; ARGS="model=vgg optim.lr=0.05" etc.
	$(PY) -m experiments.train $(ARGS)

.PHONY: predict
predict: $(STAMP) ## Top-k classes of image files: make predict MODEL=runs:/<run id>/model IMAGES="a.png b.jpg"
	@test -n "$(MODEL)" -a -n "$(IMAGES)" || \
	  { echo 'usage: make predict MODEL=runs:/<run id>/model IMAGES="a.png b.jpg" [ARGS="--top-k 5"]' >&2; exit 2; }
	$(PY) -m experiments.predict $(MODEL) $(IMAGES) $(ARGS)

.PHONY: sweep
sweep: $(STAMP) ## Run a sweep (SWEEP=convergence: ~15 min) with its parent run and report
	$(PY) -m experiments.train sweep=$(or $(SWEEP),convergence) $(ARGS)

.PHONY: sweep-parallel
sweep-parallel: $(STAMP) ## Run a sweep with JOBS parallel jobs (default 2) on this machine, or one after the other (saying why) when that would be faster
	@launcher="$$($(PY) -m experiments.sweep_plan --jobs $(or $(JOBS),2) sweep=$(or $(SWEEP),convergence) $(ARGS))" && \
	  set -x && $(PY) -m experiments.train sweep=$(or $(SWEEP),convergence) $$launcher $(ARGS)

.PHONY: full-seeds
full-seeds: $(STAMP) ## Seeds 0-2 of a full-data recipe as a SLURM job array: RECIPE=seed_full|vgg_full|frontier_full URI=http://<server>:5000 DATA=<root> PARTITION=
	@test -n "$(URI)" -a -n "$(DATA)" || \
	  { echo 'usage: make full-seeds RECIPE=seed_full URI=http://<tracking server>:5000 DATA=<folder with CIFAR-10 on the shared disk> [PARTITION=<p>] [TIMEOUT=<min>] [ARGS=...]' >&2; exit 2; }
	$(PY) -m experiments.train -m experiment=$(or $(RECIPE),seed_full) trainer.seed=0,1,2 \
	  data.root=$(DATA) hydra/launcher=slurm $(if $(PARTITION),hydra.launcher.partition=$(PARTITION)) \
	  hydra.launcher.cpus_per_task=2 hydra.launcher.timeout_min=$(or $(TIMEOUT),$(if $(filter-out seed_full,$(or $(RECIPE),seed_full)),600,120)) \
	  'hydra.launcher.setup=["source $(abspath $(VENV))/bin/activate"]' \
	  tracking=server tracking.uri=$(URI) $(ARGS)

# ui and server: exec, so that python is make's own child, which make passes SIGTERM on to.
.PHONY: server
server: $(STAMP) ## Start a tracking server on PORT for other machines: BACKEND=postgresql+psycopg2://..., HOST=0.0.0.0
	exec $(PY) -m experiments.server --backend-store-uri "$(or $(BACKEND),sqlite:///$(CURDIR)/mlflow.db)" \
	  --host $(or $(HOST),127.0.0.1) --port $(PORT) --serve-artifacts --artifact-root mlartifacts

.PHONY: report
report: $(STAMP) ## Rebuild the latest sweep's comparison report; ARGS="--parent <run id>"
	$(PY) -m experiments.report $(ARGS)

.PHONY: results
results: $(STAMP) ## Results table with CIs and provenance from sweeps: ARGS="--parent <id> [--parent <id>] [--target 0.8]"
	$(PY) -m experiments.results $(ARGS)

.PHONY: ui
ui: $(STAMP) ## Start the MLflow UI on the same store at 127.0.0.1:PORT (default 5000); prints the experiment's and the latest sweep's links there
	exec $(PY) -m experiments.ui --port $(PORT) $(ARGS)

.PHONY: rerun
rerun: $(STAMP) ## Rerun a logged run and compare metrics: make rerun RUN_ID=<run id>
	@test -n "$(RUN_ID)" || { echo "usage: make rerun RUN_ID=<mlflow run id>" >&2; exit 2; }
	$(PY) -m experiments.rerun $(RUN_ID) $(ARGS)

.PHONY: resume
resume: $(STAMP) ## Continue a KILLED or FAILED run from its last checkpoint, in place: make resume RUN_ID=<run id>
	@test -n "$(RUN_ID)" || { echo "usage: make resume RUN_ID=<mlflow run id>" >&2; exit 2; }
	$(PY) -m experiments.resume $(RUN_ID) $(ARGS)

.PHONY: reap
reap: $(STAMP) ## Mark runs left RUNNING by a dead process KILLED; ARGS="--older-than 12 --dry-run"
	$(PY) -m experiments.reap $(ARGS)

.PHONY: clean
clean: ## Remove caches and build files (keeps .venv, mlflow.db and mlruns/)
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
