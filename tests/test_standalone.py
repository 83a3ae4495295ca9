"""Trials without Ray or MLflow (``sparsebench run --bundle``): plain processes write a runs bundle
that imports into a real MLflow store like an exported one. Run with ``mlflow`` and ``ray``
unimportable, as on a machine that has torch alone."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sparsebench.running import bundle, tracking
from sparsebench.running.trial import TrialSpec

from conftest import TEST_PLUGINS

ROOT = Path(__file__).resolve().parents[1]
NO_STACK = '''
import sys
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("mlflow", "ray"):
            raise ImportError(f"{name} is not installed here (test)")
sys.meta_path.insert(0, Absent())
'''


def run_bundle(tmp_path, *args):
    """``sparsebench run ... --bundle`` in a Python where mlflow and ray cannot be imported."""
    (tmp_path / "nostack").mkdir(exist_ok=True)
    (tmp_path / "nostack" / "sitecustomize.py").write_text(NO_STACK)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "nostack"), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "sparsebench.cli", "run", *args, "--plugins", str(TEST_PLUGINS)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_a_bundle_run_without_the_stack_imports_resumes_and_records_a_dead_process(tmp_path, tracking_uri):
    out = tmp_path / "runs"
    grid = ["--task", "tiny-mlp", "--method", "dense", "magnitude", "test-raises", "test-kills-worker",
            "--sparsity", "0.9", "--bundle", str(out), "--workers", "2"]
    first = run_bundle(tmp_path, *grid)
    assert first.returncode == 0, first.stderr
    assert "4 trials planned, 0 already" in first.stdout and "2 completed, 2 failed" in first.stdout
    assert "sparsebench: started tiny-mlp magnitude-s0.90-seed0" in first.stdout
    # a finished trial's words: its test metric, its difference from dense (once the dense run is in), its time
    assert re.search(r"tiny-mlp magnitude-s0.90-seed0: completed, test accuracy [\d.]+, "
                     r"(Δ vs dense [+-][\d.e+]+|no dense reference yet), in \d+ s", first.stdout), first.stdout
    assert re.search(r"test-raises-s0.90-seed0: failed, .*boom", first.stdout)
    records = {r["run_name"]: r for r in map(json.loads, (out / "tiny-mlp.jsonl").read_text().splitlines())}
    assert set(records) == {"dense-s0.00-seed0", "magnitude-s0.90-seed0", "test-raises-s0.90-seed0",
                            "test-kills-worker-s0.90-seed0"}
    done = records["magnitude-s0.90-seed0"]
    assert done["tags"]["sb.status"] == "completed" and done["history"]["val/accuracy"] and done["layers"]
    assert done["tags"]["sb.config_id"] == TrialSpec("tiny-mlp", "magnitude", 0.9).config_id()
    assert done["tags"]["sb.versions"].startswith("torch ") and done["tags"]["sb.device"] == "cpu"
    assert "boom" in records["test-raises-s0.90-seed0"]["tags"]["sb.reason"]
    dead = records["test-kills-worker-s0.90-seed0"]["tags"]
    assert dead["sb.failure"] == "infrastructure" and "exit code 3" in dead["sb.reason"]
    assert not list((out / ".running").iterdir())

    # the bundle's dense reference and its table of cells (what a terminal shows at the end)
    from sparsebench.running import standalone
    spec = TrialSpec("tiny-mlp", "magnitude", 0.9)
    dense = records["dense-s0.00-seed0"]["metrics"]["final/test_accuracy"]
    assert standalone.dense_reference(out, spec, "accuracy") == dense
    table = standalone.results_text(standalone.bundle_rows(out, [spec, TrialSpec("tiny-mlp", "test-raises", 0.9)]))
    assert table.count("\n") == 2 and "| tiny-mlp | quick   | default | magnitude | 90%      | 1 | accuracy " in table

    # the way back: checked (strictly) and loaded into a real MLflow store, as an exported bundle is
    summary = bundle.import_bundle(out, tracking_uri, strict=True)
    assert (summary.imported, summary.skipped) == (4, 0)
    assert len(tracking.trial_runs(tracking_uri)) == 4

    # run again: finished trials are skipped, the dead process's trial runs again
    again = run_bundle(tmp_path, *grid)
    assert again.returncode == 0, again.stderr
    assert "4 trials planned, 3 already" in again.stdout and "0 completed, 1 failed" in again.stdout
    assert len((out / "tiny-mlp.jsonl").read_text().splitlines()) == 5


def test_a_bundle_run_shows_each_epoch_of_a_running_trial_and_speaks_up_when_it_is_silent(tmp_path):
    from sparsebench.core import registry
    from sparsebench.running import standalone
    registry.discover([str(TEST_PLUGINS)])
    out = tmp_path / "trial.json"
    shown = standalone.Shown(TrialSpec("tiny-mlp", "magnitude", 0.9), out)
    assert shown.line(shown.started + 5) is None  # no epoch yet
    standalone.progress_file(out).write_text(json.dumps({"epoch": 1, "val/accuracy": 91.25, "train/loss": 0.3}))
    line = shown.line(shown.started + 30)
    epochs = standalone.profile_epochs("tiny-mlp", "quick")
    assert line.startswith(f"sparsebench: tiny-mlp magnitude 90% seed 0 · epoch 1/{epochs:g} · val accuracy 91.25")
    assert "30 s elapsed" in line
    assert shown.line(shown.started + 40) is None  # the same epoch: nothing new to say
    assert "epoch 1" in shown.line(shown.started + 40 + standalone.QUIET_S)  # silent for long: said again
    standalone.progress_file(out).write_text("{\"epo")  # a write under way: what was read before, no error
    assert "epoch 1/" in shown.line(shown.started + 41 + 2 * standalone.QUIET_S)


def test_a_bundle_run_trains_the_shared_dense_model_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEBENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "runs"
    grid = ["--task", "tiny-mlp", "--method", "magnitude-oneshot", "--sparsity", "0.5", "0.9", "--bundle", str(out)]
    done = run_bundle(tmp_path, *grid)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (out / "tiny-mlp.jsonl").read_text().splitlines()]
    assert sorted((r["metrics"]["checkpoints/hits"], r["metrics"]["checkpoints/misses"]) for r in records) == \
        [(0, 1), (1, 0)]  # the first trains the dense model and stores it, the second loads it
    assert len(list((tmp_path / "cache" / "checkpoints").glob("*.pt"))) == 1
    apart = run_bundle(tmp_path, *grid[:-1], str(tmp_path / "apart"), "--no-checkpoints")
    assert apart.returncode == 0, apart.stderr
    assert all("checkpoints/hits" not in json.loads(line)["metrics"]
               for line in (tmp_path / "apart" / "tiny-mlp.jsonl").read_text().splitlines())


def test_a_bundle_run_refuses_what_needs_ray_or_mlflow(tmp_path):
    refused = run_bundle(tmp_path, "--task", "tiny-mlp", "--method", "dense", "--bundle", str(tmp_path / "runs"),
                         "--tune", "2")
    assert refused.returncode == 2 and "--bundle runs plain processes" in refused.stderr
    bad = run_bundle(tmp_path, "--task", "tiny-mlp", "--method", "dense", "--bundle", str(tmp_path / "runs"),
                     "--workers", "0")
    assert bad.returncode == 2 and "--workers" in bad.stderr


def test_a_corrupt_bundle_is_named_and_left_as_it_is(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "tiny-mlp.jsonl").write_text("not json\n")
    refused = run_bundle(tmp_path, "--task", "tiny-mlp", "--method", "dense", "--bundle", str(tmp_path / "runs"))
    assert refused.returncode == 2 and "tiny-mlp.jsonl:1: not a JSON record" in refused.stderr
    assert (tmp_path / "runs" / "tiny-mlp.jsonl").read_text() == "not json\n"


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_bundle_run_stopped_or_killed_leaves_no_trial_running(tmp_path, how):
    (tmp_path / "nostack").mkdir()
    (tmp_path / "nostack" / "sitecustomize.py").write_text(NO_STACK)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "nostack"), str(ROOT)])}
    run = subprocess.Popen([sys.executable, "-m", "sparsebench.cli", "run", "--task", "tiny-mlp", "--method", "test-hangs",
                            "--sparsity", "0.5", "--bundle", str(tmp_path / "runs"), "--plugins", str(TEST_PLUGINS)],
                           cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def trials():  # the run's trial processes: its children started by multiprocessing's spawn
        found = []
        for proc in Path("/proc").iterdir():
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if proc.name.isdigit() and ppid == run.pid and b"spawn_main" in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except (OSError, ValueError, IndexError):
                continue
        return found

    try:
        deadline = time.time() + 120
        while not (started := trials()) and time.time() < deadline:
            time.sleep(0.5)
        assert started, "the trial's process never started"
        run.send_signal(how)
        run.wait(timeout=60)
        deadline = time.time() + 30
        while any(os.path.exists(f"/proc/{p}") and "Z" not in open(f"/proc/{p}/stat").read().split()[2]
                  for p in started) and time.time() < deadline:
            time.sleep(0.5)
        assert not any(os.path.exists(f"/proc/{p}") and "Z" not in open(f"/proc/{p}/stat").read().split()[2]
                       for p in started), "a trial outlived its run"
    finally:
        try:
            os.killpg(run.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
