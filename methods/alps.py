"""ALPS: each layer's ℓ0-constrained reconstruction solved by ADMM, then refined on its support.

Meng, Behdin, Wang & Mazumder 2024, "ALPS: Improved Optimization for Highly Sparse One-Shot
Pruning for Large Language Models" (NeurIPS); code: github.com/mazumder-lab/ALPS, ``alps.py``
(``ALPS_prune.ALPS_admm`` and ``cg_batch``), with ``opt.py``'s defaults: ρ₀ = 0.1, 300 ADMM
iterations at most, ρ updated every 3, early stop after 30, 10 conjugate-gradient steps, 128
calibration sequences; layers pruned block by block as SparseGPT's ``opt_sequential`` does.

Algorithm, for a layer with weights W (rows × inputs) and H = Σ x xᵀ over its calibration inputs:
dampen H by 1 % of its mean diagonal and normalize it to unit diagonal, Ĥ = D⁻¹ H D⁻¹ with
D = diag(H)^½ (so that the problem is min ‖X̂B − X̂B₀‖² over B = (W D)ᵀ, B₀ the dense one); then
ADMM on  min ½ tr((B − B₀)ᵀ Ĥ (B − B₀))  s.t.  ‖B‖₀ ≤ k,  k = round((1 − s) · size):

    B ← (Ĥ + ρI)⁻¹ (Ĥ B₀ − V + ρ D)      D ← P_k(B + V / ρ)      V ← V + ρ (B − D)

with P_k keeping the k largest |entries| of the layer (for N:M, the N largest of every M consecutive
inputs of a row), started from D = P_k(B₀), V = 0. Every 3 iterations ρ follows the support's
change (the code's schedule): ×1.3 if more than 10 % of k entries changed, ×1.2 above 0.5 %, ×1.1 for
any change once ρ has grown, stop when nothing changes after it has grown; before it has grown, ρ /= 5
(with B, D, V restarted if the support still moved); ρ ≤ 10⁶; stop after 30 iterations once fewer
than 0.03 % change. Finally B is projected (P_k) and refined on its support by 10 steps of conjugate
gradient on Ĥ B = Ĥ B₀ (the code's ``cg_batch``: residuals masked to the support, its stopping rule),
and W = Bᵀ D⁻¹.

Here: H from :func:`~sparsebench.library.inputs.input_covariances` (2/N Σ x xᵀ: ALPS normalizes
H, so its scale does not matter but for the code's 1e-8 added to D); calibration and order as
:mod:`methods.sparsegpt`'s (262,144 random training tokens for a sequence model, 1,024 examples for
an image or sentence classifier; block by block). Deviations: float64 throughout (the code solves in
float32 on a GPU, its eigendecomposition in float64), so that the mask does not depend on the
device's rounding; the code's error prints are not computed. An embedding (one-hot inputs, H
diagonal, given as its diagonal) has a diagonal Ĥ: the same iterations, with (Ĥ + ρI)⁻¹ taken
elementwise (ALPS prunes no embeddings; sparsebench's language tasks prune them for every method).
``alps-2:4`` and ``alps-4:8`` prune to the N:M pattern (the code's ``nm_n``/``nm_m``), along the
stored weight's inputs as the harness checks every pattern (``weight.view(out, -1)``: an
embedding's along each token's dimensions, not along the vocabulary of its matrix Wᵀ).

Measured (``transformer-shakespeare``, ``pretrained``, seed 0; dense 5.74 test perplexity): ALPS
5.76 / 5.82 / 7.57 at 50 / 70 / 90 % against SparseGPT's 5.83 / 7.04 / 24.29, 2:4 5.78 (SparseGPT 6.06).
The lead is the objective's: ``python -m sparsebench.benchmarks.reconstruction`` gives, over the 24
layers on the dense network's inputs, median relative reconstruction errors of 0.0004 / 0.0025 /
0.0396 for ALPS against SparseGPT's 0.0037 / 0.0219 / 0.1519 (ALPS lower in every layer, 2.4-18×).
Both halves count: on block 0's value projection at 90 %, least squares on SparseGPT's mask reaches
0.209 (its OBS weights 0.275; with blocks of 8 columns instead of 128, 0.132), on ALPS's mask
0.0525, which ALPS's conjugate-gradient weights reach. SparseGPT empties whole input columns (1,470
of the 24 layers' columns at 90 %, ALPS 481): on 128-wide layers its block of 128 columns is the
whole layer, so its mask is chosen once, from the dense weights.
"""
from dataclasses import dataclass

import torch

from sparsebench import register_method
from sparsebench.library.inputs import as_matrix, input_covariances, owners, unmatrix
from sparsebench.library.posttraining import LayerwisePruning
from sparsebench.library.structures import check_pattern, check_pattern_target, nm_mask


@register_method("alps", retrain="none")
@dataclass
class ALPS(LayerwisePruning):
    version = "1"
    rho: float = 0.1             # ρ₀, the initial ADMM penalty (--rho)
    max_iter: int = 300          # ADMM iterations at most
    update_iter: int = 3         # iterations between ρ updates
    switch_iter: int = 30        # iterations before the early stop may apply
    dampening: float = 0.01      # of H's mean diagonal
    cg_iter: int = 10            # conjugate-gradient steps on the support
    n: int = 0                   # an N:M pattern: n kept of every m inputs (0: unstructured)
    m: int = 0
    bounds = {"rho": "(0, inf)", "max_iter": "[1, inf)", "update_iter": "[1, inf)", "switch_iter": "[0, inf)",
              "dampening": "(0, 1)", "cg_iter": "[0, inf)", "n": "[0, inf)", "m": "[0, inf)"}

    criterion = "reconstruction (ℓ0-constrained, ADMM)"
    paper = ("Meng, Behdin, Wang & Mazumder 2024, ALPS: Improved Optimization for Highly Sparse One-Shot Pruning "
             "for Large Language Models (NeurIPS)")
    untuned = "the paper fixes ρ₀, its schedule and the calibration set for every model"

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
            module, weight = modules[name], ctx.masks.params[name]
            w = as_matrix(module, weight.detach()).double()
            new = unmatrix(module, prune_layer(w, hessians[name], sparsity[name], self), weight)
            weight.copy_(new.to(weight.dtype))
            pruned[name] = new != 0
        return pruned


