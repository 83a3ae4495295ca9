"""OBD's curvature: the Gauss–Newton diagonal against autograd's Hessian of a softmax model."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsebench.core import registry
from sparsebench.library.gauss_newton import gauss_newton_diagonal, predictions
from sparsebench.running.trial import TrialSpec, run_trial


def hessian_diagonal_of_ce(model, x, y):
    """diag ∂²CE/∂W² of the model's first weight, by autograd (the exact Hessian, formed)."""
    w0 = model.weight.detach().clone()

    def ce(w):
        return F.cross_entropy(torch.func.functional_call(model, {"weight": w, "bias": model.bias}, (x,)), y,
                               reduction="sum")
    return torch.autograd.functional.hessian(ce, w0).reshape(w0.numel(), w0.numel()).diagonal().view_as(w0)


def test_gauss_newton_is_the_hessian_diagonal_of_a_linear_softmax_model_and_needs_no_labels():
    # z = W x + b: the logits are linear in W, so the Hessian of the cross-entropy is its Gauss-Newton
    # part, which does not depend on the label
    torch.manual_seed(0)
    model = nn.Linear(5, 3).double()
    x = torch.randn(6, 5, dtype=torch.float64)
    examples = [(x[i:i + 1],) for i in range(6)]
    h, passes = gauss_newton_diagonal({"weight": model.weight}, examples, lambda e: model(e[0]))
    assert passes == 6 * 3  # a backward pass per class of each example
    for labels in (torch.zeros(6, dtype=torch.long), torch.tensor([2, 1, 0, 2, 1, 0])):
        assert torch.allclose(h["weight"], hessian_diagonal_of_ce(model, x, labels) / 6, rtol=1e-10)
    fisher = torch.stack([torch.autograd.grad(F.cross_entropy(model(x[i:i + 1]), torch.zeros(1, dtype=torch.long)),
                                              model.weight)[0] ** 2 for i in range(6)]).mean(0)
    assert not torch.allclose(fisher, h["weight"], rtol=0.1)  # the empirical Fisher at labels 0 is not it


def test_gauss_newton_of_a_sequence_is_estimated_without_bias_from_drawn_labels(one_thread):
    # 4 positions over 3 classes (a language model's example): one label per position drawn from p
    torch.manual_seed(1)
    model = nn.Linear(5, 3).double()
    x = torch.randn(1, 4, 5, dtype=torch.float64)
    exact, _ = gauss_newton_diagonal({"weight": model.weight}, [(x[0, i:i + 1],) for i in range(4)],
                                     lambda e: model(e[0]))
    drawn, passes = gauss_newton_diagonal({"weight": model.weight}, [(x,)] * 1500, lambda e: model(e[0]),
                                          generator=torch.Generator().manual_seed(0))
    assert passes == 1500
    assert torch.allclose(drawn["weight"], 4 * exact["weight"], rtol=0.15)  # summed over the 4 positions


def test_predictions_reads_the_logits_a_loss_computes():
    model = nn.Linear(2, 3)
    x = torch.randn(1, 2)
    logits_of = predictions(model, lambda e: F.cross_entropy(model(e[0]), e[1]))
    assert torch.equal(logits_of((x, torch.tensor([0]))), model(x))


def test_obd_scores_with_the_gauss_newton_diagonal_by_default(one_thread):
    cls, defaults = registry.METHODS.get("obd")
    assert cls(**defaults).curvature == "gauss-newton"
    assert registry.METHODS.get("obd-fisher")[1]["curvature"] == "fisher"
    result = run_trial(TrialSpec("tiny-mlp", "obd", 0.9, 0, "quick", {"calibration_examples": 100}))
    assert result["status"] == "completed", result["reason"]
    assert result["metrics"]["calibration/examples"] == 100
    assert result["metrics"]["cost/train_steps_rel"] == 1.0
