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

Here: calibration data are drawn at random from the task's training split, 262,144 tokens for a
sequence model (the paper's 128 sequences of 2,048 tokens from C4, the authors' ``--nsamples
128``; the whole split where smaller) and 1,024 examples for an image classifier (full-rank first-layer statistics; why there)
(:mod:`sparsebench.library.calibration_data`), charged as forward passes, the model in eval mode. Input features of a Conv2d are its receptive fields
(im2col), ordered as ``weight.view(out, -1)``, so a filter is an output row — the paper prunes
Linear layers of LLMs only, and this is its natural reading for convolutions. An LSTM's matrices
multiply x_t and h_{t-1} (recomputed layer by layer from its input); an embedding is the matrix
Wᵀ over one-hot tokens, so ‖X_j‖ is the square root of token j's count and a row is one embedding
dimension. Other layers (fused attention projections) make the method raise, which the harness
records as a failed trial with that reason. Order: as the authors' ``prune_wanda``, block by block,
each block's norms read from the outputs of the already pruned blocks before it (a block is a
``ModuleList`` element, a transformer block, else one layer:
:class:`~sparsebench.library.posttraining.LayerwisePruning`); ``wanda-onepass`` reads every norm
from one pass over the dense network (version 2's order). ``group="layer"`` with ``rule="global"``
ranks all layers together, which needs the one-pass order. ``wanda-2:4`` and ``wanda-4:8`` keep
the top N of every M inputs of a row (the authors' ``prune_n``/``prune_m``), along the stored
weight's inputs as the harness checks every pattern (``weight.view(out, -1)``: an embedding's
along each token's dimensions, not along the vocabulary of its matrix Wᵀ). Version 3: the
sequential order and calibration by tokens, drawn at random.
Ties, which the authors' ``torch.sort`` leaves in no defined order, are broken by |W|: they are
the zero scores of inputs never seen in calibration — a language model's 128 windows hold a few
thousand tokens and miss most of its vocabulary, so an embedding's unseen tokens are pruned
first, by magnitude, rather than in the order of their ids.
``wanda-retrain`` adds the magnitude baseline's retraining (:mod:`sparsebench.library.posttraining`).

Measured on ``lstm-ptb`` (``pretrained``, seed 0; dense 112.96 test perplexity), where Wanda trails
per-layer magnitude (118.08 / 147.21 / 727.29 against 113.35 / 121.03 / 307.0 at 50 / 70 / 90 %):
the paper's comparison group is the cause, not the activations. ``--set group=layer`` gives 113.79 /
123.74 / 288.31 (magnitude's figures), and |W| alone per output row (Wanda with every ‖X_j‖ = 1)
117.73 / 146.95 / 786.27 (Wanda's): on this LSTM each row keeping the same share costs what the
activation weighting neither adds nor removes (``sparsebench run --suite posttraining --task lstm-ptb
--method wanda --set group=layer``).
"""
from dataclasses import dataclass

import torch

from sparsebench import register_method
from sparsebench.core.masks import top_k_masks
from sparsebench.library.inputs import as_matrix, input_norms, owners, unmatrix
from sparsebench.library.posttraining import LayerwisePruning
from sparsebench.library.structures import check_pattern, check_pattern_target, nm_mask

GROUPS = ("output", "layer")


@register_method("wanda", retrain="none")
@register_method("wanda-onepass", retrain="none", order="one-pass")
@register_method("wanda-retrain", retrain="lr-rewind")
@dataclass
class Wanda(LayerwisePruning):
    version = "3"
    group: str = "output"            # comparison group: each output row (the paper) | each layer
    rule: str = "uniform"            # with group="layer": every layer at the target, as the paper
    n: int = 0                       # an N:M pattern: n kept of every m inputs (0: unstructured)
    m: int = 0
    bounds = {"group": GROUPS, "n": "[0, inf)", "m": "[0, inf)"}

    criterion = "magnitude × activation"
    paper = "Sun et al. 2024, A Simple and Effective Pruning Approach for Large Language Models (ICLR)"
    untuned = "no hyperparameter beyond its calibration set, which the paper fixes (128 samples)"

    def __post_init__(self):
        super().__post_init__()
        if self.group not in GROUPS:
            raise ValueError(f"unknown group {self.group!r}; choose one of {', '.join(GROUPS)}")
        if self.group == "layer" and self.rule == "global" and self.order == "sequential":
            raise ValueError("a global ranking of all layers needs order='one-pass'")
        if self.n or self.m:
            check_pattern(self.n, self.m)

    def check_target(self, sparsity):
        if self.n:
            check_pattern_target(sparsity, self.n, self.m)

    def scores(self, ctx, calibration, names) -> dict[str, torch.Tensor]:
        """|W_ij| · ‖X_j‖ of the weights ``names``, as matrices."""
        norms, modules = input_norms(ctx, calibration, names), owners(ctx)
        return {n: as_matrix(modules[n], ctx.masks.params[n].detach().abs()) * norms[n] for n in names}

    def prune_block(self, ctx, calibration, names, sparsity):
        self.check_target(ctx.sparsity)
        scores, modules, params = self.scores(ctx, calibration, names), owners(ctx), ctx.masks.params
        shaped = {n: unmatrix(modules[n], s, params[n]) for n, s in scores.items()}
        if self.group == "layer":
            return top_k_masks(shaped, 1.0 - ctx.sparsity, self.rule)
        if self.n:  # along the stored weight's inputs, as the harness checks the pattern
            return {n: nm_mask(s, self.n, self.m) for n, s in shaped.items()}
        return {n: unmatrix(modules[n], per_row_top_k(s, 1.0 - sparsity[n], as_matrix(modules[n], params[n].detach().abs())),
                            params[n])
                for n, s in scores.items()}


@register_method("wanda-2:4", retrain="none", n=2, m=4)
@register_method("wanda-4:8", retrain="none", n=4, m=8)
@dataclass
class WandaNM(Wanda):
    """Wanda to an N:M pattern."""
    structure = "n:m"


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
