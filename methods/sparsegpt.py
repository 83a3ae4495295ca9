"""SparseGPT: layer-wise OBS reconstruction with the inverse Hessian of the layer inputs.

Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can Be Accurately Pruned in
One-Shot" (ICML); code: github.com/IST-DASLab/sparsegpt, ``sparsegpt.py`` (``add_batch``,
``fasterprune``) and ``opt.py`` (``opt_sequential``), whose defaults are used: block size 128,
dampening 1 % of the mean Hessian diagonal, 128 calibration sequences of 2,048 tokens.

Algorithm (their Algorithm 1), for each prunable layer with weights W (rows × inputs) and
H = 2/N Σ x xᵀ over the calibration inputs (N the calibration sequences, ``add_batch``'s scale):
inputs that are never nonzero (H_jj = 0) get H_jj = 1 and their weights are zeroed; dampen H by
1 % of its mean diagonal (those ones included), take the upper Cholesky factor of H⁻¹, and sweep
the inputs in blocks of 128 columns. At each block's start, choose the block's mask: the
``int(sparsity × size)`` weights of lowest w² / [H⁻¹]²_jj in the block (all rows together, the
code's adaptive mask selection; for an N:M pattern, at every M-th column, the M − N lowest of
each row's next M); then, column by column, zero the masked weights and spread each column's
error over the not yet visited columns by the OBS update
W[:, j:] -= (w_j − q_j) / [H⁻¹]_jj · H⁻¹_{j, j:}; after each block, the same for the columns
right of it. Every layer is pruned to the target (the paper's uniform per-layer sparsity).
Order: the authors prune block by block (``opt_sequential``: a transformer block's layers all
take their H from one pass over the block, whose inputs come from the already pruned blocks
before it; sequential across blocks, not within one), the default here
(:class:`~sparsebench.library.posttraining.LayerwisePruning`; a block is a ``ModuleList`` element,
else one layer); ``sparsegpt-onepass`` takes every H from one pass over the dense network.

Here: calibration is a random draw from the training split (262,144 tokens for a sequence model,
the papers' 128 × 2,048, or the whole split where smaller; 1,024 examples for an image
classifier: :mod:`sparsebench.library.calibration_data`), charged as forward passes; Conv2d layers
are pruned as matrices over their receptive fields (im2col, ``weight.view(out, -1)``, as the
paper suggests for convolutions, and as the code's ``add_batch`` unfolds them); an LSTM's matrices
multiply x_t and h_{t-1}, recomputed layer by layer; an embedding is the matrix Wᵀ over one-hot
tokens, whose H is diagonal (each token's count), so that no weight's error can be moved onto
another and the algorithm reduces to keeping, in each block of 128 tokens, the weights of largest
w²·H_jj (:func:`prune_diagonal`, equal to the general sweep on a diagonal H; the paper prunes no
embeddings). Deviation: the code zeroes the weights of inputs never seen in calibration
(H_jj = 0); a vocabulary's rare tokens may be missing even from 262,144 tokens, so tokens unseen
keep the dampening alone and are pruned first, by magnitude, to the layer's target
(``zero_unseen_tokens=True`` follows the code). ``sparsegpt-retrain`` retrains afterwards as
``magnitude`` does; ``sparsegpt-2:4`` and ``sparsegpt-4:8`` prune to the N:M pattern (the
code's ``prunen``/``prunem``), along the stored weight's inputs as the harness checks every pattern
(``weight.view(out, -1)``: an embedding's along each token's dimensions, where its diagonal H makes
the choice exact); a layer's last run shorter than M keeps ``ceil(N/M × length)``, as
:func:`~sparsebench.library.structures.nm_mask` (the code assumes M divides the inputs). Version 4
of the N:M rows: these two.

Calibration size. With 128 windows (128 × 20 tokens) on ``lstm-ptb`` (``pretrained``, 50 %, seed 0;
dense 112.96 test perplexity) SparseGPT reached 141.0, with 1,024 windows 125.3 and with 4,096
117.0, against 114.0 for per-layer magnitude (version 2): H needs the papers' token count, not
their sequence count. Version 3: the authors' H scale (2/N Σ x xᵀ: with dead inputs, the ones
set on H's diagonal no longer inflate the dampening), their sequential order, and calibration by
tokens (``calibration_tokens``) drawn at random. An image model's H is as short of data: on LeNet-300-100 (``full``, seed 0; dense
98.07 %, one-shot magnitude 97.84 % at 50 %) SparseGPT reached 96.74 / 95.00 / 59.90 % at 50 / 70 /
90 % with the default 128 random images (H of the 784 pixels from 128 rows: rank 128), 97.97 / 97.13 /
68.45 % with 180 and 97.87 % (50 %) with 1,024 (the 180 images of version 2's whole batches, in the
authors' order: the figures of issue 39). ``sparsegpt-calib-16th``, ``-4th`` and ``-4x`` calibrate on
1/16, 1/4 and 4 times the default (examples and tokens alike): the ``posttraining`` suite's
sensitivity block.

Behind magnitude on ``lstm-ptb`` (``pretrained``, seed 0, version 3: 114.92 / 131.3 / 502.98 test
perplexity at 50 / 70 / 90 % against per-layer magnitude's 113.35 / 121.03 / 307.0): the embedding,
which the paper does not prune, is where. One weight pruned at a time, the rest dense (validation
perplexity, dense 117.06): at 70 % the embedding costs 126.65 under SparseGPT against 117.63 under
magnitude, while the four LSTM matrices and the decoder cost within ±1.3 of magnitude's (SparseGPT
ahead on three). On a diagonal H each block of 128 token ids is pruned to the target, so frequent
tokens lose as much as rare ones (relative error 0.116 against magnitude's 0.024); and the
objective itself misleads there: ALPS, which minimizes it over the whole layer (error 0.006), still
reaches only 119.91, since rare tokens, which it sacrifices, weigh in perplexity beyond their share of
the calibration tokens.
"""
from dataclasses import dataclass

