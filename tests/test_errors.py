"""Bad input gets a clear error and loses nothing."""
import gzip
import shutil
from pathlib import Path

import pytest

from sparsebench import cli, registry
from sparsebench.data import DataError
from sparsebench.running.sweep import plan
from sparsebench.running.trial import TrialSpec, make_method, run_trial

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "MNIST" / "raw"


def test_unknown_names_suggest_the_closest(capsys):
    assert cli.main(["run", "--task", "tiny-mpl", "--method", "dense", "--sparsity", "0.5"]) == 2
    assert "unknown task 'tiny-mpl'; did you mean 'tiny-mlp'" in capsys.readouterr().err
    assert cli.main(["run", "--task", "tiny-mlp", "--method", "magnitud", "--sparsity", "0.5"]) == 2
    assert "did you mean 'magnitude'" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["1.0", "-0.2", "1.5"])
def test_sparsity_outside_unit_interval_is_refused(bad, capsys):
    assert cli.main(["run", "--task", "tiny-mlp", "--method", "dense", "--sparsity", bad]) == 2
    assert "sparsity must be in [0, 1)" in capsys.readouterr().err
    with pytest.raises(ValueError):
        plan(["tiny-mlp"], ["random"], [float(bad)], [0])


def test_unknown_hyperparameter_is_refused():
    with pytest.raises(ValueError, match="has no hyperparameter lr_typo"):
        make_method("magnitude", {"lr_typo": 1})


def test_broken_plugin_is_listed_not_fatal(capsys):
    assert any("broken.py" in where for where in registry.METHODS.broken)
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "BROKEN" in out and "a_module_that_does_not_exist" in out and "magnitude" in out


def test_duplicate_registration_is_an_error():
    class Other:
        pass

    with pytest.raises(ValueError, match="already registered"):
        registry.register_method("dense")(Other)


@pytest.mark.parametrize("name,reason", [("test-raises", "raised RuntimeError: boom from a plugin"),
                                         ("test-diverges", "diverged: training loss is nan"),
                                         ("test-wrong-sparsity", "reached sparsity")])
def test_failing_plugin_becomes_a_failed_result(name, reason):
    result = run_trial(TrialSpec("tiny-mlp", name, 0.5))
    assert result["status"] == "failed"
    assert reason in result["reason"]


@pytest.mark.parametrize("name", ["test-nan-weights-learned", "test-nan-weights-exact"])
def test_non_finite_final_weights_fail_as_diverged(name):
    result = run_trial(TrialSpec("tiny-mlp", name, 0.5))
    assert (result["status"], result["reason"]) == ("failed", "diverged: non-finite weights in 4.weight"), result


def test_non_finite_weights_during_training_fail_at_the_epoch_they_appear():
    import torch
    from sparsebench.core.train import Diverged
    from sparsebench.running.trial import make_context, make_task, seed_everything
    task = make_task("tiny-mlp", "quick")
    splits = task.load(None)
    ctx = make_context(task, splits.train, splits.val, 0.0, seed_everything(0))
    weight = next(iter(ctx.masks.params.values()))

    def poison(i):  # at the epoch's last step: no later loss sees it, only the epoch's end
        if i == ctx.steps_per_epoch - 1:
            with torch.no_grad():
                weight[0, 0] = float("inf")
    with pytest.raises(Diverged, match="non-finite weights in 0.weight"):
        ctx.train(steps=ctx.steps_per_epoch, every=1, callback=poison)


@pytest.mark.parametrize("setting,message", [("delta_t=abc", "delta_t must be an integer, got 'abc'"),
                                             ("delta_t=0", "delta_t must be in [1, inf), got 0"),
                                             ("alpha=1.5", "alpha must be in (0, 1], got 1.5"),
                                             ("alpha=NaN", "alpha must be a number, got nan"),
                                             ("rule=3", "rule must be a string, got 3")])
def test_set_values_are_type_and_range_checked_before_anything_starts(setting, message, capsys, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = cli.main(["run", "--task", "tiny-mlp", "--method", "rigl", "--sparsity", "0.5", "--set", setting,
                     "--tracking-uri", uri])
    assert code == 2
    assert f"method 'rigl': {message}" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()  # refused before the store was touched


def test_every_declared_bound_is_a_valid_interval_holding_the_default():
    from sparsebench.core.hparams import check_hparams, in_interval, schema
    for name in registry.METHODS.names():
        cls, defaults = registry.METHODS.get(name)
        values = make_method(name).hparams()
        for key, interval in cls.bounds.items():
            assert key in values, f"{name}: bound on {key}, which is not a hyperparameter"
            held = values[key] is None or (values[key] in interval if isinstance(interval, tuple)
                                           else in_interval(values[key], interval))
            assert held, f"{name}: default {key} outside {interval}"
        check_hparams(name, schema(cls), values)


def _mnist_copy(tmp_path, corrupt: str | None = None, drop: str | None = None) -> Path:
    if not SHARED_MNIST.exists():
        pytest.skip("no MNIST in ../shared/data")
    raw = tmp_path / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in SHARED_MNIST.glob("*.gz"):
        if f.name == drop:
            continue
        if f.name == corrupt:
            (raw / f.name).write_bytes(gzip.compress(b"not mnist"))
        else:
            shutil.copy(f, raw / f.name)
    return tmp_path / "root"


def test_corrupt_data_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEBENCH_CACHE", str(tmp_path / "cache"))
    root = _mnist_copy(tmp_path, corrupt="t10k-labels-idx1-ubyte.gz")
    from sparsebench.running.trial import make_task
    task = make_task("lenet300-mnist", "quick")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz is corrupt: MD5 .* expected ec29112dd5afa0611ce80d1b7f02629c"):
        task.load(root)


def test_missing_data_file_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPARSEBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SPARSEBENCH_OFFLINE", "1")
    root = _mnist_copy(tmp_path, drop="train-labels-idx1-ubyte.gz")
    code = cli.main(["run", "--task", "lenet300-mnist", "--method", "dense", "--sparsity", "0.5",
                     "--data-root", str(root), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "train-labels-idx1-ubyte.gz is missing" in err


def test_a_pruning_method_at_sparsity_zero_is_refused_without_a_store(capsys, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert cli.main(["run", "--task", "tiny-mlp", "--method", "magnitude", "--sparsity", "0",
                     "--tracking-uri", uri]) == 2
    assert "this grid has no trial: pruning methods run at sparsities in (0, 1)" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()


def test_errors_name_tasks_and_list_known_names_after_a_separator(capsys):
    assert cli.main(["run", "--task", "lenet300-mnist", "--method", "dense", "--profile", "foo"]) == 2
    assert "task 'lenet300-mnist' has no profile 'foo'" in capsys.readouterr().err
    assert cli.main(["run", "--task", "tiny-mlp", "--method", "zzzz", "--sparsity", "0.5"]) == 2
    assert "unknown method 'zzzz'. Known methods: alps, alps-2:4, alps-4:8, dense," in capsys.readouterr().err  # sorted


def test_board_links_go_to_the_tracking_server_that_holds_the_runs(monkeypatch):
    from sparsebench.report.board import ui_url
    monkeypatch.delenv("SPARSEBENCH_MLFLOW_UI", raising=False)
    assert ui_url(None, "http://mlflow.example:8080/") == "http://mlflow.example:8080"
    assert ui_url(None, "sqlite:///x/mlflow.db") is None
