"""``train/loss`` is the epoch's mean mini-batch loss, not the last batch's (issue 37)."""
import torch

from sparsebench.core import registry
from sparsebench.running.trial import make_context


def test_train_loss_is_the_epochs_mean_of_its_batches():
    task = registry.TASKS.get("tiny-mlp")[0]("quick")
    splits = task.load(None)
    torch.manual_seed(0)
    logged, seen = [], []
    trainer = make_context(task, splits.train, splits.val, 0.0, torch.Generator().manual_seed(0),
                           lambda metrics, epoch: logged.append(metrics["train/loss"]))._trainer
    loss = task.loss
    task.loss = lambda model, batch: seen.append(out := loss(model, batch)) or out  # every step's loss
    trainer.train(2 * trainer.steps_per_epoch)
    per_epoch = [seen[:trainer.steps_per_epoch], seen[trainer.steps_per_epoch:]]
    assert len(logged) == 2 and trainer.steps_per_epoch > 1
    for value, batches in zip(logged, per_epoch):
        mean = sum(b.item() for b in batches) / len(batches)
        assert abs(value - mean) < 1e-9 and abs(value - batches[-1].item()) > 1e-9  # not the last batch's
