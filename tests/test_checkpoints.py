"""The checkpoint store: a reused training gives the same weights, metrics and cost as one run
from scratch; trials share the dense training and lottery levels; losing or corrupting the cache
costs time, never results; two processes writing one checkpoint corrupt nothing."""
import multiprocessing

import pytest
import torch
from mlflow.tracking import MlflowClient

from sparsebench.core import registry
from sparsebench.running.checkpoints import CheckpointStore
from sparsebench.running.trial import TrialSpec, make_context, make_task, run_trial


def trial(method, sparsity, store=None, seed=0, log=None):
    logged = []
    result = run_trial(TrialSpec("tiny-mlp", method, sparsity, seed), checkpoints=store,
                       log=lambda m, e: logged.append((m, e)))
    assert result["status"] == "completed", result["reason"]
    return result, logged


def comparable(result):
    timed = ("time/", "inference/latency", "inference/speedup")  # wall-clock measurements, never equal twice
    return {k: v for k, v in result["metrics"].items() if not k.startswith(timed)}, result["layers"]


def test_a_reused_training_is_bit_identical_and_charged_as_run(tmp_path, one_thread):
    task = make_task("tiny-mlp", "quick")
    splits = task.load(None)

    def trained(store):
        torch.manual_seed(0)
        ctx = make_context(task, splits.train, splits.val, 0.0, torch.Generator().manual_seed(0))
        trainer, logged = ctx._trainer, []
        trainer.cache, trainer.identity, trainer.log = store, "tiny", lambda m, e: logged.append((m, e))
        ctx.train()
        after = torch.rand(3)  # the random generators continue as after the training
        return ctx.model.state_dict(), trainer.cost, trainer.epoch, logged, after, trainer.generator.get_state()

    store = CheckpointStore(None, "tiny-mlp", tmp_path)
    fresh, ran, reused = trained(None), trained(store), trained(store)
    assert (store.misses, store.hits) == (1, 1)
    for other in (ran, reused):
        assert all(torch.equal(fresh[0][k], other[0][k]) for k in fresh[0])
        assert other[1:4] == fresh[1:4]  # cost, epochs and the per-epoch log
        assert torch.equal(other[4], fresh[4]) and torch.equal(other[5], fresh[5])


def test_trials_share_the_dense_training_and_results_do_not_change(tmp_path, one_thread):
    store = CheckpointStore(None, "tiny-mlp", tmp_path)
    scratch = [trial(m, 0.9) for m in ("magnitude", "lottery")]
    trial("dense", 0.0, store)
    assert (store.hits, store.misses) == (0, 1)
    reused = [trial(m, 0.9, store) for m in ("magnitude", "lottery")]
    assert store.hits >= 2  # both start from the dense training
    for (a, log_a), (b, log_b) in zip(scratch, reused):
        assert comparable(a) == comparable(b) and log_a == log_b
    # lottery levels: the 80 % ticket's rounds are the first rounds of the 90 % one
    before = store.hits
    trial("lottery", 0.8, store)
    assert store.hits - before >= 3


def test_a_lost_or_corrupt_cache_costs_time_not_results(tmp_path, one_thread):
    store = CheckpointStore(None, "tiny-mlp", tmp_path)
    first, _ = trial("magnitude", 0.5, store)
    for path in tmp_path.glob("*.pt"):
        path.write_bytes(b"not a checkpoint")
    again, _ = trial("magnitude", 0.5, CheckpointStore(None, "tiny-mlp", tmp_path))
    empty, _ = trial("magnitude", 0.5, CheckpointStore(None, "tiny-mlp", tmp_path / "elsewhere"))
    assert comparable(first) == comparable(again) == comparable(empty)


def _write(uri, folder, key, seed, ready):
    registry.discover()
    payload = {"model": {"w": torch.full((1000, 100), float(seed))}, "cost": {"steps": 1}}
    ready.wait()
    CheckpointStore(uri, "tiny-mlp", folder).put(key, payload)


