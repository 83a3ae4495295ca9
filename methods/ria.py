"""RIA: relative importance and activations, after training, without retraining.

Zhang, Zhao, Lin, Sun, Yang, Wang, Zhou, Chen & Wang 2024, "Plug-and-Play: An Efficient Post-training
Pruning Method for Large Language Models" (ICLR); code:
github.com/biomedical-cybernetics/Relative-importance-and-activation-pruning, ``lib/prune.py``
(``prune_ria``), defaults from ``main.py``.

Score: RIA_ij = (|W_ij| / Σ_i |W_ij| + |W_ij| / Σ_j |W_ij|) · ‖X_j‖₂^a, a weight's share of its input
column and of its output row, times its input's norm to the power a = 0.5. Unstructured: the lowest
scores of each layer are removed (the code's default, ``per_outneuron`` off; a layer-wide comparison
group); ``ria-2:4`` and ``ria-4:8``: the M − N lowest of every M consecutive inputs of a row.
``ria-2:4-permuted``: the paper's channel permutation (the code's ``--reallocation``, importance
``sum``): the input channels are ordered by their summed score and dealt to the M positions of the
runs in turn (every other pass reversed), the N:M mask is chosen in that order, and mapped back —
so the pattern holds for the input channels permuted (the previous layer's outputs are permuted to
match at inference), not in their stored order; its structure is declared as weights. The linear
sum assignment refinement (``--lsa``) is not done; layers whose inputs are not a multiple of M keep
their order. Calibration and order: Wanda's (:mod:`methods.wanda`; the code prunes block by block,
``prune_ria``).
"""
from dataclasses import dataclass
from pathlib import Path

import torch

from sparsebench import register_method
from sparsebench.core import registry
from sparsebench.library.inputs import as_matrix, input_norms, owners, unmatrix
from sparsebench.library.structures import nm_mask

registry.load_file(registry.METHODS, Path(__file__).with_name("wanda.py"))
Wanda = registry.METHODS.get("wanda")[0]


@register_method("ria", retrain="none")
@dataclass
class RIA(Wanda):
    version = "1"
    group: str = "layer"        # the code's default comparison group (per_outneuron off)
    power: float = 0.5          # a, the exponent of the activation norm
    permute: bool = False       # N:M: the channel reallocation (--reallocation)
    bounds = {"power": "[0, inf)"}

    criterion = "relative magnitude × activation"
    paper = "Zhang et al. 2024, Plug-and-Play: An Efficient Post-training Pruning Method for Large Language Models (ICLR)"
    untuned = "the paper fixes a = 0.5 and its calibration set"

    def scores(self, ctx, calibration, names):
        norms, modules = input_norms(ctx, calibration, names), owners(ctx)
        out = {}
        for n in names:
            w = as_matrix(modules[n], ctx.masks.params[n].detach().abs())
            out[n] = (w / w.sum(0, keepdim=True) + w / w.sum(1, keepdim=True)).nan_to_num() * norms[n] ** self.power
        return out

    def prune_block(self, ctx, calibration, names, sparsity):
        if not (self.n and self.permute):
            return super().prune_block(ctx, calibration, names, sparsity)
        modules, params = owners(ctx), ctx.masks.params
        return {n: unmatrix(modules[n], permuted_nm_mask(s, self.n, self.m), params[n])
                for n, s in self.scores(ctx, calibration, names).items()}


@register_method("ria-2:4", retrain="none", n=2, m=4, group="output")
@register_method("ria-4:8", retrain="none", n=4, m=8, group="output")
@dataclass
class RIANM(RIA):
    """RIA to an N:M pattern."""
    structure = "n:m"


@register_method("ria-2:4-permuted", retrain="none", n=2, m=4, group="output", permute=True)
@dataclass
class RIAPermuted(RIA):
    """RIA to an N:M pattern of permuted input channels."""


def permuted_nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """The N:M mask of ``scores`` (rows × inputs) in the heuristic channel order of the code's
    reallocation: channels sorted by summed score, the i-th sorted chunk of columns / m dealt to
    position i of every run (even positions reversed), mapped back to the stored order."""
    columns = scores.shape[1]
    if columns % m:
        return nm_mask(scores, n, m)
    ranked = torch.sort(scores.sum(0))[1]
    index = torch.zeros_like(ranked)
    for i in range(1, m + 1):
        chunk = ranked[columns * (i - 1) // m: columns * i // m]
        index[i - 1::m] = chunk if i % 2 == 1 else chunk.flip(0)
    mask = torch.zeros_like(scores)
    mask[:, index] = nm_mask(scores[:, index], n, m)
    return mask
