"""The diagonal of the Gauss–Newton matrix of the softmax cross-entropy, per example, no labels needed.

For logits z(θ) and p = softmax(z), the Hessian of −log p_y in θ is Jᵀ (diag p − p pᵀ) J plus terms in
the second derivatives of z, which vanish for a linear model and are the part that can be negative;
the first, the Gauss–Newton (Levenberg–Marquardt) matrix, is what LeCun, Denker & Solla 1990
back-propagate for Optimal Brain Damage. Its diagonal is Σ_c p_c g_c², g_c the gradient of −log p_c
(the loss were the label c): it depends on the model's predictions, not on the labels (the
empirical Fisher, g_y², puts the observed label in its place).

Exact (one backward pass per class) where an example has one prediction over at most
``max_classes`` classes; else (a language model's sequence: a prediction per position over a
vocabulary) estimated without bias from one label per position drawn from p: the square of the
sequence's gradient, whose cross terms between positions vanish in expectation.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn.functional as F


def gauss_newton_diagonal(params: dict[str, torch.Tensor], examples: Iterable, logits_of: Callable,
                          max_classes: int = 100, generator: torch.Generator | None = None
                          ) -> tuple[dict[str, torch.Tensor], int]:
    """The mean over ``examples`` of diag(Jᵀ (diag p − p pᵀ) J), summed over an example's
    positions, for the named ``params`` (``logits_of(example)`` returns its logits (..., classes)),
    and the number of backward passes made."""
    names, tensors = list(params), list(params.values())
    total, count, passes = [torch.zeros_like(t) for t in tensors], 0, 0
    for example in examples:
        z = logits_of(example)
        log_p = F.log_softmax(z.reshape(-1, z.shape[-1]), dim=-1)
        p = log_p.detach().exp()
        if len(log_p) == 1 and log_p.shape[1] <= max_classes:
            passes += log_p.shape[1]
            for c in range(log_p.shape[1]):
                grads = torch.autograd.grad(-log_p[0, c], tensors, retain_graph=True, allow_unused=True)
                for t, g in zip(total, grads):
                    if g is not None:
                        t += p[0, c] * g.detach() ** 2
        else:
            passes += 1
            drawn = torch.multinomial(p.cpu(), 1, generator=generator).to(z.device)
            grads = torch.autograd.grad(-log_p.gather(1, drawn).sum(), tensors, allow_unused=True)
            for t, g in zip(total, grads):
                if g is not None:
                    t += g.detach() ** 2
        count += 1
    if count == 0:
        raise ValueError("the Gauss-Newton diagonal needs at least one example")
    return {n: t / count for n, t in zip(names, total)}, passes


def predictions(model: torch.nn.Module, run: Callable) -> Callable:
    """``logits_of(example)``: runs ``run(example)`` (the task's loss) and returns the model's output
    on the way (its first element where the model returns a tuple, as language models' (logits, state))."""
    def logits_of(example):
        seen = []
        handle = model.register_forward_hook(lambda module, args, out: seen.append(out))
        try:
            run(example)
        finally:
            handle.remove()
        out = seen[-1]
        return out[0] if isinstance(out, tuple) else out
    return logits_of