import torch

from sparsebench import register_method
from sparsebench.library.inputs import as_matrix, input_covariances, owners, unmatrix
from sparsebench.library.posttraining import LayerwisePruning
from sparsebench.library.structures import check_pattern, check_pattern_target, nm_mask


@register_method("sparsegpt", retrain="none")
@register_method("sparsegpt-onepass", retrain="none", order="one-pass")
@register_method("sparsegpt-retrain", retrain="lr-rewind")
@register_method("sparsegpt-calib-16th", retrain="none", calibration_examples=64, calibration_tokens=16_384)
@register_method("sparsegpt-calib-4th", retrain="none", calibration_examples=256, calibration_tokens=65_536)
@register_method("sparsegpt-calib-4x", retrain="none", calibration_examples=4096, calibration_tokens=1_048_576)
@dataclass
class SparseGPT(LayerwisePruning):
    version = "3"
    block_size: int = 128            # columns per lazy-update block (the code's blocksize)
    dampening: float = 0.01          # of the mean Hessian diagonal (percdamp)
    zero_unseen_tokens: bool = False  # an embedding's tokens absent from calibration: zeroed (the code's rule)
    n: int = 0                       # an N:M pattern: n kept of every m inputs (0: unstructured)
    m: int = 0
    bounds = {"block_size": "[1, inf)", "dampening": "[0, 1)", "n": "[0, inf)", "m": "[0, inf)"}

    criterion = "second-order"
    paper = "Frantar & Alistarh 2023, SparseGPT: Massive Language Models Can Be Accurately Pruned in One-Shot (ICML)"
    untuned = "the paper fixes its block size, dampening and calibration size for every model"

    def __post_init__(self):
        super().__post_init__()
        if self.n or self.m:
            check_pattern(self.n, self.m)

    def check_target(self, sparsity):
        if self.n:
            check_pattern_target(sparsity, self.n, self.m)

    def prune_block(self, ctx, calibration, names, sparsity):
        self.check_target(ctx.sparsity)
        hessians, modules, pruned = input_covariances(ctx, calibration, names), owners(ctx), {}
        for name in names:
            h, module, weight = hessians[name], modules[name], ctx.masks.params[name]
            w = as_matrix(module, weight.detach()).double()
            if h.dim() == 2:
                new = prune_layer(w, h, sparsity[name], self.block_size, self.dampening, self.n, self.m)
            else:
                new = prune_diagonal(w, h, sparsity[name], self.block_size, self.dampening, self.zero_unseen_tokens,
                                     self.n, self.m)
            new = unmatrix(module, new, weight)
            weight.copy_(new.to(weight.dtype))
            pruned[name] = new != 0
        return pruned


