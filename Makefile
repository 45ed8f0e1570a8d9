# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo up down test lint bench bench-smoke clean install tf-tools tf215 tf220

$(STAMP): requirements.txt requirements-dev.txt requirements-cli.txt requirements-tf-keras.txt requirements-kerashub.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -r requirements-tf-keras.txt
	$(PY) -m pip install -q --no-deps -r requirements-kerashub.txt  # the opt-in extra's tests
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

tf-tools: $(STAMP)
	bash dev/tf-tools.sh

## demo: start the local stack, upload real models, print the registry, stop everything
demo: $(STAMP)
	$(PY) -m dev.demo

## up: start the stack and leave it running (see README); down: stop it
up: $(STAMP)
	$(PY) -m dev.up start

down:
	@test -x $(PY) && $(PY) -m dev.up stop || true

## test: the whole suite (unit, emulator, integration over HTTP, terraform checks, bench smoke)
test: $(STAMP) tf-tools tf215 tf220
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(STAMP)
	$(PY) -m bench --json bench/results.json --markdown BENCHMARKS.md

clean:
	rm -rf $(VENV) .venv-checkov $(TF215) $(TF220) .pytest_cache .ruff_cache .dev-run

## tf215: TensorFlow 2.15.1 (the serving TF of Vertex's newest prebuilt image) in its own venv,
## for tests/validation/tf215 (exports load as TF Serving 2.15 loads them) and for regenerating
## handlers/validation/scan/serving_registry/tf_2_15.py; installed once, kept by its stamp
TF215       := .venv-tf215
TF215_STAMP := $(TF215)/.installed

$(TF215_STAMP):
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(TF215)/bin/python || $(PYTHON) -m venv $(TF215)
	$(TF215)/bin/python -m pip install -q --disable-pip-version-check "tensorflow-cpu==2.15.1" "numpy<2"
	touch $(TF215_STAMP)

tf215: $(TF215_STAMP)

## tf220: TensorFlow 2.20.0, the TensorFlow of the default serving image (tensorflow/serving:2.20.0,
## served by Vertex as a custom container), in its own venv: for tests/validation/tf220 (exports
## load, in the registered numbered layout, as TF Serving 2.20 loads them) and for regenerating
## handlers/validation/scan/serving_registry/tf_2_20.py; installed once, kept by its stamp
TF220       := .venv-tf220
TF220_STAMP := $(TF220)/.installed

$(TF220_STAMP):
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(TF220)/bin/python || $(PYTHON) -m venv $(TF220)
	$(TF220)/bin/python -m pip install -q --disable-pip-version-check "tensorflow-cpu==2.20.0"
	touch $(TF220_STAMP)

tf220: $(TF220_STAMP)