@register_method("alps-2:4", retrain="none", n=2, m=4)
@register_method("alps-4:8", retrain="none", n=4, m=8)
@dataclass
class ALPSNM(ALPS):
    """ALPS to an N:M pattern."""
    structure = "n:m"


def prune_layer(w: torch.Tensor, h: torch.Tensor, sparsity: float, options: ALPS) -> torch.Tensor:
    """ALPS on ``w`` (rows × inputs) given H (a matrix, or the vector of a diagonal H), at
    ``sparsity`` or ``options``' N:M pattern; the pruned weights."""
    if h.dim() == 1:  # a diagonal H: Ĥ is diagonal too, kept as its diagonal
        h = h + options.dampening * h.mean()
        scale = h.sqrt() + 1e-8
        hn = (h / scale / scale).unsqueeze(1)
        times_h, eigenvalues, eigenvectors = (lambda x: hn * x), None, None
    else:
        h = h + options.dampening * torch.diag(h).mean() * torch.eye(len(h), dtype=h.dtype)
        scale = torch.diag(h).sqrt() + 1e-8
        hn = h / scale / scale.unsqueeze(1)
        times_h, (eigenvalues, eigenvectors) = (lambda x: hn @ x), torch.linalg.eigh(hn)

    def inverse(rho):  # x ↦ (Ĥ + ρI)⁻¹ x
        if eigenvectors is None:
            return lambda x: x / (hn + rho)
        inv = eigenvectors @ ((1 / (eigenvalues + rho)) * eigenvectors).T
        return lambda x: inv @ x

    project = Projection(options.n, options.m, w.numel(), sparsity, embedding=h.dim() == 1)
    b0 = (w * scale).T
    target = times_h(b0)                  # Ĥ B₀
    rho, grown = options.rho, False
    d0 = project(b0)
    b, d, v = b0.clone(), d0.clone(), torch.zeros_like(b0)
    support, solve = d0 == 0, inverse(rho)
    for i in range(options.max_iter):
        b = solve(target - v + rho * d)
        d = project(b + v / rho)
        v = v + rho * (b - d)
        if (i + 1) % options.update_iter:
            continue
        now = d == 0
        change = (now != support).sum().item()
        if change / project.kept > 0.1:
            grown, rho = True, rho * 1.3
        elif change / project.kept > 0.005:
            grown, rho = True, rho * 1.2
        elif change > 0:
            if grown:
                rho *= 1.1
            else:
                rho /= 5
                b, d, v = b0.clone(), d0.clone(), torch.zeros_like(b0)
        elif grown:
            break
        else:
            rho /= 5
        support, rho = now, min(rho, 1e6)
        solve = inverse(rho)
        if i >= options.switch_iter and change / project.kept < 0.0003:
            break
    b = project(b)
    b = conjugate_gradient(times_h, target, b != 0, b, options.cg_iter)
    return b.T / scale


class Projection:
    """P_k: the ``kept`` largest |entries| of B (inputs × rows), or the N largest of every M
    consecutive inputs of each row (:func:`~sparsebench.library.structures.nm_mask`; of an embedding's
    B, the stored weight, along each token's dimensions, as the harness checks N:M); the rest zeroed
    (the code's ``topk`` of −B²)."""

    def __init__(self, n: int, m: int, size: int, sparsity: float, embedding: bool = False):
        self.n, self.m, self.embedding = n, m, embedding
        self.kept = size * n / m if n else int(round((1 - sparsity) * size))
        self.dropped = size - int(self.kept)

    def __call__(self, b: torch.Tensor) -> torch.Tensor:
        if self.n:
            return b * (nm_mask(b ** 2, self.n, self.m) if self.embedding else nm_mask(b.T ** 2, self.n, self.m).T)
        flat = b.reshape(-1).clone()
        flat[torch.topk(-flat ** 2, self.dropped).indices] = 0.0
        return flat.reshape(b.shape)


def conjugate_gradient(times_a, rhs, support, x, steps: int, rtol: float = 1e-4) -> torch.Tensor:
    """The code's ``cg_batch`` without preconditioner: A X = rhs column by column, the residuals kept
    to ``support``; stops when every input's residual norm ‖(A X − rhs)_j‖ ≤ rtol ‖rhs_j‖."""
    r = (rhs - times_a(x)) * support
    stop = rtol * torch.linalg.norm(rhs, dim=1)
    p, r_old = None, None
    for _ in range(steps):
        if p is None:
            p = r
        else:
            below = (r_old * r_old).sum(0)
            below[below == 0] = 1e-8
            p = r + ((r * r).sum(0) / below).unsqueeze(0) * p
        ap = times_a(p)
        below = (p * ap).sum(0)
        below[below == 0] = 1e-8
        alpha = (r * r).sum(0) / below
        x = x + alpha.unsqueeze(0) * p
        r_old, r = r, (r - alpha.unsqueeze(0) * ap) * support
        if (torch.linalg.norm(times_a(x) - rhs, dim=1) <= stop).all():
            break
    return x
