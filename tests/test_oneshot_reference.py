"""One-shot methods against their authors' code, re-typed here in its own loop structure
(IST-DASLab/sparsegpt ``sparsegpt.py``: ``add_batch``, ``fasterprune``), and the authors' sequential
order (locuslab/wanda ``prune_wanda``) on a hand-computed two-block network."""
import importlib
import math

import pytest
import torch
from torch import nn

from sparsebench.core import registry
from sparsebench.core.masks import Masks
from sparsebench.library.inputs import blocks, input_covariances
from sparsebench.library.structures import pattern_violations


def module_of(method):
    return importlib.import_module(registry.METHODS.get(method)[0].__module__)


class Calib:
    """A calibration set of given batches (no charging: no trainer here)."""

    def __init__(self, batches, examples):
        self.batches, self.examples, self.tokens = batches, examples, None

    def passes(self, ctx):
        return iter(self.batches)


class Ctx:
    def __init__(self, model, names, sparsity, example):
        self.model, self.masks, self.sparsity, self._example = model, Masks(model, names), sparsity, example

    def loss(self, batch):
        return self.model(batch[0]).sum()

    def example(self):
        return self._example


def authors_add_batch(state, inp):
    """``SparseGPT.add_batch`` for a Linear layer (their running 2/nsamples scale)."""
    if len(inp.shape) == 2:
        inp = inp.unsqueeze(0)
    tmp = inp.shape[0]
    if len(inp.shape) == 3:
        inp = inp.reshape((-1, inp.shape[-1]))
    inp = inp.t()
    state["H"] *= state["nsamples"] / (state["nsamples"] + tmp)
    state["nsamples"] += tmp
    inp = math.sqrt(2 / state["nsamples"]) * inp
    state["H"] += inp.matmul(inp.t())


def authors_fasterprune(W, H, sparsity, blocksize=128, percdamp=0.01, prunen=0, prunem=0):
    """``SparseGPT.fasterprune`` (no quantizer)."""
    W, H = W.clone(), H.clone()
    columns = W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    damp = percdamp * torch.mean(torch.diag(H))
    diag = torch.arange(columns)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    Hinv = torch.linalg.cholesky(H, upper=True)
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        if prunen == 0:
            tmp = W1 ** 2 / (torch.diag(Hinv1).reshape((1, -1))) ** 2
            thresh = torch.sort(tmp.flatten())[0][int(tmp.numel() * sparsity)]
            mask1 = tmp <= thresh
        else:
            mask1 = torch.zeros_like(W1) == 1
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if prunen != 0 and i % prunem == 0:
                tmp = W1[:, i:(i + prunem)] ** 2 / (torch.diag(Hinv1)[i:(i + prunem)].reshape((1, -1))) ** 2
                mask1.scatter_(1, i + torch.topk(tmp, prunen, dim=1, largest=False)[1], True)
            q = w.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W


@pytest.mark.parametrize("sparsity", [0.5, 0.7, 0.9])
def test_sparsegpt_equals_the_authors_update_on_a_layer_with_dead_inputs(sparsity):
    g = torch.Generator().manual_seed(0)
    layer = nn.Linear(160, 16, bias=False).double()
    dead = torch.zeros(160, dtype=torch.bool)
    dead[torch.randperm(160, generator=g)[:20]] = True  # 20 inputs never nonzero
    batches = []
    for _ in range(3):  # batches of 4 sequences of 10 positions, as a language model's
        x = torch.randn(4, 10, 160, generator=g, dtype=torch.float64) * torch.linspace(0.2, 3, 160, dtype=torch.float64)
        batches.append((x.masked_fill(dead, 0.0),))
    state = {"H": torch.zeros(160, 160, dtype=torch.float64), "nsamples": 0}
    for (x,) in batches:
        authors_add_batch(state, x)
    model = nn.Sequential(layer)
    ctx = Ctx(model, ["0.weight"], sparsity, batches[0])
    h = input_covariances(ctx, Calib(batches, examples=12), ["0.weight"])["0.weight"]
    assert torch.allclose(h, state["H"], rtol=1e-12, atol=1e-12)  # 2/N Σ x xᵀ, N the sequences
    w = layer.weight.detach()
    ours = module_of("sparsegpt").prune_layer(w, h, sparsity)
    theirs = authors_fasterprune(w, state["H"], sparsity)
    assert torch.equal(ours == 0, theirs == 0)  # the same mask
    assert torch.allclose(ours, theirs, rtol=1e-9, atol=1e-12)  # the same weights, to float rounding


