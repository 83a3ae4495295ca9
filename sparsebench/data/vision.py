"""Image data shared by vision task plugins: MNIST-format loading and batch augmentation on tensors.

MNIST-format files are read straight from their verified ``.gz`` (decompressed in memory, about
0.4 s a load for MNIST; gzip's CRC checks what is decompressed): nothing is unpacked in the cache.

Small image datasets are kept as preloaded, normalized tensors; training augmentation runs on a
whole batch at once with the trial's generator (per-sample PIL transforms are several times
slower than a CNN step on a CPU).
"""
from __future__ import annotations

import gzip
import zlib
from functools import lru_cache
from pathlib import Path

import torch

from sparsebench.data import DataError, verified_file
from sparsebench.core.task import Splits, TensorSplit

# per-dataset mean and std of the training images' pixels in [0, 1]
MNIST_STATS = {"MNIST": (0.1307, 0.3081), "FashionMNIST": (0.2860, 0.3530)}
VALIDATION = 5000  # the last 5,000 training images of MNIST-format datasets


def read_idx(path: Path) -> torch.Tensor:
    """The uint8 array of a gzipped IDX file (``*-ubyte.gz``: zeros, type 0x08, the number of
    dimensions, big-endian sizes, the bytes), as torchvision's ``MNIST`` reads it unpacked."""
    try:
        blob = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} is corrupt: {exc}. Delete it and download it again.") from None
    ndim = blob[3] if len(blob) >= 4 else 0
    header = 4 + 4 * ndim
    shape = [int.from_bytes(blob[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    if blob[:3] != b"\0\0\x08" or len(blob) < header or len(blob) - header != torch.Size(shape).numel():
        raise DataError(f"{path} is not an IDX file of unsigned bytes. Delete it and download it again.")
    return torch.frombuffer(bytearray(blob[header:]), dtype=torch.uint8).view(shape)


@lru_cache(maxsize=4)
def load_mnist(root, name: str = "MNIST") -> Splits:
    """Train (less validation), validation and test tensors of an MNIST-format dataset
    (``name``: torchvision's ``MNIST`` or ``FashionMNIST``, for its files, mirrors and MD5s), read
    from the ``.gz`` files checked against those MD5s."""
    import torchvision.datasets  # seconds to import: when data is loaded, not when plugins are discovered

    dataset = getattr(torchvision.datasets, name)
    files = {fname: verified_file(root, f"{name}/raw/{fname}", md5, [m + fname for m in dataset.mirrors])
             for fname, md5 in dataset.resources}
    x, y, xt, yt = (read_idx(files[f"{split}-{kind}-ubyte.gz"]) for split in ("train", "t10k")
                    for kind in ("images-idx3", "labels-idx1"))
    mean, std = MNIST_STATS[name]

    def tensors(images, labels):
        return ((images.float() / 255 - mean) / std).unsqueeze(1), labels.long()

    (x, y), (xt, yt) = tensors(x, y), tensors(xt, yt)
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
