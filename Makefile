# The course in two commands:  make lab   (set up + JupyterLab)   and   make test   (set up + every check).
# Set-up is idempotent: it reinstalls only when requirements/lock.txt or pyproject.toml changed.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := requirements/lock.txt
STAMP := $(VENV)/.hrlib-installed
HASH = $(shell cat $(LOCK) pyproject.toml | sha256sum | cut -c1-16)
# JupyterLab refuses to run as root unless told so (containers, CI).
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
LAB_ARGS ?=
# Extra arguments for the pytest runs, e.g. make test PYTEST_ARGS="-x -k data"
PYTEST_ARGS ?=

.PHONY: help setup lab test lint unit notebooks execute exercises check-exercises claims bench lock clean

help:
	@echo "make lab              set up (first time: a few minutes) and open the course in JupyterLab"
	@echo "make test             set up and run every check (lint, unit/property tests, notebooks, exercises)"
	@echo "make exercises        regenerate exercises/ from solutions/"
	@echo "make check-exercises  check that exercises/ is in sync and every self-check works (fast)"
	@echo "make execute          re-run notebooks in place to refresh their outputs (NB=\"lessons/00_*.ipynb\")"
	@echo "make claims           rewrite CLAIMS.md from the executed lessons' verdict tables"
	@echo "make bench            benchmark the data generator"
	@echo "make clean            remove the virtual environment and caches"

setup:
	@if [ -f $(STAMP) ] && [ "$$(cat $(STAMP))" = "$(HASH)" ] && [ -x $(PY) ]; then \
		echo "environment is up to date ($(VENV), lock $(HASH))"; \
	else \
		$(MAKE) --no-print-directory _install; \
	fi

_install:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "hrlib needs Python >= 3.11; set PYTHON=python3.11 (make PYTHON=...)")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing the pinned environment into $(VENV) (first time: a few minutes, several GB for torch)"
	$(PY) -m pip install --quiet --disable-pip-version-check -c $(LOCK) -e ".[course,dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (hrlib course)" >/dev/null
	@echo $(HASH) > $(STAMP)
	@echo "environment ready: $(VENV)"

lab: setup
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/lessons $(LAB_ARGS)

# Notebooks in make test always run in the fast profile: their checked outputs were recorded there.
test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m hrlib.exercises.build --check
	HRLIB_PROFILE=fast MPLBACKEND=Agg HRLIB_EXPECT_SETUP_DONE=1 $(PY) -m pytest tests lessons solutions \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=600 --durations=15 $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

unit: setup
	MPLBACKEND=Agg $(PY) -m pytest tests/unit tests/property tests/reliability $(PYTEST_ARGS)

notebooks: setup
	HRLIB_PROFILE=fast $(PY) -m pytest lessons solutions --nbval-lax --nbval-current-env --durations=0 $(PYTEST_ARGS)

exercises: setup
	$(PY) -m hrlib.exercises.build

check-exercises: setup
	$(PY) -m hrlib.exercises.build --check
	HRLIB_PROFILE=fast $(PY) -m pytest tests/exercises -q -m "not notebook" $(PYTEST_ARGS)

# Re-run notebooks in place (fast profile) to refresh their stored outputs: make execute NB="lessons/00_*.ipynb"
NB ?= lessons/*.ipynb solutions/*.ipynb
execute: setup
	$(PY) tools/execute_notebooks.py $(NB)
	$(PY) -m hrlib.exercises.build
	$(PY) -m hrlib.evidence

# The claims page is generated from the verdict tables stored in lessons/*.ipynb (a test checks it is in sync).
claims: setup
	$(PY) -m hrlib.evidence

bench: setup
	$(PY) -m hrlib.bench generator
	$(PY) -m hrlib.bench pipeline

lock: setup
	@{ head -n 2 $(LOCK); $(PY) -m pip freeze --exclude-editable | grep -v '^hrlib' | LC_ALL=C sort -f; } > $(LOCK).new
	@mv $(LOCK).new $(LOCK)
	@echo "wrote $(LOCK); run make test"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build *.egg-info
