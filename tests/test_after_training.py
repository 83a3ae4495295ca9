"""Pruning after and during training: lottery tickets (IMP with rewinding), learning-rate
rewinding, gradual magnitude pruning and STR, checked on the tiny task made in the tests."""
import dataclasses
import inspect
import math

import pytest
import torch

from sparsebench.core import registry

from sparsebench.library import scores
from sparsebench.core.method import Context
from sparsebench.core.train import lr_factor
from sparsebench.running.trial import TrialSpec, make_context, make_method, run_trial


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: fastest, deterministic


def method_module(name):
    return inspect.getmodule(registry.METHODS.get(name)[0])


class Spy(Context):
    """A Context that records, for every ``train`` call, the weights and masks it starts from and
    ends with, its arguments, and the learning rate of each of its steps."""

    def __init__(self, *args):
        super().__init__(*args)
        self.calls, self.snapshots = [], []

    def weights(self):
        return {n: p.detach().clone() for n, p in self.model.named_parameters()}

    def snapshot(self):
        snap = super().snapshot()
        self.snapshots.append((self.step, {k: v.clone() for k, v in snap.items()}))
        return snap

    def train(self, epochs=None, steps=None, every=None, callback=None, lr_scale=1.0, from_step=0, lr_schedule=True):
        call = {"from_step": from_step, "start_step": self.step, "start": self.weights(),
                "masks": self.masks.state(), "lrs": [], "densities": []}

        def spy(i):
            if callback is not None and every and i % every == 0:
                callback(i)
                call["densities"].append((i, {n: int(m.sum()) for n, m in self.masks.masks.items()}))
            call["lrs"].append(self._trainer.optimizer.param_groups[0]["lr"])

        super().train(epochs, steps, every=1, callback=spy, lr_scale=lr_scale, from_step=from_step,
                      lr_schedule=lr_schedule)
        call["end"], call["steps"] = self.weights(), self.step - call["start_step"]
        self.calls.append(call)


def make_ctx(sparsity, schedule="constant"):
    task_cls, _ = registry.TASKS.get("tiny-mlp")
    task = task_cls("quick")
    task.recipe = dataclasses.replace(task.recipe, schedule=schedule)
    splits = task.load(None)
    torch.manual_seed(0)
    ctx = make_context(task, splits.train, splits.val, sparsity, torch.Generator().manual_seed(0))
    return Spy(ctx.model, ctx.masks, sparsity, ctx._trainer)


def kept(masks_state):
    return {n: int(m.sum()) for n, m in masks_state.items()}


# ---------------------------------------------------------------- lottery tickets

def test_number_of_rounds():
    num_rounds = method_module("lottery").num_rounds
    assert [num_rounds(s, 0.2) for s in (0.0, 0.2, 0.488, 0.5, 0.8, 0.986)] == [0, 1, 3, 4, 8, 20]
    assert num_rounds(1 - 0.8 ** 12, 0.2) == 12 and num_rounds(0.9, 0.5) == 4


@pytest.mark.parametrize("name, overrides", [("lottery", {}), ("lottery-rewind", {"rewind_steps": 5}),
                                             ("lottery-rewind", {})])
def test_rewinding_restores_the_snapshot_for_surviving_weights(name, overrides):
    ctx = make_ctx(0.5)
    initial = {k: v.clone() for k, v in ctx.model.state_dict().items()}
    method = make_method(name, overrides)
    method.run(ctx)
    k = method.rewind_step(ctx.total_steps)
    assert k == overrides.get("rewind_steps", round(method.rewind_fraction * ctx.total_steps))
    assert len(ctx.snapshots) == 1
    step, snap = ctx.snapshots[0]
    assert step == k                            # θk: the weights after k optimizer steps
    if k == 0:
        assert all(torch.equal(snap[n], initial[n]) for n in initial)
    for call in ctx.calls[1:]:
        assert call["from_step"] == k and call["steps"] == ctx.total_steps - k
        for n, w in call["start"].items():
            if n in ctx.masks.masks:
                mask = call["masks"][n]
                assert torch.equal(w[mask], snap[n][mask])  # survivors: exactly θk
                assert int((w[~mask] != 0).sum()) == 0       # pruned: zero
            else:
                assert torch.equal(w, snap[n])               # biases rewound too


@pytest.mark.parametrize("name", ["lottery", "lottery-rewind", "lr-rewind"])
@pytest.mark.parametrize("sparsity", [0.8, 0.5])
def test_each_round_prunes_the_stated_fraction_and_the_last_hits_the_target(name, sparsity):
    ctx = make_ctx(sparsity)
    method = make_method(name)
    method.run(ctx)
    rounds = method_module(name).num_rounds(sparsity, method.rate)
    assert len(ctx.calls) == rounds + 1          # one training, then one per round
    counts = [kept(c["masks"]) for c in ctx.calls[1:]] + [kept(ctx.masks.state())]
    total = sum(m.numel() for m in ctx.masks.masks.values())
    names = list(ctx.masks)
    before = {n: ctx.masks[n].numel() for n in names}
    for r, after in enumerate(counts[:rounds], start=1):
        if r == rounds:
            assert sum(after.values()) == round((1 - sparsity) * total)
        elif method.rule == "global":
            assert sum(after.values()) == round(0.8 * sum(before.values()))
        else:  # layer-wise, the output layer at half the rate
            assert after == {n: round((1 - (0.1 if n == names[-1] else 0.2)) * before[n]) for n in names}
        before = after
    zeros = sum(int((p == 0).sum()) for p in ctx.masks.params.values())
    assert zeros == total - round((1 - sparsity) * total)


