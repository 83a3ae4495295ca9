"""Effective sparsity and layer collapse, from a model's final weights.

A nonzero weight is *effective* if it lies on a path from the network's input to its output
through nonzero weights; zeros and the weights of disconnected units are not (Vysogorets & Kempe
2023, "Connectivity Matters: Neural Network Pruning Through the Lens of Effective Sparsity",
JMLR; layer collapse: Tanaka et al. 2020). Effective sparsity is the fraction of prunable weights
that are zero or not effective.

One code path for every architecture, by autograd on the network's *path graph*: every prunable
weight replaced by 1 where it is nonzero (divided by its fan-in, so that no gate saturates), every
other parameter by its absolute value (embeddings divided by their number of rows), biases by 0 (a bias is on no input–output path, as in
Vysogorets & Kempe), BatchNorm's running mean by 0 and variance by 1, evaluation mode, double
precision, an all-ones input (for token ids, every embedding row at once, as SynFlow feeds it:
:func:`sparsebench.library.scores.linearised_output`). In a network of linear maps,
convolutions, ReLU-like activations, average pooling and residual sums, every activation is then
≥ 0 and positive exactly where a path from the input arrives, and the derivative of the summed
output by a weight is positive exactly when the weight lies on an input–output path: the trace is
exact. Approximated elsewhere, and tested on hand-built cases: max pooling routes each window
through one position; sigmoid and tanh gates (LSTMs) pass a constant 0.5 or 0 where no path
arrives, which is what the gate computes; LayerNorm and attention's softmax mix signs, so a path
counts where its contribution does not cancel exactly; positional embeddings and other non-bias
parameters count as inputs.

Known limit: every ``nn.Embedding`` *call* is summed over its rows, a position table's too, which makes
every position alike; attention then averages equal values, and its queries and keys lie on a path
only through rounding (a randomly initialized ``transformer-sst2`` traces as 17 % effectively
sparse, its trained models and the language models' as expected). A model that reads its position
table by indexing (``tasks/minilm_sst2.py``) keeps each position's row. Summing only the lookups of
the input ids is the fix, left for the next change of the harness (it re-runs every result).

Collapse flags: prunable layers with no effective weight, and outputs (logits) that no path
reaches (exactly 0 in the path graph).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch import nn

from sparsebench.library.scores import linearised_output


@dataclass
class Connectivity:
    effective_sparsity: float
    effective: dict[str, torch.Tensor]  # per prunable layer: True where the weight is effective
    dead_units: dict[str, int]           # per prunable layer: output units (rows) with no effective weight
    dead_layers: list[str] = field(default_factory=list)  # prunable layers with no effective weight
    dead_outputs: int = 0                # outputs (logits) no path reaches
    outputs: int = 0

    @property
    def collapsed(self) -> bool:
        return bool(self.dead_layers) or self.dead_outputs > 0

    def describe(self) -> str:
        """'' if nothing collapsed, else what did, e.g. 'layers with no effective weight: fc3; 7 of 10 outputs unreachable'."""
        parts = []
        if self.dead_layers:
            parts.append(f"layers with no effective weight: {', '.join(self.dead_layers)}")
        if self.dead_outputs:
            parts.append(f"{self.dead_outputs} of {self.outputs} outputs unreachable")
        return "; ".join(parts)


def is_bias(name: str) -> bool:
    """Biases of Linear/Conv (``bias``), LSTMs (``bias_ih_l0``) and MultiheadAttention (``in_proj_bias``)."""
    leaf = name.rsplit(".", 1)[-1]
    return leaf == "bias" or leaf.startswith("bias_") or leaf.endswith("_bias")


def path_values(model: nn.Module, prunable: list[str]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The path graph's parameters and buffers (see the module docstring); the prunable ones require grad."""
    # the all-ones input over a vocabulary sums every row of an embedding: divide by the rows
    rows = {f"{prefix}.weight" if prefix else "weight": m.num_embeddings
            for prefix, m in model.named_modules() if isinstance(m, nn.Embedding)}
    params = {}
    for name, p in model.named_parameters():
        p = p.detach().double()
        if name in prunable:
            fan_in = rows.get(name) or (max(1, p[0].numel()) if p.dim() else 1)
            params[name] = ((p != 0).double() / fan_in).requires_grad_(True)
        elif is_bias(name):
            params[name] = torch.zeros_like(p)
        else:
            params[name] = p.abs() / rows.get(name, 1)
    buffers = {}
    for name, b in model.named_buffers():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "running_mean":
            buffers[name] = torch.zeros_like(b, dtype=torch.float64)
        elif leaf == "running_var":
            buffers[name] = torch.ones_like(b, dtype=torch.float64)
        else:
            buffers[name] = b.detach().double().abs() if b.is_floating_point() else b
    return params, buffers


def connectivity(model: nn.Module, prunable: Iterable[str], example: torch.Tensor) -> Connectivity:
    """Effective weights, dead units and collapse of ``model``'s ``prunable`` weights; ``example``
    is a batch of model inputs (its shape and dtype only)."""
    names = list(prunable)
    params, buffers = path_values(model, names)
    out = linearised_output(model, {**params, **buffers}, example, torch.float64, train=False)
    grads = torch.autograd.grad(out.sum(), [params[n] for n in names], allow_unused=True)
    weights = dict(model.named_parameters())
    effective = {n: (weights[n].detach() != 0) & (torch.zeros_like(params[n], dtype=torch.bool) if g is None else g != 0)
                 for n, g in zip(names, grads)}
    total = sum(e.numel() for e in effective.values())
    kept = sum(int(e.sum()) for e in effective.values())
    dead_units = {n: int((e.reshape(e.shape[0], -1).sum(1) == 0).sum()) if e.dim() else 0 for n, e in effective.items()}
    alive_out = (out.detach().reshape(-1, out.shape[-1]) != 0).any(0)
    return Connectivity(effective_sparsity=1.0 - kept / total, effective=effective, dead_units=dead_units,
                        dead_layers=[n for n, e in effective.items() if not e.any()],
                        dead_outputs=int((~alive_out).sum()), outputs=alive_out.numel())
