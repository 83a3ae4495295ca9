"""LeNet-300-100 on MNIST, the fully connected network of Frankle & Carbin 2019.

Frankle & Carbin 2019, "The Lottery Ticket Hypothesis: Finding Sparse, Trainable Neural
Networks" (ICLR), Figure 2: 784-300-100-10 with ReLU, Adam at learning rate 1.2e-3, batch 60,
50,000 iterations, 5,000 training images held out for validation. Prunable: the three weight
matrices (the paper prunes all of them, the output layer at half the rate in its own
experiments); biases are not pruned. Reference: dense test accuracy about 98 %.
"""
from functools import lru_cache

import torch
from torch import nn
from torchvision.datasets import MNIST

from sparsebench import Recipe, Splits, Task, TensorSplit, register_task
from sparsebench.data import staged_copy, verified_file

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
VALIDATION = 5000


def lenet_300_100() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                         nn.Linear(100, 10))


@lru_cache(maxsize=4)
def load_mnist(root, dataset=MNIST):
    """Train (less validation), validation and test tensors of an MNIST-format dataset, checked
    against torchvision's MD5s and unpacked in the cache."""
    name = dataset.__name__
    files = {fname: verified_file(root, f"{name}/raw/{fname}", md5, [m + fname for m in dataset.mirrors])
             for fname, md5 in dataset.resources}
    folder = staged_copy(files, name, "raw").parent.parent
    train, test = (dataset(str(folder), train=t, download=True) for t in (True, False))

    def tensors(ds):
        return ((ds.data.float() / 255 - MNIST_MEAN) / MNIST_STD).unsqueeze(1), ds.targets.long()

    (x, y), (xt, yt) = tensors(train), tensors(test)
    return Splits(TensorSplit(x[:-VALIDATION], y[:-VALIDATION]), TensorSplit(x[-VALIDATION:], y[-VALIDATION:]),
                  TensorSplit(xt, yt))


@register_task("lenet300-mnist")
class LeNet300MNIST(Task):
    family = "mlp"
    dataset = "MNIST"
    paper = "Frankle & Carbin 2019, The Lottery Ticket Hypothesis (ICLR)"
    profiles = {
        "full": Recipe(batch_size=60, lr=1.2e-3, steps=50_000, optimizer="adam"),
        "quick": Recipe(batch_size=60, lr=1.2e-3, epochs=2, optimizer="adam"),
    }

    def model(self):
        return lenet_300_100()

    def load(self, data_root):
        return load_mnist(data_root)
