"""``run --plan``: what a run would do, counted from a bundle or a store, its time estimated from
measured runs, and nothing run or written.

Real trials of the tiny test task in a real MLflow store (a SQLite file); no mocks.
"""
import json

import pytest

from sparsebench.cli import main
from sparsebench.running import bundle, tracking
from sparsebench.running.sweep import execute, plan, trial_config

from conftest import TEST_PLUGINS

GRID = ["--task", "tiny-mlp", "--method", "dense", "magnitude", "random", "--sparsity", "0.5", "--plugins",
        str(TEST_PLUGINS)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A bundle of dense and magnitude at 50 %, seeds 0 and 1, whose magnitude runs took 10 and 30 s,
    the second made by other code (stale)."""
    root = tmp_path_factory.mktemp("plan")
    uri = f"sqlite:///{root / 'origin.db'}"
    context = {"uri": uri, "data_root": None, "parents": {}, "device": "cpu", "plugin_roots": [str(TEST_PLUGINS)]}
    for spec in plan(["tiny-mlp"], ["dense", "magnitude"], [0.5], [0, 1]):
        execute(trial_config(spec, context))
    bundle.export_bundle(uri, root / "runs")
    path = root / "runs" / "tiny-mlp.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        if record["params"]["method"] == "magnitude":
            seed = int(record["tags"]["sb.seed"])
            record["metrics"]["time/trial_seconds"] = [10.0, 30.0][seed]
            if seed == 1:
                record["tags"]["sb.code.method"] = "f" * 16
    path.write_text("".join(bundle.bundle_line(r) + "\n" for r in records))
    return root


def planned(capsys, *args) -> tuple[str, dict]:
    assert main(["run", *GRID, *args, "--plan"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[2]: line.split()[3:] for line in out.splitlines() if line.startswith("tiny-mlp")}
    return out, rows


@pytest.mark.parametrize("rerun", [False, True])
def test_a_plan_counts_a_bundle_and_estimates_from_its_measured_times(runs, capsys, monkeypatch, rerun):
    monkeypatch.chdir(runs)  # no committed bundle here: the times are the bundle's own
    before = (runs / "runs" / "tiny-mlp.jsonl").read_text()
    out, rows = planned(capsys, "--seed", "0", "1", "2", "3", "--bundle", str(runs / "runs"),
                        *(["--rerun-stale"] if rerun else []))
    assert rows["dense"][:4] == ["4", "2", "0", "2"]
    # magnitude: seed 0 done; seed 1 done by other code, run again only with --rerun-stale; the median
    # of its measured runs (10 and 30 s) for each trial to run
    assert rows["magnitude"] == (["4", "1", "1", "3", "1:00"] if rerun else ["4", "2", "1", "2", "40", "s"])
    assert rows["random"] == ["4", "0", "0", "4", "?"]  # never measured
    assert "4 to run were never measured" in out
    assert ("--rerun-stale runs them again" in out) != rerun
    assert (runs / "runs" / "tiny-mlp.jsonl").read_text() == before  # nothing run, nothing written
    assert not (runs / "mlflow.db").exists()


def test_a_plan_of_a_store_counts_as_the_sweep_would_and_writes_nothing(runs, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    bundle.import_bundle(runs / "runs", uri)
    count = len(tracking.trial_runs(uri))
    _, rows = planned(capsys, "--seed", "0", "1", "--tracking-uri", uri)
    assert rows["magnitude"] == ["2", "2", "1", "0"] and rows["random"] == ["2", "0", "0", "2", "?"]
    _, rows = planned(capsys, "--seed", "0", "1", "--tracking-uri", uri, "--rerun-stale")
    assert rows["magnitude"] == ["2", "1", "1", "1", "20", "s"]
    assert len(tracking.trial_runs(uri)) == count
    # a store that does not exist yet: everything to run, and no file made
    missing = tmp_path / "none.db"
    _, rows = planned(capsys, "--seed", "0", "--tracking-uri", f"sqlite:///{missing}")
    assert rows["dense"] == ["1", "0", "0", "1", "?"] and not missing.exists()


def test_a_training_that_trials_share_is_paid_once_per_training_group():
    from sparsebench.running.plan import cell, estimates
    specs = plan(["tiny-mlp"], ["dense", "magnitude", "random"], [0.5, 0.9], [0, 1])
    by = {(s.method, s.sparsity, s.seed): s for s in specs}
    times = []
    for spec in specs:  # dense: measured only when it reused its training; magnitude: both; random: cold
        if spec.method == "dense":
            times.append((cell(spec), 5.0, True, ""))
        elif spec.method == "magnitude":
            times += [(cell(spec), 100.0 + spec.sparsity, False, ""), (cell(spec), 10.0, True, "")]
        else:
            times.append((cell(spec), 50.0, False, ""))
    seconds = estimates(specs, times)
    # per seed: dense first, never measured cold, pays its warm time plus the training time its task and
    # profile's cells measured (cold minus warm: 90.5 and 90.9); magnitude then reuses it (warm)
    training = (90.5 + 90.9) / 2
    assert seconds[by["dense", 0.0, 1].config_id()] == pytest.approx(5 + training)
    assert seconds[by["magnitude", 0.5, 1].config_id()] == 10 and seconds[by["magnitude", 0.9, 1].config_id()] == 10
    assert sum(seconds.values()) == pytest.approx(2 * (5 + training + 2 * 10 + 2 * 50))
    # in another order the other sparsity pays; a cell never measured is None
    order = [by["magnitude", 0.9, 0], by["magnitude", 0.5, 0], by["dense", 0.0, 0]]
    assert list(estimates(order, times).values()) == [100.9, 10.0, 5.0]
    assert estimates(order, [])[order[0].config_id()] is None


def test_where_only_the_dense_run_trained_the_shared_model_the_first_reuser_pays_its_time():
    """As on a task whose one-shot cells all reused one dense training (WikiText-2's): the dense run's
    cold time is the training that an empty checkpoint cache makes the first pruned trial pay."""
    from sparsebench.running.plan import cell, estimates
    specs = plan(["tiny-mlp"], ["dense", "magnitude"], [0.5, 0.9], [0])
    times = [(cell(s), 3400.0, False, "") if s.method == "dense" else (cell(s), 200.0, True, "") for s in specs]
    pruned = [s for s in specs if s.method != "dense"]
    assert list(estimates(pruned, times).values()) == [3600.0, 200.0]

