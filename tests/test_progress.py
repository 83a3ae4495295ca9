"""The sweep's terminal (issue 37): running trials read from the store as they log their epochs, a
finished trial's wall time and Δ vs dense, the results table; nothing live where stdout is no terminal.
Runs are written through the real tracking module into a real SQLite store (TEST DATA metrics)."""
import io

import pytest

from sparsebench.running import progress, tracking
from sparsebench.running.records import describe
from sparsebench.running.trial import TrialSpec


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('progress') / 'mlflow.db'}"
    tracking.open_store(uri)
    parents = tracking.start_sweep(uri, ["tiny-mlp"], "progress-test", {})
    return uri, parents


def trial(uri, parents, method, sparsity, seed, test=None):
    spec = TrialSpec("tiny-mlp", method, sparsity, seed, "quick")
    run = tracking.TrialRun(uri, spec, spec.config_id(), describe(spec), parents["tiny-mlp"])
    if test is not None:
        run.finish({"status": "completed", "reason": "", "metrics": {
            "final/test_accuracy": test, "final/sparsity": sparsity, "final/effective_sparsity": sparsity,
            "cost/train_steps": 10, "cost/train_cost_rel": 1.0}})
    return spec, run


def test_a_running_trial_shows_its_epoch_metric_and_time_left_from_its_logged_epochs(store):
    uri, parents = store
    spec, run = trial(uri, parents, "magnitude", 0.9, 0)
    client = tracking.store_client(uri)
    start = client.get_run(run.run_id).info.start_time / 1000
    out = Terminal()
    live = progress.Live(uri, parents, out=out, clock_fn=lambda: start + 30)
    live.poll(force=True)
    assert "tiny-mlp magnitude 90% seed 0 · epoch 0" in out.getvalue() and "first epoch running" in out.getvalue()
    run.log({"val/accuracy": 61.25, "train/loss": 1.0}, 1)  # the first epoch, as the trainer logs it
    epochs = progress.profile_epochs("tiny-mlp", "quick")
    live.poll(force=True)
    shown = out.getvalue().split("\x1b[2F\x1b[J")[-1]  # the block was redrawn in place
    assert f"epoch 1/{epochs:g} · val accuracy 61.25 · 30 s elapsed" in shown
    if epochs > 1:
        assert f"~{progress.clock(30 * (epochs - 1))} left" in shown
    assert progress.trial_line("t", "rigl", 0.9, 0, 0, 17, "accuracy", None, 60.0, typical=1200.0).endswith(
        "1:00 elapsed, ~19:00 left (as earlier runs took)")  # before its first epoch: from earlier runs
    line = progress.trial_line("t", "lottery", 0.9, 0, 5, 2, "accuracy", 97.0, 50.0)
    assert "epoch 5 (2 per training: retraining)" in line and "left" not in line  # no estimate past one training
    live.say("[1/2] a finished trial")  # printed above the block, which is erased first
    assert out.getvalue().endswith("\x1b[2F\x1b[J[1/2] a finished trial\n")


def test_nothing_live_when_stdout_is_not_a_terminal(store):
    uri, parents = store
    trial(uri, parents, "magnitude", 0.9, 0)
    out = io.StringIO()
    live = progress.Live(uri, parents, out=out)
    live.poll(force=True)
    live.say("[1/1] done")
    assert out.getvalue() == "[1/1] done\n"
    progress.print_results(uri, [TrialSpec("tiny-mlp", "magnitude", 0.9, 0, "quick")], out=out)
    assert out.getvalue() == "[1/1] done\n"


def test_a_finished_trial_says_its_wall_time_and_delta_vs_dense_and_the_sweep_ends_with_a_table(store):
    uri, parents = store
    trial(uri, parents, "dense", 0.0, 0, test=90.0)
    specs = [trial(uri, parents, "magnitude", 0.9, seed, test=88.0 + seed)[0] for seed in (0, 1)]
    live = progress.Live(uri, parents, out=io.StringIO())
    words = live.finished(specs[0], {"status": "completed", "final/test_accuracy": 88.5, "time/trial_seconds": 75.2})
    assert words == "completed, test accuracy 88.5, Δ vs dense -1.50, in 1:15"
    collapsed = live.finished(specs[1], {"status": "completed", "final/test_accuracy": 145467.0})
    assert collapsed == "completed, test accuracy 1.455e+05, Δ vs dense +1.454e+05"  # perplexity-sized, read alike
    out = Terminal()
    progress.print_results(uri, specs, out=out)
    table = out.getvalue()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines() if line.startswith("| tiny")]
    assert rows == [["tiny-mlp", "quick", "default", "magnitude", "90%", "2", "accuracy 88.50 ± 0.71"]]
    search = [TrialSpec("tiny-mlp", "magnitude", 0.9, 0, "quick", track="tuning")]
    assert progress.results_table(uri, search) == ""  # a search's trials are validated only: no table
