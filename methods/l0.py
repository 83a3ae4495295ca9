"""L0 regularization: hard-concrete gates on the weights, sparsity learned during training.

Louizos, Welling & Kingma 2018, "Learning Sparse Neural Networks through L0 Regularization"
(ICLR); code: github.com/AMLab-Amsterdam/L0_regularization, ``l0_layers.py`` (``L0Dense``,
``L0Conv2d``), ``models.py`` (``L0MLP``) and ``train_lenet5.py``.

Algorithm (the paper's hard concrete distribution): every prunable weight θ_j is used as θ_j z_j,
with a hard-concrete gate

    s = sigmoid((log u - log(1 - u) + log α_j) / β),  u ~ U(0, 1),   z = min(1, max(0, s (ζ - γ) + γ)),

drawn anew at every step (one draw per weight per minibatch: the code's ``sample_weights``), and the
expected L0 norm Σ_j P(z_j ≠ 0) = Σ_j sigmoid(log α_j - β log(-γ/ζ)) is added to the loss with
weight λ/N, N the training examples (the code's ``regularization``: -(1/N) Σ_layers of λ P(z≠0));
log α is trained with θ by the same optimizer. At test time z = min(1, max(0, sigmoid(log α)(ζ - γ)
+ γ)) (``sample_z(sample=False)``); after training it is folded into the weights, so the weights of
closed gates are exact zeros, and the masks are set from those zeros: ``exact_sparsity = False``.

Defaults: β = 2/3, γ = -0.1, ζ = 1.1 (the paper's, and the code's ``temperature``, ``limit_a``,
``limit_b``); log α drawn from N(log((1 - p)/p), 0.01²) with p = ``droprate_init`` = 0.5
(``reset_parameters``), and clamped to [log 1e-2, log 1e2] after each step (``constrain_parameters``).

Deviations:
- One gate per weight (the paper's general form); its experiments and code gate groups (a fully
  connected layer's input neurons, a convolution's output maps), which sparsebench would count as
  structured pruning (``structure = "filters"``): not implemented here.
- λ for a target sparsity comes from ``LAMBDA_FOR_SPARSITY`` (the paper tunes λ per network and
  layer; the code's default is 1 per group gate, ``--lambas``), a coarse table calibrated on
  ``lenet300-mnist``, profile ``quick``, interpolated log-linearly in the density, times
  ``lambda_scale``; elsewhere the sparsity reached is only approximate, and it is what the harness counts.
- The gates learn faster: log α = c·a with ``a`` trained and its gradient divided by c, so that
  Adam and SGD alike move log α at c times the recipe's rate (``gate_lr_scale``; the paper: 1).
  Under Adam a parameter moves by about the learning rate per step at most: in the 1,834 steps of
  ``lenet300-mnist``'s quick profile log α could not travel from 0 to where the test-time gate
  closes, log(-γ/ζ) = -2.4. The default gives the gates the travel of the code's training (200
  epochs of 600 steps): c = max(1, 120,000 / the training's steps), 65 on that profile.
- The code's gate-weighted L2 on θ (``_reg_w``, ``prior_prec``) and its parameter averaging
  (``beta_ema``) are left out; the recipe's own weight decay applies, to θ and to the gates.
  The code's first layer starts at droprate 0.2 (``L0MLP``); one ``droprate_init`` here.
Training cost is counted at the dense rate (the masks stay dense while the gates learn).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from sparsebench import Method, Uniform, register_method
from sparsebench.library.calibration import from_table
from sparsebench.library.reparametrize import fold, reparametrize

EPSILON = 1e-6  # the code's bound on u and on the gates' CDF

PAPER_STEPS = 120_000  # the code's training: 200 epochs of 60,000 MNIST images in batches of 100

# sparsity reached -> λ, measured on lenet300-mnist, profile quick (Adam 1.2e-3, 2 epochs, c = 65),
# seed 0, with the other defaults: λ = 0.01, 0.03, 0.1, 0.3, 1, 3, 10 reached the sparsities below
LAMBDA_FOR_SPARSITY = ((0.532, 0.01), (0.677, 0.03), (0.820, 0.1), (0.905, 0.3), (0.961, 1.0), (0.986, 3.0),
                       (0.9976, 10.0))


def lambda_for(sparsity: float) -> float:
    """λ for a target: the table, log-linear in the density between its rows, constant beyond."""
    return from_table(LAMBDA_FOR_SPARSITY, sparsity)


class HardConcreteGate(nn.Module):
    """The parametrization θ -> θ z, a hard-concrete gate z per weight with log α = scale · a
    (``a`` learns at ``scale`` times the rate of θ once its gradient is divided by ``scale``)."""

    def __init__(self, shape, log_alpha_init: float, scale: float, beta: float, gamma: float, zeta: float):
        super().__init__()
        self.a = nn.Parameter(torch.normal(log_alpha_init, 1e-2, tuple(shape)) / scale)
        self.scale, self.beta, self.gamma, self.zeta = scale, beta, gamma, zeta

    @property
    def log_alpha(self) -> torch.Tensor:
        return self.scale * self.a

    def gate(self) -> torch.Tensor:
        """A sample of z in training, its deterministic value in eval mode."""
        logits = self.log_alpha
        if self.training:
            u = torch.rand_like(logits).clamp_(EPSILON, 1 - EPSILON)
            logits = (torch.log(u) - torch.log1p(-u) + logits) / self.beta
        return (torch.sigmoid(logits) * (self.zeta - self.gamma) + self.gamma).clamp(0, 1)

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        return theta * self.gate()

    def p_open(self) -> torch.Tensor:
        """P(z ≠ 0) of every gate (1 - the code's ``cdf_qz(0)``), whose sum is the expected L0 norm."""
        return torch.sigmoid(self.log_alpha - self.beta * math.log(-self.gamma / self.zeta))

    @torch.no_grad()
    def constrain(self) -> None:
        """log α within [log 1e-2, log 1e2], as the code's ``constrain_parameters``."""
        self.a.clamp_(math.log(1e-2) / self.scale, math.log(1e2) / self.scale)


@register_method("l0")
@dataclass
class L0(Method):
    beta: float = 2 / 3              # temperature of the concrete distribution
    gamma: float = -0.1              # stretch interval (γ, ζ)
    zeta: float = 1.1
    droprate_init: float = 0.5       # log α starts at log((1 - p) / p)
    lam: float | None = None         # λ (the penalty is λ/N Σ P(z≠0)); None: from the target
    lambda_scale: float = 1.0        # multiplies the table's λ (lam None)
    gate_lr_scale: float | None = None  # c; None: max(1, PAPER_STEPS / steps); 1: the paper
    bounds = {"beta": "(0, inf)", "gamma": "(-inf, 0)", "zeta": "(1, inf)", "droprate_init": "(0, 1)",
              "lam": "[0, inf)", "lambda_scale": "(0, inf)", "gate_lr_scale": "(0, inf)"}

    # the paper tunes λ per network and layer: λ within 10x of the table; the code's initial
    # droprates are 0.2 and 0.5 (L0MLP)
    search_space = {"lambda_scale": Uniform(0.1, 10.0, log=True), "droprate_init": Uniform(0.2, 0.7)}

    when = "during"
    criterion = "L0 regularization (learned gates)"
    paper = "Louizos, Welling & Kingma 2018, Learning Sparse Neural Networks through L0 Regularization (ICLR)"
    exact_sparsity = False

    def run(self, ctx):
        lam = self.lam if self.lam is not None else self.lambda_scale * lambda_for(ctx.sparsity)
        per_example = lam / ctx.train_examples  # λ/N
        scale = self.gate_lr_scale or max(1.0, PAPER_STEPS / ctx.total_steps)
        log_alpha_init = math.log(1 - self.droprate_init) - math.log(self.droprate_init)
        gates = reparametrize(ctx, lambda name, theta: HardConcreteGate(
            theta.shape, log_alpha_init, scale, self.beta, self.gamma, self.zeta).to(theta.device))

        def l0_penalty(_):
            for gate in gates.values():
                gate.constrain()  # after the previous step
            (per_example * sum(gate.p_open().sum() for gate in gates.values())).backward()
            for gate in gates.values():
                gate.a.grad.div_(scale)

        ctx.train(every=1, callback=l0_penalty)  # the optimizer also trains the gates
        for gate in gates.values():
            gate.constrain()
        fold(ctx, gates, test_time=True)  # the test-time gates folded into the weights: the zeros become real
