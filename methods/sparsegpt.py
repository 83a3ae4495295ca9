"""SparseGPT: layer-wise OBS reconstruction with the inverse Hessian of the layer inputs.

Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can Be Accurately Pruned in
One-Shot" (ICML); code: github.com/IST-DASLab/sparsegpt, ``sparsegpt.py`` (``fasterprune``),
whose defaults are used: block size 128, dampening 1 % of the mean Hessian diagonal, 128
calibration samples.

Algorithm (their Algorithm 1), for each prunable layer with weights W (rows × inputs) and
H = XᵀX over the calibration inputs: dampen H, take the upper Cholesky factor of H⁻¹, and sweep
the inputs in blocks of 128 columns. At each block's start, choose the block's mask: the
``int(sparsity × size)`` weights of lowest w² / [H⁻¹]²_jj in the block (all rows together, the
code's adaptive mask selection); then, column by column, zero the masked weights and spread
each column's error over the not yet visited columns by the OBS update
W[:, j:] -= (w_j − q_j) / [H⁻¹]_jj · H⁻¹_{j, j:}; after each block, the same for the columns
right of it. Inputs that are never nonzero (H_jj = 0) get H_jj = 1 and their weights are zeroed,
as in the code. Every layer is pruned to the target (the paper's uniform per-layer sparsity).

Here: calibration data are 128 training examples (forward passes, charged); Conv2d layers are
pruned as matrices over their receptive fields (im2col, ``weight.view(out, -1)``, as the paper
suggests for convolutions); an LSTM's matrices multiply x_t and h_{t-1}, recomputed layer by
layer; an embedding (H over the whole vocabulary) makes the method raise, a failed trial with
that reason. The authors collect H layer by layer on the inputs of the already pruned
preceding layers (``opt.py``: sequential within and across blocks); here all H come from one pass
over the dense network — a deviation that ignores the error the earlier layers' pruning adds to a
later layer's inputs. ``sparsegpt-retrain`` retrains afterwards as ``magnitude`` does.
"""
from dataclasses import dataclass

import torch

from sparsebench import register_method
from sparsebench.library.posttraining import PruneAfterTraining, input_covariances


@register_method("sparsegpt", retrain="none")
@register_method("sparsegpt-retrain", retrain="lr-rewind")
@dataclass
class SparseGPT(PruneAfterTraining):
    block_size: int = 128            # columns per lazy-update block (the code's blocksize)
    dampening: float = 0.01          # of the mean Hessian diagonal (percdamp)
    calibration_examples: int = 128  # nsamples

    criterion = "second-order"
    paper = "Frantar & Alistarh 2023, SparseGPT: Massive Language Models Can Be Accurately Pruned in One-Shot (ICML)"
    untuned = "the paper fixes its block size, dampening and calibration size for every model"

    def __post_init__(self):
        super().__post_init__()
        if self.block_size < 1 or not 0.0 <= self.dampening < 1.0 or self.calibration_examples < 1:
            raise ValueError("block_size and calibration_examples must be >= 1, dampening in [0, 1)")

    def run(self, ctx):
        ctx.train()
        hessians = input_covariances(ctx, self.calibration_examples)
        pruned = {}
        with torch.no_grad():
            for name, weight in ctx.masks.params.items():
                new = prune_layer(weight.detach().flatten(1).double(), hessians[name], ctx.sparsity,
                                  self.block_size, self.dampening)
                weight.copy_(new.view_as(weight).to(weight.dtype))
                pruned[name] = (new != 0).view_as(weight)
        ctx.masks.set(pruned)
        self.retrain_pruned(ctx)


def prune_layer(w: torch.Tensor, h: torch.Tensor, sparsity: float, block_size: int = 128,
                dampening: float = 0.01) -> torch.Tensor:
    """The SparseGPT reconstruction of ``w`` (rows × inputs) at ``sparsity`` given H = XᵀX."""
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
        drop = ratio <= torch.sort(ratio.flatten())[0][int(ratio.numel() * sparsity)] if sparsity > 0 else \
            torch.zeros_like(ratio, dtype=torch.bool)
        for i in range(i2 - i1):
            col, d = w1[:, i], hinv1[i, i]
            q = torch.where(drop[:, i], torch.zeros_like(col), col)
            err = (col - q) / d
            w1[:, i:] -= err.unsqueeze(1) @ hinv1[i, i:].unsqueeze(0)
            w1[:, i] = q
            err1[:, i] = err
        w[:, i1:i2] = w1
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return w
