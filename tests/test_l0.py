"""L0 regularization (methods/l0.py): the hard-concrete gate's statistics and the folded zeros."""
import math

import pytest
import torch

from sparsebench.core import registry
from sparsebench.running.trial import make_context, make_method, make_task, seed_everything

L0 = registry.METHODS.get("l0")[0]
module = __import__("inspect").getmodule(L0)
LOG_ALPHA = torch.tensor([-4.0, -3.0, -1.0, 0.0, 1.0, 3.0])


def gate_at(log_alpha, scale=1.0, beta=2 / 3, gamma=-0.1, zeta=1.1):
    gate = module.HardConcreteGate(log_alpha.shape, 0.0, scale, beta, gamma, zeta)
    gate.a.data = log_alpha / scale
    return gate


@torch.no_grad()
def test_expected_l0_matches_a_monte_carlo_count_of_open_gates():
    torch.manual_seed(0)
    gate = gate_at(LOG_ALPHA, scale=7.0).train()
    expected = torch.sigmoid(LOG_ALPHA - 2 / 3 * math.log(0.1 / 1.1))  # P(z != 0), the expected L0 norm per gate
    assert torch.allclose(gate.p_open(), expected, atol=1e-6)
    open_fraction = torch.stack([gate.gate() != 0 for _ in range(20_000)]).float().mean(0)
    assert (open_fraction - expected).abs().max() < 0.015  # 4 standard errors at most
    samples = torch.stack([gate.gate() for _ in range(200)])
    assert samples.min() == 0 and samples.max() == 1 and ((samples > 0) & (samples < 1)).any()  # hard, stretched


@torch.no_grad()
def test_deterministic_gate_values_at_known_log_alpha():
    gate = gate_at(LOG_ALPHA).eval()
    z = torch.sigmoid(LOG_ALPHA) * 1.2 - 0.1  # sigmoid(log α)(ζ - γ) + γ, clamped to [0, 1]
    expected = z.clamp(0, 1)
    assert torch.allclose(gate.gate(), expected)
    assert gate.gate()[:2].eq(0).all() and gate.gate()[-1] == 1  # closed below log(1/11) = -2.4, open above
    assert gate.gate()[3].item() == pytest.approx(0.5)
    assert torch.equal(gate(torch.full((6,), 2.0)), 2.0 * expected)  # the weight times its gate


def test_constrain_clamps_log_alpha_as_the_code():
    gate = gate_at(torch.tensor([-9.0, 0.5, 9.0]), scale=10.0)
    gate.constrain()
    assert torch.allclose(gate.log_alpha, torch.tensor([math.log(1e-2), 0.5, math.log(1e2)]))


def test_lambda_table_interpolates_log_linearly_in_the_density():
    rows = module.LAMBDA_FOR_SPARSITY
    for s, lam in rows:
        assert module.lambda_for(s) == pytest.approx(lam)
    (s0, l0), (s1, l1) = rows[2], rows[3]
    middle = 1 - math.sqrt((1 - s0) * (1 - s1))  # the geometric mean of the densities
    assert module.lambda_for(middle) == pytest.approx(math.sqrt(l0 * l1))
    assert module.lambda_for(0.0) == pytest.approx(rows[0][1]) and module.lambda_for(0.9999) == pytest.approx(rows[-1][1])


def trained(method, hparams):
    """The context after ``method`` ran on the tiny MLP (no harness report: a fraction of a second)."""
    task = make_task("tiny-mlp", "quick")
    splits = task.load(None)
    ctx = make_context(task, splits.train, splits.val, 0.8, seed_everything(0))
    make_method(method, hparams).run(ctx)
    return ctx, splits


def test_lambda_sets_the_sparsity(one_thread):
    assert 1 - trained("l0", {"lam": 0.0})[0].masks.density() < 0.3
    assert 1 - trained("l0", {"lam": 0.3})[0].masks.density() > 0.8


def test_gates_are_folded_into_the_weights_and_the_masks_set_from_the_zeros(one_thread):
    ctx, splits = trained("l0", {"lam": 0.3})
    assert not any("parametrizations" in k for k in ctx.model.state_dict())  # a plain model again
    params = dict(ctx.model.named_parameters())
    for name, weight in ctx.masks.params.items():
        assert weight is params[name]
        assert torch.equal(ctx.masks[name].bool(), weight != 0)
    ctx.model.eval()
    assert ctx.model(splits.val.inputs[:4]).shape == (4, 4)  # and it runs
