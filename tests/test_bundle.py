"""The runs bundle: export a store, import it into others, rebuild the same leaderboard.

Real trials (the tiny test task, run by ``sweep.execute`` as a Ray worker would) in real MLflow
stores (SQLite files); no mocks.
"""
import filecmp
import json
import shutil

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from sparsebench.report import board, tables
from sparsebench.running import bundle, tracking
from sparsebench.running.sweep import execute, longest_first, pending, plan, trial_config

from conftest import TEST_PLUGINS


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with 6 completed trials and one failed trial, and its exported bundle."""
    root = tmp_path_factory.mktemp("origin")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    specs = plan(["tiny-mlp"], ["dense", "random", "magnitude"], [0.5, 0.9], [0, 1])
    specs += plan(["tiny-mlp"], ["test-raises"], [0.5], [0])
    context = {"uri": uri, "data_root": None, "parents": {}, "device": "cpu", "plugin_roots": [str(TEST_PLUGINS)]}
    for spec in specs:
        execute(trial_config(spec, context))
    written = bundle.export_bundle(uri, root / "runs")
    return {"root": root, "uri": uri, "specs": specs, "bundle": root / "runs", "written": written}


def test_export_writes_one_sorted_file_per_task_with_every_finished_run(store):
    assert store["written"] == {"tiny-mlp": len(store["specs"])}
    lines = (store["bundle"] / "tiny-mlp.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [bundle.sort_key(r) for r in records] == sorted(bundle.sort_key(r) for r in records)
    done = [r for r in records if r["tags"]["sb.status"] == "completed"]
    assert len(done) == len(store["specs"]) - 1
    first = done[0]
    assert first["history"]["val/accuracy"] and first["layers"] and "final/effective_sparsity" in first["metrics"]
    failed = next(r for r in records if r["tags"]["sb.status"] == "failed")
    assert "boom" in failed["tags"]["sb.reason"]
    # exporting again changes nothing
    before = (store["bundle"] / "tiny-mlp.jsonl").read_text()
    bundle.export_bundle(store["uri"], store["bundle"])
    assert (store["bundle"] / "tiny-mlp.jsonl").read_text() == before


def test_import_into_a_fresh_store_rebuilds_the_same_leaderboard_and_is_idempotent(store, tmp_path):
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    summary = bundle.import_bundle(store["bundle"], fresh)
    assert (summary.imported, summary.skipped) == (len(store["specs"]), 0)
    again = bundle.import_bundle(store["bundle"], fresh)
    assert (again.imported, again.skipped) == (0, len(store["specs"]))
    assert len(tracking.trial_runs(fresh)) == len(store["specs"])
    # the fresh store's bundle is the original bundle, byte for byte
    bundle.export_bundle(fresh, tmp_path / "runs")
    assert (tmp_path / "runs" / "tiny-mlp.jsonl").read_text() == (store["bundle"] / "tiny-mlp.jsonl").read_text()
    # two fresh stores built from the bundle give the same board, file for file
    other = f"sqlite:///{tmp_path / 'other.db'}"
    bundle.import_bundle(store["bundle"], other)
    board.build(fresh, tmp_path / "a", ui="http://ui")
    board.build(other, tmp_path / "b", ui="http://ui")
    compare = filecmp.dircmp(tmp_path / "a", tmp_path / "b")
    assert not compare.diff_files and not compare.left_only and not compare.right_only
    assert filecmp.cmpfiles(tmp_path / "a" / "plots", tmp_path / "b" / "plots",
                            [p.name for p in (tmp_path / "a" / "plots").iterdir()], shallow=False)[1:] == ([], [])
    # and the board of the origin store holds the same results
    origin = tables.trial_table(store["uri"]).drop(columns=["experiment_id", "store_run_id"])  # the stores' own
    imported = tables.trial_table(fresh).drop(columns=["experiment_id", "store_run_id"])
    pd.testing.assert_frame_equal(origin.sort_values("run_id").reset_index(drop=True),
                                  imported.sort_values("run_id").reset_index(drop=True), check_dtype=False)


def test_importing_into_the_origin_store_adds_nothing_and_a_resumed_sweep_skips_the_bundle(store, tmp_path):
    assert bundle.import_bundle(store["bundle"], store["uri"]).imported == 0
    fresh = f"sqlite:///{tmp_path / 'resume.db'}"
    bundle.import_bundle(store["bundle"], fresh)
    assert pending(store["specs"], fresh) == ([], 0)
    more = plan(["tiny-mlp"], ["random"], [0.8], [0])
    assert pending(store["specs"] + more, fresh) == (more, 0)


def test_a_resumed_sweep_starts_its_longest_trials_first(store, tmp_path):
    """By the seconds the store holds for the same trial (any seed), else for the method on the task;
    trials it holds no time for start first, in the suite's order (blocks listed most expensive first)."""
    seconds = {"dense": 1.0, "random": 5.0, "magnitude": 20.0}

    def timed(records):
        for r in records:
            if r["tags"]["sb.status"] == "completed":
                scale = 2 if r["tags"]["sb.sparsity"] == "0.9" else 1
                r["metrics"]["time/trial_seconds"] = seconds[r["tags"]["sb.method"]] * scale
    fresh = f"sqlite:///{tmp_path / 'timed.db'}"
    bundle.import_bundle(tampered(store, tmp_path, timed), fresh)
    later = plan(["tiny-mlp"], ["dense", "random", "magnitude", "test-raises"], [0.5, 0.9, 0.8], [2])
    order = [(s.method, s.sparsity) for s in longest_first(later, tracking.runs_frame(fresh, ["tiny-mlp"]))]
    assert order == [("test-raises", 0.5), ("test-raises", 0.9), ("test-raises", 0.8),  # no time: first
                     ("magnitude", 0.9), ("magnitude", 0.8), ("magnitude", 0.5),  # 40 s, median 30 s, 20 s
                     ("random", 0.9), ("random", 0.8), ("random", 0.5), ("dense", 0.0)]
    assert longest_first(later, tracking.runs_frame(f"sqlite:///{tmp_path / 'empty.db'}")) == later


