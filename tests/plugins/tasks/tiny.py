"""A tiny classification task made in the tests: Gaussian blobs, a small MLP, a few steps.

Its test split logs every access in ``ACCESS_LOG`` so tests can check that only the harness,
after the method returned, reads it.
"""
import torch
from torch import nn

from sparsebench import Recipe, Splits, Task, TensorSplit, register_task

ACCESS_LOG: list[str] = []


class LoggedSplit(TensorSplit):
    def batches(self, *args, **kwargs):
        ACCESS_LOG.append("test")
        return super().batches(*args, **kwargs)


def blobs(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(4, 16, generator=torch.Generator().manual_seed(0)) * 2
    y = torch.randint(0, 4, (n,), generator=g)
    return centers[y] + torch.randn(n, 16, generator=g), y


@register_task("tiny-mlp")
class TinyMLP(Task):
    family = "mlp"
    dataset = "gaussian blobs (made in the tests)"
    paper = "—"
    profiles = {
        "quick": Recipe(batch_size=32, lr=0.05, epochs=2, momentum=0.9, weight_decay=5e-4),
        "adam": Recipe(batch_size=32, lr=1e-2, epochs=2, optimizer="adamw", weight_decay=0.1),
        # the training forward compiled; and a recipe of its own version (only its trials' ids change)
        "compiled": Recipe(batch_size=32, lr=0.05, epochs=2, momentum=0.9, weight_decay=5e-4, compile=True,
                           decay_vectors=False, version="2"),
    }

    def model(self):
        return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))

    def load(self, data_root):
        (x, y), (xv, yv), (xt, yt) = blobs(512, 1), blobs(128, 2), blobs(256, 3)
        return Splits(TensorSplit(x, y), TensorSplit(xv, yv), LoggedSplit(xt, yt))


class TinyAttentionNet(nn.Module):
    """The blobs as 4 tokens of 4 features, one transformer block, mean-pooled: attention heads to prune."""

    def __init__(self):
        super().__init__()
        from sparsebench.data.text import TransformerBlock

        self.embed, self.block, self.head = nn.Linear(4, 16), TransformerBlock(16, 4, 32), nn.Linear(16, 4)

    def forward(self, x):
        h = self.embed(x.view(len(x), 4, 4))
        return self.head(self.block(h, torch.ones(4, 4, dtype=torch.bool)).mean(1))


@register_task("tiny-transformer")
class TinyTransformer(TinyMLP):
    family = "transformer"
    profiles = {"quick": Recipe(batch_size=32, lr=1e-2, epochs=2, optimizer="adamw", weight_decay=0.01)}

    def model(self):
        return TinyAttentionNet()

    def prunable(self, model):
        from sparsebench.data.text import transformer_prunable

        return transformer_prunable(model)