@pytest.mark.parametrize("n, m", [(2, 4), (4, 8)])
def test_sparsegpt_nm_equals_the_authors_update(n, m):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 160, generator=g, dtype=torch.float64)
    x[:, :7] = 0.0  # dead inputs
    h = 2 * x.T @ x / 300
    w = torch.randn(16, 160, generator=g, dtype=torch.float64)
    ours = module_of("sparsegpt").prune_layer(w, h, 0.5, n=n, m=m)
    theirs = authors_fasterprune(w, h, 0.5, prunen=m - n, prunem=m)  # their prunen: the weights zeroed
    assert torch.equal(ours == 0, theirs == 0)
    assert torch.allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    assert ((ours != 0).view(16, -1, m).sum(-1) <= n).all()


def test_sparsegpt_nm_keeps_the_harness_share_of_a_shorter_last_run():
    # 102 inputs at 4:8: twelve runs of 8, then a run of 6, where the authors' code (M dividing the
    # inputs) has no rule; the harness allows ceil(4/8 × 6) = 3, and the rest of the sweep is the authors'
    g = torch.Generator().manual_seed(3)
    x = torch.randn(300, 102, generator=g, dtype=torch.float64)
    h, w = 2 * x.T @ x / 300, torch.randn(16, 102, generator=g, dtype=torch.float64)
    ours = module_of("sparsegpt").prune_layer(w, h, 0.5, n=4, m=8)
    assert ((ours[:, 96:] != 0).sum(1) == 3).all()
    assert pattern_violations({"w": ours}, 4, 8) == []
    theirs = authors_fasterprune(w, h, 0.5, prunen=4, prunem=8)  # their rule takes 4 of the 6
    assert torch.equal(ours[:, :96] == 0, theirs[:, :96] == 0)
    assert ((theirs[:, 96:] != 0).sum(1) == 2).all()


def two_block_model():
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 1.0]]))
        model[2].weight.copy_(torch.tensor([[1.375, 1.0]]))
    return model


@pytest.mark.parametrize("order", ["sequential", "one-pass"])
def test_wanda_prunes_each_block_from_the_already_pruned_blocks_outputs(order):
    # x = (1, 1): layer 0 keeps per row the larger |w| (norms equal): [[0, 2], [3, 0]].
    # Its outputs: dense (3, 4), pruned (2, 3). Layer 2's scores |w|·‖h‖: dense (4.125, 4) keep the
    # first weight; from the pruned layer (2.75, 3) keep the second — the authors' order.
    model = two_block_model()
    batch = (torch.ones(1, 2),)
    ctx = Ctx(model, ["0.weight", "2.weight"], 0.5, batch)
    assert blocks(ctx) == [["0.weight"], ["2.weight"]]
    cls, defaults = registry.METHODS.get("wanda" if order == "sequential" else "wanda-onepass")
    cls(**defaults).prune(ctx, Calib([batch], examples=1))
    assert model[0].weight.tolist() == [[0.0, 2.0], [3.0, 0.0]]
    assert model[2].weight.tolist() == ([[0.0, 1.0]] if order == "sequential" else [[1.375, 0.0]])


def test_a_transformer_block_is_pruned_as_one():
    from sparsebench.running.trial import make_context, make_task
    task = make_task("tiny-transformer", "quick")
    splits = task.load(None)
    ctx = make_context(task, splits.train, splits.val, 0.5, torch.Generator().manual_seed(0))
    groups = blocks(ctx)
    assert sorted(n for g in groups for n in g) == sorted(ctx.masks)
    assert all(len({n.split(".")[1] for n in g}) == 1 for g in groups if g[0].startswith("blocks."))
    assert any(len(g) > 1 for g in groups)  # a block's projections together
