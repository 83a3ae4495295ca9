"""Measured inference cost: the sparse forms compute what the masked model computes, their sizes
are counted from what they store, and a model with no sparse kernel is reported as dense.
No assertion on times: they are benchmark figures."""
import torch
from torch import nn

from sparsebench.core import inference
from sparsebench.core.masks import Masks


def masked_mlp(sparsity=0.9, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 5))
    masks = Masks(model, ["0.weight", "2.weight"])
    masks.prune({n: torch.rand_like(p) for n, p in masks.params.items()}, sparsity, rule="uniform")
    masks.apply()
    return model, masks


def test_the_csr_form_computes_what_the_masked_model_computes():
    model, masks = masked_mlp()
    csr = inference.csr_form(model, masks)
    assert all(isinstance(csr[i], inference.CSRLinear) for i in (0, 2))
    x = torch.randn(7, 4, 20)  # extra leading dimensions, as a transformer's tokens
    assert torch.allclose(csr(x), model(x), atol=1e-5)


def test_stored_bytes_count_what_each_form_stores():
    model, masks = masked_mlp(sparsity=0.9)
    dense = inference.stored_bytes(model)
    assert dense == 4 * sum(p.numel() for p in model.parameters())
    nonzero = sum(int((p != 0).sum()) for p in masks.params.values())
    # CSR: 4-byte values and 8-byte column indices per nonzero, a row pointer per row and one more
    expected = dense - 4 * (20 * 30 + 30 * 5) + 12 * nonzero + 8 * (30 + 1 + 5 + 1)
    assert inference.stored_bytes(inference.csr_form(model, masks)) == expected


def test_tied_weights_are_stored_once():
    emb = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = emb.weight
    assert inference.stored_bytes(nn.ModuleList([emb, head])) == 4 * 40


def test_a_model_without_sparse_kernels_is_measured_dense():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten())
    masks = Masks(model, ["0.weight"])
    batches = {"b1": torch.randn(1, 1, 8, 8), "bN": torch.randn(4, 1, 8, 8)}
    metrics, form = inference.measure(model, masks, lambda m, x: m(x), batches)
    assert form == "dense" and metrics["inference/speedup_measured"] == 1.0
    assert metrics["inference/speedup_measured_b1"] == 1.0
    assert metrics["inference/bytes"] == metrics["inference/bytes_dense"]


def test_measuring_reports_both_batches_and_leaves_the_model_as_it_was():
    model, masks = masked_mlp()
    model.train()
    metrics, form = inference.measure(model, masks, lambda m, x: m(x), {"b1": torch.randn(1, 20),
                                                                         "bN": torch.randn(64, 20)})
    assert form in ("dense", "csr") and model.training
    assert all(metrics[k] > 0 for k in ("inference/latency_ms_b1", "inference/latency_ms_bN",
                                        "inference/speedup_measured", "inference/speedup_measured_b1"))
    assert metrics["inference/bytes"] <= metrics["inference/bytes_dense"]
