"""Saliency scores shared by method plugins: one code path per criterion."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable

import torch
from torch import nn

from sparsebench.core.masks import Masks


def magnitude_scores(masks: Masks) -> dict[str, torch.Tensor]:
    """|w| of every prunable weight (the criterion of Han et al. 2015 and lottery tickets)."""
    return {n: p.detach().abs() for n, p in masks.params.items()}


# --- Saliencies at initialization (SNIP, FORCE, GraSP, SynFlow) ---------------------------------
# Pure functions of (named weights, batches, loss); they take no optimizer step and change no
# weight. ``loss(batch)`` is the task's training loss of the model on ``batch`` (``ctx.loss``).


@contextmanager
def model_mode(model: nn.Module, train: bool):
    """Run a score computation with ``model`` in training (batch statistics) or evaluation mode,
    and put every module's mode back afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.train(train)
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def loss_gradient(params: dict[str, torch.Tensor], batches: Iterable, loss: Callable,
                  create_graph: bool = False) -> dict[str, torch.Tensor]:
    """∂L/∂θ for the named ``params``, averaged over ``batches`` (mean of the per-batch means)."""
    names, tensors = list(params), list(params.values())
    total, count = None, 0
    for batch in batches:
        grads = torch.autograd.grad(loss(batch), tensors, create_graph=create_graph, allow_unused=True)
        grads = [torch.zeros_like(t) if g is None else g for g, t in zip(grads, tensors)]
        total = grads if total is None else [a + g for a, g in zip(total, grads)]
        count += 1
    if count == 0:
        raise ValueError("a data-driven score needs at least one training batch")
    return {n: g / count for n, g in zip(names, total)}


