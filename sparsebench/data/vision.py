"""Image data shared by vision task plugins: MNIST-format loading and batch augmentation on tensors.

Small image datasets are kept as preloaded, normalized tensors; training augmentation runs on a
whole batch at once with the trial's generator (per-sample PIL transforms are several times
slower than a CNN step on a CPU).
"""
from __future__ import annotations

from functools import lru_cache

import torch
from torchvision.datasets import MNIST

from sparsebench.data import staged_copy, verified_file
from sparsebench.core.task import Splits, TensorSplit

# per-dataset mean and std of the training images' pixels in [0, 1]
MNIST_STATS = {"MNIST": (0.1307, 0.3081), "FashionMNIST": (0.2860, 0.3530)}
VALIDATION = 5000  # the last 5,000 training images of MNIST-format datasets


@lru_cache(maxsize=4)
def load_mnist(root, dataset=MNIST) -> Splits:
    """Train (less validation), validation and test tensors of an MNIST-format dataset
    (``torchvision.datasets.MNIST`` or ``FashionMNIST``), checked against torchvision's MD5s
    and unpacked in the cache."""
    name = dataset.__name__
    files = {fname: verified_file(root, f"{name}/raw/{fname}", md5, [m + fname for m in dataset.mirrors])
             for fname, md5 in dataset.resources}
    folder = staged_copy(files, name, "raw").parent.parent
    train, test = (dataset(str(folder), train=t, download=True) for t in (True, False))
    mean, std = MNIST_STATS[name]

    def tensors(ds):
        return ((ds.data.float() / 255 - mean) / std).unsqueeze(1), ds.targets.long()

    (x, y), (xt, yt) = tensors(train), tensors(test)
    return Splits(TensorSplit(x[:-VALIDATION], y[:-VALIDATION]), TensorSplit(x[-VALIDATION:], y[-VALIDATION:]),
                  TensorSplit(xt, yt))


def normalize(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 images (N, C, H, W) to float, standardized per channel."""
    mean, std = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
    return (images.float() / 255 - mean) / std


def random_crop_flip(x: torch.Tensor, generator: torch.Generator | None = None, padding: int = 4,
                     fill: torch.Tensor | None = None) -> torch.Tensor:
    """Per image: a random crop of the original size from the image padded by ``padding`` pixels
    of ``fill`` (one value per channel, default 0) on each side, then a horizontal flip with
    probability 1/2 — torchvision's ``RandomCrop(size, padding)`` and ``RandomHorizontalFlip()``,
    for a whole batch (N, C, H, W) at once, drawn from ``generator``."""
    n, c, h, w = x.shape
    padded = x.new_zeros(n, c, h + 2 * padding, w + 2 * padding)
    if fill is not None:
        padded += fill.to(x).view(1, c, 1, 1)
    padded[:, :, padding:padding + h, padding:padding + w] = x
    rows = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator) + torch.arange(h)
    cols = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator) + torch.arange(w)
    flip = torch.rand(n, generator=generator) < 0.5
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    return padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]
