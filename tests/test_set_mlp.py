"""SET's MLP (``set-mlp-mnist``): its S-shaped ReLU against keras-contrib's computation re-typed, and its
sparsity target against the Erdős–Rényi densities of ε = 20."""
import importlib

import pytest
import torch

from sparsebench.core import registry
from sparsebench.core.masks import layer_densities


def keras_contrib_srelu(x, t_left, a_left, t_right, a_right):
    """keras-contrib's ``SReLU.call``: t_l + relu(x − t_l, alpha=a_l, max_value=t_r − t_l) + a_r relu(x − t_r)."""
    t_right_actual = t_left + t_right.abs()
    z = x - t_left
    relu = torch.where(z < 0, a_left * z, torch.minimum(z, t_right_actual - t_left))
    return t_left + relu + torch.relu(x - t_right_actual) * a_right


def test_srelu_is_keras_contribs():
    task = importlib.import_module(registry.TASKS.get("set-mlp-mnist")[0].__module__)
    torch.manual_seed(0)
    unit = task.SReLU(6)
    with torch.no_grad():
        unit.t_left.copy_(torch.tensor([0.0, -1.0, 0.5, 0.0, 2.0, -0.3]))
        unit.t_right.copy_(torch.tensor([2.0, -1.5, 0.1, 0.0, 3.0, 4.0]))  # |t_r'|: a negative one counts as its size
    x = torch.linspace(-6, 9, 61).unsqueeze(1).expand(61, 6)
    params = [unit.t_left, unit.a_left, unit.t_right, unit.a_right]
    assert torch.allclose(unit(x), keras_contrib_srelu(x, *params), atol=1e-6)
    # keras-contrib's initialization: t_l = 0, a_l in [0, 1), t_r' in [0, 5), a_r = 1
    fresh = task.SReLU(1000)
    assert (fresh.t_left == 0).all() and (fresh.a_right == 1).all()
    assert 0 <= fresh.a_left.min() and fresh.a_left.max() < 1 and 0 <= fresh.t_right.min() and fresh.t_right.max() < 5


def test_the_target_is_epsilon_20_spread_by_the_er_rule():
    cls, defaults = registry.TASKS.get("set-mlp-mnist")
    task = cls(profile="quick", **defaults)
    model = task.model()
    params = dict(model.named_parameters())
    assert task.prunable(model) == ["1.weight", "4.weight", "7.weight"]  # the output layer (10.weight) stays dense
    shapes = {n: params[n].shape for n in task.prunable(model)}
    epsilon = {n: 20 * (s[0] + s[1]) / (s[0] * s[1]) for n, s in shapes.items()}
    kept = sum(epsilon[n] * s.numel() for n, s in shapes.items())
    assert kept == pytest.approx(115_680) and 1 - kept / sum(s.numel() for s in shapes.values()) == pytest.approx(0.95845, abs=1e-4)
    densities = layer_densities(shapes, 1 - 0.95845, "er")
    assert densities == pytest.approx(epsilon, rel=1e-3)
