"""Pruning at initialization: the scores on networks small enough to check by hand, layer
collapse, the sanity-check ablations, determinism and exact sparsity."""
import inspect
import itertools
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsebench import Masks, registry
from sparsebench.library.ablations import exponential_sparsities, shuffled_masks
from sparsebench.library.scores import connection_sensitivity, hessian_gradient_product, loss_gradient, synaptic_flow
from sparsebench.running.trial import make_context, make_method, make_task, seed_everything

PAI = ["snip", "iter-snip", "force", "grasp", "synflow", "magnitude-init"]
ABLATED = [f"{m}+{a}" for m in PAI for a in ("shuffle", "reinit", "invert")]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: fastest, deterministic


def method(name, **overrides):
    return make_method(name, overrides)


def plugin_module(name):
    return inspect.getmodule(registry.METHODS.get(name)[0])


def harness_context(sparsity=0.8, seed=0, model_fn=None):
    """The Context a trial gives a method (as ``run_trial`` builds it), on the tiny task's data,
    optionally with another model of the same input and output."""
    task = make_task("tiny-mlp", "quick")
    splits = task.load(None)
    generator = seed_everything(seed)
    if model_fn is not None:
        task.model = model_fn
    return make_context(task, splits.train, splits.val, sparsity, generator)


def prune_only(name, sparsity=0.8, seed=0, model_fn=None):
    """Run a method up to training: (masks, state_dict when training would start, initial state)."""
    ctx = harness_context(sparsity, seed, model_fn)
    init = ctx.snapshot()
    seen = {}
    ctx.train = lambda *a, **k: seen.setdefault("state", {k: v.clone() for k, v in ctx.model.state_dict().items()})
    method(name).run(ctx)
    return ctx.masks.state(), seen["state"], init


def kept(masks):
    return sum(int(m.sum()) for m in masks.values())


def total(masks):
    return sum(m.numel() for m in masks.values())


# --- scores, by hand -----------------------------------------------------------------------------

def test_snip_score_is_abs_gradient_times_weight_on_a_two_layer_linear_net():
    w1 = torch.tensor([[1.0, -2.0], [0.5, 3.0], [-1.0, 1.0]])   # 2 -> 3
    w2 = torch.tensor([[2.0, -1.0, 0.5]])                         # 3 -> 1
    net = nn.Sequential(nn.Linear(2, 3, bias=False), nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(w1)
        net[1].weight.copy_(w2)
    x, t = torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0]])
    # L = ½ (w2 w1 x - t)²: h = w1 x = (-3, 6.5, 1), out = -6 - 6.5 + 0.5 = -12, r = out - t = -13
    # ∂L/∂w2 = r hᵀ, ∂L/∂w1 = (w2ᵀ r) xᵀ
    r, h = -13.0, torch.tensor([-3.0, 6.5, 1.0])
    expected_w2 = (r * h * w2[0]).abs().unsqueeze(0)
    expected_w1 = ((w2[0] * r).unsqueeze(1) * x[0].unsqueeze(0) * w1).abs()
    params = dict(net.named_parameters())
    scores = connection_sensitivity(params, [(x, t)], lambda b: 0.5 * ((net(b[0]) - b[1]) ** 2).sum())
    assert torch.allclose(scores["1.weight"], expected_w2)
    assert torch.allclose(scores["0.weight"], expected_w1)
    assert torch.equal(net[0].weight, w1) and net[0].weight.grad is None  # no step, no .grad left


def test_force_scores_pruned_weights_with_their_initial_value():
    net = nn.Sequential(nn.Linear(2, 2, bias=False))
    w0 = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight[0, 0] = 0.0  # pruned
    params = dict(net.named_parameters())
    x, y = torch.tensor([[1.0, -1.0]]), torch.tensor([1])
    loss = lambda b: F.cross_entropy(net(b[0]), b[1])  # noqa: E731
    g = loss_gradient(params, [(x, y)], loss)["0.weight"]
    s = connection_sensitivity(params, [(x, y)], loss, weights={"0.weight": w0})["0.weight"]
    assert torch.allclose(s, (g * w0).abs()) and s[0, 0] > 0


