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

.PHONY: install bench leaderboard test ui overhead clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

bench: $(STAMP)
	$(BIN)/sparsebench run --suite $(SUITE)
	$(BIN)/sparsebench leaderboard

leaderboard: $(STAMP)
	$(BIN)/sparsebench leaderboard

test: $(STAMP)
	$(BIN)/python -m pytest -q

overhead: $(STAMP)
	$(BIN)/python -m sparsebench.benchmarks.overhead

ui: $(STAMP)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlflow.db}" --host 127.0.0.1 --port 5000 --workers 1

clean:
	rm -rf $(VENV) .sparsebench mlflow.db