def test_checkpoints_are_shared_through_mlflow_and_concurrent_writers_corrupt_nothing(tracking_uri, tmp_path):
    from sparsebench.running import tracking
    tracking.runs_frame(tracking_uri)  # create the store before two processes write to it
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    writers = [ctx.Process(target=_write, args=(tracking_uri, tmp_path / f"worker{i}", "k" * 32, 7, ready))
               for i in range(2)]
    for w in writers:
        w.start()
    ready.set()
    for w in writers:
        w.join(120)
        assert w.exitcode == 0
    elsewhere = CheckpointStore(tracking_uri, "tiny-mlp", tmp_path / "fresh-machine")
    done = elsewhere.get("k" * 32)  # not in this machine's cache: downloaded from MLflow
    assert elsewhere.hits == 1 and torch.equal(done["model"]["w"], torch.full((1000, 100), 7.0))
    assert elsewhere.get("0" * 32) is None and elsewhere.misses == 1


def test_models_with_batchnorm_buffers_are_keyed_and_restored(tmp_path, one_thread):
    # a 0-d buffer (BatchNorm's num_batches_tracked) is part of the state the key hashes
    task = make_task("tiny-mlp", "quick")
    splits = task.load(None)
    ctx = make_context(task, splits.train, splits.val, 0.0, torch.Generator().manual_seed(0))
    ctx.model.add_module("bn", torch.nn.BatchNorm1d(4))
    trainer = ctx._trainer
    trainer.cache, trainer.identity = CheckpointStore(None, "tiny-mlp", tmp_path), "tiny"
    key = trainer._state_key({"steps": 1})
    ctx.model.bn.num_batches_tracked += 1
    assert trainer._state_key({"steps": 1}) != key


def test_a_training_has_the_same_key_in_every_process(tmp_path):
    """Workers are separate processes: a checkpoint one of them wrote must be found by the others
    (plugins are loaded from files, under a module name that must not differ between processes)."""
    import subprocess
    import sys

    code = ("from sparsebench.core import registry; from sparsebench.running.checkpoints import identity; "
            "from sparsebench.running.trial import make_task; registry.discover(); "
            "print(identity(make_task('lenet300-mnist', 'quick')))")
    keys = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(3)}
    assert len(keys) == 1 and "lenet300" in next(iter(keys)).lower(), keys


def test_a_new_recipe_or_a_comment_keeps_the_other_profiles_checkpoint_keys(tmp_path, monkeypatch):
    import shutil

    from sparsebench.running import checkpoints, provenance
    from sparsebench.running.trial import make_task

    task = make_task("tiny-mlp", "quick")
    source = provenance.plugin_files(type(task))[0]
    before = checkpoints.identity(task)
    copy = tmp_path / source.name
    shutil.copy(source, copy)
    monkeypatch.setattr(provenance, "plugin_files", lambda cls: [copy])
    text = source.read_text()
    copy.write_text(text.replace('    profiles = {\n', '    profiles = {  # a comment\n        "new": Recipe(epochs=9),\n', 1))
    assert checkpoints.identity(task) == before  # another recipe and a comment: the same trainings
    copy.write_text(text.replace('"quick": Recipe(batch_size=32,', '"quick": Recipe(batch_size=16,', 1))
    assert checkpoints.identity(task) != before  # its own recipe's code


def test_a_sweep_starts_trials_that_may_share_trainings_apart():
    """Two trials of one seed started side by side would both train what they share: with two
    workers no two neighbours share a task, profile and seed while another group is at hand, every
    trial stays within the look-ahead window, and one worker (or one group) keeps the order."""
    from sparsebench.running.sweep import apart_by_training as apart, plan, training_group

    specs = plan(["tiny-mlp"], ["magnitude"], [0.5, 0.8, 0.9, 0.95, 0.98], [0, 1, 2])  # seed by seed
    order = apart(specs, workers=2)
    assert sorted(order, key=specs.index) == specs
    groups = [training_group(s) for s in order]
    assert all(a != b for a, b in zip(groups[:10], groups[1:11]))  # until only seed 2 is left
    assert all(abs(order.index(s) - i) < 8 for i, s in enumerate(specs))
    assert {s.seed for s in order[:4]} == {0, 1, 2}  # seed 2 once inside the window of 8
    assert apart(specs, workers=1) == specs
    one_seed = plan(["tiny-mlp"], ["magnitude", "dense"], [0.5, 0.9], [0])
    assert apart(one_seed, workers=2) == one_seed


