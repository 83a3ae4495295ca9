"""The reparametrize-train-fold helper that STR, L0, sparse VD and movement pruning share."""
import torch
from torch import nn

from sparsebench.library.reparametrize import fold, owner, reparametrize
from sparsebench.running.trial import make_context, make_task


class Halve(nn.Module):
    """f(W) = W/2 with entries below 0.05 zeroed in training, W/4 with those below 0.1 zeroed in eval."""

    def forward(self, w):
        cut, scale = (0.05, 0.5) if self.training else (0.1, 0.25)
        return w * scale * (w.abs() >= cut)


def context():
    task = make_task("tiny-mlp", "quick")
    splits = task.load(None)
    torch.manual_seed(0)
    return make_context(task, splits.train, splits.val, 0.5, torch.Generator().manual_seed(0))


def test_every_prunable_weight_computes_through_its_function_and_keeps_its_parameter():
    ctx = context()
    before = {n: p.detach().clone() for n, p in ctx.masks.params.items()}
    functions = reparametrize(ctx, lambda name, w: Halve())
    assert list(functions) == list(ctx.masks.params)
    for name, w in before.items():
        module, tensor = owner(ctx.model, name)
        assert torch.equal(getattr(module, tensor), w * 0.5 * (w.abs() >= 0.05))
        assert module.parametrizations[tensor].original is ctx.masks.params[name]  # what the optimizer trains


def test_fold_at_test_time_leaves_the_eval_value_and_its_zeros_as_masks():
    ctx = context()
    before = {n: p.detach().clone() for n, p in ctx.masks.params.items()}
    fold(ctx, reparametrize(ctx, lambda name, w: Halve()), test_time=True)
    assert ctx.model.training
    for name, w in before.items():
        folded = w * 0.25 * (w.abs() >= 0.1)
        module, tensor = owner(ctx.model, name)
        assert not hasattr(module, "parametrizations") and torch.equal(getattr(module, tensor), folded)
        assert torch.equal(ctx.masks[name].bool(), folded != 0)


def test_fold_with_masks_restores_the_weights_and_applies_the_masks():
    ctx = context()
    before = {n: p.detach().clone() for n, p in ctx.masks.params.items()}
    chosen = {n: torch.rand_like(w) > 0.5 for n, w in before.items()}
    fold(ctx, reparametrize(ctx, lambda name, w: Halve()), masks=chosen)
    for name, w in before.items():
        assert torch.equal(ctx.masks.params[name].detach(), w * chosen[name])