def test_grasp_hessian_gradient_product_matches_the_explicit_hessian():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2, bias=False)).double()
    names = ["0.weight", "2.weight"]
    params = {n: p for n, p in net.named_parameters() if n in names}
    x, y = torch.randn(8, 3, dtype=torch.double), torch.tensor([0, 1] * 4)
    shapes = [params[n].shape for n in names]

    def flat_loss(theta):
        parts = torch.split(theta, [math.prod(s) for s in shapes])
        weights = {n: p.view(s) for n, p, s in zip(names, parts, shapes)}
        return F.cross_entropy(torch.func.functional_call(net, weights, (x,)) / 200.0, y)

    theta = torch.cat([params[n].detach().flatten() for n in names])
    hessian = torch.autograd.functional.hessian(flat_loss, theta)
    gradient = torch.autograd.functional.jacobian(flat_loss, theta)
    expected = hessian @ gradient
    loss = lambda b: F.cross_entropy(net(b[0]) / 200.0, b[1])  # noqa: E731
    g = loss_gradient(params, [(x, y)], loss)
    hg = hessian_gradient_product(params, [(x, y)], loss, g)
    ours = torch.cat([hg[n].flatten() for n in names])
    assert torch.allclose(torch.cat([g[n].flatten() for n in names]), gradient)
    assert torch.allclose(ours, expected, rtol=1e-6, atol=1e-14)

    # the plugin: class-balanced sample (4 per class: the whole batch, in two halves by class),
    # temperature 200, and the sign convention: it ranks θ ⊙ Hg = -S(-θ) and keeps the top,
    # i.e. removes the weights of highest GraSP score S(-θ) = -θ ⊙ Hg
    ctx = SimpleNamespace(model=net, masks=Masks(net, names), loss=lambda b: F.cross_entropy(net(b[0]), b[1]),
                          batches=lambda n: itertools.repeat((x, y)), charge=lambda n: None)
    scores = method("grasp", samples_per_class=4).score(ctx, None)
    assert torch.allclose(torch.cat([scores[n].flatten() for n in names]), theta * expected, rtol=1e-6, atol=1e-14)


def chain(widths, relu=True, bias=False):
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b, bias=bias), nn.ReLU()] if relu else [nn.Linear(a, b, bias=bias)]
    return nn.Sequential(*layers[:-1]) if relu else nn.Sequential(*layers)


@pytest.mark.parametrize("relu", [False, True])
def test_synflow_conserves_the_flow_in_every_layer(relu):
    """Tanaka et al. 2020, Theorem 1: in a chain, each layer's scores sum to R = 1ᵀ ∏|W| 1."""
    torch.manual_seed(0)
    net = chain((5, 4, 3, 2), relu)
    names = [n for n, _ in net.named_parameters()]
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    scores = synaptic_flow(net, names, torch.randn(7, 5))
    weights = [p.detach().double().abs() for p in net.parameters()]
    r = (weights[2] @ weights[1] @ weights[0] @ torch.ones(5, dtype=torch.double)).sum()
    for n in names:
        assert torch.allclose(scores[n].sum(), r)
    w = weights[0]  # first layer by hand: S_ij = |W_ij| · (1ᵀ |W3||W2|)_i · 1
    downstream = torch.ones(2, dtype=torch.double) @ weights[2] @ weights[1]
    assert torch.allclose(scores[names[0]], downstream.unsqueeze(1) * w)
    assert all(torch.equal(p, before[n]) for n, p in net.named_parameters())  # signs untouched


def test_synflow_with_token_inputs_uses_the_embedding_and_refuses_other_integer_inputs():
    net = nn.Sequential(nn.Embedding(6, 3), nn.Flatten(), nn.Linear(6, 2, bias=False))
    scores = synaptic_flow(net, ["0.weight", "2.weight"], torch.randint(0, 6, (4, 2)))
    e, w = net[0].weight.detach().double().abs(), net[2].weight.detach().double().abs()
    r = (w @ e.sum(0).repeat(2)).sum()  # one-hot all-ones over the vocabulary, at both positions
    assert torch.allclose(scores["0.weight"].sum(), r) and torch.allclose(scores["2.weight"].sum(), r)
    with pytest.raises(ValueError, match="float"):
        synaptic_flow(chain((2, 2)), ["0.weight"], torch.ones(3, 2, dtype=torch.long))


