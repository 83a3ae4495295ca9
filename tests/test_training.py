"""Masks hold through training: momentum, weight decay, Adam; optimizer state does not leak."""
import math

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from sparsebench.core import registry
from sparsebench.core.train import lr_factor
from sparsebench.core.task import Recipe
from sparsebench.running.trial import make_context


def make_trainer(profile, train_examples=None):
    task_cls, _ = registry.TASKS.get("tiny-mlp")
    task = task_cls(profile)
    splits = task.load(None)
    torch.manual_seed(0)
    train = splits.train.subset(train_examples)
    return make_context(task, train, splits.val, 0.0, torch.Generator().manual_seed(0))._trainer


@pytest.mark.parametrize("profile", ["quick", "adam"])  # SGD+momentum+decay, AdamW+decay
def test_masked_weights_stay_exactly_zero(profile):
    trainer = make_trainer(profile)
    masks = trainer.masks
    masks.prune({n: torch.rand(p.shape) for n, p in masks.params.items()}, 0.9)
    revived = []

    def after_every_step(optimizer, args, kwargs):  # the weights are not re-masked after a step
        revived.append(sum(int((p[masks[n] == 0] != 0).sum()) for n, p in masks.params.items()))

    hook = register_optimizer_step_post_hook(after_every_step)
    try:
        trainer.train(300)
    finally:
        hook.remove()
    assert len(revived) == 300 and not any(revived)
    for name, p in masks.params.items():
        assert int((p == 0).sum()) == int((masks[name] == 0).sum())  # kept weights did train


def test_optimizer_state_of_newly_masked_weights_is_cleared():
    trainer = make_trainer("quick")
    masks = trainer.masks
    seen = {}

    def prune_midway(i):
        if i == 10:
            masks.prune({n: torch.rand(p.shape) for n, p in masks.params.items()}, 0.5)
            for name, p in masks.params.items():
                seen[name] = trainer.optimizer.state[p]["momentum_buffer"][masks[name] == 0].abs().max().item()

    trainer.train(20, every=1, callback=prune_midway)
    assert seen and all(v == 0 for v in seen.values())
    # nothing leaks: regrowing a weight after more training finds no momentum for it
    for name, p in masks.params.items():
        assert trainer.optimizer.state[p]["momentum_buffer"][masks[name] == 0].abs().max().item() == 0


def test_cost_counts_every_step_and_sparse_flops():
    trainer = make_trainer("quick")
    trainer.train(10)
    dense = trainer.cost.flops
    assert trainer.cost.steps == 10 and dense == trainer.cost.flops_dense
    trainer.masks.prune({n: torch.rand(p.shape) for n, p in trainer.masks.params.items()}, 0.75)
    trainer.train(10)
    sparse = trainer.cost.flops - dense
    assert sparse < 0.5 * dense and trainer.cost.steps == 20


def test_one_dense_training_is_what_dense_training_counts_even_with_short_last_batches():
    trainer = make_trainer("quick", train_examples=500)  # 16 batches of 32 per epoch, the last of 20
    assert trainer.steps_per_epoch == 16 and trainer.total_steps == 32
    trainer.train(trainer.total_steps)
    assert trainer.cost.examples == 1000
    assert trainer.cost.flops == pytest.approx(trainer.one_dense_training_flops(), rel=1e-12)


def test_lr_schedules():
    step = Recipe(batch_size=1, lr=1.0, epochs=1, schedule="step", milestones=(0.5, 0.75), gamma=0.1)
    assert [lr_factor(step, s, 100) for s in (0, 49, 50, 80)] == pytest.approx([1, 1, 0.1, 0.01])
    cosine = Recipe(batch_size=1, lr=1.0, epochs=1, schedule="cosine", warmup=0.1)
    assert lr_factor(cosine, 5, 100) == pytest.approx(0.5 * 0.5 * (1 + torch.cos(torch.tensor(0.05 * torch.pi)).item()))
    assert lr_factor(cosine, 100, 100) == pytest.approx(0.0, abs=1e-12)


