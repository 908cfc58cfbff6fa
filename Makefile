# The two fresh-machine commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2
CONFIG ?= config/config.yaml
PYTEST_ARGS ?=

.PHONY: install run smoke test test-fast mutation lint report clean bench

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: anything that pulls an unpinned torch gets a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[bench,dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --configfile $(CONFIG) --rerun-incomplete
	@echo "Report: results/report/index.html (and results/report/report.md)"

smoke: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --configfile config/smoke.yaml --rerun-incomplete

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Inner loop: every test not marked `slow` (no real workflow runs, no long training; a few minutes).
# Both share one JAX/numba compile cache in .cache/ (tests/conftest.py) across runs and sessions.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# Mutation testing of the scoring path (metrics, aggregates, annotation metrics, validation, tables)
# against the fast tests that cover it; settings in pyproject.toml [tool.mutmut], results in docs/mutation.md.
# One thread per native pool: mutants run in processes forked from the one that ran the tests, and
# an OpenMP/BLAS/XLA thread pool alive at fork time deadlocks the child (seen: sklearn k-NN).
MUTATION_ENV := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \
	XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
	JAX_COMPILATION_CACHE_DIR=$(abspath .cache/jax) JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
mutation: $(STAMP)
	rm -rf mutants
	$(MUTATION_ENV) nice -n 10 timeout 7200 $(BIN)/mutmut run --max-children $(CORES)
	$(BIN)/mutmut results

# Performance benchmarks (benchmarks/*.py): one line each, results/benchmarks/<name>.json; every figure
# against a reference measured in the same run (docs/performance.md). Wall times per rule: of the
# last `make run` in this directory.
bench: $(STAMP)
	$(BIN)/python benchmarks/scdiva_flops.py --threads 1
	$(BIN)/python benchmarks/embedding_throughput.py --threads 1
	$(BIN)/python benchmarks/metrics_vs_scib.py --threads 1
	$(BIN)/python benchmarks/scoring_startup.py
	$(BIN)/python benchmarks/rule_walltimes.py --run . --cores $(CORES)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint --configfile $(CONFIG)

clean:
	rm -rf results/* resources .snakemake logs
	touch results/.gitkeep