def test_synflow_refuses_a_network_whose_linearisation_cuts_a_layer():
    check_flow = plugin_module("synflow").check_flow
    check_flow({"a": torch.ones(2), "b": torch.full((3,), 5.0)})
    with pytest.raises(ValueError, match="no synaptic flow reaches b"):
        check_flow({"a": torch.ones(2), "b": torch.zeros(3)})


# --- layer collapse --------------------------------------------------------------------------------

def connected(masks, names):
    """Some path from an input to an output of an MLP through kept weights."""
    reach = torch.ones(masks[names[0]].shape[1])
    for n in names:
        reach = (masks[n].float() @ reach).clamp(max=1)
    return bool(reach.sum() > 0)


@pytest.mark.parametrize("seed", [0, 1])
def test_synflow_keeps_every_layer_connected_where_snip_collapses_one(seed):
    """The tiny task's MLP without biases (Theorem 1's setting: with biases, their flow enters
    every layer and at 99.9 % SynFlow may drop the first layer of this MLP), 5 weights kept."""
    names = ["0.weight", "2.weight", "4.weight"]
    mlp = lambda: chain((16, 64, 64, 4), relu=True, bias=False)  # noqa: E731
    snip, _, _ = prune_only("snip", sparsity=0.999, seed=seed, model_fn=mlp)
    synflow, _, _ = prune_only("synflow", sparsity=0.999, seed=seed, model_fn=mlp)
    assert kept(snip) == kept(synflow) == round(0.001 * total(snip))
    assert min(int(snip[n].sum()) for n in names) == 0 and not connected(snip, names)
    assert min(int(synflow[n].sum()) for n in names) >= 1 and connected(synflow, names)


# --- the ablations ---------------------------------------------------------------------------------

@pytest.mark.parametrize("base", ["snip", "synflow"])
def test_shuffle_keeps_each_layers_density_and_the_initial_weights(base):
    masks, _, _ = prune_only(base)
    shuffled, state, init = prune_only(f"{base}+shuffle")
    assert {n: int(m.sum()) for n, m in shuffled.items()} == {n: int(m.sum()) for n, m in masks.items()}
    assert any(not torch.equal(shuffled[n], masks[n]) for n in masks)
    for n, m in shuffled.items():
        assert torch.equal(state[n], init[n] * m)


def test_shuffled_masks_permute_within_each_layer():
    masks = {"a": torch.tensor([[1, 1, 0, 0, 0]], dtype=torch.bool), "b": torch.ones(3, dtype=torch.bool)}
    out = shuffled_masks(masks, torch.Generator().manual_seed(0))
    assert int(out["a"].sum()) == 2 and out["a"].shape == (1, 5) and bool(out["b"].all())


def test_reinit_changes_only_the_values():
    masks, state, init = prune_only("snip")
    masks2, state2, _ = prune_only("snip+reinit")
    assert all(torch.equal(masks[n], masks2[n]) for n in masks)
    for n, m in masks2.items():
        assert torch.equal(state2[n] != 0, m)            # nonzero exactly where kept
        assert not torch.equal(state2[n], state[n])       # new values
        assert torch.equal(state[n], init[n] * m)         # the base method keeps θ0


def test_invert_keeps_the_lowest_ranked_weights():
    masks, state, init = prune_only("magnitude-init+invert", sparsity=0.7)
    magnitude = torch.cat([init[n].abs().flatten() for n in masks])
    keep = torch.cat([masks[n].flatten() for n in masks])
    assert int(keep.sum()) == round(0.3 * len(keep))
    assert magnitude[keep].max() <= magnitude[~keep].min()
    snip, _, _ = prune_only("snip", sparsity=0.8)
    inverted, _, _ = prune_only("snip+invert", sparsity=0.8)  # the same batch: the bottom 20 %
    assert not any(bool((snip[n] & inverted[n]).any()) for n in snip)


def test_every_variant_declares_the_taxonomy_of_its_method():
    for name in ABLATED:
        cls, defaults = registry.METHODS.get(name)
        base_cls, _ = registry.METHODS.get(name.split("+")[0])
        assert cls is base_cls and cls.when == "init"
        assert (cls.when, cls.criterion, cls.paper) == (base_cls.when, base_cls.criterion, base_cls.paper)
        assert defaults["ablation"] == name.split("+")[1]


# --- the contract, for every variant ------------------------------------------------------------------

