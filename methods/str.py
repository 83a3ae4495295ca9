"""STR: soft threshold weight reparameterization, sparsity learned during training.

Kusupati et al. 2020, "Soft Threshold Weight Reparameterization for Learnable Sparsity"
(ICML), §3: every prunable layer l uses, in its forward pass, the weights

    S_g(W_l, s_l) = sign(W_l) * ReLU(|W_l| - g(s_l)),   g = sigmoid,

with one learnable threshold parameter s_l per layer, initialized to s_init (so that the
threshold g(s_init) is tiny and the network starts dense) and trained jointly with W by the
same optimizer; weight decay λ applies to W and to s, and is what pulls the thresholds up (s
towards 0): the sparsity reached is learned, not set, so ``exact_sparsity = False``.

Hyperparameters and the target: the paper fixes s_init per architecture (-3200 with SGD for
ResNet-50 over 100 ImageNet epochs, Appendix; its reference configs) and tunes λ for each
sparsity in its tables. A sparsebench recipe has its own optimizer, budget and weight decay,
so here λ is an extra L2 term added to the gradients of the prunable weights and thresholds
(on top of the recipe's own decay, which also reaches s), and s_init = -8 (g = 3e-4, below the
magnitudes of standard initializations) lets the thresholds move within one training of a few
thousand steps. ``λ`` for a target sparsity comes from ``LAMBDA_FOR_SPARSITY``, a coarse table
interpolated log-linearly in the density: it was calibrated on LeNet-300-100 / MNIST with Adam
(task ``lenet300-mnist``, profile ``quick``); elsewhere, and with other budgets, the sparsity
reached is only approximate, and it is what the harness reports (it counts zeros). Override
``weight_decay`` and ``s_init`` to tune per task, as the paper does. Training cost is counted at
the dense rate (the masks stay dense while the thresholds learn), an upper bound on STR's.

After training, the parametrization is removed with its values left in the weights, so the
zeros are real; the masks are then set from those zeros (and hold from there on).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sparsebench import Method, Uniform, register_method
from sparsebench.library.calibration import from_table
from sparsebench.library.reparametrize import fold, reparametrize

# target sparsity -> λ (approximate; see the module docstring). Measured with s_init = -8 on
# lenet300-mnist, profile quick (Adam 1.2e-3, 2 epochs), seed 0: λ = 1e-5, 1e-4, 1e-3, 3e-3, 1e-2,
# 3e-2, 0.1 reached sparsity 0.18, 0.34, 0.69, 0.79, 0.85, 0.92, 0.96; the rows above 0.96 are
# extrapolated. Longer trainings (profile full) reach higher sparsity with the same λ.
LAMBDA_FOR_SPARSITY = ((0.2, 1e-5), (0.35, 1e-4), (0.5, 3e-4), (0.7, 1e-3), (0.8, 4e-3), (0.85, 1e-2),
                       (0.9, 2.5e-2), (0.95, 8e-2), (0.98, 0.3), (0.99, 0.6))


def lambda_for(sparsity: float) -> float:
    """λ for a target sparsity: the table, log-linear in (1 - sparsity) between its rows."""
    return from_table(LAMBDA_FOR_SPARSITY, sparsity)


class SoftThreshold(nn.Module):
    """The reparameterization S_g(W, s) = sign(W) ReLU(|W| - sigmoid(s)), with s learnable."""

    def __init__(self, s_init: float):
        super().__init__()
        self.s = nn.Parameter(torch.tensor(float(s_init)))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return torch.sign(w) * torch.relu(w.abs() - torch.sigmoid(self.s))


@register_method("str")
@dataclass
class STR(Method):
    s_init: float = -8.0                # initial threshold parameter of every layer
    weight_decay: float | None = None   # λ on W and s; None: from the target (LAMBDA_FOR_SPARSITY)
    lambda_scale: float = 1.0           # multiplies the table's λ (weight_decay None)
    bounds = {"weight_decay": "[0, inf)", "lambda_scale": "(0, inf)"}

    # the paper tunes λ per target and fixes s_init per architecture: λ within 10x of the table, s_init
    # from g = 6e-6 to 2e-2 (the network starts dense throughout)
    search_space = {"lambda_scale": Uniform(0.1, 10.0, log=True), "s_init": Uniform(-12.0, -4.0)}

    when = "during"
    criterion = "magnitude"
    paper = "Kusupati et al. 2020, Soft Threshold Weight Reparameterization for Learnable Sparsity (ICML)"
    exact_sparsity = False

    def run(self, ctx):
        lam = self.weight_decay if self.weight_decay is not None else self.lambda_scale * lambda_for(ctx.sparsity)
        thresholds = reparametrize(ctx, lambda name, w: SoftThreshold(self.s_init))
        decayed = [*ctx.masks.params.values(), *(t.s for t in thresholds.values())]

        @torch.no_grad()
        def weight_decay(_):
            for p in decayed:
                if p.grad is not None:
                    p.grad.add_(p, alpha=lam)

        ctx.train(every=1, callback=weight_decay)  # the optimizer also trains the thresholds s
        fold(ctx, thresholds)  # the zeros become real in the weights

    def learned_thresholds(self, model: nn.Module) -> dict[str, float]:
        """g(s) of every reparameterized layer (while training)."""
        return {n: torch.sigmoid(m.s).item() for n, m in model.named_modules() if isinstance(m, SoftThreshold)}