def tampered(store, tmp_path, change) -> str:
    records = bundle.read_bundle(store["bundle"])
    change(records)
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


@pytest.mark.parametrize("change, message", [
    (lambda rs: rs[0]["tags"].update({"sb.config_id": "0" * 16}), "is not the hash of its spec"),
    (lambda rs: rs[0]["tags"].pop("sb.code_version"), "no tag sb.code_version"),
    (lambda rs: next(r for r in rs if r["tags"]["sb.status"] == "completed")["history"].clear(),
     "without the run that produced it"),
    (lambda rs: next(r for r in rs if r["tags"]["sb.status"] == "failed")["metrics"].update(
        {"final/test_accuracy": 99.0}), "a failed run with a test accuracy"),
    (lambda rs: rs.append(dict(rs[0])), "recorded twice"),
])
def test_a_bad_bundle_is_refused_whole_with_a_clear_error(store, tmp_path, change, message):
    target = f"sqlite:///{tmp_path / 'target.db'}"
    with pytest.raises(bundle.BundleError, match=message):
        bundle.import_bundle(tampered(store, tmp_path, change), target)
    assert tracking.trial_runs(target) == []  # nothing was written


def test_runs_of_other_plugin_versions_are_history_not_results(store, tmp_path, monkeypatch):
    from sparsebench.core import registry
    cls, _ = registry.METHODS.get("random")
    monkeypatch.setattr(cls, "version", cls.version + "-next")
    target = f"sqlite:///{tmp_path / 'target.db'}"
    with pytest.raises(bundle.BundleError, match="other method versions"):
        bundle.import_bundle(store["bundle"], target, strict=True)
    summary = bundle.import_bundle(store["bundle"], target)
    assert summary.stale == {"of other method versions": 4}
    assert "random" not in set(tables.trial_table(target)["method"])
    # a current export leaves them out (the committed bundle holds what the board shows), a plain one keeps them
    shutil.copytree(store["bundle"], tmp_path / "runs")
    assert bundle.export_bundle(target, tmp_path / "runs", current=True) == {"tiny-mlp": len(store["specs"]) - 4}
    assert all(r["params"]["method"] != "random" for r in bundle.read_bundle(tmp_path / "runs"))
    assert bundle.export_bundle(target, tmp_path / "all") == {"tiny-mlp": len(store["specs"])}


def test_a_corrupt_line_names_its_file_and_line(tmp_path):
    (tmp_path / "x.jsonl").write_text('{"run_id": "a"}\nnot json\n')
    with pytest.raises(bundle.BundleError, match=r"x.jsonl:2: not a JSON record"):
        bundle.read_bundle(tmp_path)
    with pytest.raises(bundle.BundleError, match="no runs bundle"):
        bundle.read_bundle(tmp_path / "missing")


def test_the_command_line_exports_and_imports(store, tmp_path, capsys):
    from sparsebench import cli
    assert cli.main(["export", "--tracking-uri", store["uri"], "--out", str(tmp_path / "runs")]) == 0
    assert f"{len(store['specs'])} runs of 1 tasks" in capsys.readouterr().out
    target = f"sqlite:///{tmp_path / 'target.db'}"
    assert cli.main(["import", str(tmp_path / "runs"), "--tracking-uri", target]) == 0
    assert f"{len(store['specs'])} imported, 0 already in the store" in capsys.readouterr().out
    (tmp_path / "bad.jsonl").write_text("{}\n")
    assert cli.main(["import", str(tmp_path / "bad.jsonl"), "--tracking-uri", target]) == 2
    assert "the record has no 'run_id'" in capsys.readouterr().err


def test_a_bundle_line_sorts_keys_but_keeps_the_layers_in_the_models_order():
    from sparsebench.running.records import bundle_line

    record = {"tags": {"z": "1", "a": "2"}, "layers": {"fc2.weight": {"density": 0.1}, "fc1.weight": {"density": 0.2}},
              "run_id": "r"}
    line = bundle_line(record)
    assert json.loads(line) == record
    assert line.index('"layers"') < line.index('"run_id"') < line.index('"tags"')
    assert line.index("fc2.weight") < line.index("fc1.weight") and line.index('"a"') < line.index('"z"')