def flip_a_weight_byte(path):
    """A byte in the middle of the largest weight of the checkpoint at ``path`` changed: the same
    size, and it still loads (as the issue's overwritten weight did)."""
    blob = bytearray(path.read_bytes())
    weights = torch.load(path, weights_only=True)["model"]
    name = max(weights, key=lambda n: weights[n].numel())
    at = bytes(blob).find(weights[name].numpy().tobytes())
    assert at > 0
    blob[at + weights[name].numel() * 2] ^= 0x40  # float32: the middle of the tensor
    path.write_bytes(bytes(blob))
    assert not torch.equal(torch.load(path, weights_only=True)["model"][name], weights[name])


def test_a_flipped_byte_in_a_cached_checkpoint_is_discarded_with_one_warning(tmp_path, one_thread, capsys):
    clean, _ = trial("dense", 0.0, CheckpointStore(None, "tiny-mlp", tmp_path))
    (path,) = tmp_path.glob("*.pt")
    flip_a_weight_byte(path)
    capsys.readouterr()
    store = CheckpointStore(None, "tiny-mlp", tmp_path)
    again, _ = trial("dense", 0.0, store)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "corrupt" in warnings[0] and path.name in warnings[0]
    assert (store.hits, store.misses) == (0, 1)  # trained again
    assert comparable(again) == comparable(clean)
    assert [p.name for p in tmp_path.glob("*.pt")] == [path.name]  # written again, whole
    assert trial("dense", 0.0, store)[0] and store.hits == 1


def test_a_flipped_byte_in_a_checkpoint_stored_in_mlflow_is_discarded(tracking_uri, tmp_path, one_thread, capsys):
    from sparsebench.running import checkpoint_store

    clean, _ = trial("dense", 0.0, CheckpointStore(tracking_uri, "tiny-mlp", tmp_path / "machine-1"))
    (artifact,) = (tmp_path / "mlartifacts").rglob("checkpoint.pt")
    flip_a_weight_byte(artifact)
    capsys.readouterr()
    store = CheckpointStore(tracking_uri, "tiny-mlp", tmp_path / "machine-2")  # fetches it from MLflow
    again, _ = trial("dense", 0.0, store)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "corrupt" in warnings[0] and "MLflow run" in warnings[0]
    assert (store.hits, store.misses) == (0, 1) and comparable(again) == comparable(clean)
    # the corrupt copy is gone from the store; the one trained again is there, whole
    fresh = CheckpointStore(tracking_uri, "tiny-mlp", tmp_path / "machine-3")
    assert trial("dense", 0.0, fresh)[0] and (fresh.hits, fresh.misses) == (1, 0)
    assert checkpoint_store.CHECKPOINT_DIGEST in MlflowClient(tracking_uri).search_runs(
        [MlflowClient(tracking_uri).get_experiment_by_name("sparsebench/tiny-mlp").experiment_id],
        "tags.`sb.kind` = 'checkpoint'")[0].data.tags


WAITER = """
import sys, time
from pathlib import Path
from sparsebench.running.checkpoints import CheckpointStore
store = CheckpointStore(None, "tiny-mlp", Path(sys.argv[1]))
print("waiting", flush=True)
done = store.get("k")
print("hit" if done is not None else "miss", done and done["step"], store.hits, store.misses, store.waited_s > 0.5, flush=True)
"""


def waiter(folder):
    import subprocess
    import sys
    process = subprocess.Popen([sys.executable, "-c", WAITER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "waiting"
    return process


def test_a_training_in_progress_is_waited_for_not_run_twice(tmp_path):
    import time
    trainer = CheckpointStore(None, "tiny-mlp", tmp_path)
    assert trainer.get("k") is None and trainer.get("k") is None  # a miss claims the key; asking again is no deadlock
    other = waiter(tmp_path)
    time.sleep(2.0)  # the other trial needs the key meanwhile
    assert other.poll() is None, "it must wait for the training, not run it too"
    trainer.put("k", {"step": 7})
    assert other.communicate(timeout=60)[0].split() == ["hit", "7", "1", "0", "True"]


def test_a_claim_dropped_without_a_checkpoint_passes_the_training_on(tmp_path):
    import time
    trainer = CheckpointStore(None, "tiny-mlp", tmp_path)
    assert trainer.get("k") is None
    other = waiter(tmp_path)
    time.sleep(1.0)
    trainer.release()  # the trial failed before storing it: the waiting one trains it
    assert other.communicate(timeout=60)[0].split() == ["miss", "None", "0", "1", "True"]
