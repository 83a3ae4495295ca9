"""Effective sparsity and layer collapse, from a model's final weights.

A nonzero weight is *effective* if it lies on a path from the network's input to its output
through nonzero weights; zeros and the weights of disconnected units are not (Vysogorets & Kempe
2023, "Connectivity Matters: Neural Network Pruning Through the Lens of Effective Sparsity",
JMLR; layer collapse: Tanaka et al. 2020). Effective sparsity is the fraction of prunable weights
that are zero or not effective.

One code path for every architecture: the paths are found by autograd on a copy of the model
with its biases zeroed (biases are not on input–output paths, as in Vysogorets & Kempe) and its
BatchNorm running statistics reset to mean 0, variance 1 (so that normalization scales but does
not shift), in evaluation mode and double precision. On a batch of real training inputs, the
gradient of the task's loss is, for a weight w_ij of a linear map, Σ_b δ_j(b) a_i(b): nonzero
exactly when unit i is reached from the input (a_i ≠ 0 for some example) and unit j reaches the
output (δ_j ≠ 0) — the path condition — unless terms cancel exactly or every example switches a
unit's ReLU off, which a batch of real inputs makes unlikely (``batches`` adds more). Residual
connections, weight sharing over time (LSTMs) and attention are traced as they compute, with no
architecture-specific rules. What this approximates: a weight is judged by whether it *reaches*
the loss on the batch, so a unit whose ReLU is off for every example of the batch counts as
disconnected, and positional embeddings and other non-bias parameters count as inputs.

Collapse flags: a prunable layer with no effective weight, and outputs (logits) that no input
reaches (with biases zeroed, such an output is exactly 0 for every input).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from torch import nn


@dataclass
class Connectivity:
    effective_sparsity: float
    effective: dict[str, torch.Tensor]  # per prunable layer: True where the weight is effective
    dead_units: dict[str, int]           # per prunable layer: output units (rows) with no effective weight
    dead_layers: list[str] = field(default_factory=list)  # prunable layers with no effective weight
    dead_outputs: int = 0                # outputs (logits) no input reaches
    outputs: int = 0

    @property
    def collapsed(self) -> bool:
        return bool(self.dead_layers) or self.dead_outputs > 0

    def describe(self) -> str:
        """'' if nothing collapsed, else what did: e.g. 'layers at zero density: fc3; 7 of 10 outputs unreachable'."""
        parts = []
        if self.dead_layers:
            parts.append(f"layers with no effective weight: {', '.join(self.dead_layers)}")
        if self.dead_outputs:
            parts.append(f"{self.dead_outputs} of {self.outputs} outputs unreachable")
        return "; ".join(parts)


def _path_model(model: nn.Module) -> nn.Module:
    """A double-precision copy with biases zeroed and normalization statistics reset, in eval mode."""
    twin = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for name, p in twin.named_parameters():
            if name.rsplit(".", 1)[-1] in ("bias", "in_proj_bias") or name.rsplit(".", 1)[-1].startswith("bias_"):
                p.zero_()
        for m in twin.modules():
            if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats and m.running_mean is not None:
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
    return twin


def _double(batch):
    if isinstance(batch, torch.Tensor):
        return batch.double() if batch.is_floating_point() else batch
    if isinstance(batch, (tuple, list)):
        return type(batch)(_double(b) for b in batch)
    return batch


def _logits(output):
    return output[0] if isinstance(output, (tuple, list)) else output


def connectivity(model: nn.Module, prunable: Iterable[str], batches: Iterable,
                 loss: Callable[[nn.Module, object], torch.Tensor]) -> Connectivity:
    """Effective weights, dead units and collapse of ``model``'s ``prunable`` weights, traced on
    ``batches`` of training data with the task's ``loss(model, batch)``."""
    names = list(prunable)
    twin = _path_model(model)
    params = dict(twin.named_parameters())
    tensors = [params[n] for n in names]
    reached = {n: torch.zeros_like(params[n], dtype=torch.bool) for n in names}
    alive_out: torch.Tensor | None = None
    captured: list[torch.Tensor] = []
    hook = twin.register_forward_hook(lambda m, i, out: captured.append(_logits(out).detach()))
    try:
        for batch in batches:
            captured.clear()
            grads = torch.autograd.grad(loss(twin, _double(batch)), tensors, allow_unused=True)
            for n, g in zip(names, grads):
                if g is not None:
                    reached[n] |= g != 0
            if captured:
                logits = captured[-1]
                alive = (logits.reshape(-1, logits.shape[-1]) != 0).any(0)
                alive_out = alive if alive_out is None else alive_out | alive
    finally:
        hook.remove()
    effective = {n: reached[n] & (params[n].detach() != 0) for n in names}
    total = sum(e.numel() for e in effective.values())
    kept = sum(int(e.sum()) for e in effective.values())
    dead_units = {n: int((e.reshape(e.shape[0], -1).sum(1) == 0).sum()) if e.dim() else 0 for n, e in effective.items()}
    return Connectivity(
        effective_sparsity=1.0 - kept / total, effective=effective, dead_units=dead_units,
        dead_layers=[n for n, e in effective.items() if not e.any()],
        dead_outputs=0 if alive_out is None else int((~alive_out).sum()),
        outputs=0 if alive_out is None else alive_out.numel())
