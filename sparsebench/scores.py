"""Saliency scores shared by method plugins: one code path per criterion."""
from __future__ import annotations

import torch

from .masks import Masks


def magnitude_scores(masks: Masks) -> dict[str, torch.Tensor]:
    """|w| of every prunable weight (the criterion of Han et al. 2015 and lottery tickets)."""
    return {n: p.detach().abs() for n, p in masks.params.items()}
