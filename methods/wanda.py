"""Wanda: pruning by weights and activations, after training, without retraining.

Sun, Liu, Bair & Kolter 2024, "A Simple and Effective Pruning Approach for Large Language Models"
(ICLR); code: github.com/locuslab/wanda, ``lib/prune.py`` (``prune_wanda``) and
``lib/layerwrapper.py`` (``WrappedGPT.add_batch``).

Algorithm: train the dense network (the task's recipe), run calibration data through it and
score every weight by |W_ij| · ‖X_j‖₂, the norm of its input feature over all calibration
tokens; then, in each *comparison group*, remove the lowest-scored weights. The paper's default
group is each output row of a layer (``group="output"``: every row, hence every layer, keeps the
same fraction of its weights — their Table 5 finds this better than a layer-wide group for LLMs,
``group="layer"`` here); no weight update and no retraining.

Here: calibration data are 128 examples of the task's training split (the paper: 128 sequences
of 2,048 tokens from C4; the authors' ``--nsamples 128``), drawn as whole batches and charged as
forward passes, the model in eval mode. Input features of a Conv2d are its receptive fields
(im2col), ordered as ``weight.view(out, -1)``, so a filter is an output row — the paper prunes
Linear layers of LLMs only, and this is its natural reading for convolutions. An LSTM's matrices
multiply x_t and h_{t-1} (recomputed layer by layer from its input); an embedding is the matrix
Wᵀ over one-hot tokens, so ‖X_j‖ is the square root of token j's count and a row is one embedding
dimension. Other layers (fused attention projections) make the method raise, which the harness
records as a failed trial with that reason. The authors compute
the norms layer by layer on the already pruned network's activations (``prune_wanda`` prunes
block by block, feeding pruned outputs forward); one pass over the dense network is used here,
as in their analysis of the score itself — a deviation for networks deeper than one block.
Ties, which the authors' ``torch.sort`` leaves in no defined order, are broken by |W|: they are
the zero scores of inputs never seen in calibration — a language model's 128 windows hold a few
thousand tokens and miss most of its vocabulary, so an embedding's unseen tokens are pruned
first, by magnitude, rather than in the order of their ids.
``wanda-retrain`` adds the magnitude baseline's retraining (:mod:`sparsebench.library.posttraining`).
"""
from dataclasses import dataclass

import torch

from sparsebench import register_method
from sparsebench.library.posttraining import PruneAfterTraining, as_matrix, input_norms, owners, unmatrix

GROUPS = ("output", "layer")


@register_method("wanda", retrain="none")
@register_method("wanda-retrain", retrain="lr-rewind")
@dataclass
class Wanda(PruneAfterTraining):
    version = "2"
    group: str = "output"            # comparison group: each output row (the paper) | each layer
    calibration_examples: int = 128  # the authors' nsamples
    rule: str = "uniform"            # with group="layer": every layer at the target, as the paper
    bounds = {"calibration_examples": "[1, inf)"}

    criterion = "magnitude × activation"
    paper = "Sun et al. 2024, A Simple and Effective Pruning Approach for Large Language Models (ICLR)"
    untuned = "no hyperparameter beyond its calibration set, which the paper fixes (128 samples)"

    def __post_init__(self):
        super().__post_init__()
        if self.group not in GROUPS:
            raise ValueError(f"unknown group {self.group!r}; choose one of {', '.join(GROUPS)}")

    def score(self, ctx):
        norms, modules = input_norms(ctx, self.calibration_examples), owners(ctx)
        return {n: unmatrix(modules[n], as_matrix(modules[n], p.detach().abs()) * norms[n], p)
                for n, p in ctx.masks.params.items()}

    def masks(self, ctx, scores):
        if self.group == "layer":
            return None
        modules, weights = owners(ctx), ctx.masks.params
        return {n: unmatrix(modules[n], per_row_top_k(as_matrix(modules[n], s), 1.0 - ctx.sparsity,
                                                      tiebreak=as_matrix(modules[n], weights[n].detach().abs())), s)
                for n, s in scores.items()}


def per_row_top_k(scores: torch.Tensor, density: float, tiebreak: torch.Tensor | None = None) -> torch.Tensor:
    """A mask removing the lowest scores of each output row: the same count in every row (the
    authors' ``int(sparsity * row length)``), and the layer's remainder, one more each, from the
    rows whose next-lowest score is lowest — so that short rows (a first conv's 27 inputs) still
    reach the target (a deviation of at most one weight per row). Equal scores are ordered by
    ``tiebreak`` (lowest first), else by position."""
    rows = scores.flatten(1)
    n, length = rows.shape
    total = round((1.0 - density) * n * length)
    base, extra = divmod(total, n)
    if tiebreak is None:
        ranked = rows.argsort(dim=1, stable=True)
    else:  # a stable sort by score of the order by tiebreak
        order = tiebreak.flatten(1).argsort(dim=1, stable=True)
        ranked = order.gather(1, rows.gather(1, order).argsort(dim=1, stable=True))
    pruned = torch.full((n,), base)
    if extra:
        nxt = rows.gather(1, ranked[:, base:base + 1]).squeeze(1)
        pruned[nxt.argsort(stable=True)[:extra]] += 1
    mask = torch.ones_like(rows)
    drop = torch.arange(length)[None, :] < pruned[:, None]  # the first pruned[i] of row i's ranking
    mask.scatter_(1, ranked, (~drop).to(mask.dtype))
    return mask.view_as(scores)