def test_lr_rewinding_keeps_the_final_weights_and_replays_the_schedule():
    ctx = make_ctx(0.5, schedule="cosine")
    make_method("lr-rewind").run(ctx)
    first = ctx.calls[0]
    assert first["lrs"] == pytest.approx([0.05 * lr_factor(ctx._trainer.recipe, i, ctx.total_steps)
                                          for i in range(ctx.total_steps)])
    for previous, call in zip(ctx.calls, ctx.calls[1:]):
        mask = call["masks"]
        for n, w in call["start"].items():
            expected = previous["end"][n] * mask[n] if n in mask else previous["end"][n]
            assert torch.equal(w, expected)       # the final weights, pruned
        assert call["lrs"] == first["lrs"]        # the whole schedule replayed


def test_lr_rewinding_to_step_k_replays_the_schedule_from_k():
    ctx = make_ctx(0.5, schedule="cosine")
    method = make_method("lr-rewind", {"rewind_steps": 8})
    method.run(ctx)
    assert len(ctx.snapshots) == 0  # weights are never rewound
    for call in ctx.calls[1:]:
        assert call["from_step"] == 8 and call["lrs"] == ctx.calls[0]["lrs"][8:]


def test_lottery_cost_is_rounds_trainings():
    sparsity = 0.8
    dense = run_trial(TrialSpec("tiny-mlp", "dense", 0.0))["metrics"]
    result = run_trial(TrialSpec("tiny-mlp", "lottery", sparsity))
    assert result["status"] == "completed", result["reason"]
    m = result["metrics"]
    rounds = method_module("lottery").num_rounds(sparsity, 0.2)
    assert m["cost/train_steps"] == (rounds + 1) * dense["cost/train_steps"]
    assert m["cost/train_flops_dense"] == pytest.approx((rounds + 1) * dense["cost/train_flops"])
    # the sparse trainings cost less: between one training and rounds + 1
    assert 1 + rounds * (1 - sparsity) < m["cost/train_cost_rel"] < rounds + 1
    assert dense["cost/train_cost_rel"] == pytest.approx(1.0)


# ---------------------------------------------------------------- gradual magnitude pruning

def test_cubic_schedule():
    cubic = method_module("gmp").cubic_sparsity
    t0, n, dt = 1000, 10, 100
    assert cubic(0, 0.0, 0.9, t0, n, dt) == 0.0 and cubic(t0, 0.0, 0.9, t0, n, dt) == 0.0
    assert cubic(t0 + n * dt, 0.0, 0.9, t0, n, dt) == pytest.approx(0.9)
    assert cubic(10 ** 6, 0.0, 0.9, t0, n, dt) == pytest.approx(0.9)
    assert cubic(t0 + 5 * dt, 0.0, 0.9, t0, n, dt) == pytest.approx(0.9 * (1 - 0.5 ** 3))
    assert cubic(t0 + 5 * dt, 0.2, 0.9, t0, n, dt) == pytest.approx(0.9 - 0.7 * 0.5 ** 3)
    method = make_method("gmp")
    assert method.schedule(50_000) == (10_000, 300, 100)  # from 20 % to 80 % of training, every 100 steps
    t0, n, dt = method.schedule(32)
    assert dt >= 1 and t0 + n * dt < 32


@pytest.mark.parametrize("name", ["gmp", "gmp-global"])
def test_gmp_hits_the_scheduled_sparsity_at_the_scheduled_steps(name):
    ctx = make_ctx(0.9)
    method = make_method(name)
    method.run(ctx)
    t0, n, dt = method.schedule(ctx.total_steps)
    cubic = method_module(name).cubic_sparsity
    numel = {k: m.numel() for k, m in ctx.masks.masks.items()}
    pruned_at = [i for i, _ in ctx.calls[0]["densities"]]
    assert pruned_at == [i for i in range(0, ctx.total_steps, dt)]
    for i, counts in ctx.calls[0]["densities"]:
        s_t = cubic(i, 0.0, 0.9, t0, n, dt) if i <= t0 + n * dt else 0.9
        if method.rule == "uniform":  # every layer at s_t
            assert counts == {k: round((1 - s_t) * v) for k, v in numel.items()}
        else:
            assert sum(counts.values()) == round((1 - s_t) * sum(numel.values()))
    assert len(ctx.calls) == 1 and ctx.calls[0]["steps"] == ctx.total_steps  # one training, to the end
    zeros = sum(int((p == 0).sum()) for p in ctx.masks.params.values())
    assert zeros == sum(numel.values()) - round(0.1 * sum(numel.values()))


