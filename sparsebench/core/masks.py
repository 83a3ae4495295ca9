"""Masks over a model's prunable weights, layer-wise density rules, and counting zeros.

Sparsity is always the fraction of prunable weights that are zero; density is one minus it.
Masks are keyed by parameter name (serializable), held as 0/1 tensors of the weight's dtype so
that keeping masked weights at zero is one fused multiply per step.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
from torch import nn

from sparsebench.core.hparams import check_sparsity

RULES = ("global", "uniform", "er", "erk")


def layer_densities(shapes: dict[str, torch.Size], density: float, rule: str) -> dict[str, float]:
    """Per-layer densities whose parameter-weighted mean is ``density``.

    ``uniform``: every layer at ``density``. ``er`` / ``erk``: Erdős–Rényi and its kernel
    variant (Evci et al. 2020, "Rigging the Lottery", §3): density proportional to
    (n_in + n_out) / (n_in n_out), or sum(shape) / prod(shape) for ``erk``; layers whose density
    would exceed 1 are kept dense and the rest re-scaled, the largest first, as in RigL.
    """
    if rule == "uniform":
        return {name: density for name in shapes}
    if rule not in ("er", "erk"):
        raise ValueError(f"unknown density rule {rule!r}; choose one of {', '.join(RULES[1:])}")
    numel = {n: math.prod(s) for n, s in shapes.items()}

    def raw(shape: torch.Size) -> float:
        dims = list(shape) if rule == "erk" or len(shape) < 2 else list(shape[:2])
        return sum(dims) / math.prod(dims)

    raw_prob = {n: raw(s) for n, s in shapes.items()}
    dense: set[str] = set()
    while True:
        budget = density * sum(numel.values()) - sum(numel[n] for n in dense)
        divisor = sum(raw_prob[n] * numel[n] for n in shapes if n not in dense)
        eps = budget / divisor if divisor else 0.0
        over = {n: eps * raw_prob[n] for n in shapes if n not in dense and eps * raw_prob[n] > 1}
        if not over:
            break
        dense.add(max(over, key=over.get))
    return {n: 1.0 if n in dense else eps * raw_prob[n] for n in shapes}


def top_k_masks(scores: dict[str, torch.Tensor], density: float, rule: str = "global") -> dict[str, torch.Tensor]:
    """Keep the highest-scoring weights: ``round(density * n)`` of them over all layers
    (``global``) or in each layer at its ``layer_densities`` (``uniform``, ``er``, ``erk``)."""
    if rule == "global":
        flat = torch.cat([s.detach().flatten().float() for s in scores.values()])
        keep = torch.zeros_like(flat, dtype=torch.bool)
        keep[torch.topk(flat, round(density * flat.numel()), sorted=False).indices] = True
        out, start = {}, 0
        for name, s in scores.items():
            out[name] = keep[start:start + s.numel()].view_as(s)
            start += s.numel()
        return out
    densities = layer_densities({n: s.shape for n, s in scores.items()}, density, rule)
    out = {}
    for name, s in scores.items():
        flat = s.detach().flatten().float()
        keep = torch.zeros_like(flat, dtype=torch.bool)
        keep[torch.topk(flat, round(densities[name] * flat.numel()), sorted=False).indices] = True
        out[name] = keep.view_as(s)
    return out


def default_prunable(model: nn.Module) -> list[str]:
    """The common convention: weights of convolutional and linear layers."""
    return [f"{m_name}.weight" if m_name else "weight" for m_name, m in model.named_modules()
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]


class Masks:
    """Binary masks on named parameters of a model; masked weights are kept exactly zero."""

    def __init__(self, model: nn.Module, names: Iterable[str]):
        params = dict(model.named_parameters())
        names = list(names)
        missing = [n for n in names if n not in params]
        if missing:
            raise ValueError(f"prunable parameters not in the model: {missing}")
        if not names:
            raise ValueError("a task must declare at least one prunable parameter")
        self.params = {n: params[n] for n in names}
        self.masks = {n: torch.ones_like(p, requires_grad=False) for n, p in self.params.items()}
        self._listeners: list[Callable[[Masks], None]] = []

    def __iter__(self):
        return iter(self.masks)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.masks[name]

    def on_change(self, listener: Callable[[Masks], None]) -> None:
        """Call ``listener(masks)`` after every ``set`` (the trainer clears optimizer state)."""
        self._listeners.append(listener)

    @torch.no_grad()
    def set(self, new: dict[str, torch.Tensor]) -> None:
        """Replace the masks of the named parameters and zero the newly masked weights."""
        for name, mask in new.items():
            if mask.shape != self.params[name].shape:
                raise ValueError(f"mask for {name} has shape {tuple(mask.shape)}, weight {tuple(self.params[name].shape)}")
            self.masks[name] = mask.to(self.params[name]).clone()
        self.apply()
        for listener in self._listeners:
            listener(self)

    def prune(self, scores: dict[str, torch.Tensor], sparsity: float, rule: str = "global") -> None:
        """Keep the top-scored weights at ``sparsity``; weights pruned before stay pruned."""
        density = 1.0 - check_sparsity(sparsity)
        scores = {n: torch.where(self.masks[n].bool(), s.detach().float(), -math.inf) for n, s in scores.items()}
        self.set(top_k_masks(scores, density, rule))

    @torch.no_grad()
    def apply(self) -> None:
        """Zero the masked weights."""
        torch._foreach_mul_(list(self.params.values()), list(self.masks.values()))

    @torch.no_grad()
    def held(self) -> bool:
        """Whether every masked weight is zero."""
        return all(not self.params[n][m == 0].any() for n, m in self.masks.items())

    @torch.no_grad()
    def mask_grads(self) -> None:
        """Zero the gradients of masked weights, so momentum and decay cannot revive them."""
        names = [n for n, p in self.params.items() if p.grad is not None]
        if names:
            torch._foreach_mul_([self.params[n].grad for n in names], [self.masks[n] for n in names])

    def shapes(self) -> dict[str, torch.Size]:
        return {n: p.shape for n, p in self.params.items()}

    def density(self) -> float:
        kept = sum(int(m.sum().item()) for m in self.masks.values())
        return kept / sum(m.numel() for m in self.masks.values())

    def state(self) -> dict[str, torch.Tensor]:
        """A copy of the masks, as booleans."""
        return {n: m.bool().clone() for n, m in self.masks.items()}


def count_zeros(params: dict[str, torch.Tensor]) -> dict[str, tuple[int, int]]:
    """(zeros, total) of each tensor, counted in the values themselves."""
    return {n: (int((p == 0).sum().item()), p.numel()) for n, p in params.items()}


def sparsity_report(params: dict[str, torch.Tensor]) -> tuple[float, dict[str, float]]:
    """Overall sparsity (zeros / weights) and per-layer sparsity, counted from the weights."""
    counts = count_zeros(params)
    zeros = sum(z for z, _ in counts.values())
    total = sum(t for _, t in counts.values())
    return zeros / total, {n: z / t for n, (z, t) in counts.items()}