@register_method("sparsegpt-2:4", retrain="none", n=2, m=4)
@register_method("sparsegpt-4:8", retrain="none", n=4, m=8)
@dataclass
class SparseGPTNM(SparseGPT):
    """SparseGPT to an N:M pattern."""
    version = "4"
    structure = "n:m"


def prune_layer(w: torch.Tensor, h: torch.Tensor, sparsity: float, block_size: int = 128,
                dampening: float = 0.01, n: int = 0, m: int = 0) -> torch.Tensor:
    """The SparseGPT reconstruction of ``w`` (rows × inputs) at ``sparsity`` (or, with ``n``, the
    pattern keeping ``n`` of every ``m``) given H = 2/N Σ x xᵀ (``fasterprune``)."""
    w, h = w.clone(), h.clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += dampening * torch.mean(torch.diag(h)) * torch.eye(len(h), dtype=h.dtype)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    columns = w.shape[1]
    for i1 in range(0, columns, block_size):
        i2 = min(i1 + block_size, columns)
        w1, hinv1 = w[:, i1:i2].clone(), hinv[i1:i2, i1:i2]
        err1 = torch.zeros_like(w1)
        ratio = w1 ** 2 / torch.diag(hinv1).reshape(1, -1) ** 2
        drop = block_mask(ratio, sparsity) if not n else torch.zeros_like(w1, dtype=torch.bool)
        for i in range(i2 - i1):
            if n and i % m == 0:  # the lowest of each row's next M (a shorter last run: as nm_mask), updated
                run = w1[:, i:i + m] ** 2 / torch.diag(hinv1)[i:i + m].reshape(1, -1) ** 2
                dropped = run.shape[1] - -(-n * run.shape[1] // m)
                drop[:, i:i + m].scatter_(1, run.topk(dropped, dim=1, largest=False).indices, True)
            col, d = w1[:, i], hinv1[i, i]
            q = torch.where(drop[:, i], torch.zeros_like(col), col)
            err = (col - q) / d
            w1[:, i:] -= err.unsqueeze(1) @ hinv1[i, i:].unsqueeze(0)
            w1[:, i] = q
            err1[:, i] = err
        w[:, i1:i2] = w1
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return w


def prune_diagonal(w: torch.Tensor, h: torch.Tensor, sparsity: float, block_size: int = 128,
                   dampening: float = 0.01, zero_unseen: bool = True, n: int = 0, m: int = 0) -> torch.Tensor:
    """:func:`prune_layer` for a diagonal H, given as the vector of its diagonal: the Cholesky factor
    of H⁻¹ is diag(H_jj^-½), so the mask ratio is w²·H_jj and the OBS update leaves every other
    weight as it is. ``zero_unseen``: inputs never seen (H_jj = 0) are zeroed, as the general sweep
    does; else they keep the dampening alone and compete by magnitude."""
    w, h = w.clone(), h.clone()
    dead = h == 0
    if zero_unseen:
        h[dead] = 1.0
        w[:, dead] = 0.0
    h += dampening * torch.mean(h)
    if n:  # the pattern along the stored weight's inputs (Wᵀ's rows: an embedding's dimensions)
        return w * nm_mask((w ** 2 * h).T, n, m).T
    for i1 in range(0, w.shape[1], block_size):
        block = w[:, i1:i1 + block_size]
        block[block_mask(block ** 2 * h[i1:i1 + block_size], sparsity)] = 0.0
    return w


def block_mask(ratio: torch.Tensor, sparsity: float) -> torch.Tensor:
    """The weights a block drops: ratios up to its ``int(sparsity × size)``-th lowest (the code's
    adaptive mask selection, ties included)."""
    if sparsity <= 0:
        return torch.zeros_like(ratio, dtype=torch.bool)
    return ratio <= torch.sort(ratio.flatten())[0][int(ratio.numel() * sparsity)]
