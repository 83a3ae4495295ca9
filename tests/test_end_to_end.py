"""End to end through real Ray and real MLflow (a SQLite file): sweep, failures, resume, leaderboard."""
import json
from pathlib import Path
from xml.etree import ElementTree

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from sparsebench.report import board, tables

from sparsebench.running import tracking
from sparsebench.running.sweep import plan, run_sweep
from sparsebench.running.trial import TrialSpec

from conftest import TEST_PLUGINS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("shared_ray")]


def sweep(specs, uri, **kw):
    return run_sweep(specs, uri=uri, plugin_roots=[str(TEST_PLUGINS)], name="e2e", **kw)


def test_sweep_records_runs_resumes_and_builds_leaderboard(tracking_uri, tmp_path, monkeypatch, capsys):
    from sparsebench.running import sweep as sweep_module

    monkeypatch.setattr(sweep_module, "PROGRESS_EVERY_S", 0.5)  # status lines while trials run
    good = plan(["tiny-mlp"], ["dense", "random", "magnitude"], [0.5, 0.9], [0, 1])
    bad = plan(["tiny-mlp"], ["test-raises", "test-kills-worker"], [0.5], [0])
    first = good[:4]

    # an interrupted earlier sweep left this trial's run open
    stale = tracking.TrialRun(tracking_uri, first[0], first[0].config_id(), {"metric": "accuracy"})
    MlflowClient(tracking_uri).set_tag(stale.run_id, "sb.heartbeat", "0")  # its worker is long gone

    summary = sweep(first + bad, tracking_uri)
    assert (summary.planned, summary.completed, summary.failed) == (6, 4, 2)
    assert " elapsed: " in capsys.readouterr().out
    runs = tracking.runs_frame(tracking_uri)
    by_status = runs.groupby("tags.sb.status").size().to_dict()
    assert by_status == {"completed": 4, "failed": 2, "interrupted": 1}
    assert MlflowClient(tracking_uri).get_run(stale.run_id).info.status == "KILLED"
    failed = runs[runs["tags.sb.status"] == "failed"].set_index("params.method")["tags.sb.reason"]
    assert "boom from a plugin" in failed["test-raises"]
    assert "worker died" in failed["test-kills-worker"]

    assert failed.index.tolist().count("test-kills-worker") == 1
    kinds = runs[runs["tags.sb.status"] == "failed"].set_index("params.method")["tags.sb.failure"]
    assert (kinds["test-raises"], kinds["test-kills-worker"]) == ("method", "infrastructure")

    # the full grid: finished trials and method failures are skipped, only the missing ones run, and
    # the trial whose worker died is run again (up to INFRA_ATTEMPTS runs in all, then it is a result)
    summary = sweep(good + bad, tracking_uri)
    assert (summary.skipped, summary.completed, summary.failed) == (5, len(good) - 4, 1)
    for _ in range(tracking.INFRA_ATTEMPTS - 2):
        assert sweep(bad, tracking_uri).failed == 1
    summary = sweep(good + bad, tracking_uri)
    assert summary.skipped == len(good) + len(bad) and summary.completed == 0
    runs = tracking.runs_frame(tracking_uri)
    done = runs[runs["tags.sb.status"] == "completed"]
    assert len(done) == len(good) == done["tags.sb.config_id"].nunique()

    # each run carries params, per-epoch metrics, final metrics, tags and the per-layer densities
    client = MlflowClient(tracking_uri)
    run = client.get_run(done.loc[done["params.method"] == "dense", "run_id"].iloc[0])
    assert {"task", "profile", "method", "sparsity", "seed"} <= set(run.data.params)
    assert {"final/test_accuracy", "final/sparsity", "cost/train_cost_rel"} <= set(run.data.metrics)
    assert len(client.get_metric_history(run.info.run_id, "val/accuracy")) == 2  # two epochs
    assert run.data.tags["mlflow.parentRunId"]
    assert {"layers.json", "layers.svg"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    def artifact(path):
        return Path(client.download_artifacts(run.info.run_id, path, str(tmp_path))).read_text()

    figure = ElementTree.fromstring(artifact("layers.svg"))  # two bars a layer: density, effective density
    assert len(list(figure.iter("{http://www.w3.org/2000/svg}rect"))) == 2 * len(json.loads(artifact("layers.json")))
    kind = client.get_experiment(run.info.experiment_id).tags.get("mlflow.experimentKind")
    assert kind == "custom_model_development"  # a model-training experiment for MLflow 3, not a GenAI one
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())

    # the leaderboard is built from those runs alone
    table = board.build(tracking_uri, tmp_path / "board")
    csv = pd.read_csv(tmp_path / "board" / "results.csv")
    assert len(csv) == len(table) == 5  # dense + 2 methods x 2 sparsities
    cell = csv[(csv["method"] == "magnitude") & (csv["sparsity"] == 0.9)].iloc[0]
    expected = done[(done["params.method"] == "magnitude") & (done["params.sparsity"] == "0.9")]
    assert cell["n"] == 2
    assert cell["mean"] == pytest.approx(expected["metrics.final/test_accuracy"].mean())
    text = (tmp_path / "board" / "README.md").read_text()
    assert "## tiny-mlp — profile `quick`" in text and "Dense reference" in text and "test-raises" not in text


def test_trial_spec_round_trips_through_json():
    spec = TrialSpec("tiny-mlp", "magnitude", 0.9, 2, "quick", {"finetune_fraction": 0.25})
    assert TrialSpec.from_json(spec.to_json()) == spec
    assert spec.config_id() == TrialSpec.from_json(spec.to_json()).config_id()
    assert spec.config_id() != TrialSpec("tiny-mlp", "magnitude", 0.9, 3).config_id()


def test_an_interrupted_sweep_prints_one_correct_summary_and_how_to_resume(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [sys.executable, "-m", "sparsebench.cli", "run", "--task", "tiny-mlp", "--method", "test-slow",
               "--sparsity", "0.5", "--seed", "0", "1", "2", "3", "4", "5", "--plugins", str(TEST_PLUGINS),
               "--tracking-uri", uri]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=tmp_path, start_new_session=True)
    lines = []
    for line in proc.stdout:  # Ctrl-C, as a terminal sends it, once the first trial has finished
        lines.append(line)
        if line.startswith("[1/6]"):
            os.killpg(proc.pid, signal.SIGINT)
            break
    out = "".join(lines) + proc.communicate(timeout=180)[0]
    assert proc.returncode == 130, out
    summaries = [line for line in out.splitlines() if line.startswith("sparsebench: trials:")]
    assert len(summaries) == 1, out
    completed = (tracking.runs_frame(uri)["tags.sb.status"] == "completed").sum()
    assert f"{completed} completed" in summaries[0] and "interrupted (run again to resume)" in summaries[0]
    assert "Tuner.restore" not in out and "Traceback" not in out and "Failed to fetch" not in out, out
    assert "to resume, run again: sparsebench run --task tiny-mlp --method test-slow" in out