def test_label_smoothing_changes_the_training_loss_only():
    task_cls, _ = registry.TASKS.get("tiny-mlp")
    task = task_cls("quick")
    model = torch.nn.Linear(2, 3)
    batch = (torch.randn(8, 2), torch.randint(0, 3, (8,)))
    plain = task.loss(model, batch)
    task.recipe = Recipe(batch_size=1, lr=1.0, epochs=1, label_smoothing=0.1)
    smoothed = task.loss(model, batch)
    logp = torch.log_softmax(model(batch[0]), -1)
    expected = 0.9 * plain + 0.1 * (-logp.mean(-1)).mean()  # (1 - eps) CE + eps * uniform CE
    assert smoothed.item() == pytest.approx(expected.item(), rel=1e-6) and smoothed.item() != plain.item()
    with pytest.raises(ValueError, match="label_smoothing"):
        Recipe(batch_size=1, lr=1.0, epochs=1, label_smoothing=1.0)


def test_the_chance_level_is_the_majority_class_or_the_unigram_model():
    from sparsebench.core.task import TensorSplit
    from sparsebench.data.text import LMSplit
    from sparsebench.running.trial import chance_level, make_task

    task = make_task("tiny-mlp", "quick")
    train = TensorSplit(torch.zeros(6, 2), torch.tensor([1, 1, 1, 0, 2, 1]))
    test = TensorSplit(torch.zeros(4, 2), torch.tensor([1, 0, 0, 1]))
    assert chance_level(task, train, test) == 50.0  # always class 1
    lm = make_task("lstm-ptb", "quick")
    tokens = LMSplit(torch.tensor([0, 0, 1, 2]), 2), LMSplit(torch.tensor([0, 1]), 2)
    # add-one counts (3, 2, 2) over 7: perplexity exp(-(log 3/7 + log 2/7) / 2)
    assert abs(chance_level(lm, *tokens) - math.exp(-(math.log(3 / 7) + math.log(2 / 7)) / 2)) < 1e-9


def test_the_last_validation_stands_only_while_nothing_changed():
    trainer = make_trainer("quick", train_examples=500)
    trainer.train(trainer.steps_per_epoch)  # one epoch: validated at its end
    val = trainer.validation()
    trainer.model.eval()
    assert val is not None and val == trainer.task.evaluate(trainer.model, trainer.val_split)
    trainer.masks.apply()  # in place, even when it changes nothing
    assert trainer.validation() is None
    trainer.train(trainer.steps_per_epoch)
    assert trainer.validation() is not None
    trainer.masks.prune({n: torch.rand(p.shape) for n, p in trainer.masks.params.items()}, 0.5)
    assert trainer.validation() is None


def test_decay_vectors_false_decays_weight_matrices_only():
    from sparsebench.core.train import make_optimizer

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    recipe = Recipe(batch_size=1, lr=0.1, epochs=1, weight_decay=0.5, decay_vectors=False)
    groups = make_optimizer(recipe, model.parameters()).param_groups
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert len(decay) == len(list(model.parameters()))
    assert all(decay[id(p)] == (0.5 if p.ndim > 1 else 0.0) for p in model.parameters())
    plain = make_optimizer(Recipe(batch_size=1, lr=0.1, epochs=1, weight_decay=0.5), model.parameters())
    assert [g["weight_decay"] for g in plain.param_groups] == [0.5]


def test_a_compiled_recipe_trains_the_same_model_with_masks_held(one_thread):
    eager, compiled = make_trainer("quick"), make_trainer("compiled")
    for trainer in (eager, compiled):
        torch.manual_seed(1)
        trainer.masks.prune({n: torch.rand(p.shape) for n, p in trainer.masks.params.items()}, 0.9)
    compiled.train(40)
    assert compiled._compiled is not compiled.model and compiled._compiled._orig_mod is compiled.model
    for name, p in compiled.masks.params.items():
        assert not p[compiled.masks[name] == 0].any()
        assert p[compiled.masks[name] == 1].ne(0).all()  # kept weights trained
    compiled.train(5)  # a second training of the same model compiles nothing new
    assert compiled._compiled._orig_mod is compiled.model


def test_a_compiled_recipe_falls_back_to_eager_where_it_cannot_compile(monkeypatch, one_thread):
    from torch._dynamo.exc import BackendCompilerFailed

    class Uncompilable(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self._orig_mod = module

        def forward(self, x):
            raise BackendCompilerFailed(lambda *a: None, RuntimeError("no C++ compiler"), None)

    monkeypatch.setattr(torch, "compile", Uncompilable)
    trainer = make_trainer("compiled")
    with pytest.warns(UserWarning, match="training in eager mode"):
        trainer.train(10)
    assert trainer.cost.steps == 10 and trainer._compiled is trainer.model
