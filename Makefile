# The two commands of this project: `make plan STACK=prod` (the offline plan, the main job)
# and `make test` (every test). Both set up .venv from the pinned requirements first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= prod
BASE ?= origin/main

.PHONY: plan plan-diff test lint bench setup lock clean

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $@

setup: $(VENV)/.installed

plan: setup
	$(PY) -m tools.plan plan --stack $(STACK)

plan-diff: setup
	$(PY) -m tools.plan diff --stack $(STACK) --base $(BASE)

test: setup lint
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

bench: setup
	$(PY) -m benchmarks.plan_bench

lock:  # after installing changed requirements into .venv
	$(PY) -m pip freeze --exclude-editable | sed '1i # Every package of the dev environment, pinned (pip freeze). Regenerate with `make lock`.' > constraints.txt

clean:
	rm -rf build .mypy_cache .ruff_cache .pytest_cache
