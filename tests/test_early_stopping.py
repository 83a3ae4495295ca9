"""Early stopping as Frankle & Carbin measure it (library/early_stopping.py) and the lottery tickets judged
there (methods/lottery_early_stop.py), checked on the tiny task against a re-typing of the computation:
the same training replayed with its weights kept every few steps, each scored by cross-entropy by hand."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from sparsebench.core import registry
from sparsebench.library.early_stopping import EarlyStopping
from sparsebench.running.trial import make_context, make_method

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: deterministic


def make_ctx(sparsity=0.0):
    task_cls, _ = registry.TASKS.get("tiny-mlp")
    task = task_cls("quick")
    task.recipe = dataclasses.replace(task.recipe, label_smoothing=0.0)
    splits = task.load(None)
    torch.manual_seed(0)
    return make_context(task, splits.train, splits.val, sparsity, torch.Generator().manual_seed(0)), splits.val


def by_hand(ctx, val, every):
    """The training replayed: weights after every ``every`` steps (and at the end), each scored by
    the mean cross-entropy over the validation split."""
    kept = []
    ctx.train(every=every, callback=lambda i: kept.append(
        (i, {k: v.clone() for k, v in ctx.model.state_dict().items()})))
    kept.append((ctx.total_steps, {k: v.clone() for k, v in ctx.model.state_dict().items()}))
    x, y = val.inputs, val.targets
    model = ctx.model
    losses = []
    with torch.no_grad():
        for i, weights in kept:
            model.load_state_dict(weights)
            losses.append((F.cross_entropy(model(x), y).item(), i, weights))
    return losses


def test_the_early_stopping_iteration_is_the_minimum_of_validation_loss_and_its_weights_are_restored():
    every = 4
    ctx, _ = make_ctx()
    stop = EarlyStopping(ctx, every)
    iteration = stop.train()
    final = {k: v.clone() for k, v in ctx.model.state_dict().items()}
    stop.restore()

    again, val = make_ctx()
    losses = by_hand(again, val, every)
    assert [i for _, i, _ in losses] == list(range(0, again.total_steps + 1, every))
    best_loss, best_step, best_weights = min(losses, key=lambda t: t[0])
    assert iteration == best_step
    assert stop.best_loss == pytest.approx(best_loss, rel=1e-5)
    for name, tensor in ctx.model.state_dict().items():
        torch.testing.assert_close(tensor, best_weights[name])
    assert best_step == again.total_steps or any(not torch.equal(final[n], best_weights[n]) for n in final)
    assert ctx.model.training  # validation left the model as training found it


def test_a_tracked_training_is_the_untracked_training():
    tracked, _ = make_ctx()
    EarlyStopping(tracked, 3).train()
    plain, _ = make_ctx()
    plain.train()
    for (name, a), b in zip(tracked.model.state_dict().items(), plain.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_early_stopped_tickets_have_the_lottery_masks_and_record_both_iterations():
    masks = {}
    for name in ("lottery", "lottery-es", "lottery-reinit-es"):
        ctx, _ = make_ctx(0.6)
        method = make_method(name, {} if name == "lottery" else {"every": 4})
        method.run(ctx)
        masks[name] = ctx.masks.state()
        if name != "lottery":
            metrics = method.metrics
            for key in ("early_stop/iteration", "early_stop/dense_iteration"):
                assert 0 <= metrics[key] <= ctx.total_steps and metrics[key] % 4 == 0
            assert metrics["early_stop/val_loss"] > 0
    for name in ("lottery-es", "lottery-reinit-es"):
        for layer, mask in masks["lottery"].items():
            assert torch.equal(mask, masks[name][layer]), (name, layer)


@pytest.mark.parametrize("name, overrides", [("lottery-es", {"every": 0}), ("lottery-es", {"rewind_fraction": 0.1}),
                                             ("lottery-reinit-es", {"rewind": "lr"})])
def test_bad_settings_are_refused(name, overrides):
    with pytest.raises(ValueError):
        make_method(name, overrides).run(make_ctx()[0])