def connection_sensitivity(params: dict[str, torch.Tensor], batches: Iterable, loss: Callable,
                           weights: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """SNIP's saliency (Lee et al. 2019, Eq. 6): |∂L(c ⊙ w)/∂c| at the current masks, which is
    |g ⊙ w| with g = ∂L/∂w. ``weights`` (default: the parameters themselves) are the w that
    multiply the gradient: FORCE multiplies by the dense weights at initialization, so that
    pruned weights get a saliency too. Unnormalized: SNIP's division by Σ|g ⊙ w| changes no rank."""
    grads = loss_gradient(params, batches, loss)
    weights = params if weights is None else weights
    return {n: (grads[n] * weights[n]).detach().abs() for n in params}


def hessian_gradient_product(params: dict[str, torch.Tensor], batches: Iterable, loss: Callable,
                             vector: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """H v for the Hessian H of the loss in ``params``, averaged over ``batches``: the gradient of
    ⟨∂L/∂θ, v⟩ with v held constant (Pearlmutter's double backward, no Hessian is formed)."""
    names, tensors = list(params), list(params.values())
    total, count = None, 0
    for batch in batches:
        grads = torch.autograd.grad(loss(batch), tensors, create_graph=True, allow_unused=True)
        dot = sum((g * vector[n].detach()).sum() for n, g in zip(names, grads) if g is not None)
        hv = torch.autograd.grad(dot, tensors, allow_unused=True)
        hv = [torch.zeros_like(t) if h is None else h.detach() for h, t in zip(hv, tensors)]
        total = hv if total is None else [a + h for a, h in zip(total, hv)]
        count += 1
    if count == 0:
        raise ValueError("a data-driven score needs at least one training batch")
    return {n: h / count for n, h in zip(names, total)}


def fisher_diagonal(params: dict[str, torch.Tensor], examples: Iterable, loss: Callable) -> dict[str, torch.Tensor]:
    """The diagonal empirical Fisher E[g²] of the loss in ``params``: the mean over ``examples``
    (batches of one example each, ``MethodContext.examples``) of the squared per-example
    gradient. (Squared mini-batch gradients, B · ḡ², estimate it only where the expected
    gradient vanishes, and each batch is a single noisy sample of it.)"""
    total, count = {n: torch.zeros_like(p) for n, p in params.items()}, 0
    for example in examples:
        grads = torch.autograd.grad(loss(example), list(params.values()), allow_unused=True)
        for n, g in zip(params, grads):
            if g is not None:
                total[n] += g.detach() ** 2
        count += 1
    if count == 0:
        raise ValueError("a data-driven score needs at least one training example")
    return {n: t / count for n, t in total.items()}


def hessian_diagonal(params: dict[str, torch.Tensor], batches: Iterable, loss: Callable,
                     generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """diag(H) of the loss in ``params`` by Hutchinson's estimator, E[z ⊙ Hz] for Rademacher z
    (Bekas, Kokiopoulou & Saad 2007): one fresh z per batch (from ``generator``, else torch's
    seeded global one), averaged over ``batches``."""
    total, count = None, 0
    for batch in batches:
        z = {n: torch.randint(0, 2, p.shape, generator=generator).to(p) * 2 - 1 for n, p in params.items()}
        hz = hessian_gradient_product(params, [batch], loss, z)
        sample = {n: z[n] * hz[n] for n in params}
        total = sample if total is None else {n: total[n] + sample[n] for n in params}
        count += 1
    if count == 0:
        raise ValueError("a data-driven score needs at least one training batch")
    return {n: t / count for n, t in total.items()}


def synaptic_flow(model: nn.Module, names: Iterable[str], example: torch.Tensor,
                  dtype: torch.dtype = torch.float64, train: bool = False) -> dict[str, torch.Tensor]:
    """SynFlow's saliency (Tanaka et al. 2020, Eq. 2): |∂R/∂θ ⊙ θ| with R = 1ᵀ (∏ |W|) 1, the
    output sum of the linearised network — every parameter and buffer replaced by its absolute
    value, modules in evaluation mode (BatchNorm uses its running statistics; ``train=True`` for
    batch statistics) — on an all-ones
    input shaped like one example of ``example`` (a batch, the first axis is dropped). A model
    returning a tuple (logits, state) is scored on its first element.

    Computed in ``dtype`` (double by default: R is a product over layers and overflows float32 in
    deep networks) through ``torch.func.functional_call``: the model's own weights are never
    changed, so nothing has to be restored. Token-id inputs (integer ``example``) are supported
    where the model embeds them with ``nn.Embedding``: an embedding is a linear map of one-hot
    vectors, so its all-ones input is the sum of the rows of |E|, fed to the next layer in place of
    the lookup; without an embedding an integer input raises ``ValueError``.
    """
    names = list(names)
    tensors = {n: p.detach().to(dtype).abs() for n, p in model.named_parameters()}
    for n in names:
        tensors[n].requires_grad_(True)
    buffers = {n: b.detach().to(dtype).abs() if b.is_floating_point() else b for n, b in model.named_buffers()}
    out = linearised_output(model, {**tensors, **buffers}, example, dtype, train)
    grads = torch.autograd.grad(out.sum(), [tensors[n] for n in names], allow_unused=True)
    return {n: torch.zeros_like(tensors[n]) if g is None else (g * tensors[n]).detach().abs()
            for n, g in zip(names, grads)}


def linearised_output(model: nn.Module, values: dict[str, torch.Tensor], example: torch.Tensor,
                      dtype: torch.dtype = torch.float64, train: bool = False) -> torch.Tensor:
    """The output of ``model`` with its parameters and buffers replaced by ``values``
    (``torch.func.functional_call``: the model itself is untouched) on an all-ones input shaped
    like one example of ``example``; for token ids, the all-ones input over the vocabulary, i.e.
    every ``nn.Embedding`` lookup replaced by the sum of its rows (the ids of the first example are
    passed on, for models that also read them, e.g. to mask padding). Of a (logits, state) output,
    the logits."""
    hooks = []
    if example.is_floating_point():
        x = torch.ones((1, *example.shape[1:]), dtype=dtype, device=example.device)
    else:
        embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
        if not embeddings:
            raise ValueError("the linearised network is fed an all-ones input: it needs a float input, or "
                             f"token ids read by nn.Embedding; got {example.dtype} and no embedding")
        x = example[:1]  # the ids only matter where the model reads them besides the lookup (padding masks)
        # all-ones over the vocabulary: the lookup becomes 1ᵀ|E|, at every position
        hooks = [m.register_forward_hook(lambda m, inp, out: m.weight.sum(0).expand(*out.shape))
                 for m in embeddings]
    try:
        with model_mode(model, train=train):
            out = torch.func.functional_call(model, values, (x,))
    finally:
        for h in hooks:
            h.remove()
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        out = out[0]  # (logits, state) of the language models: the logits
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the linearised network's output must be a tensor, got {type(out).__name__}")
    return out
