"""The committed leaderboard is rebuilt exactly from the committed runs bundle, as `make
leaderboard` does on a fresh clone (a new MLflow store, the bundle imported, the board built)."""
import filecmp
from pathlib import Path

import pytest

from sparsebench.core.registry import PROJECT_ROOT
from sparsebench.report import board, tables
from sparsebench.running import bundle

BOARD = PROJECT_ROOT / "leaderboard"

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # minutes: in make test-integration


@pytest.mark.skipif(not (BOARD / "runs").is_dir(), reason="no committed runs bundle")
def test_a_fresh_store_built_from_the_bundle_reproduces_the_committed_board(tmp_path, monkeypatch):
    monkeypatch.delenv("SPARSEBENCH_MLFLOW_UI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    summary = bundle.import_bundle(BOARD / "runs", uri, strict=True)  # every committed run is current
    assert summary.imported == summary.records > 0
    board.build(uri, tmp_path / "board")
    pages = ["index.html", "cells.html"] + sorted(f"sections/{p.name}" for p in (BOARD / "sections").iterdir())
    assert sorted(f"sections/{p.name}" for p in (tmp_path / "board" / "sections").iterdir()) == pages[2:]
    for name in ["README.md", "results.csv", "board.css", "board.js"] + pages:
        assert (tmp_path / "board" / name).read_text() == (BOARD / name).read_text(), name
    plots = sorted(p.name for p in (BOARD / "plots").iterdir())
    assert sorted(p.name for p in (tmp_path / "board" / "plots").iterdir()) == plots
    match, mismatch, errors = filecmp.cmpfiles(BOARD / "plots", tmp_path / "board" / "plots", plots, shallow=False)
    assert (mismatch, errors) == ([], [])
