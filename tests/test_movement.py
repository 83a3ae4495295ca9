"""Movement pruning (Sanh et al. 2020), hard and soft, on hand-built cases and the tiny task."""
import inspect

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from sparsebench.core import registry
from sparsebench.running.checkpoints import CheckpointStore
from sparsebench.running.trial import TrialSpec, make_context, make_method, run_trial

pytestmark = pytest.mark.usefixtures("one_thread")

movement = inspect.getmodule(registry.METHODS.get("movement")[0])


def test_straight_through_gradient_of_scores_is_weight_times_masked_weight_gradient():
    layer = nn.Linear(3, 2, bias=False)
    w = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.25, -1.0]])
    with torch.no_grad():
        layer.weight.copy_(w)
    scores = torch.zeros(2, 3, requires_grad=True)
    masked = movement.Masked(scores)
    masked.mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    parametrize.register_parametrization(layer, "weight", masked)
    x, g = torch.tensor([[2.0, -1.0, 4.0]]), torch.tensor([[1.0, -3.0]])
    (layer(x) * g).sum().backward()  # L = g · (W' x): dL/dW' = gᵀ x
    dl_dw_prime = g.T @ x
    assert torch.equal(layer.weight, w * masked.mask)                     # the value: W ⊙ M exactly
    assert torch.equal(scores.grad, dl_dw_prime * w)                      # dL/dS = dL/dW' ⊙ W, masked ones too
    assert torch.equal(layer.parametrizations.weight.original.grad, dl_dw_prime * masked.mask)


def test_top_v_keeps_the_highest_scores_in_each_layer_or_globally():
    g = torch.Generator().manual_seed(0)
    scores = {"a": torch.randn(10, 7, generator=g), "b": torch.randn(5, 3, generator=g)}
    local = make_method("movement", {}).binarize(scores, 0.3)
    for name, s in scores.items():
        assert int(local[name].sum()) == round(0.3 * s.numel())
        assert s[local[name]].min() > s[~local[name]].max()
    glob = make_method("movement", {"rule": "global"}).binarize(scores, 0.3)
    assert sum(int(m.sum()) for m in glob.values()) == round(0.3 * 85)
    kept = torch.cat([s[glob[n]] for n, s in scores.items()])
    dropped = torch.cat([s[~glob[n]] for n, s in scores.items()])
    assert kept.min() > dropped.max()


def test_the_remaining_fraction_follows_the_cubic_with_warm_ups():
    m = make_method("movement", {})
    v = [m.value(t, 10, 90, 0.9) for t in (0, 10, 50, 90, 100)]
    assert v[:2] == [1.0, 1.0] and v[3:] == [pytest.approx(0.1)] * 2
    assert v[2] == pytest.approx(0.1 + 0.9 * 0.5 ** 3)
    soft = make_method("soft-movement", {})
    assert [soft.value(t, 10, 90, 0.9) for t in (10, 50, 90)] == pytest.approx([0.0, 0.1 - 0.1 * 0.5 ** 3, 0.1])


def test_soft_threshold_binarizer_and_its_floor():
    soft = make_method("soft-movement", {})
    s = torch.linspace(-6, 6, 1000)
    mask = soft.binarize({"w": s}, 0.1)["w"]
    assert torch.equal(mask, torch.sigmoid(s) > 0.1)
    low = soft.binarize({"w": s - 100}, 0.1)["w"]  # all below τ: the authors' floor, int(0.5 %) + 1 kept
    assert int(low.sum()) == 6 and bool(low[-6:].all())


def test_soft_penalty_is_the_gradient_of_the_l1_of_sigmoid_scores():
    soft = make_method("soft-movement", {"final_lambda": 400.0})
    g = torch.Generator().manual_seed(1)
    scores = {"a": torch.randn(4, 5, generator=g).requires_grad_(), "b": torch.randn(3, generator=g).requires_grad_()}
    t0, t1, t = 10, 90, 50
    soft.penalize(scores, t, t0, t1, 0.9)
    copies = {n: s.detach().clone().requires_grad_() for n, s in scores.items()}
    lam_t = 400.0 * soft.value(t, t0, t1, 0.9) / 0.1
    (lam_t * sum(torch.sigmoid(c).sum() / c.numel() for c in copies.values()) / len(copies)).backward()
    for n in scores:
        assert torch.allclose(scores[n].grad, copies[n].grad, rtol=1e-6, atol=0)
    assert movement.lambda_for(0.868) == pytest.approx(100.0) and movement.lambda_for(0.999) == pytest.approx(1000.0)
    assert movement.lambda_for(0.8) < movement.lambda_for(0.9) < movement.lambda_for(0.95)


@pytest.mark.parametrize("name", ["movement", "soft-movement", "movement-during", "soft-movement-during"])
def test_run_bakes_the_last_mask_into_real_zeros(name):
    task_cls, _ = registry.TASKS.get("tiny-mlp")
    task = task_cls("quick")
    splits = task.load(None)
    torch.manual_seed(0)
    ctx = make_context(task, splits.train, splits.val, 0.8, torch.Generator().manual_seed(0))
    initial = {n: p.detach().clone() for n, p in ctx.masks.params.items()}
    seen = []
    method = make_method(name, {"final_lambda": 30.0} if "soft" in name else {})
    ctx.train = (lambda train: lambda *a, **k: (seen.append(k.get("from_step", 0)), train(*a, **k)))(ctx.train)
    method.run(ctx)
    if name.endswith("-during"):  # the task's training alone, its scores learned from the initial weights
        assert ctx.step == ctx.total_steps and seen == [0] and method.when == "during"
    else:  # the dense training, then one fine-tuning of the same length
        assert ctx.step == 2 * ctx.total_steps and len(seen) == 2 and method.when == "after"
    assert any(not torch.equal(p, initial[n]) for n, p in ctx.masks.params.items())
    assert not any(parametrize.is_parametrized(m) for m in ctx.model.modules())
    assert ctx.masks.held()
    for n, p in ctx.masks.params.items():
        assert torch.equal(p != 0, ctx.masks[n].bool())  # every kept weight is nonzero, every other zero
        if "soft" not in name:
            assert int((p != 0).sum()) == round(0.2 * p.numel())  # Top_v in each layer: the target exactly


def test_movement_reuses_the_shared_dense_training(tmp_path):
    store = CheckpointStore(None, "tiny-mlp", tmp_path)
    assert run_trial(TrialSpec("tiny-mlp", "magnitude-oneshot", 0.8, 0), checkpoints=store)["status"] == "completed"
    assert (store.hits, store.misses) == (0, 1)
    result = run_trial(TrialSpec("tiny-mlp", "movement", 0.8, 0), checkpoints=store)
    assert result["status"] == "completed" and abs(result["metrics"]["final/sparsity"] - 0.8) < 1e-3
    assert store.hits == 1  # the dense model magnitude-oneshot trained


def test_unknown_start_is_refused():
    with pytest.raises(ValueError, match="start"):
        make_method("movement", {"start": "pretrained"})
