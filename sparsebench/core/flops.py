"""Inference and training cost: FLOPs of a forward pass, split by prunable weight.

FLOPs are counted as torch's ``FlopCounterMode`` counts them (2 per multiply-accumulate) on one
real batch, plus recurrent layers (``nn.LSTM``/``GRU``/``RNN``), which that counter skips:
2 x (weights of the layer) per time step and sequence. A layer's FLOPs are shared among its
prunable weights by size and scale with their density (ShrinkBench's accounting: a zero weight
costs nothing). Training a step costs three forward passes (forward, and backward to inputs
and to weights), as in Evci et al. 2020, Appendix H.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

TRAIN_FORWARD_RATIO = 3


@dataclass(frozen=True)
class ForwardFlops:
    """FLOPs of one forward pass on one batch of ``batch_size`` examples."""

    total: float
    prunable: dict[str, float]  # FLOPs attributable to each prunable weight when dense
    batch_size: int

    def per_example(self, densities: dict[str, float] | None = None) -> float:
        """FLOPs per example with the given per-weight densities (dense when omitted)."""
        saved = sum(f * (1.0 - densities.get(n, 1.0)) for n, f in self.prunable.items()) if densities else 0.0
        return (self.total - saved) / self.batch_size


def count_forward_flops(model: nn.Module, prunable: list[str], forward: Callable[[], object], batch_size: int) -> ForwardFlops:
    """Run ``forward()`` once under a FLOP counter and attribute FLOPs to prunable weights."""
    rnn_flops: dict[str, float] = {}  # per recurrent weight
    hooks = [m.register_forward_hook(_rnn_hook(name, rnn_flops))
             for name, m in model.named_modules() if isinstance(m, nn.RNNBase)]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            forward()
    finally:
        for h in hooks:
            h.remove()
    root = type(model).__name__
    module_flops = {key[len(root) + 1:]: float(sum(ops.values())) for key, ops in counter.get_flop_counts().items()
                    if key == root or key.startswith(root + ".")}
    params = dict(model.named_parameters())
    owners: dict[str, list[str]] = {}
    for name in prunable:
        if name not in rnn_flops:
            owners.setdefault(name.rpartition(".")[0], []).append(name)
    shares = {n: rnn_flops[n] for n in prunable if n in rnn_flops}
    for owner, names in owners.items():
        size = sum(params[n].numel() for n in names)
        for n in names:
            shares[n] = module_flops.get(owner, 0.0) * params[n].numel() / size
    return ForwardFlops(float(counter.get_total_flops()) + sum(rnn_flops.values()), shares, batch_size)


def _rnn_hook(name: str, out: dict[str, float]):
    def hook(module: nn.RNNBase, inputs, _output):
        x = inputs[0]
        if isinstance(x, nn.utils.rnn.PackedSequence):
            steps = int(x.batch_sizes.sum())
        else:
            steps = x.shape[0] * x.shape[1] if x.dim() == 3 else x.shape[0]
        for pname, p in module.named_parameters():
            if pname.startswith("weight"):
                key = f"{name}.{pname}" if name else pname
                out[key] = out.get(key, 0.0) + 2.0 * p.numel() * steps
    return hook
