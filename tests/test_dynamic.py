"""Dynamic sparse training (sparsebench.library.dynamic; methods rigl, set, snfs) on the tiny task."""
import math

import pytest
import torch
from torch import nn

from sparsebench.library import dynamic as dst
from sparsebench.core.masks import Masks
from sparsebench.running.trial import TrialSpec, run_trial


def sparse_linear(seed=0, density=0.3):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 10))
    masks = Masks(model, ["0.weight", "2.weight"])
    dst.random_masks(masks, 1 - density, "uniform")
    model(torch.randn(8, 20)).sum().backward()  # dense gradients, as the callback sees them
    return model, masks


def test_drop_and_grow_keeps_counts_zeroes_dropped_and_starts_grown_at_zero():
    model, masks = sparse_linear()
    before = {n: m.bool().clone() for n, m in masks.masks.items()}
    weights = {n: p.detach().clone() for n, p in masks.params.items()}
    grown = dst.drop_and_grow(masks, dst.magnitude(masks), dst.random_scores(masks), 0.3)
    for n, p in masks.params.items():
        after = masks[n].bool()
        assert int(after.sum()) == int(before[n].sum())
        dropped = before[n] & ~after
        assert int(dropped.sum()) == int(grown[n].sum())  # as many grown as dropped (net of regrown)
        assert torch.all(p[~after] == 0)                       # dropped (and never active) weights are zero
        assert grown[n].any() and torch.all(p[grown[n]] == 0)  # new connections start at exactly zero
        assert torch.all(p.grad[grown[n]] == 0)                # and do not move in this step
        kept = before[n] & after
        assert torch.equal(p[kept], weights[n][kept])          # survivors keep their values
        assert not (grown[n] & before[n]).any()


def test_rigl_grows_where_dense_gradient_is_largest():
    model, masks = sparse_linear()
    for n, p in masks.params.items():
        p.grad = torch.rand(p.shape) * 0.01
        inactive = (~masks[n].bool()).flatten().nonzero().flatten()
        p.grad.view(-1)[inactive[:5]] = -10.0  # five inactive connections with a large (negative) gradient
    k = {n: int(0.3 * int(masks[n].sum())) for n in masks}
    assert all(v >= 5 for v in k.values())
    big = {n: p.grad.abs() >= 10 for n, p in masks.params.items()}
    grown = dst.drop_and_grow(masks, dst.magnitude(masks), dst.dense_grad_magnitude(masks), 0.3)
    for n in masks:
        assert torch.all(grown[n][big[n]])  # all five large-|gradient| connections were grown


def test_cosine_drop_fraction():
    assert dst.cosine_fraction(0.3, 0, 100) == pytest.approx(0.3)
    assert dst.cosine_fraction(0.3, 50, 100) == pytest.approx(0.15)
    assert dst.cosine_fraction(0.3, 25, 100) == pytest.approx(0.15 * (1 + math.cos(math.pi / 4)))
    assert dst.cosine_fraction(0.3, 100, 100) == pytest.approx(0.0)
    assert dst.cosine_fraction(0.3, 101, 100) == 0.0


def record_updates(monkeypatch):
    """Wrap drop_and_grow: record step, fraction, counts, and optimizer state at grown positions."""
    calls, real = [], dst.drop_and_grow

    def spy(masks, drop, grow, fraction, grow_counts=None):
        trainer = masks._listeners[0].__self__
        counts = {n: int(m.sum()) for n, m in masks.masks.items()}
        grown = real(masks, drop, grow, fraction, grow_counts)
        state = [v[grown[n]] for n, p in masks.params.items()
                 for v in trainer.optimizer.state.get(p, {}).values()
                 if isinstance(v, torch.Tensor) and v.shape == p.shape]
        calls.append({"step": trainer.step, "fraction": fraction, "before": counts,
                      "after": {n: int(m.sum()) for n, m in masks.masks.items()},
                      "grown": sum(int(g.sum()) for g in grown.values()),
                      "state_at_grown": max((float(s.abs().max()) for s in state if s.numel()), default=0.0)})
        return grown

    monkeypatch.setattr(dst, "drop_and_grow", spy)
    return calls


@pytest.mark.parametrize("profile", ["quick", "adam"])  # SGD with momentum; AdamW
def test_rigl_schedule_counts_and_optimizer_state(monkeypatch, profile):
    torch.set_num_threads(1)
    calls = record_updates(monkeypatch)
    result = run_trial(TrialSpec("tiny-mlp", "rigl", 0.8, profile=profile, hparams={"delta_t": 4}))
    assert result["status"] == "completed", result["reason"]
    t_end = int(0.75 * 32)  # tiny-mlp: 2 epochs x 16 steps
    assert [c["step"] for c in calls] == list(range(0, t_end + 1, 4))  # none after T_end
    for c in calls:
        assert c["fraction"] == pytest.approx(dst.cosine_fraction(0.3, c["step"], t_end))
        assert c["before"] == c["after"] == calls[0]["before"]
        assert c["state_at_grown"] == 0.0  # no momentum leaks into regrown weights
    assert sum(c["grown"] for c in calls[1:]) > 0


def test_set_and_snfs_keep_the_number_of_active_weights(monkeypatch):
    torch.set_num_threads(1)
    calls = record_updates(monkeypatch)
    assert run_trial(TrialSpec("tiny-mlp", "set", 0.8))["status"] == "completed"
    assert [c["step"] for c in calls] == [16]  # the end of the first epoch
    assert calls[0]["before"] == calls[0]["after"] and calls[0]["fraction"] == 0.3
    calls.clear()
    assert run_trial(TrialSpec("tiny-mlp", "snfs", 0.8))["status"] == "completed"
    assert [c["step"] for c in calls] == [16]
    assert sum(calls[0]["before"].values()) == sum(calls[0]["after"].values())  # redistributed, not lost
    assert calls[0]["fraction"] == pytest.approx(0.25) and calls[0]["state_at_grown"] == 0.0


def test_rigl_charges_the_dense_gradient_steps():
    torch.set_num_threads(1)
    rigl = run_trial(TrialSpec("tiny-mlp", "rigl", 0.8, hparams={"delta_t": 4}))["metrics"]
    static = run_trial(TrialSpec("tiny-mlp", "random-erk", 0.8))["metrics"]
    f_dense, f_sparse = rigl["inference/flops_dense"], rigl["inference/flops_sparse"]
    assert static["inference/flops_sparse"] == pytest.approx(f_sparse)
    updates, batch = len(range(0, 24 + 1, 4)), 32
    # Evci et al., App. H: an update step costs 2 f_S + f_D per example instead of 3 f_S
    assert rigl["cost/train_flops"] - static["cost/train_flops"] == pytest.approx(updates * batch * (f_dense - f_sparse))
    assert rigl["cost/train_flops_dense"] == pytest.approx(static["cost/train_flops_dense"])
