"""Measured inference cost: what a pruned model's zeros save when it runs, not what FLOPs promise.

After every trial the harness times the final model in its dense form (the masked model as
trained: zeros are multiplied like any weight) and in each sparse form that can pay on the device,
side by side in one process, on one thread: a warm-up, then the median of repeated runs, at
batch 1 and at the task's evaluation batch, at most 256 examples so that measuring stays a few
seconds of a quick trial (the task's forward pass and loss on a validation batch, for dense and
sparse alike). The fastest form is reported.

Forms (CPU):

- ``dense``: the model as it is; its bytes are every parameter's, in float32.
- ``compact``: where whole units (filters, neurons) are zero, the physically smaller dense model
  without them (:func:`sparsebench.library.structures.compact`, built by the trial and kept only
  if its loss on the timed batch equals the masked model's).
- ``csr``: every prunable ``nn.Linear`` weight as a sparse CSR matrix (``torch.sparse.mm``;
  values, column indices and row pointers stored). Convolutions, LSTM matrices and embeddings
  stay dense: PyTorch has no sparse kernel for them on a CPU, so a CNN's or an LSTM's unstructured
  zeros are timed as they are — a speedup near 1 is the finding, not a gap in the harness.

The measured speedup is the dense form's latency over the fastest form's, at the evaluation
batch (``inference/speedup_measured``) and at batch 1 (``inference/speedup_measured_b1``). It is a
benchmark figure, noisy by nature on a shared machine: no test asserts on it. The stored size
(``inference/bytes``) is that of the smallest form, so that it is the same on every run.
"""
from __future__ import annotations

import copy
import statistics
import time
import warnings
from typing import Callable

import torch
from torch import nn

from sparsebench.core.masks import Masks

WARMUP, REPEATS, BUDGET_S = 1, 5, 0.5  # runs before timing; at most REPEATS timed runs, fewer past BUDGET_S


class CSRLinear(nn.Module):
    """An ``nn.Linear`` whose weight is stored and multiplied as a sparse CSR matrix."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
            warnings.simplefilter("ignore", UserWarning)
            self.weight = linear.weight.detach().to_sparse_csr()
        self.bias = None if linear.bias is None else linear.bias.detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        out = torch.sparse.mm(self.weight, flat.T).T
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)

    def stored_bytes(self) -> int:
        w = self.weight
        return sum(t.numel() * t.element_size() for t in (w.values(), w.col_indices(), w.crow_indices())) + (
            0 if self.bias is None else self.bias.numel() * self.bias.element_size())


def csr_form(model: nn.Module, masks: Masks) -> nn.Module | None:
    """A copy of ``model`` with every prunable Linear as a :class:`CSRLinear`; None if it has none."""
    names = [n.rpartition(".")[0] for n in masks if n.endswith(".weight")]
    linear = [n for n in names if isinstance(model.get_submodule(n), nn.Linear)]
    if not linear:
        return None
    out = copy.deepcopy(model)
    for name in linear:
        parent, _, child = name.rpartition(".")
        setattr(out.get_submodule(parent) if parent else out, child, CSRLinear(out.get_submodule(name)))
    return out


def stored_bytes(model: nn.Module) -> int:
    """Bytes of the model's weights in its own storage: dense tensors in full, CSR ones compressed."""
    sparse = {id(m) for m in model.modules() if isinstance(m, CSRLinear)}
    total = sum(m.stored_bytes() for m in model.modules() if isinstance(m, CSRLinear))
    seen = set()
    for module in model.modules():
        if id(module) in sparse:
            continue
        for p in list(module.parameters(recurse=False)) + list(module.buffers(recurse=False)):
            if id(p) not in seen:  # tied weights are stored once
                seen.add(id(p))
                total += p.numel() * p.element_size()
    return total


@torch.no_grad()
def latency_ms(run: Callable[[], object]) -> float:
    """Median wall time of ``run()`` in milliseconds, after a warm-up, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(WARMUP):
            run()
        times, started = [], time.perf_counter()
        while len(times) < REPEATS and (len(times) < 3 or time.perf_counter() - started < BUDGET_S):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
        return 1000 * statistics.median(times)
    finally:
        torch.set_num_threads(threads)


def measure(model: nn.Module, masks: Masks, forward: Callable[[nn.Module, object], object],
            batches: dict[str, object], forms: dict[str, nn.Module] | None = None) -> tuple[dict[str, float], str]:
    """Latency of ``forward(model, batch)`` for each of ``batches`` ("b1", "bN") in the dense and
    the sparse forms (the CSR form, and ``forms`` given, e.g. a compacted model), side by side:
    the fastest form's at each batch, its speedup over the dense form and its name at "bN", and the
    stored bytes of the smallest form (a size that does not depend on which form timed faster)."""
    was_training = model.training
    model.eval()
    forms = {"dense": model, **(forms or {})}
    csr = csr_form(model, masks)
    if csr is not None:
        forms["csr"] = csr
    try:
        timed = {(form, size): latency_ms(lambda m=m, b=batch: forward(m, b))
                 for size, batch in batches.items() for form, m in forms.items()}
    finally:
        model.train(was_training)
    best = {size: min(forms, key=lambda form: timed[form, size]) for size in batches}
    metrics = {"inference/bytes": min(stored_bytes(m) for m in forms.values()), "inference/bytes_dense": stored_bytes(model)}
    for size, suffix in (("bN", ""), ("b1", "_b1")):
        metrics |= {f"inference/latency_ms_{size}": timed[best[size], size],
                    f"inference/latency_ms_{size}_dense": timed["dense", size],
                    f"inference/speedup_measured{suffix}": timed["dense", size] / timed[best[size], size]}
    return metrics, best["bN"]
