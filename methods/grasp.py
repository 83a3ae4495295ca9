"""GraSP: gradient signal preservation, pruning at initialization.

Wang, Zhang & Grosse 2020, "Picking Winning Tickets Before Training by Preserving Gradient Flow"
(ICLR), §4 and Algorithm 1. Removing weights δ changes the gradient norm by
ΔL(θ) ≈ 2 δᵀ H g (H the Hessian, g the gradient of the loss); the score of removing each weight,

    S(-θ) = -θ ⊙ H g,

is how much the gradient norm would grow without it. GraSP removes the fraction p of weights
with the *highest* scores (they reduce the gradient flow the least, or increase it) and keeps
the rest — Algorithm 1 and the authors' code (github.com/alecwangcq/GraSP, ``pruner/GraSP.py``:
``keep_masks = scores <= threshold`` with ``scores = -θ ⊙ Hg``, over all weights at once);
Tanaka et al.'s re-implementation keeps the top of θ ⊙ Hg, the same masks. Here the kept weights
are the top-ranked of θ ⊙ Hg = -S(-θ).

Defaults, from the paper's experiments and the authors' code: H g is computed on the logits
divided by a temperature T = 200 (§5, "temperature"; ``T=200``), on a class-balanced sample of
10 training examples per class (``samples_per_class: 10`` in the CIFAR-10 configurations; the
sample is split in two halves, g summed over the halves and Hg accumulated over them as in the
code), one iteration (``num_iters=1``), global ranking. H g is a Hessian-vector product by
double backward (∂⟨∂L/∂θ, g⟩/∂θ with g held fixed); no Hessian is formed, no optimizer step taken.
The class-balanced sample is drawn from ``ctx.batches`` (whole batches are charged); the
Hessian-vector pass is charged as two more dense passes over the sample. Tasks whose targets are
not one class index per example (e.g. language modelling) use ``fallback_batches`` whole batches.

Mode: training mode while scoring (BatchNorm on batch statistics), as the authors' code:
``main_prune_non_imagenet.py`` passes the newly built model to ``GraSP`` without ``eval()``, and
``pruner/GraSP.py`` scores a deep copy with ``.eval()`` commented out
(``net = copy.deepcopy(net)  # .eval()``). ``score_mode="eval"`` is the other choice.

Count: the authors' threshold is the ``int(sN)``-th highest score and ``keep_masks = scores <=
threshold`` keeps it, so their masks hold N − int(sN) + 1 of N weights; here exactly round((1 − s)N),
the count every method of the harness is held to (P1: one weight more than the target is no part
of the method, and would break the equal-count comparison). Otherwise the masks are the same.

Not followed: the authors' code re-initializes the copy's linear layers with Xavier normal
before scoring (``reinit=True``), which the paper does not describe; the score here is that of
the model the harness will train.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from sparsebench import Choice, Uniform
from sparsebench.library.ablations import PruneAtInit, register_with_ablations
from sparsebench.library.scores import hessian_gradient_product, loss_gradient, model_mode


def class_balanced_sample(batches, per_class: int, num_classes: int):
    """(x, y) with ``per_class`` examples of each class, taken in order from ``batches`` until
    every class has them (or the batches run out), as the authors' ``GraSP_fetch_data``."""
    kept: dict[int, list] = {}
    for x, y in batches:
        for i, c in enumerate(y.tolist()):
            if len(kept.setdefault(c, [])) < per_class:
                kept[c].append((x[i], y[i]))
        if len(kept) >= num_classes and all(len(v) == per_class for v in kept.values()):
            break
    pairs = [p for c in sorted(kept) for p in kept[c]]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def is_classification(batch) -> bool:
    """An (inputs, class indices) batch, one integer target per example."""
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        return False
    x, y = batch
    return (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and y.dim() == 1
            and not y.is_floating_point() and len(x) == len(y))


def tempered(output, temperature: float):
    """Logits divided by the temperature; for (logits, state) outputs, the logits."""
    if isinstance(output, (tuple, list)):
        return type(output)([output[0] / temperature, *output[1:]])
    return output / temperature


@register_with_ablations("grasp")
@dataclass
class GraSP(PruneAtInit):
    temperature: float = 200.0   # T: logits / T for g and Hg
    samples_per_class: int = 10  # class-balanced sample (authors' CIFAR-10 configurations)
    fallback_batches: int = 1    # whole batches, for targets that are not class indices
    bounds = {"temperature": "(0, inf)", "samples_per_class": "[1, inf)", "fallback_batches": "[1, inf)"}

    # T softens the logits for g and Hg (the authors' code: 200); the sample size sets the noise of Hg
    search_space = {"temperature": Uniform(20.0, 2000.0, log=True), "samples_per_class": Choice(5, 10, 25)}

    criterion = "second-order"
    paper = "Wang et al. 2020, Picking Winning Tickets Before Training by Preserving Gradient Flow (ICLR)"

    def sample(self, ctx) -> list:
        """The data for g and Hg: the class-balanced sample in two halves, or whole batches."""
        stream = ctx.batches(10**9)  # drawn lazily: only the batches taken are charged
        first = next(stream)
        if not is_classification(first):
            return [first, *itertools.islice(stream, self.fallback_batches - 1)]
        x, y = first
        with torch.no_grad(), model_mode(ctx.model, train=False):
            num_classes = ctx.model(x[:1]).shape[-1]
        limit = 10 * math.ceil(self.samples_per_class * num_classes / len(y)) + 10  # for rare classes
        xs, ys = class_balanced_sample(itertools.chain([first], itertools.islice(stream, limit - 1)),
                                       self.samples_per_class, num_classes)
        half = len(ys) // 2
        return [(xs[:half], ys[:half]), (xs[half:], ys[half:])] if half else [(xs, ys)]

    def score(self, ctx, weights):
        data = self.sample(ctx)
        params = ctx.masks.params
        hook = ctx.model.register_forward_hook(lambda module, inputs, output: tempered(output, self.temperature))
        try:
            g = loss_gradient(params, data, ctx.loss)
            hg = hessian_gradient_product(params, data, ctx.loss, g)
        finally:
            hook.remove()
        examples = sum(len(b[-1]) for b in data)
        ctx.charge(2 * examples)  # the double-backward pass
        return {n: (params[n].detach() * hg[n]) for n in params}  # = -S(-θ): keep the top
