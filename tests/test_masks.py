import math

import pytest
import torch
from torch import nn

from sparsebench.core.masks import Masks, check_sparsity, layer_densities, sparsity_report, top_k_masks

SHAPES = {"conv1": torch.Size([16, 3, 3, 3]), "conv2": torch.Size([32, 16, 3, 3]),
          "fc1": torch.Size([256, 512]), "fc2": torch.Size([10, 256])}


def weighted_density(densities):
    return sum(densities[n] * math.prod(s) for n, s in SHAPES.items()) / sum(math.prod(s) for s in SHAPES.values())


@pytest.mark.parametrize("rule", ["uniform", "er", "erk"])
@pytest.mark.parametrize("density", [0.5, 0.2, 0.1, 0.01])
def test_layer_densities_meet_global_target(rule, density):
    d = layer_densities(SHAPES, density, rule)
    assert weighted_density(d) == pytest.approx(density, rel=1e-9)
    assert all(0 < v <= 1 for v in d.values())


def test_erk_gives_small_layers_higher_density_and_caps_at_one():
    d = layer_densities(SHAPES, 0.5, "erk")
    assert d["conv1"] == 1.0  # 432 weights: ERK would exceed 1, so it stays dense
    assert d["fc1"] < d["conv2"] < 1.0
    # ERK's raw density is sum(shape) / prod(shape), scaled by one common factor
    eps = d["fc1"] / (sum(SHAPES["fc1"]) / math.prod(SHAPES["fc1"]))
    assert d["conv2"] == pytest.approx(eps * sum(SHAPES["conv2"]) / math.prod(SHAPES["conv2"]))
    assert d["fc2"] == 1.0


def test_er_ignores_kernel_size():
    d = layer_densities({"a": torch.Size([8, 8, 3, 3]), "b": torch.Size([8, 8, 5, 5]), "c": torch.Size([100, 400])},
                        0.3, "er")
    assert d["a"] == pytest.approx(d["b"])


def test_top_k_exact_counts_global_and_layerwise():
    torch.manual_seed(0)
    scores = {n: torch.randn(s) for n, s in SHAPES.items()}
    total = sum(math.prod(s) for s in SHAPES.values())
    masks = top_k_masks(scores, 0.1, "global")
    assert sum(int(m.sum()) for m in masks.values()) == round(0.1 * total)
    flat = torch.cat([s.flatten() for s in scores.values()])
    threshold = flat.topk(round(0.1 * total)).values.min()
    assert all(bool((scores[n][m] >= threshold).all()) for n, m in masks.items())
    uniform = top_k_masks(scores, 0.25, "uniform")
    for n, m in uniform.items():
        assert int(m.sum()) == round(0.25 * m.numel())


def test_prune_never_revives_and_counts_from_weights():
    model = nn.Sequential(nn.Linear(20, 30), nn.Linear(30, 5))
    masks = Masks(model, ["0.weight", "1.weight"])
    masks.prune({n: p.abs() for n, p in masks.params.items()}, 0.5)
    pruned_before = {n: ~m.bool() for n, m in masks.masks.items()}
    masks.prune({n: torch.ones_like(p) for n, p in masks.params.items()}, 0.8)  # scores favour nobody
    for n, before in pruned_before.items():
        assert not masks.masks[n][before].any()
    overall, per_layer = sparsity_report({n: p.detach() for n, p in masks.params.items()})
    assert overall == pytest.approx(0.8, abs=1 / 750)
    assert set(per_layer) == {"0.weight", "1.weight"}


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, "abc", None])
def test_bad_sparsity_is_refused(bad):
    with pytest.raises(ValueError, match="sparsity"):
        check_sparsity(bad)


def test_unknown_parameter_is_refused():
    with pytest.raises(ValueError, match="not in the model"):
        Masks(nn.Linear(2, 2), ["nope.weight"])