def test_magnitude_methods_share_one_selection_path():
    for name in ("magnitude", "lottery", "gmp"):
        module = method_module(name)
        assert module.magnitude_scores is scores.magnitude_scores
    ctx = make_ctx(0.5)
    seen = []
    original = ctx.masks.prune
    ctx.masks.prune = lambda *a, **k: (seen.append(a[1]), original(*a, **k))
    make_method("lottery", {"rule": "global"}).run(ctx)
    assert len(seen) == method_module("lottery").num_rounds(0.5, 0.2)


# ---------------------------------------------------------------- STR

@pytest.mark.parametrize("lam", [3e-2, 1e-1])
def test_str_zeros_are_real_and_masks_agree(lam):
    ctx = make_ctx(0.9)
    params = dict(ctx.masks.params)
    names = [n for n, _ in ctx.model.named_parameters()]
    method = make_method("str", {"weight_decay": lam, "s_init": -3.0})
    thresholds = []
    original = Spy.train

    def train(self, *args, **kwargs):
        original(self, *args, **kwargs)
        thresholds.append(method.learned_thresholds(self.model))

    ctx.train = train.__get__(ctx)
    method.run(ctx)
    # the thresholds were trained (the optimizer saw them) and then removed with the parametrization
    assert thresholds and all(abs(g - 1 / (1 + math.exp(3.0))) > 1e-6 for g in thresholds[0].values())
    assert sorted(n for n, _ in ctx.model.named_parameters()) == sorted(names)
    assert all(ctx.masks.params[n] is params[n] is ctx.model.get_parameter(n) for n in params)
    zeros = 0
    for n, p in ctx.masks.params.items():
        assert torch.equal(p == 0, ctx.masks[n] == 0)
        zeros += int((p == 0).sum())
    assert zeros > 0


def test_str_counted_sparsity_is_the_zeros_in_the_weights():
    results = [run_trial(TrialSpec("tiny-mlp", "str", 0.9, hparams={"weight_decay": lam, "s_init": -3.0}))
               for lam in (1e-2, 1e-1)]
    for r in results:
        assert r["status"] == "completed", r["reason"]
        m = r["metrics"]
        zeros = round(m["final/sparsity"] * m["params/prunable"])
        assert m["final/sparsity"] == pytest.approx(zeros / m["params/prunable"], abs=1e-12)
        assert m["params/nonzero"] == m["params/total"] - zeros
        assert 1 - m["final/sparsity"] == pytest.approx(
            sum(layer["density"] * layer["params"] for layer in r["layers"].values()) / m["params/prunable"])
    # λ is the knob: more decay, higher learned sparsity
    assert results[1]["metrics"]["final/sparsity"] > results[0]["metrics"]["final/sparsity"] > 0


def test_str_lambda_table_is_monotone():
    lambda_for = method_module("str").lambda_for
    values = [lambda_for(s) for s in (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)]
    assert values == sorted(values)


# ---------------------------------------------------------------- one-shot magnitude pruning

def test_magnitude_retrains_with_the_whole_schedule_replayed_by_default():
    """Renda et al. 2020's learning-rate rewinding over one training (version 1 fine-tuned for half
    a training at a tenth of the rate)."""
    ctx = make_ctx(0.8, schedule="cosine")
    make_method("magnitude").run(ctx)
    dense, retrain = ctx.calls
    assert retrain["steps"] == dense["steps"] == ctx.total_steps
    assert retrain["lrs"] == pytest.approx(dense["lrs"])  # the recipe's rate and schedule again
    for n, w in retrain["start"].items():  # from the trained weights, pruned
        mask = retrain["masks"]
        assert torch.equal(w, dense["end"][n] * mask[n] if n in mask else dense["end"][n])


def test_magnitude_finetune_holds_the_recipes_final_learning_rate():
    ctx = make_ctx(0.8, schedule="cosine")
    make_method("magnitude-finetune").run(ctx)
    final = 0.05 * lr_factor(ctx._trainer.recipe, ctx.total_steps - 1, ctx.total_steps)
    assert ctx.calls[1]["lrs"] == pytest.approx([final] * ctx.total_steps)
    short = make_ctx(0.8, schedule="cosine")
    make_method("magnitude", {"retrain_fraction": 0.25}).run(short)  # the schedule's last quarter
    t = round(0.25 * short.total_steps)
    assert short.calls[1]["lrs"] == pytest.approx(short.calls[0]["lrs"][-t:])


@pytest.mark.parametrize("overrides, message", [({"retrain": "rewind"}, "unknown retrain"),
                                                 ({"retrain_fraction": 0}, "retrain_fraction")])
def test_magnitude_refuses_bad_retraining_settings(overrides, message):
    with pytest.raises(ValueError, match=message):
        make_method("magnitude", overrides)
