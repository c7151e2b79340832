# The two commands of this project: `make plan STACK=prod` (the offline plan, the main job)
# and `make test` (every test). Both set up .venv from the pinned requirements first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= prod
BASE ?= origin/main

RESULTS ?= $(wildcard benchmarks/results/*.jsonl)
CRD_DIR ?= $(AKIBA_CRD_DIR)

.PHONY: plan plan-diff test lint bench gpu-report crds setup lock clean

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet pip==26.3
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $@

setup: $(VENV)/.installed

plan: setup
	$(PY) -m tools.plan plan --stack $(STACK)

plan-diff: setup
	$(PY) -m tools.plan diff --stack $(STACK) --base $(BASE) --allow-replace "$(ALLOW_REPLACE)"

test: setup lint
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

bench: setup
	$(PY) -m benchmarks.plan_bench
	$(PY) -m benchmarks.rbd_clone_bench
	$(PY) -m benchmarks.pull_bench

# The GPU benchmark's charts and table from JSON lines (the Jobs write them to the results
# volume; measured runs are committed under benchmarks/results/).
gpu-report: setup
	@test -n "$(RESULTS)" || { echo "no results: pass RESULTS=path/to/*.jsonl (from the gpu-benchmark-results volume)"; exit 2; }
	$(PY) -m benchmarks.gpu.report $(RESULTS) --out build/gpu-report

# The CRDs the offline plan validates custom resources against, downloaded and sha256-verified
# against tools/plan/crds.sha256 (a no-op when present): into CRD_DIR (default $AKIBA_CRD_DIR),
# else the user cache `make plan` reads, and fetches itself when missing.
crds: setup
	$(PY) -m tools.plan.crds fetch $(if $(CRD_DIR),--dest $(CRD_DIR))

lock:  # after installing changed requirements into .venv
	$(PY) -m pip freeze --exclude-editable | sed '1i # Every package of the dev environment, pinned (pip freeze). Regenerate with `make lock`.' > constraints.txt

clean:
	rm -rf build .mypy_cache .ruff_cache .pytest_cache
