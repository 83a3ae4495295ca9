"""Claims: a trial another live sweep runs is left to it; a claim whose heartbeat died is reclaimed."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sparsebench.running import tracking
from sparsebench.running.sweep import describe, pending, plan
from sparsebench.running.trial import TrialSpec

from conftest import TEST_PLUGINS

ROOT = Path(__file__).resolve().parents[1]


def claim(uri, spec):
    return tracking.TrialRun(uri, spec, spec.config_id(), describe(spec))


def test_of_two_live_claims_the_first_holds_the_trial(tracking_uri):
    spec = TrialSpec("tiny-mlp", "random", 0.5)
    first, second = claim(tracking_uri, spec), claim(tracking_uri, spec)
    assert first.rival() is None and second.rival() == first.run_id
    second.withdraw()
    assert pending([spec], tracking_uri) == ([], 1)  # running in another sweep: not planned again


def test_a_claim_whose_heartbeat_died_is_reclaimed(tracking_uri):
    spec = TrialSpec("tiny-mlp", "random", 0.5)
    dead = claim(tracking_uri, spec)
    MlflowClient(tracking_uri).set_tag(dead.run_id, "sb.heartbeat", "0")
    assert claim(tracking_uri, spec).rival() is None  # a worker that starts it now is not stopped by it
    fresh = f"{tracking_uri[:-len('.db')]}-2.db"
    dead_again = claim(fresh, spec)
    MlflowClient(fresh).set_tag(dead_again.run_id, "sb.heartbeat", "0")
    assert pending([spec], fresh) == ([spec], 0)  # and a new sweep plans it again
    assert MlflowClient(fresh).get_run(dead_again.run_id).data.tags["sb.status"] == "interrupted"


def test_a_killed_sweeps_parent_runs_are_ended_by_the_next_sweep(tracking_uri):
    dead = tracking.start_sweep(tracking_uri, ["tiny-mlp"], "killed", {})  # its driver never ends it
    live = tracking.start_sweep(tracking_uri, ["tiny-mlp"], "live", {})
    client = MlflowClient(tracking_uri)
    client.set_tag(dead["tiny-mlp"], "sb.heartbeat", "0")
    assert tracking.end_dead_sweeps(tracking_uri, ["tiny-mlp", "no-such-task"]) == 1
    assert client.get_run(dead["tiny-mlp"]).info.status == "KILLED"
    assert client.get_run(live["tiny-mlp"]).info.status == "RUNNING"  # a live sweep's parent is left alone
    tracking.beat_sweep(tracking_uri, live)
    assert int(client.get_run(live["tiny-mlp"]).data.tags["sb.heartbeat"]) > 0


def test_a_finished_run_holds_the_trial(tracking_uri):
    spec = TrialSpec("tiny-mlp", "random", 0.5)
    done = claim(tracking_uri, spec)
    done.finish({"status": "completed", "reason": "", "metrics": dict.fromkeys(  # a whole result (tracking.unwritten)
        ["final/test_accuracy", "final/sparsity", "final/effective_sparsity", "cost/train_steps", "cost/train_cost_rel"],
        1.0)})
    assert claim(tracking_uri, spec).rival() == done.run_id


@pytest.mark.slow
def test_the_same_grid_started_twice_at_once_trains_each_trial_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [sys.executable, "-m", "sparsebench.cli", "run", "--task", "tiny-mlp", "--method", "test-slow",
               "--sparsity", "0.5", "0.6", "0.7", "0.8", "--tracking-uri", uri, "--plugins", str(TEST_PLUGINS)]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    sweeps = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in sweeps]
    assert [p.returncode for p in sweeps] == [0, 0], "\n".join(outputs)
    runs = tracking.runs_frame(uri)
    completed = runs[runs["tags.sb.status"] == "completed"]
    assert len(completed) == 4 and completed["tags.sb.config_id"].nunique() == 4, runs["tags.sb.status"].tolist()
    assert set(runs["tags.sb.status"]) == {"completed"}  # the withdrawn claims left nothing behind
    assert all(completed["tags.sb.host"]) and all(completed["tags.sb.node"])
