"""Sparse variational dropout (methods/sparse_vd.py): the KL approximation, the local
reparameterization's moments, the threshold, the warm-up and the folded zeros."""
import math

import pytest
import torch
import torch.nn.functional as F
from scipy import integrate
from torch import nn
from torch.nn.utils import parametrize

from sparsebench.core import registry
from sparsebench.running.trial import make_context, make_method, make_task, seed_everything

module = __import__("inspect").getmodule(registry.METHODS.get("sparse-vd")[0])
K1 = 0.63576


def neg_kl_exact(log_alpha: float) -> float:
    """-KL(N(θ, αθ²) ‖ log-uniform) up to the prior's constant: ½ log α - E log|ε|, ε ~ N(1, α) (the paper's Eq. 14 approximates it)."""
    alpha = math.exp(log_alpha)
    density = lambda x: math.log(abs(x)) * math.exp(-(x - 1) ** 2 / (2 * alpha)) / math.sqrt(2 * math.pi * alpha)
    lo, hi = 1 - 40 * math.sqrt(alpha), 1 + 40 * math.sqrt(alpha)
    parts = [(lo, 0.0), (0.0, hi)] if lo < 0 else [(lo, hi)]  # log|x| is singular at 0
    return 0.5 * log_alpha - sum(integrate.quad(density, a, b, limit=200)[0] for a, b in parts)


@pytest.mark.parametrize("log_alpha", [-6.0, -4.0, -2.0, 0.0, 1.0, 3.0, 6.0])
def test_kl_approximation_matches_the_integral(log_alpha):
    # the paper approximates -KL as k1 σ(k2 + k3 log α) - ½ log(1 + 1/α) + C; here KL = k1 - that (C = -k1)
    kl = module.kl_divergence(torch.tensor(log_alpha, dtype=torch.float64)).item()
    assert K1 - kl == pytest.approx(neg_kl_exact(log_alpha), abs=0.01)


def test_kl_limits_and_sign():
    la = torch.linspace(-20, 20, 401, dtype=torch.float64)
    kl = module.kl_divergence(la)
    assert (kl > 0).all() and (kl.diff() < 0).all()                    # ≥ 0, decreasing in α
    assert kl[-1].item() < 1e-6                                         # -KL -> 0 (k1 + C) as log α -> +∞
    assert kl[0].item() == pytest.approx(K1 + 10.0, abs=1e-6)           # -KL ≈ ½ log α - k1 as log α -> -∞


def test_warmup_ramps_the_kl_weight_from_0_to_1():
    w = [module.kl_weight(p, 0.025, 0.1) for p in (0.0, 0.025, 0.0625, 0.1, 0.5)]
    assert w == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])


def variational(theta, log_alpha, **kw):
    vw = module.VariationalWeight(theta, 0.0, **{"threshold": 3.0, "train_clip": False, "weight_noise": False, **kw})
    vw.log_sigma2.data = log_alpha + torch.log(theta * theta)  # log σ² = log α + log θ²
    return vw


@torch.no_grad()
def test_threshold_zeroes_exactly_the_weights_above_it():
    theta = torch.tensor([0.5, -0.2, 0.1, 0.3, -0.05, 0.02])
    log_alpha = torch.tensor([-5.0, 2.9, 3.1, 7.0, 0.0, 2.99])
    kept = torch.tensor([True, True, False, False, True, True])
    vw = variational(theta, log_alpha)
    assert torch.allclose(vw.log_alpha(theta), log_alpha, atol=1e-5)
    assert torch.equal(vw.eval()(theta), torch.where(kept, theta, 0.0))
    assert torch.equal(vw.train()(theta), theta)                          # training mean: θ, unclipped
    clipped = variational(theta, log_alpha, train_clip=True).train()
    assert torch.equal(clipped(theta), torch.where(kept, theta, 0.0))    # the code's train_clip


@torch.no_grad()
@pytest.mark.parametrize("layer", [nn.Linear(3, 2), nn.Conv2d(1, 2, 3, padding=1)])
def test_local_reparameterization_has_the_moments_of_the_weight_posterior(layer):
    torch.manual_seed(0)
    vw = module.VariationalWeight(layer.weight, -3.0, 100.0, False, False)  # no weight above the threshold
    vw.log_sigma2.data = torch.randn_like(layer.weight) - 3.0
    parametrize.register_parametrization(layer, "weight", vw)
    layer.register_forward_hook(module.local_reparameterization)
    x = torch.randn(1, 3) if isinstance(layer, nn.Linear) else torch.randn(1, 1, 4, 4)
    theta, sigma2 = layer.parametrizations.weight.original, vw.log_sigma2.exp()
    mean = layer.eval()(x)  # eval: no noise
    linear = isinstance(layer, nn.Linear)
    var = F.linear(x * x, sigma2) if linear else F.conv2d(x * x, sigma2, padding=1)
    assert torch.allclose(mean, F.linear(x, theta, layer.bias) if linear else F.conv2d(x, theta, layer.bias, padding=1))
    samples = layer.train()(x.expand(40_000, *x.shape[1:]))
    assert torch.allclose(samples.mean(0), mean[0], atol=4 * (var[0].sqrt().max() / 200).item())
    assert torch.allclose(samples.var(0), var[0], rtol=0.05, atol=1e-8)


def trained(hparams):
    task = make_task("tiny-mlp", "adam")  # the authors train with Adam
    splits = task.load(None)
    ctx = make_context(task, splits.train, splits.val, 0.8, seed_everything(0))
    make_method("sparse-vd", hparams).run(ctx)
    return ctx


def test_kl_scale_sets_the_sparsity_and_the_zeros_are_real(one_thread):
    weak, strong = trained({"kl_scale": 1e-4}), trained({"kl_scale": 3.0})
    assert 1 - weak.masks.density() < 0.1 < 0.3 < 1 - strong.masks.density()  # 32 steps: far from converged
    assert not any("parametrizations" in k for k in strong.model.state_dict()) and not strong.model[0]._forward_hooks
    params = dict(strong.model.named_parameters())
    for name, weight in strong.masks.params.items():
        assert weight is params[name] and torch.equal(strong.masks[name].bool(), weight != 0)
