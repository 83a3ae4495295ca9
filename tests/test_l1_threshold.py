"""L1 regularization, then magnitude thresholding (Han et al. 2015), on a hand-built layer and the tiny task."""
import pytest
import torch
from torch import nn

from sparsebench.core import registry
from sparsebench.core.masks import Masks
from sparsebench.running.trial import make_context, make_method

pytestmark = pytest.mark.usefixtures("one_thread")


class ToyContext:
    """A context around one hand-set linear layer: ``train`` sets a known gradient and runs the callback."""

    def __init__(self, w, grad):
        self.model = nn.Linear(w.shape[1], w.shape[0], bias=False)
        with torch.no_grad():
            self.model.weight.copy_(w)
        self.masks, self.sparsity, self.grad = Masks(self.model, ["weight"]), 0.5, grad
        self.total_steps, self.final_lr_factor, self.calls, self.seen = 10, 1.0, [], None

    def train(self, steps=None, every=None, callback=None, **kwargs):
        self.calls.append({"steps": steps, "callback": callback is not None, **kwargs})
        if callback is not None:
            self.model.weight.grad = self.grad.clone()
            callback(0)
            self.seen = self.model.weight.grad.clone()


W = torch.tensor([[0.3, -0.05, 0.0, 1.2], [-0.7, 0.02, -0.4, 0.1]])
G = torch.tensor([[0.1, 0.2, -0.3, 0.0], [0.5, -0.5, 0.25, 1.0]])


def test_the_l1_subgradient_is_added_to_the_weights_gradient_then_the_smallest_are_pruned():
    ctx = ToyContext(W, G)
    make_method("l1-threshold", {"l1": 0.01}).run(ctx)
    assert torch.equal(ctx.seen, G + 0.01 * torch.sign(W))  # λ·sign(W); zero where W is zero
    assert ctx.seen[0, 2] == G[0, 2]
    kept = ctx.masks["weight"].bool()
    assert torch.equal(kept, W.abs() >= 0.3)  # the 4 largest |W| of 8: the target exactly
    assert torch.equal(ctx.model.weight != 0, kept)
    # lr-rewind retraining of one training, without the penalty (Han et al.'s retraining)
    assert ctx.calls[1] == {"steps": 10, "callback": False, "from_step": 0, "lr_scale": 1.0}


def test_without_penalty_it_trains_as_the_shared_dense_training():
    ctx = ToyContext(W, G)
    make_method("l1-threshold", {"l1": 0.0, "retrain": "none"}).run(ctx)
    assert ctx.calls == [{"steps": None, "callback": False}]  # no callback: the cached dense training


def test_l1_drives_the_prunable_weights_towards_zero_on_the_tiny_task():
    task_cls, _ = registry.TASKS.get("tiny-mlp")
    task = task_cls("quick")
    splits = task.load(None)
    l1 = {}
    for lam in (0.0, 1e-2):
        torch.manual_seed(0)
        ctx = make_context(task, splits.train, splits.val, 0.9, torch.Generator().manual_seed(0))
        make_method("l1-threshold", {"l1": lam, "retrain": "none"}).run(ctx)
        l1[lam] = sum(p.abs().sum().item() for p in ctx.masks.params.values())
        assert ctx.masks.density() == pytest.approx(0.1, abs=1e-3)
    assert l1[1e-2] < 0.8 * l1[0.0]  # the kept weights too: the penalty shrinks all of them
