"""The conformance suite: every discovered method plugin, run on the tiny task made in the tests."""
import torch

from sparsebench.core import registry
from sparsebench.running.trial import SPARSITY_TOLERANCE, TrialSpec, run_trial


def run(method_name, sparsity, seed=0):
    cls, defaults = registry.METHODS.get(method_name)
    try:
        cls(**defaults).check_target(sparsity)
    except ValueError:  # a method of one sparsity (an N:M pattern): its own
        sparsity = 0.5
    task = "tiny-transformer" if cls.structure == "heads" else "tiny-mlp"  # heads need attention
    return run_trial(TrialSpec(task, method_name, sparsity if cls.prunes else 0.0, seed))


def test_method_declares_taxonomy_and_paper(method_name):
    cls, _ = registry.METHODS.get(method_name)
    assert cls.when in {"none", "init", "during", "after", "dynamic"}
    assert isinstance(cls.criterion, str) and cls.criterion
    assert cls.__doc__ or __import__("inspect").getmodule(cls).__doc__, "cite the paper in a docstring"
    assert isinstance(cls.paper, str)


def test_method_meets_contract(method_name, tiny_log, monkeypatch):
    cls, _ = registry.METHODS.get(method_name)
    original = cls.run

    def run_and_mark(self, ctx):
        original(self, ctx)
        tiny_log.append("method returned")

    monkeypatch.setattr(cls, "run", run_and_mark)
    result = run(method_name, 0.8)
    assert result["status"] == "completed", result["reason"]
    # the test split is read once, by the harness, after the method returned
    assert tiny_log == ["method returned", "test"]
    m = result["metrics"]
    target = m["final/sparsity_target"]
    if cls.exact_sparsity:
        assert abs(m["final/sparsity"] - target) <= SPARSITY_TOLERANCE
    assert m["cost/train_steps"] > 0 and m["cost/train_flops"] > 0
    assert m["inference/flops_sparse"] <= m["inference/flops_dense"]
    assert m["inference/speedup_measured"] > 0 and m["inference/bytes"] > 0  # measured, for every method
    assert result["info"]["inference_form"] in ("dense", "csr", "compact")
    assert 0 <= m["final/test_accuracy"] <= 100


def test_method_is_deterministic_under_a_seed(method_name):
    torch.set_num_threads(1)
    a, b = run(method_name, 0.5, seed=3), run(method_name, 0.5, seed=3)
    assert a["metrics"]["final/test_accuracy"] == b["metrics"]["final/test_accuracy"]
    assert a["layers"] == b["layers"]