@pytest.mark.parametrize("name", PAI + ABLATED)
def test_exact_sparsity_initial_weights_and_determinism(name):
    for sparsity in (0.9, 0.99):
        masks, state, init = prune_only(name, sparsity=sparsity, seed=1)
        assert kept(masks) == round((1 - sparsity) * total(masks))
        if not name.endswith("+reinit"):  # the weights as at initialization, apart from the zeros
            assert all(torch.equal(state[k], init[k] * masks[k] if k in masks else init[k]) for k in init)
    again, state2, _ = prune_only(name, sparsity=0.99, seed=1)
    assert all(torch.equal(masks[n], again[n]) for n in masks)
    assert all(torch.equal(state[k], state2[k]) for k in state)


class WithBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x):
        return self.net(x)


@pytest.mark.parametrize("name", PAI)
def test_scoring_leaves_batchnorm_statistics_and_mode_as_they_were(name):
    masks, state, init = prune_only(name, model_fn=WithBatchNorm)
    for k in init:
        assert torch.equal(state[k], init[k] * masks[k] if k in masks else init[k]), k


def test_exponential_schedule_ends_exactly_at_the_target():
    s = exponential_sparsities(0.99, 100)
    assert len(s) == 100 and s[-1] == 0.99 and all(a < b for a, b in zip(s, s[1:]))
    assert math.isclose(1 - s[49], 0.01 ** 0.5)
    assert exponential_sparsities(0.5, 0) == [0.5]


def test_grasp_samples_each_class_equally():
    sample = plugin_module("grasp").class_balanced_sample
    batches = [(torch.arange(6.0).unsqueeze(1), torch.tensor([0, 0, 0, 1, 2, 0])),
               (torch.arange(6.0, 9.0).unsqueeze(1), torch.tensor([1, 2, 1]))]
    x, y = sample(iter(batches), 2, 3)
    assert y.tolist() == [0, 0, 1, 1, 2, 2] and x.flatten().tolist() == [0, 1, 3, 6, 4, 7]


# --- the mode of the authors' code while scoring ------------------------------------------------------

def test_each_method_scores_in_the_mode_of_its_authors_code():
    modes = {name: method(name).score_mode for name in PAI}
    assert modes == {"snip": "eval", "synflow": "eval", "grasp": "train", "force": "train", "iter-snip": "train",
                     "magnitude-init": "train"}
    with pytest.raises(ValueError, match="score_mode"):
        method("snip", score_mode="inference")


def test_snip_on_a_batchnorm_model_ranks_with_running_statistics():
    """snip-public scores with is_train False: its masks are those of the eval-mode sensitivity,
    and differ from the batch-statistics ranking (version 1)."""
    def masks_of(name, **overrides):
        ctx = harness_context(0.9, 0, WithBatchNorm)
        ctx.train = lambda *a, **k: None
        with torch.no_grad():  # running statistics away from the identity, as after some training
            bn = ctx.model.net[1]
            bn.running_mean.uniform_(-2, 2), bn.running_var.uniform_(0.2, 4)
        batch = next(iter(harness_context(0.9, 0, WithBatchNorm).batches(1)))
        ctx.model.eval()
        expected = connection_sensitivity(ctx.masks.params, [batch], ctx.loss)
        ctx.model.train()
        method(name, **overrides).run(ctx)
        return ctx.masks.state(), expected

    masks, expected = masks_of("snip")
    from sparsebench.core.masks import top_k_masks
    reference = top_k_masks(expected, 0.1)
    assert all(torch.equal(masks[n], reference[n]) for n in masks)
    trained, _ = masks_of("snip", score_mode="train")
    assert not all(torch.equal(masks[n], trained[n]) for n in masks)


def test_synflow_rounds_keep_the_authors_count_and_the_last_is_exact():
    ctx = harness_context(0.99)
    counts = []
    original = ctx.masks.prune

    def recording(scores, sparsity, rule="global"):
        original(scores, sparsity, rule)
        counts.append(kept(ctx.masks.state()))

    ctx.masks.prune = recording
    ctx.train = lambda *a, **k: None
    method("synflow", rounds=20).run(ctx)
    n = total(ctx.masks.state())
    densities = [(1 - 0.99) ** (k / 20) for k in range(1, 21)]
    assert counts[:-1] == [n - int((1.0 - d) * n) for d in densities[:-1]]  # Synaptic-Flow Pruners/pruners.py
    assert counts[-1] == round(0.01 * n)
